"""The command line: exit codes scripts can use, JSON on stdout, help that teaches, bad input handled."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

from tests.conftest import CAPTURES, real_capture


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerbtrace", *args], capture_output=True, text=True, timeout=300)


def test_help_explains_usage_and_exit_codes():
    out = run("analyze", "--help")
    assert out.returncode == 0
    for words in ("frame.number == N", "exit status", "--json", "pcapng", "NetMon"):
        assert words in out.stdout


def test_all_approved_exits_zero_and_json_to_stdout():
    out = run("analyze", str(CAPTURES / "ok_same_realm.pcapng"), "--json", "-")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["schema"] == "kerbtrace/1"
    assert doc["clients"] and all(c["verdict"] == "approved" for c in doc["clients"])
    assert {"path", "format", "packets", "start", "end"} <= set(doc["inputs"][0])
    assert doc["inputs"][0]["format"] == "pcapng"
    first = doc["clients"][0]
    assert first["causes"][0]["code"] == "ok"
    assert any(k["msg_type"] == 13 for k in doc["kerberos"])
    assert "Traceback" not in out.stderr


def test_not_approved_exits_one_and_names_the_cause():
    out = run("analyze", str(CAPTURES / "spn_on_other_account.pcapng"))
    assert out.returncode == 1, out.stderr
    assert "spn_wrong_account" in out.stdout
    assert "frame.number ==" in out.stdout


def test_unusable_input_exits_two(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all" * 10)
    out = run("analyze", str(junk))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "junk.pcap" in out.stderr


def test_missing_file_exits_two(tmp_path):
    out = run("analyze", str(tmp_path / "nope.pcapng"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_truncated_capture_warns_and_goes_on(tmp_path):
    data = (CAPTURES / "mixed.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) * 2 // 3 + 7])
    out = run("analyze", str(cut), "--json", "-")
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    assert doc["clients"], "clients before the cut are still reported"
    assert any(word in w["message"].lower() for w in doc["warnings"] for word in ("truncat", "cut short"))


def test_corrupted_copies_never_traceback(tmp_path, tshark):
    sources = [CAPTURES / "mixed.pcapng", real_capture("otrf__NEWYORK.cap"), real_capture("otrf__SCRANTON.cap")]
    for i, src in enumerate(sources):
        for seed in (1, 2, 3):
            bad = tmp_path / f"bad{i}-{seed}.pcapng"
            subprocess.run(["editcap", "-E", "0.02", "--seed", str(seed), str(src), str(bad)], check=True,
                           capture_output=True)
            out = run("analyze", str(bad), "--json", "-")
            assert out.returncode in (0, 1, 3), out.stderr[-2000:]
            assert "Traceback" not in out.stderr
            json.loads(out.stdout)


def test_gzip_capture_reads_like_the_original(tmp_path):
    src = CAPTURES / "ok_child_referral.pcapng"
    gz = tmp_path / "ok.pcapng.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    plain = json.loads(run("analyze", str(src), "--json", "-").stdout)
    packed = json.loads(run("analyze", str(gz), "--json", "-").stdout)
    assert packed["inputs"][0]["format"] == "pcapng.gz"
    assert packed["clients"] == plain["clients"]
    assert packed["kerberos"] == plain["kerberos"]


def test_netmon_copy_gives_same_verdicts(tmp_path, tshark):
    src = CAPTURES / "mixed.pcapng"
    cap = tmp_path / "mixed.cap"
    subprocess.run(["editcap", "-F", "netmon2", str(src), str(cap)], check=True, capture_output=True)
    plain = json.loads(run("analyze", str(src), "--json", "-").stdout)
    netmon = json.loads(run("analyze", str(cap), "--json", "-").stdout)
    assert netmon["inputs"][0]["format"] == "netmon2"
    strip = [(c["client_ip"], c["verdict"], c["causes"][0]["code"] if c["causes"] else None) for c in plain["clients"]]
    assert [(c["client_ip"], c["verdict"], c["causes"][0]["code"] if c["causes"] else None)
            for c in netmon["clients"]] == strip
    assert [(k["frame"], k["msg_type"]) for k in netmon["kerberos"]] == \
        [(k["frame"], k["msg_type"]) for k in plain["kerberos"]]


def test_several_inputs_keep_their_frames_apart_and_a_bad_one_is_noticed(tmp_path):
    junk = tmp_path / "junk.cap"
    junk.write_bytes(b"\x00" * 100)
    out = run("analyze", str(CAPTURES / "ok_same_realm.pcapng"), str(junk), str(CAPTURES / "clock_skew.pcapng"),
              "--json", "-")
    assert out.returncode == 2, "a file that could not be read must not go unnoticed by a script"
    doc = json.loads(out.stdout)
    assert [bool(i.get("error")) for i in doc["inputs"]] == [False, True, False]
    assert {c["input"] for c in doc["clients"]} == {0, 2}
    by_input = {c["input"]: c["causes"][0]["code"] for c in doc["clients"]}
    assert by_input == {0: "ok", 2: "clock_skew"}
    assert {k["input"] for k in doc["kerberos"]} == {0, 2}


def test_truncated_gzip_keeps_the_frames_before_the_cut(tmp_path, tshark):
    src = CAPTURES / "mixed.pcapng"
    cut = tmp_path / "cut.pcapng.gz"
    cut.write_bytes(gzip.compress(src.read_bytes())[:100_000])
    theirs = subprocess.run(["tshark", "-r", str(cut), "-T", "fields", "-e", "frame.number"], capture_output=True,
                            text=True).stdout.split()
    out = run("analyze", str(cut), "--json", "-")
    assert "Traceback" not in out.stderr
    doc = json.loads(out.stdout)
    # tshark also stops at the cut; kerbtrace must not lose the last decompressed chunk before it
    assert doc["inputs"][0]["packets"] >= len(theirs) - 1 > 100
    assert any("cannot be read further" in w["message"] for w in doc["warnings"])


def test_a_file_with_no_readable_packet_is_not_all_approved(tmp_path):
    src = CAPTURES / "mixed.pcapng"
    cut = tmp_path / "tiny.pcapng.gz"
    cut.write_bytes(gzip.compress(src.read_bytes())[:60])
    out = run("analyze", str(cut))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_no_registration_exits_three_unlike_all_approved():
    path = real_capture("zeek__auth.pcap")  # real Kerberos, no ConfigMgr client
    out = run("analyze", str(path))
    assert out.returncode == 3, out.stderr
    assert "No ConfigMgr client registration" in out.stdout
    assert json.loads(run("analyze", str(path), "--json", "-").stdout)["clients"] == []
    # an approved client elsewhere makes it 0; an unreadable input still makes it 2
    assert run("analyze", str(path), str(CAPTURES / "ok_same_realm.pcapng")).returncode == 0
    assert run("analyze", str(path), str(path.with_name("no-such-file.pcap"))).returncode == 2


def test_help_lists_every_exit_status_of_the_program():
    from kerbtrace import cli

    text = run("analyze", "--help").stdout
    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    listed = {int(line.split()[0]) for line in text.split("exit status:")[1].splitlines() if line.strip()}
    assert listed == codes == {0, 1, 2, 3}


def test_unreadable_input_gives_its_error_once_on_stderr(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all" * 10)
    out = run("analyze", str(junk), str(CAPTURES / "ok_same_realm.pcapng"))
    assert out.returncode == 2
    error = "is not a capture file"
    assert (out.stdout + out.stderr).count(error) == 1 and error in out.stderr
    assert out.stderr.startswith(f"kerbtrace: [1] {junk}")
    assert f"[1] {junk}: not analysed" in out.stdout


def test_several_inputs_name_their_input_in_details_and_warnings(tmp_path):
    data = (CAPTURES / "spn_on_other_account.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) - 40])  # inside the last record: one warning
    args = [str(CAPTURES / "ok_same_realm.pcapng"), str(CAPTURES / "clock_skew.pcapng"), str(cut)]
    doc = json.loads(run("analyze", *args, "--json", "-").stdout)
    text = run("analyze", *args).stdout
    assert doc["warnings"] and {c["input"] for c in doc["clients"] if c["verdict"] != "approved"} == {1, 2}
    for c in doc["clients"]:
        if c["verdict"] != "approved":
            assert f"\n[{c['input'] + 1}] {c['hostname']} ({c['client_ip']}) — " in text
    warnings = text.split("Warnings:\n", 1)[1].splitlines()
    for w, line in zip(doc["warnings"], warnings, strict=False):
        assert line.startswith(f"  [{w['input'] + 1}] frame {w['frame']}: "), line


def test_table_counts_characters_only_where_each_is_one_column() -> None:
    """The client table skips wcwidth when every cell is printable ASCII (or "…"): the text must be tabulate's own,
    and a double-width host name must still be measured by wcwidth (the next column stays aligned)."""
    import tabulate as tabulate_module
    from tabulate import tabulate
    from wcwidth import wcswidth

    from kerbtrace.reports.table import _table

    headers = ["client", "host", "evidence frames"]
    narrow = [["10.0.0.1", "WK01", "1,2,3…"], ["10.0.0.22", "LAPTOP-0042", "17"]]
    assert _table(narrow, headers) == tabulate(narrow, headers=headers, disable_numparse=True)
    wide = [["10.0.0.1", "工作站", "100"], ["10.0.0.22", "WORKSTATION7", "200"]]
    text = _table(wide, headers)
    assert text == tabulate(wide, headers=headers, disable_numparse=True)
    first, second = text.splitlines()[2:4]
    assert wcswidth(first[:first.index("100")]) == wcswidth(second[:second.index("200")])
    assert tabulate_module.WIDE_CHARS_MODE  # restored after each table


def test_table_of_many_blocks_is_one_tabulate_table(monkeypatch) -> None:
    """Past one block the table reads its rows once, keeps the cells (on disk past a block) and measures the
    plain-ASCII blocks by their lengths: the text must still be tabulate's table of all rows, with a wide cell
    in one block and the widest cells in a late one."""
    import io

    from tabulate import tabulate

    from kerbtrace.reports import table

    monkeypatch.setattr(table, "BLOCK", 4)  # the kept cells go to disk past one block too
    headers = ["client", "host", "evidence frames"]
    rows = [[f"10.0.0.{i}", f"WK{i:02d}", ",".join(str(f) for f in range(i % 5))] for i in range(15)]
    rows[6][1] = "工作站"  # measured by wcwidth in its block
    rows[13][0], rows[13][2] = "10.200.200.200", "1,2,3,4,5,6…"  # widest, in the last block
    seen = []
    out = io.StringIO()
    table._write_table(((cells, n) for n, cells in enumerate(rows)), headers, out, seen.append)
    assert seen == list(range(15))  # each row's item once, in order
    assert out.getvalue() == tabulate(rows, headers=headers, disable_numparse=True)
