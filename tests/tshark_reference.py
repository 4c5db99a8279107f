"""tshark's reading of a capture, the reference the decoder tests compare against.

Results are cached per (file, filter, fields) so several tests can ask about the same capture
without running tshark again. tshark's own warnings on stderr are ignored; a failed run raises
(except for a capture cut short mid-packet, whose earlier frames still count).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import NO_TSHARK

KERBEROS_FILTER = "kerberos && (udp.port==88 || tcp.port==88 || http)"
AUTH_FILTER = "http.authorization || http.www_authenticate"
# One run per capture serves every decoder test: tshark's start-up (~0.5 s) costs more than the
# fields. Frames that match only AUTH_FILTER carry no kerberos.msg_type, so tshark_kerberos() is
# unchanged by the union.
READING_FILTER = f"({KERBEROS_FILTER}) || {AUTH_FILTER}"
READING_FIELDS = (
    "frame.number", "kerberos.msg_type", "kerberos.error_code", "udp.port", "tcp.port",
    "udp.payload", "tcp.reassembled.data", "tcp.payload",
    "kerberos.realm", "kerberos.SNameString", "kerberos.CNameString",
    "http.authorization", "http.www_authenticate", "spnego.negResult", "spnego.supportedMech",
    "spnego.MechType", "spnego.krb5.tok_id", "ntlmssp.messagetype", "ntlmssp.auth.username",
    "ntlmssp.auth.domain", "ntlmssp.auth.hostname", "ntlmssp.challenge.target_name",
    "ntlmssp.challenge.target_info.timestamp",
)
# Separator of repeated values in tshark_reading(): absolute times and header values hold commas.
SEP = "\x1f"
# Absolute times printed in UTC, whatever the machine's zone.
_ENV = {**os.environ, "TZ": "UTC"}


@functools.lru_cache(maxsize=256)
def _run(path: str, display_filter: str, fields: tuple[str, ...], sep: str = ",") -> tuple[tuple[str, ...], ...]:
    if shutil.which("tshark") is None:
        pytest.skip(NO_TSHARK)
    cmd = ["tshark", "-n", "-r", path, "-Y", display_filter, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    cmd += ["-E", "occurrence=a", "-E", f"aggregator={sep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=_ENV)
    if proc.returncode != 0 and not (proc.returncode == 2 and "cut short" in proc.stderr):
        raise RuntimeError(f"tshark failed on {path}: {proc.stderr.strip()[-300:]}")
    rows = []
    for line in proc.stdout.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(fields) - len(cols))
        rows.append(tuple(cols))
    return tuple(rows)


def tshark_fields(path: str | Path, display_filter: str, fields: list[str] | tuple[str, ...],
                  ) -> list[list[str]]:
    """One row per matching frame, one string per field; repeated values joined with ","."""
    return [list(r) for r in _run(str(path), display_filter, tuple(fields))]


def tshark_reading(path: str | Path) -> list[dict[str, str]]:
    """READING_FIELDS of every Kerberos or HTTP-auth frame, by field name; repeats joined with SEP."""
    return [dict(zip(READING_FIELDS, r, strict=True)) for r in _reading(str(path))]


def values(cell: str) -> list[str]:
    """The repeated values of one tshark_reading() cell."""
    return [x for x in cell.split(SEP) if x != ""]


def _reading(path: str) -> tuple[tuple[str, ...], ...]:
    return _run(path, READING_FILTER, READING_FIELDS, SEP)


def prefetch(paths: list[Path], workers: int = 4) -> None:
    """Read many captures in parallel to fill the cache (tshark mostly waits at start-up)."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda p: _reading(str(p)), paths))


def message_rows(path: str | Path) -> list[dict[str, str]]:
    """tshark_reading() rows repeated once per Kerberos message, aligned with tshark_kerberos()."""
    out = []
    for row in tshark_reading(path):
        types = [int(x) for x in values(row["kerberos.msg_type"])]
        out += [row] * sum(1 for i, t in enumerate(types) if not (t == 14 and i and types[i - 1] == 12))
    return out


@functools.lru_cache(maxsize=128)
def _kerberos(path: str) -> tuple[tuple[int, int, int | None], ...]:
    out = []
    for row in _reading(path):
        frame, types, codes = row[0], values(row[1]), values(row[2])
        errors = iter(int(c) for c in codes)
        prev = None
        for mt in map(int, types):
            if mt == 14 and prev == 12:
                # The AP-REQ inside PA-TGS-REQ belongs to the TGS-REQ, it is not a message.
                prev = mt
                continue
            prev = mt
            out.append((int(frame), mt, next(errors, None) if mt == 30 else None))
    return tuple(out)


def tshark_kerberos(path: str | Path) -> list[tuple[int, int, int | None]]:
    """(frame, msg_type, error_code) per Kerberos message on port 88 or inside HTTP.

    Same result as `tshark -Y 'kerberos && (udp.port==88 || tcp.port==88 || http)' -e frame.number
    -e kerberos.msg_type -e kerberos.error_code`, with the AP-REQ nested in a TGS-REQ dropped.
    """
    return list(_kerberos(str(path)))


def is_port88(row: dict[str, str]) -> bool:
    """Whether a tshark_reading() frame's UDP or TCP ports include 88."""
    return "88" in values(row["udp.port"]) or "88" in values(row["tcp.port"])


@functools.lru_cache(maxsize=128)
def _port88(path: str) -> tuple[tuple[int, bytes], ...]:
    out = []
    for row in tshark_reading(path):
        if not is_port88(row):
            continue
        frame = int(row["frame.number"])
        if row["udp.payload"]:
            out.append((frame, bytes.fromhex(values(row["udp.payload"])[0].replace(":", ""))))
            continue
        cell = row["tcp.reassembled.data"] or row["tcp.payload"]
        data = bytes.fromhex(values(cell)[0].replace(":", ""))
        # TCP: 4-byte big-endian record mark before each message (RFC 4120 7.2.2).
        pos = 0
        while pos + 4 <= len(data):
            n = int.from_bytes(data[pos : pos + 4], "big") & 0x7FFFFFFF
            if n == 0 or pos + 4 + n > len(data):
                break
            out.append((frame, data[pos + 4 : pos + 4 + n]))
            pos += 4 + n
    return tuple(out)


def port88_messages(path: str | Path) -> list[tuple[int, bytes]]:
    """(frame, raw message) for every Kerberos message tshark dissects on port 88 (UDP or TCP)."""
    return list(_port88(str(path)))
