"""DNS decoded only where it can matter: the prefilter skips the lookups of addresses that never become clients,
and nothing in the report changes.

The first pass (`kerbtrace.sources.askers`) is checked against a plain walk over every packet with the
pure-Python reader; the skip is checked end to end (same JSON document as the pure-Python reader), and each of
the first pass's two parts is shown to be what keeps a result right: without the list of Kerberos/HTTP/TLS
speakers a client loses its lookup of the MP, without the pairing of queries an address whose last lookup went
unanswered is reported as a client that failed to find the MP."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kerbtrace.analysis import Session, analyze
from kerbtrace.diagnostics import Diagnostics
from kerbtrace.reports.json_report import to_json
from kerbtrace.sources import askers, open_capture, prefilter
from tests.conftest import CAPTURES, REPO, real_capture_files, timeless

sys.path.insert(0, str(REPO / "benchmarks"))
import make_capture  # noqa: E402

pytestmark = pytest.mark.skipif(not prefilter.available(), reason="pcapy-ng or numpy is not installed")
np = prefilter.np
TOOLS = all(shutil.which(t) for t in ("editcap", "mergecap", "tshark"))
needs_tools = pytest.mark.skipif(not TOOLS, reason="Wireshark's editcap, mergecap and tshark are not installed")


def _document(path: Path, monkeypatch, enabled: bool) -> dict:
    monkeypatch.setattr(prefilter, "ENABLED", enabled)
    return timeless(json.loads(json.dumps(to_json(analyze([str(path)], progress=False)))))


def _skipped(path: Path, monkeypatch) -> int:
    """DNS messages the prefilter skipped in a run over `path`."""
    count = [0]
    original = Session.dns_skipped

    def counting(self, n, latest):
        count[0] += n
        original(self, n, latest)

    monkeypatch.setattr(Session, "dns_skipped", counting)
    monkeypatch.setattr(prefilter, "ENABLED", True)
    analyze([str(path)], progress=False)
    monkeypatch.setattr(Session, "dns_skipped", original)
    return count[0]


def _pcap(src: Path, tmp_path: Path) -> Path:
    """The same packets in a classic microsecond pcap: the prefilter reads it (not the lab's nanosecond pcapng)."""
    out = tmp_path / (src.stem + ".pcap")
    subprocess.run(["editcap", "-F", "pcap", str(src), str(out)], check=True)
    return out


# -- the first pass against a plain walk ------------------------------------------------------------------
def _walk(path: Path) -> set[int] | None:
    """The module's rules, applied packet by packet to what the pure-Python reader reads (None: a tunnel)."""
    found: set[int] = set()
    pending: dict[tuple[int, int, int], bool] = {}
    heads: set[tuple[int, ...]] = set()
    with open_capture(path, Diagnostics()) as cap:
        for _frame, _time, linktype, data in cap:
            if linktype != 1 or len(data) < 14:
                continue
            o, et = 14, int.from_bytes(data[12:14], "big")
            while et in (0x8100, 0x88A8, 0x9100) and len(data) >= o + 4:
                et, o = int.from_bytes(data[o + 2:o + 4], "big"), o + 4
            if et == 0x86DD and len(data) >= o + 40 and data[o + 6] in (4, 41, 47):
                return None
            if et != 0x0800 or len(data) < o + 20:
                continue
            proto, ihl = data[o + 9], (data[o] & 15) * 4
            if proto in (4, 41, 47):
                return None
            src, dst = int.from_bytes(data[o + 12:o + 16], "big"), int.from_bytes(data[o + 16:o + 20], "big")
            first = not (int.from_bytes(data[o + 6:o + 8], "big") & 0x1FFF)
            t = o + ihl
            if proto == 1:
                found |= {src, dst}
            if proto not in (6, 17) or not first or len(data) < t + 4:
                continue
            sport, dport = int.from_bytes(data[t:t + 2], "big"), int.from_bytes(data[t + 2:t + 4], "big")
            flow = (src, dst, sport, dport, proto)
            if flow in heads and not (proto == 17 and 53 in (sport, dport)):
                continue  # only the first matching packet of each direction of a flow counts (the classifier's)
            if 88 in (sport, dport) or (proto == 6 and 53 in (sport, dport)):
                heads.add(flow)
                found |= {src, dst}
            elif proto == 6 and len(data) >= t + 13:
                payload = data[t + (data[t + 12] >> 4) * 4:]
                if sport == 443 and dport != 443:
                    found.add(dst)
                elif dport == 443:
                    found.add(src)
                elif len(payload) >= 3 and all(65 <= b <= 90 for b in payload[:3]):
                    found.add(dst if payload.startswith(b"HTTP/") else src)
                elif len(payload) >= 6 and payload[0] == 22 and payload[5] == 1:
                    found.add(src)
                else:
                    continue
                heads.add(flow)
            elif proto == 17 and 53 in (sport, dport):
                end = o + int.from_bytes(data[o + 2:o + 4], "big")
                body = data[t + 8:end]
                plain = o == 14 and ihl == 20 and not data[o + 6] & 0x20 and end <= len(data) and len(body) >= 12
                if not plain:
                    found |= {src, dst}
                    continue
                response = bool(body[2] & 0x80)
                asker, server = (dst, src) if response else (src, dst)
                key = (asker, server, int.from_bytes(body[:2], "big"))
                if response:
                    pending.pop(key, None)
                    if body[3] & 15 or not int.from_bytes(body[6:8], "big"):
                        found |= {src, dst}
                elif pending.get(key):
                    found.add(asker)  # asked again before any answer
                else:
                    pending[key] = True
    return found | {asker for asker, _server, _id in pending}


def _first_pass_inputs() -> list[Path]:
    lab = sorted(CAPTURES.glob("*.pcapng")) + sorted((CAPTURES / "tls").glob("*.pcapng"))
    return lab + [p for p in real_capture_files() if p.read_bytes()[:4] != b"GMBU"]  # NetMon: not libpcap's


@pytest.mark.parametrize("path", _first_pass_inputs(), ids=lambda p: p.name)
def test_first_pass_lists_every_address_a_plain_walk_finds(path):
    listed = askers.may_become_clients([str(path)])
    walked = _walk(path)
    if walked is None:
        assert listed is None  # a tunnel: nothing is skipped
        return
    if listed is None:  # libpcap does not read this file to its end (the prefilter does not either)
        with pytest.raises(prefilter.pcapy.PcapError):
            reader = prefilter.pcapy.open_offline(str(path))
            while len(reader.next_batch(4096)[1]):
                pass
        return
    missing = walked - set(listed.tolist())
    assert not missing, sorted(missing)[:5]
    # the flow heads and the BPF filter list what the walk lists, give or take non-first fragments
    assert len(listed) <= len(walked) + 2, (len(listed), len(walked))


def test_first_pass_over_a_generated_mix(tmp_path):
    out = tmp_path / "mix.pcap"
    make_capture.generate(out, 20, 40, mix="office")
    listed, walked = askers.may_become_clients([str(out)]), _walk(out)
    assert walked is not None and set(listed.tolist()) == walked


def test_erspan_capture_is_not_thinned():
    path = CAPTURES / "real" / "zeek__erspan.pcap"
    assert askers.may_become_clients([str(path)]) is None


def test_pairing_follows_dns_pairing():
    """Queries answered next, asked again unanswered, answered in a later batch, and never answered."""
    key = np.array([1, 1, 2, 2, 3, 4], dtype=np.uint64)
    ident = np.array([7, 7, 7, 7, 9, 5], dtype=np.int64)
    query = np.array([True, False, True, True, True, True])
    asker = np.array([10, 10, 20, 20, 30, 40], dtype=np.uint32)
    waiting, unanswered = askers._pair(askers._nothing_waiting(), key, ident, query, asker)
    assert unanswered.tolist() == [20]  # its first query was asked again before an answer
    assert sorted(waiting[2].tolist()) == [20, 30, 40]  # the second query of 20, and 30 and 40: not yet
    # next batch: 30 is answered, 40 is not; 20's repeated query is answered
    waiting, unanswered = askers._pair(waiting, np.array([3, 2], dtype=np.uint64), np.array([9, 7]),
                                       np.array([False, False]), np.array([30, 20], dtype=np.uint32))
    assert unanswered.tolist() == [] and waiting[2].tolist() == [40]


def test_pairing_is_bounded(monkeypatch):
    monkeypatch.setattr(askers, "MAX_WAITING", 3)
    n = 5
    waiting, unanswered = askers._pair(askers._nothing_waiting(), np.arange(n, dtype=np.uint64),
                                       np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool),
                                       np.arange(100, 100 + n, dtype=np.uint32))
    assert sorted(unanswered.tolist()) == [100, 101]  # the two oldest are listed, not forgotten
    assert sorted(waiting[2].tolist()) == [102, 103, 104]


# -- end to end -------------------------------------------------------------------------------------------
def test_unrelated_lookups_skipped_and_the_document_unchanged(tmp_path, monkeypatch):
    """A generated MP capture: most of its DNS belongs to hosts that never register, and is skipped; the
    document, the DNS count included, is the pure-Python reader's."""
    out = tmp_path / "office.pcap"
    s = make_capture.generate(out, 20, 40, mix="office")
    skipped = _skipped(out, monkeypatch)
    fast, slow = _document(out, monkeypatch, True), _document(out, monkeypatch, False)
    assert fast == slow and fast["clients"]
    dns = fast["inputs"][0]["legs"]["dns"]
    assert dns > 0 and skipped > dns / 2, (skipped, dns, s["packets"])


@needs_tools
@pytest.mark.parametrize("name", ["ok_same_realm", "mixed", "dns_failure", "https_mp"])
def test_lab_captures_skip_nothing_that_matters(name, tmp_path, monkeypatch):
    path = _pcap(CAPTURES / f"{name}.pcapng", tmp_path)
    assert _document(path, monkeypatch, True) == _document(path, monkeypatch, False)


@needs_tools
def test_without_the_speakers_a_client_loses_its_lookup(tmp_path, monkeypatch):
    """The client of ok_same_realm looks its MP up before the MP's name is known: the lookup is kept because
    the client speaks Kerberos and HTTP later. With an empty list of speakers it would be skipped."""
    path = _pcap(CAPTURES / "ok_same_realm.pcapng", tmp_path)
    right = _document(path, monkeypatch, True)
    assert right["clients"][0]["view"]["dns"] == "seen"
    monkeypatch.setattr(askers, "_rule_pass", lambda p: np.zeros(0, dtype=np.uint32))
    wrong = _document(path, monkeypatch, True)
    assert wrong["clients"][0]["view"]["dns"] == "not_seen"


@needs_tools
def test_without_the_pairing_an_unanswered_retry_makes_a_false_client(tmp_path, monkeypatch):
    """From the lab's mixed capture: WK .101 keeps only its A lookup of mp01 (answered, before any MP is
    known), and the same query comes again at the end, unanswered. One process reads it as a lookup that
    worked (not a client); without the pairing of queries its good answer would be skipped and it would be
    reported as a client that failed to find the MP."""
    src = _pcap(CAPTURES / "mixed.pcapng", tmp_path)
    base, retry, late, out = (tmp_path / n for n in ("base.pcap", "retry.pcap", "late.pcap", "out.pcap"))
    subprocess.run(["tshark", "-r", str(src), "-Y", "!(ip.addr==127.0.1.101) || frame.number==7 || frame.number==8",
                    "-F", "pcap", "-w", str(base)], check=True, capture_output=True)
    subprocess.run(["editcap", "-r", str(src), str(retry), "7"], check=True)
    subprocess.run(["editcap", "-F", "pcap", "-t", "60", str(retry), str(late)], check=True)
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(out), str(base), str(late)], check=True)
    fast, slow = _document(out, monkeypatch, True), _document(out, monkeypatch, False)
    assert fast == slow
    assert "127.0.1.101" not in {c["client_ip"] for c in fast["clients"]}
    monkeypatch.setattr(askers, "_dns_pass", lambda p, waiting: (np.zeros(0, dtype=np.uint32), waiting))
    wrong = _document(out, monkeypatch, True)
    assert "127.0.1.101" in {c["client_ip"] for c in wrong["clients"]}


def test_ring_files_listed_as_the_merged_capture(tmp_path):
    """A query in one file of a ring and its answer in the next are paired across the boundary."""
    out = tmp_path / "ring.pcap"
    make_capture.generate(out, 20, 30, mix="mp")
    whole = askers.may_become_clients([str(out)])
    if not shutil.which("editcap"):
        pytest.skip("editcap is not installed")
    subprocess.run(["editcap", "-c", "7001", str(out), str(tmp_path / "part.pcap")], check=True)
    parts = sorted(str(p) for p in tmp_path.glob("part_*.pcap"))
    assert len(parts) > 1
    assert askers.may_become_clients(parts).tolist() == whole.tolist()
