"""Authoritative lab DNS: A records for the lab hosts, NXDOMAIN for every other name.

Runs as its own process (``python -m lab.dns_server``) so the build can stop it by PID.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from lab import procs


class ZoneResolver(BaseResolver):
    """A records from a fixed table; unknown names get an authoritative NXDOMAIN like an AD DNS zone."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = {k.lower().rstrip("."): v for k, v in records.items()}

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).lower().rstrip(".")
        ip = self.records.get(qname)
        if ip is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=300))
        return reply  # known name, other type: NOERROR with no answer (NODATA)


class DnsServer:
    """Parent-side handle: starts the resolver process and waits until it answers."""

    def __init__(self, ip: str, records: dict[str, str], log_dir: Path, port: int = 53) -> None:
        self.ip, self.port, self.records, self.log_dir = ip, port, records, log_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        zone = self.log_dir / "zone.json"
        zone.write_text(json.dumps(self.records))
        log = self.log_dir / "dns.log"
        self.proc = procs.start([sys.executable, "-m", "lab.dns_server", "--ip", self.ip, "--port",
                                 str(self.port), "--zone", str(zone)], log=log)
        procs.wait_until(lambda: log.exists() and "listening" in log.read_text(errors="replace"), 10.0, "DNS")

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--zone", required=True, help="JSON object name -> IPv4")
    args = ap.parse_args(argv)
    records = json.loads(Path(args.zone).read_text())
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    server = DNSServer(ZoneResolver(records), address=args.ip, port=args.port, logger=logger)
    print(f"listening on {args.ip}:{args.port}", flush=True)
    server.start()  # serves until SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
