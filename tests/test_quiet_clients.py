"""Clients whose exchange is still open but quiet wait on disk (`exchanges.correlator`, `spill.SpillStore`): the
report is the same, and the clients held in memory while a capture is read stay bounded by the clients active
in the last minute, not by those waiting for their idle timeout. Also the other structures that grew with the
clients: the duplicate-GUID table (a name per SMSID, a set only for a duplicate) and a partitioned run's
results (sent a few at a time, merged on disk)."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from kerbtrace import analysis as analysis_module
from kerbtrace import spill
from kerbtrace.analysis import Session, analyze
from kerbtrace.exchanges import correlator as correlator_module
from kerbtrace.reports.json_report import to_json
from tests.conftest import CAPTURES, REPO, lab_manifests, timeless

sys.path.insert(0, str(REPO / "benchmarks"))
import make_capture  # noqa: E402


def _doc(paths: list[str]) -> dict:
    return timeless(json.loads(json.dumps(to_json(analyze(paths, progress=False)))))


def _count_puts(monkeypatch) -> Counter:
    puts: Counter = Counter()
    put = spill.SpillStore.put

    def counted(self, key, obj, keep=None):
        puts[type(obj).__name__] += 1
        puts["kept"] += len(keep or ())
        put(self, key, obj, keep)
    monkeypatch.setattr(spill.SpillStore, "put", counted)
    return puts


@pytest.mark.parametrize(("name", "pending"), [("mixed.pcapng", True), ("duplicate_guid.pcapng", True),
                                              ("ntlm_only.pcapng", False), ("kerberos_over_tcp.pcapng", True),
                                              ("https_mp.pcapng", True)])
def test_same_report_with_every_client_on_disk_between_packets(monkeypatch, name, pending):
    paths = [str(CAPTURES / name)]
    # a check every frame; every open client rested after each (the most the disk can be asked to keep)
    monkeypatch.setattr(analysis_module, "PROGRESS_EVERY", 1)
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", None)
    kept = _doc(paths)
    puts = _count_puts(monkeypatch)
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", -1.0)
    assert _doc(paths) == kept
    assert puts["ClientExchange"] > 0, "no client went to disk: the test would prove nothing"
    # requests still waiting for their reply stay in memory, the same objects when the client comes back
    assert (puts["kept"] > 0) == pending, puts
    assert kept["clients"]


def test_clients_in_memory_stay_bounded(monkeypatch, tmp_path):
    out = tmp_path / "open.pcap"
    templates = [CAPTURES / m.with_suffix(".pcapng").name for m in lab_manifests()]
    try:  # 600 registrations over 15 minutes: many never answered (they wait the 10-minute idle timeout)
        make_capture.generate(out, 12, 600, duration=900.0, templates=templates, windows_share=0.0)
    except OSError as exc:
        pytest.skip(f"benchmark templates not available: {exc}")
    monkeypatch.setattr(analysis_module, "PROGRESS_EVERY", 1 << 10)
    peaks: dict[str, int] = {"open": 0, "in_memory": 0}
    poll = Session.poll

    def watched(self, now=None):
        out = poll(self, now)
        table = self.correlator.clients
        peaks["open"] = max(peaks["open"], len(table))
        peaks["in_memory"] = max(peaks["in_memory"],
                                 sum(1 for c in dict.values(table) if type(c) is not correlator_module._Quiet))
        return out
    monkeypatch.setattr(Session, "poll", watched)
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", None)
    kept = _doc([str(out)])
    assert peaks["in_memory"] == peaks["open"] > 200, peaks  # without it: every open client in memory
    peaks.update(open=0, in_memory=0)
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", 60.0)
    assert _doc([str(out)]) == kept
    # 600 clients in 900 s: about 40 start in a minute; the open ones waiting for their idle timeout are on disk
    assert peaks["open"] > 200 and peaks["in_memory"] < 100, peaks


def test_a_quiet_client_goes_to_disk_once_until_it_comes_back(monkeypatch, tmp_path):
    """A client is due once per change of its legs, so several of its entries fall due at one tick: it is looked
    at once. Each entry used to rest it again: pickled to disk once more over its own copy (in a generated
    capture, three of every four writes), and every entry pushed back one more."""
    out = tmp_path / "open.pcap"
    make_capture.generate(out, 6, 300, duration=600.0)
    store_puts: Counter = Counter()
    put = spill.SpillStore.put

    def counted(self, key, obj, keep=None):
        store_puts["again" if key in self else "first"] += 1
        put(self, key, obj, keep)
    monkeypatch.setattr(spill.SpillStore, "put", counted)
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", 30.0)
    monkeypatch.setattr(analysis_module, "PROGRESS_EVERY", 1 << 8)  # a tick every 256 frames
    due_sizes: list[int] = []
    completed = correlator_module.Correlator.completed

    def watched(self, settle=30.0):
        yield from completed(self, settle)
        due_sizes.append(len(self._due) - len(self._order))  # entries beyond one per waiting client
    monkeypatch.setattr(correlator_module.Correlator, "completed", watched)
    doc = _doc([str(out)])
    assert doc["clients"] and store_puts["first"] > 20, store_puts  # clients did go to disk
    assert store_puts["again"] == 0, store_puts
    assert max(due_sizes) < 50, max(due_sizes)  # stale entries do not pile up


def test_smsid_table_keeps_a_name_not_a_set_per_smsid():
    from kerbtrace.checks.base import SmsidUsers
    from kerbtrace.partition import _union_smsids

    users = SmsidUsers()
    for smsid, name in [("GUID:A", "WK01"), ("GUID:B", "WK02"), ("GUID:A", "WK01"), ("GUID:C", "WK03"),
                        ("GUID:C", "WK04"), ("GUID:C", "WK05")]:
        users.add(smsid, name)
    # one computer per SMSID (nearly every client): its name alone, no set of 216 bytes
    assert users == {"GUID:A": "WK01", "GUID:B": "WK02", "GUID:C": {"WK03", "WK04", "WK05"}}
    assert users.users("GUID:A") == {"WK01"} and users.users("GUID:X") == set()
    assert users.shared() == {"GUID:C": {"WK03", "WK04", "WK05"}}
    other = SmsidUsers()
    other.add("GUID:B", "WK09")
    other.add("GUID:C", "WK03")
    union = _union_smsids([users, other])
    assert union.users("GUID:B") == {"WK02", "WK09"} and union.users("GUID:C") == {"WK03", "WK04", "WK05"}
    assert users["GUID:B"] == "WK02"  # the parts are left as they were


def test_parts_send_their_results_a_few_at_a_time_kept_on_disk_and_merged_as_read(monkeypatch, tmp_path):
    from kerbtrace import partition
    from kerbtrace.parallel import analyze_files

    out = tmp_path / "gen.pcap"
    make_capture.generate(out, 6, 120)
    one = timeless(json.loads(json.dumps(to_json(analyze_files([str(out)], jobs=1, progress=False)))))
    monkeypatch.setattr(spill, "THRESHOLD", 5)  # every list past 5 items on disk
    monkeypatch.setattr(partition, "SEND_CLIENTS", 3)
    monkeypatch.setattr(partition, "SEND_KERBEROS", 100)
    sent: Counter = Counter()
    receive = partition._receive_list

    def counted(pipe, k, what, out, total):
        got = receive(pipe, k, what, out, total)
        assert len(got) == total
        sent[what] += len(got)
        return got
    monkeypatch.setattr(partition, "_receive_list", counted)
    result = analyze_files([str(out)], jobs=2, progress=False)
    assert sent["clients"] > 3, sent  # more than one message of clients from the other process
    assert sent["kerberos"] > 100, sent  # and its Kerberos records
    for listed in (result.clients, result.kerberos):
        (merged,) = listed.parts  # the parts' lists, read in order as one, not copied
        assert isinstance(merged, spill.Merged) and len(merged.parts) == 2
        assert all(part.spilled for part in merged.parts), [part.spilled for part in merged.parts]
    doc = timeless(json.loads(json.dumps(to_json(result))))
    assert doc == one and len(one["clients"]) > 50


def test_spill_store_gives_back_what_it_took_and_keeps_its_file_small(monkeypatch):
    store = spill.SpillStore()
    monkeypatch.setattr(store, "COMPACT_AFTER", 1000)
    shared = ["waiting for a reply"]
    store.put("a", {"n": 1, "pending": shared}, keep={id(shared): shared})
    store.put("b", list(range(100)))
    store.put("b", list(range(200)))  # replaced
    back = store.take("a")
    assert back == {"n": 1, "pending": shared} and back["pending"] is shared  # the very object kept
    assert store.take("b") == list(range(200)) and len(store) == 0
    with pytest.raises(KeyError):
        store.take("b")
    for round_ in range(50):  # put and take many: the dead bytes are dropped, the file stays near what is stored
        store.put(round_, bytes(300))
        if round_ % 10:
            store.take(round_)
    assert sorted(store._where) == list(range(0, 50, 10))
    assert store._end < 4 * 1000 and [store.take(k) for k in range(0, 50, 10)] == [bytes(300)] * 5
    store.close()


def test_spill_store_keeps_the_order_stored_through_replacing_dropping_and_compacting(monkeypatch):
    """The address history's LRU order of addresses on disk is the store's own: a key stored again moves last,
    `drop_oldest` forgets the first, and compacting the file moves bytes without changing order or contents."""
    store = spill.SpillStore()
    monkeypatch.setattr(store, "COMPACT_AFTER", 500)
    compactions = []
    compact = store._compact
    monkeypatch.setattr(store, "_compact", lambda: (compactions.append(len(store)), compact()))
    kept = ["pending"]
    model: dict[str, object] = {}
    for i in range(40):
        key = f"10.0.0.{i % 13}"
        obj = [key, i, bytes(i * 10)]
        if i == 5:
            obj.append(kept)
        store.put(key, obj, keep={id(kept): kept} if i == 5 else None)
        model.pop(key, None)
        model[key] = obj
    assert list(store) == list(model)
    assert store.drop_oldest() == next(iter(model)) and list(store) == list(model)[1:]
    model.pop(next(iter(model)))
    for key in list(model)[::2]:  # enough dead bytes to compact
        store.drop(key)
        del model[key]
    assert compactions and list(store) == list(model)
    assert store._end - store._live <= max(store.COMPACT_AFTER, store._live)
    assert {k: store.read(k) for k in store} == model
    assert not store._keep  # the one object with a kept part was replaced: nothing held for it
    store.put("x", ["a", kept], keep={id(kept): kept})
    assert store.take("x")[1] is kept and not store._keep
    store.close()


def test_clients_found_at_the_end_wait_on_disk_until_handed_out(monkeypatch, tmp_path):
    """Clients that only the end of the capture shows (a failed lookup of an MP name with nothing after it) grow
    in number with the capture; they rest on disk a batch at a time, and the report is the same."""
    out = tmp_path / "late.pcap"
    make_capture.generate(out, 6, 300, duration=600.0)
    monkeypatch.setattr(correlator_module, "LATE_BATCH", 4)
    seen: dict[str, int] = {}
    late_clients = correlator_module.Correlator._late_clients

    def watched(self):
        before = set(self.clients)
        late_clients(self)
        late = [ip for ip in self.clients if ip not in before]
        seen["late"] = len(late)
        seen["in_memory"] = sum(1 for ip in late if type(dict.get(self.clients, ip)) is not correlator_module._Quiet)
    monkeypatch.setattr(correlator_module.Correlator, "_late_clients", watched)
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", None)
    kept = _doc([str(out)])
    assert seen["late"] > 4 and seen["in_memory"] == seen["late"], seen  # without resting: all in memory
    monkeypatch.setattr(correlator_module, "QUIET_AFTER", 30.0)
    assert _doc([str(out)]) == kept
    assert seen["late"] > 4 and seen["in_memory"] == 0, seen
