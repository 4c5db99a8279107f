"""Packet capture of the lab's loopback interface into pcapng with dumpcap.

dumpcap writes pcapng natively (tcpdump only writes pcap) and flushes every buffered packet on SIGINT.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from lab import procs


class Capture:
    """Record everything on ``lo`` of the lab namespace from start() to stop()."""

    def __init__(self, path: Path, interface: str = "lo") -> None:
        self.path = path
        self.interface = interface
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        log = self.path.with_suffix(".dumpcap.log")
        log.unlink(missing_ok=True)
        # -n pcapng, -s 0 full snaplen, -q no per-packet counters; pcapng timestamps are microseconds.
        cmd = ["dumpcap", "-i", self.interface, "-n", "-q", "-s", "0", "-w", str(self.path)]
        self.proc = procs.start(cmd, log=log)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise procs.LabError(f"dumpcap exited: {log.read_text(errors='replace')}")
            return log.exists() and "Capturing on" in log.read_text(errors="replace")

        procs.wait_until(ready, 10.0, "dumpcap")
        time.sleep(0.2)  # the ring buffer is live slightly after the banner

    def stop(self) -> None:
        if self.proc is None:
            return
        time.sleep(0.3)  # let the last FIN/ACKs reach the socket before asking for the flush
        procs.stop(self.proc, signal.SIGINT, timeout=15.0)
        self.proc = None
        self.path.with_suffix(".dumpcap.log").unlink(missing_ok=True)
        if self.path.exists():
            self.path.chmod(0o644)  # dumpcap creates it 0600; the captures are shared test data
