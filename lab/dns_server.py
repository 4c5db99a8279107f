"""Authoritative lab DNS: A records for the lab hosts, SRV records for MP location, NXDOMAIN otherwise.

ConfigMgr clients find their MP through ``_mssms_mp_<sitecode>._tcp.<domain>`` SRV records before they
resolve the target's A record; the lab serves both. No additional (glue) records are sent, so the client's
own A query for the SRV target is on the wire.

Runs as its own process (``python -m lab.dns_server``) so the build can stop it by PID.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, SRV, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from lab import procs

SrvRecord = tuple[int, int, int, str]  # priority, weight, port, target


class ZoneResolver(BaseResolver):
    """A and SRV records from fixed tables; unknown names get an authoritative NXDOMAIN like an AD zone."""

    def __init__(self, records: dict[str, str], srv: dict[str, list[SrvRecord]] | None = None) -> None:
        self.records = {k.lower().rstrip("."): v for k, v in records.items()}
        self.srv = {k.lower().rstrip("."): list(v) for k, v in (srv or {}).items()}

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).lower().rstrip(".")
        qtype = request.q.qtype
        ip = self.records.get(qname)
        targets = self.srv.get(qname)
        if ip is None and targets is None:
            reply.header.rcode = RCODE.NXDOMAIN
        if ip is not None and qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=300))
        if targets is not None and qtype in (QTYPE.SRV, QTYPE.ANY):
            for prio, weight, port, target in targets:
                reply.add_answer(RR(request.q.qname, QTYPE.SRV, ttl=600,
                                    rdata=SRV(priority=prio, weight=weight, port=port, target=target)))
        return reply  # known name, other type: NODATA (NOERROR with no answer)


class DnsServer:
    """Parent-side handle: starts the resolver process and waits until it answers."""

    def __init__(self, ip: str, records: dict[str, str], log_dir: Path, port: int = 53,
                 srv: dict[str, list[SrvRecord]] | None = None) -> None:
        self.ip, self.port, self.records, self.log_dir = ip, port, records, log_dir
        self.srv = srv or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        zone = self.log_dir / "zone.json"
        zone.write_text(json.dumps({"a": self.records, "srv": self.srv}))
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
    ap.add_argument("--zone", required=True, help='JSON {"a": {name: IPv4}, "srv": {name: [[prio, weight, '
                    'port, target], ...]}}')
    args = ap.parse_args(argv)
    zone = json.loads(Path(args.zone).read_text())
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    srv = {name: [(int(p), int(w), int(port), str(t)) for p, w, port, t in rrs] for name, rrs in zone["srv"].items()}
    server = DNSServer(ZoneResolver(zone["a"], srv), address=args.ip, port=args.port, logger=logger)
    print(f"listening on {args.ip}:{args.port}", flush=True)
    server.start()  # serves until SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
