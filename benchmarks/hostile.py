"""Hostile load: kerbtrace's time and peak RSS on captures under attack, and the verdicts of the clients
the attack did not touch (they must not change).

    python benchmarks/hostile.py [--quick]

A base capture (lab registrations amid background traffic, ``make_capture.py``) is written once as it is
and once per attack with the attack's packets spread over its time span:

- ``syn-flood``: 1,000,000 SYNs to the MP's port 80 from as many source address/port pairs (half-open flows);
- ``overlap``: 2,000 connections to the MP whose 50 segments each overlap earlier ones with other bytes;
- ``big-body``: one registration request announcing a 2 GiB body, followed by the body (--body-mb of it);
- ``header-bomb``: 500 requests to the MP whose header block never ends (128 KiB each, no blank line);
- ``zlib-bomb``: 200 registrations whose CCM body (the real multipart form: UTF-16 header with the
  zlib-compress hook, then the body) is a zlib stream of 1 GiB of zeros in 1 MiB, answered 401 Negotiate;
- ``clients-100k``: not an attack on the base but a capture of its own, 100,000 registering clients in
  15 minutes (``make_capture.py --clients 100000 --size-mb 2000``, 2.1 GB, generated once into
  benchmarks/out); its verdicts are counted against the generator's truth.

Each capture is analysed in a child process (peak RSS from ``os.wait4``); the base clients' verdicts are
compared with the verdicts of the base capture alone.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import struct
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_capture  # noqa: E402
from make_capture import ETH_TO_CLIENT, ETH_TO_SERVER, _ipv4  # noqa: E402
from pcapio import PcapWriter, read_ipv4  # noqa: E402
from run import KERBTRACE_OK, count_packets, kerbtrace_cmd, load, measure, report_verdicts, truth_of  # noqa: E402

OUT = make_capture.DEFAULT_OUT.parent
MP = bytes([10, 0, 0, 10])  # the lab MP (127.0.0.10) as the generator moves it onto the LAN
Packet = tuple[float, bytes, bytes]  # time, Ethernet header, IPv4 packet
HEADERS = ["attack", "packets", "MB", "wall s", "CPU s", "peak RSS MB", "base clients same verdict", "load"]


def _tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes,
         ident: int) -> bytes:
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
    return _ipv4(src, dst, 6, seg + payload, ident & 0xFFFF, 0x4000)


def _spread(count: int, t0: float, t1: float) -> Iterator[float]:
    step = (t1 - t0) / max(count, 1)
    for i in range(count):
        yield t0 + i * step


def syn_flood(t0: float, t1: float, count: int = 1_000_000) -> Iterator[Packet]:
    r = random.Random(7)
    for i, t in enumerate(_spread(count, t0, t1)):
        src = bytes([10, 200 + (i >> 24) % 50, (i >> 16) & 0xFF, (i >> 8) & 0xFF])
        yield t, ETH_TO_SERVER, _tcp(src, MP, 1024 + (i * 7) % 64000, 80, r.getrandbits(32), 0, 0x02, b"", i)


def overlap(t0: float, t1: float, conns: int = 2000, segments: int = 50) -> Iterator[Packet]:
    r = random.Random(8)
    times = _spread(conns * (segments + 2), t0, t1)
    start = b"CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: mp\r\nContent-Length: 4000\r\n\r\n"
    for c in range(conns):
        src = bytes([10, 210, (c >> 8) & 0xFF, c & 0xFF])
        sport, isn, sisn = 40000 + c % 20000, r.getrandbits(32), r.getrandbits(32)
        yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, isn, 0, 0x02, b"", c)
        yield next(times), ETH_TO_CLIENT, _tcp(MP, src, 80, sport, sisn, isn + 1, 0x12, b"", c)
        for k in range(segments):
            off = 0 if k == 0 else r.randrange(0, 3000)
            data = start if k == 0 else r.randbytes(r.randrange(100, 1400))
            yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, isn + 1 + off, sisn + 1, 0x18, data, k)


def big_body(t0: float, t1: float, body_mb: int) -> Iterator[Packet]:
    src, sport = bytes([10, 220, 0, 1]), 50123
    head = (b"CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: mp\r\nUser-Agent: ccmhttp\r\n"
            b"Content-Type: multipart/mixed; boundary=\"aAbBcCdDv1234567890VxXyYzZ\"\r\n"
            b"Content-Length: 2147483648\r\n\r\n--aAbBcCdDv1234567890VxXyYzZ\r\n")
    n = body_mb * 1024 * 1024 // 1460
    times = _spread(n + 3, t0, t1)
    isn, sisn = 1000, 5000
    yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, isn, 0, 0x02, b"", 1)
    yield next(times), ETH_TO_CLIENT, _tcp(MP, src, 80, sport, sisn, isn + 1, 0x12, b"", 2)
    yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, isn + 1, sisn + 1, 0x18, head, 3)
    seq = isn + 1 + len(head)
    chunk = bytes(range(256)) * 6
    for i in range(n):
        yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, seq, sisn + 1, 0x10, chunk[:1460], i)
        seq += 1460


def header_bomb(t0: float, t1: float, conns: int = 500, size: int = 128 * 1024) -> Iterator[Packet]:
    per = size // 1400
    times = _spread(conns * (per + 2), t0, t1)
    for c in range(conns):
        src, sport = bytes([10, 230, c >> 8, c & 0xFF]), 30000 + c
        yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, 7, 0, 0x02, b"", c)
        yield next(times), ETH_TO_CLIENT, _tcp(MP, src, 80, sport, 9, 8, 0x12, b"", c)
        seq = 8
        data = b"CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\n"
        for k in range(per):
            data += b"X-Filler-%d: %s\r\n" % (k, b"a" * 1300)
            yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, seq, 10, 0x18, data[:1400], k)
            seq += len(data[:1400])
            data = data[1400:]


BOUNDARY = "aAbBcCdDv1234567890VxXyYzZ"


def _zlib_zeros(size: int) -> bytes:
    """zlib of `size` bytes of zeros, compressed a MiB at a time (the bomb never exists inflated here)."""
    comp = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    return b"".join([comp.compress(chunk) for _ in range(size >> 20)] + [comp.flush()])


def _segments(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, data: bytes,
              ident: int) -> Iterator[bytes]:
    for off in range(0, len(data), 1460):
        yield _tcp(src, dst, sport, dport, seq + off, ack, 0x18, data[off:off + 1460], ident + off // 1460)


def zlib_bomb(t0: float, t1: float, conns: int = 200, inflated: int = 1 << 30) -> Iterator[Packet]:
    bomb = _zlib_zeros(inflated)
    header = ('<Msg ReplyCompression="zlib" SchemaVersion="1.1"><Hooks><Hook3 Name="zlib-compress" /></Hooks>'
              "<SourceHost>BOMB01</SourceHost><TargetEndpoint>MP_ClientRegistration</TargetEndpoint></Msg>")
    body = (f"--{BOUNDARY}\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n".encode() + header.encode("utf-16")
            + f"\r\n--{BOUNDARY}\r\ncontent-type: application/octet-stream\r\n\r\n".encode() + bomb
            + f"\r\n--{BOUNDARY}--".encode())
    request = (b"CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nConnection: Keep-Alive\r\n"
               b"Content-Type: multipart/mixed; boundary=\"" + BOUNDARY.encode() + b"\"\r\n"
               b"User-Agent: ccmhttp\r\nContent-Length: %d\r\nHost: mp\r\n\r\n" % len(body)) + body
    reply = (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nWWW-Authenticate: Negotiate\r\n"
             b"WWW-Authenticate: NTLM\r\n\r\n")
    per = -(-len(request) // 1460) + 3
    times = _spread(conns * per, t0, t1)
    for c in range(conns):
        src, sport, isn, sisn = bytes([10, 240, c >> 8, c & 0xFF]), 20000 + c, 100, 900
        yield next(times), ETH_TO_SERVER, _tcp(src, MP, sport, 80, isn, 0, 0x02, b"", c)
        yield next(times), ETH_TO_CLIENT, _tcp(MP, src, 80, sport, sisn, isn + 1, 0x12, b"", c)
        for ip in _segments(src, MP, sport, 80, isn + 1, sisn + 1, request, c):
            yield next(times), ETH_TO_SERVER, ip
        yield next(times), ETH_TO_CLIENT, _tcp(MP, src, 80, sport, sisn + 1, isn + 1 + len(request), 0x18, reply, c)


def write(base: list[Packet], attack: Iterator[Packet], out: Path) -> int:
    w = PcapWriter(out)
    for t, eth, ip in heapq.merge(base, attack, key=lambda p: p[0]):
        w.write(t, eth, ip)
    w.close()
    return w.packets


def verdicts(report: Path) -> dict[str, str]:
    doc = json.loads(report.read_text())
    return {f"{c.get('client_ip')} {c.get('smsid')}": c["verdict"] for c in doc["clients"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller attacks (100 k SYNs, a 64 MiB body)")
    ap.add_argument("--body-mb", type=int, default=None, help="body bytes actually sent on big-body (MiB)")
    ap.add_argument("--attack", action="append", help="only this attack (repeatable; the base runs always)")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    base_path = OUT / "hostile-base.pcap"
    if not base_path.exists():
        make_capture.generate(base_path, 20, 200, windows_share=0.0)
    base = [(t, ETH_TO_SERVER if _from_client(ip) else ETH_TO_CLIENT, ip) for _f, t, ip in read_ipv4(base_path)]
    t0, t1 = base[0][0], base[-1][0]
    body_mb = args.body_mb or (64 if args.quick else 2048)
    attacks = {
        "none": lambda: iter(()),
        "syn-flood": lambda: syn_flood(t0, t1, 100_000 if args.quick else 1_000_000),
        "overlap": lambda: overlap(t0, t1),
        "big-body": lambda: big_body(t0, t1, body_mb),
        "header-bomb": lambda: header_bomb(t0, t1),
        "zlib-bomb": lambda: zlib_bomb(t0, t1),
    }
    rows = []
    reference: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in attacks.items():
            if args.attack and name != "none" and name not in args.attack:
                continue
            path = Path(tmp) / f"{name}.pcap"
            packets = write(base, make(), path)
            size = path.stat().st_size / 1e6
            report = Path(tmp) / f"{name}.json"
            m = measure(kerbtrace_cmd(path, report) + ["--no-progress"])
            ok = m["rc"] in KERBTRACE_OK
            found = verdicts(report) if ok else {}
            if name == "none":
                reference = found
            same = sum(1 for ip, v in reference.items() if found.get(ip) == v)
            rows.append([name, f"{packets:,}", f"{size:,.0f}", f"{m['wall']:.1f}", f"{m['cpu']:.1f}",
                         f"{m['rss_mb']:,.0f}", f"{same}/{len(reference)}" if ok else f"exit {m['rc']}", load()])
            path.unlink()
            print(tabulate([rows[-1]], headers=HEADERS), flush=True)
        if not args.attack or "clients-100k" in args.attack:
            rows.append(many_clients(Path(tmp), args.quick))
            print(tabulate([rows[-1]], headers=HEADERS), flush=True)
    print()
    print(tabulate(rows, headers=HEADERS))
    return 0 if all(_kept(r[6]) for r in rows) else 1


def _kept(cell: str) -> bool:
    """'191/191' (every base client kept its verdict) or '74,973/74,973 listed = truth'."""
    kept, _, rest = cell.partition("/")
    return kept == rest.split(" ")[0] and "!=" not in rest and "no truth" not in rest


def many_clients(tmp: Path, quick: bool) -> list[str]:
    """100,000 clients in one capture (10,000 with --quick): the listed clients' verdicts against the
    generator's truth, and what the size limits dropped (the input's notes say it, counted)."""
    count = 10_000 if quick else 100_000
    path = OUT / f"clients-{count // 1000}k.pcap"
    if not path.exists():
        make_capture.generate(path, count * 0.02, count)
    truth = truth_of(path)
    report = tmp / "many.json"
    m = measure(kerbtrace_cmd(path, report) + ["--no-progress", "--jobs", "1"])
    ok = m["rc"] in KERBTRACE_OK
    found = report_verdicts(report) if ok else Counter()
    listed = sum(found.values()) if isinstance(found, Counter) else 0
    same = "= truth" if found == truth else f"!= truth {sum(truth.values()):,}" if truth else "no truth"
    name = f"{count:,} clients, one capture"
    if ok:
        notes = [n for i in json.loads(report.read_text()).get("inputs", []) for n in i.get("notes", [])
                 if "size limit" in n]
        for note in notes:
            print(f"{name}: {note}")
    return [name, f"{count_packets(path):,}", f"{path.stat().st_size / 1e6:,.0f}", f"{m['wall']:.1f}",
            f"{m['cpu']:.1f}", f"{m['rss_mb']:,.0f}", f"{listed:,}/{listed:,} listed {same}" if ok else
            f"exit {m['rc']}", load()]


def _from_client(ip: bytes) -> bool:
    """Packets from the LAN's clients (10.100+.x.y) and background clients (10.20-27.x.y) face the servers."""
    return ip[12] == 10 and ip[13] != 0


if __name__ == "__main__":
    sys.exit(main())
