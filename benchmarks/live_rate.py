"""Which live capture backend keeps up: packets read and dropped at increasing replay rates.

    sudo python benchmarks/live_rate.py [--rates 2000 5000 10000 20000] [--seconds 15]

Needs tcpreplay (Debian), and for the pcapy backend `pip install pcapy-ng` (not a kerbtrace dependency).

In a network namespace of its own, tcpreplay loops the lab's busiest capture (captures/mixed.pcapng, new
addresses every loop) on lo at each rate, while one backend captures with kerbtrace's default filter and
feeds every packet to the analysis Session (the same work as `kerbtrace live`):
  dumpcap   `kerbtrace live` itself: dumpcap -> pcapng on a pipe -> kerbtrace's stream reader
  pcapy     pcapy-ng (libpcap binding) in the analysing process
  scapy     scapy's sniff() with its libpcap backend (conf.use_pcap), in the analysing process
Prints one line per backend and rate: packets sent, read, dropped by the kernel (as libpcap counts them).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "captures" / "mixed.pcapng"


def consume(backend: str, seconds: float) -> None:
    """Inside the namespace: capture on lo for `seconds`, analysing every packet; print counts as JSON."""
    sys.path.insert(0, str(REPO))
    from kerbtrace.analysis import Session
    from kerbtrace.diagnostics import Diagnostics
    from kerbtrace.live.backend import DEFAULT_FILTER

    session = Session(Diagnostics(), settle=1.0, idle_timeout=5.0, kerberos_limit=0)
    n = 0
    end = time.time() + seconds
    stats = (None, None)
    if backend == "pcapy":
        import pcapy

        cap = pcapy.open_live("lo", 262144, 0, 100)
        cap.setfilter(DEFAULT_FILTER)
        cap.setnonblock(1)  # next() would wait for a packet forever on a quiet interface
        linktype = cap.datalink()
        while time.time() < end:
            header, data = cap.next()
            if header is None or not header.getlen():
                time.sleep(0.001)
                continue
            n += 1
            sec, usec = header.getts()
            session.feed(n, sec + usec / 1e6, linktype, bytes(data))
            if not n % 256:
                session.poll(now=time.time())
        recv, drop, _ifdrop = cap.stats()
        stats = (recv, drop)
    elif backend == "scapy":
        from scapy.config import conf

        conf.use_pcap = True
        from scapy.sendrecv import sniff

        def feed(pkt) -> None:  # noqa: ANN001
            nonlocal n
            n += 1
            session.feed(n, float(pkt.time), 1, bytes(pkt))
            if not n % 256:
                session.poll(now=time.time())

        sniff(iface="lo", filter=DEFAULT_FILTER, prn=feed, store=False, timeout=seconds)
    print(json.dumps({"read": n, "received": stats[0], "dropped": stats[1]}), flush=True)


def _wait_for(log, text: str, timeout: float) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        log.seek(0)
        if text in log.read():
            return
        time.sleep(0.1)
    raise RuntimeError(f"no '{text}' after {timeout} s")


def run(ns: str, backend: str, rate: int, seconds: float) -> dict:
    frames = int(subprocess.run(["capinfos", "-c", "-M", "-r", "-T", str(SOURCE)], capture_output=True,
                                text=True).stdout.split()[-1])
    loops = max(1, int(rate * seconds / frames))
    if backend == "dumpcap":
        cmd = [sys.executable, "-m", "kerbtrace", "live", "-i", "lo", "--settle", "1", "--idle-timeout", "5"]
    else:
        cmd = [sys.executable, __file__, "consume", backend, str(seconds + 4)]
    log = tempfile.TemporaryFile("w+")  # not a pipe left unread: a listener blocked on its output stops reading
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    if backend == "dumpcap":
        _wait_for(log, "capturing on", 60.0)  # the interface is open
    time.sleep(3.0)
    started = time.monotonic()
    subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-i", "lo", "--pps", str(rate), "--loop", str(loops),
                    "--unique-ip", str(SOURCE)], capture_output=True, check=True)
    took = time.monotonic() - started
    if backend == "dumpcap":
        time.sleep(2.0)
        os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        raise
    log.seek(0)
    out = log.read()
    last = out.strip().splitlines()[-1]
    if backend == "dumpcap":
        read = int(last.split(" packets read")[0].rsplit(" ", 1)[1])
        dropped = int(last.split(" dropped by the kernel")[0].rsplit(" ", 1)[1])
        received = int(last.split("(of ")[1].split(" ")[0])
    else:
        counts = json.loads(last)
        read, dropped, received = counts["read"], counts["dropped"], counts["received"]
    return {"backend": backend, "rate": rate, "sent": loops * frames, "sent_rate": round(loops * frames / took),
            "read": read, "received": received, "dropped": dropped}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--backends", nargs="+", default=["dumpcap", "pcapy", "scapy"])
    args = ap.parse_args()
    ns = f"kt-live-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        for rate in args.rates:
            for backend in args.backends:
                print(json.dumps(run(ns, backend, rate, args.seconds)), flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "consume":
        consume(sys.argv[2], float(sys.argv[3]))
        raise SystemExit(0)
    raise SystemExit(main())
