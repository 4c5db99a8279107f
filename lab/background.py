"""Unrelated traffic for the mixed capture: a small web page, DNS look-ups and a bulk TCP transfer.

A real capture at an MP holds far more than registrations; the analyzer must ignore these flows.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from pathlib import Path

from dnslib import DNSRecord

from lab import procs
from lab.world import BULK_IP, DNS_IP, WEB_IP

BULK_BYTES = 300 * 1024
BULK_PORT = 9000
BACKGROUND_HOSTS = ["127.0.4.1", "127.0.4.2", "127.0.4.3"]  # unrelated workstations
LOOKUPS = ["www.corp.lab", "files.corp.lab", "wpad.corp.lab", "dc01.corp.lab", "update.example.lab"]


class Background:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.web: subprocess.Popen[bytes] | None = None
        self.sink: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        site = self.root / "www"
        site.mkdir(parents=True, exist_ok=True)
        (site / "index.html").write_text("<html><body><h1>Intranet</h1><p>Lab page.</p></body></html>\n")
        self.web = procs.start([sys.executable, "-u", "-m", "http.server", "80", "--bind", WEB_IP,
                                "--directory", str(site)], log=self.root / "web.log")
        self.sink = procs.start([sys.executable, "-u", "-c", _SINK, BULK_IP, str(BULK_PORT)],
                                log=self.root / "sink.log")
        procs.wait_until(lambda: "Serving HTTP" in _read(self.root / "web.log"), 10.0, "web server")
        procs.wait_until(lambda: "ready" in _read(self.root / "sink.log"), 10.0, "bulk sink")

    def step(self, i: int) -> None:
        """One burst of unrelated traffic from a background host (explicitly bound source)."""
        host = BACKGROUND_HOSTS[i % len(BACKGROUND_HOSTS)]
        name = LOOKUPS[i % len(LOOKUPS)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            s.settimeout(2.0)
            s.sendto(DNSRecord.question(name, "A").pack(), (DNS_IP, 53))
            s.recvfrom(4096)
        if i % 2 == 0:
            conn = http.client.HTTPConnection(WEB_IP, 80, timeout=5, source_address=(host, 0))
            conn.request("GET", "/index.html", headers={"Host": "www.corp.lab"})
            conn.getresponse().read()
            conn.close()
        if i % 3 == 1 or i == 2:
            with socket.create_connection((BULK_IP, BULK_PORT), timeout=5, source_address=(host, 0)) as s:
                s.sendall(bytes(range(256)) * (BULK_BYTES // 256))
                s.shutdown(socket.SHUT_WR)
                s.recv(16)

    def stop(self) -> None:
        for p in (self.web, self.sink):
            if p is not None:
                procs.stop(p)
        self.web = self.sink = None


def _read(p: Path) -> str:
    return p.read_text(errors="replace") if p.exists() else ""


_SINK = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(8); print("ready", flush=True)
while True:
    c, _ = srv.accept()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.sendall(b"OK %d" % n); c.close()
"""
