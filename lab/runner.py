"""Runs the steps of one scenario's clients, each from its own source address.

A Runner wraps MIT's command-line clients (kinit/kvno, AS and TGS exchanges) and the ConfigMgr client
module, always inside :func:`lab.netns.source_address` so Kerberos, DNS and HTTP packets of a client all
carry its own address. Unrelated background traffic (web page, DNS, bulk TCP) comes from lab.background.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from subprocess import CompletedProcess

from lab import procs
from lab.background import Background
from lab.ccm_client import register
from lab.netns import source_address
from lab.world import DNS_IP, Client, World

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class Runner:
    def __init__(self, world: World) -> None:
        self.world = world
        self.log: list[str] = []
        self.background: Background | None = None

    def _note(self, c: Client, what: str, proc: CompletedProcess[str] | None = None) -> None:
        tail = f" rc={proc.returncode} {proc.stderr.strip()}" if proc is not None else ""
        self.log.append(f"{c.hostname} {c.ip}: {what}{tail}")

    def kinit(self, c: Client, *, expect_ok: bool = True) -> CompletedProcess[str]:
        """AS exchange with the machine keytab, as a Windows machine gets its TGT at boot."""
        with source_address(c.ip, self.world.server_ips):
            proc = procs.run(["kinit", "-k", "-t", str(self.world.client_keytab(c)), c.account],
                             env=self.world.client_env(c), check=False)
        self._note(c, "kinit", proc)
        if expect_ok and proc.returncode != 0:
            raise procs.LabError(f"kinit {c.account} failed: {proc.stderr.strip()}")
        if not expect_ok and proc.returncode == 0:
            raise procs.LabError(f"kinit {c.account} was expected to fail but succeeded")
        return proc

    def kvno(self, c: Client, spn: str) -> CompletedProcess[str]:
        """TGS exchange only (service ticket into the client's ccache)."""
        service, host = spn.split("/", 1)
        with source_address(c.ip, self.world.server_ips):
            proc = procs.run(["kvno", "-S", service, host], env=self.world.client_env(c), check=False)
        self._note(c, f"kvno {spn}", proc)
        if proc.returncode != 0:
            raise procs.LabError(f"kvno {spn} for {c.account} failed: {proc.stderr.strip()}")
        return proc

    def register(self, c: Client, *, mp_name: str | None = None, faketime: str | None = None
                 ) -> dict[str, object]:
        """One ConfigMgr registration; the MP is located through the lab DNS (SRV first if the client does)."""
        env = self.world.client_env(c)
        if faketime:
            if not Path(FAKETIME_LIB).exists():
                raise procs.LabError(f"libfaketime not found at {FAKETIME_LIB}")
            env.update({"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": faketime, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                        "FAKETIME_NO_CACHE": "1"})
        name = mp_name or c.mp.fqdn
        tls, cert = self.world.mp_tls(c.mp), self.world.client_tls(c)
        with source_address(c.ip, self.world.server_ips):
            res = register(name, c.ip, c.hostname.upper(), c.fqdn, c.smsid, dns_server=(DNS_IP, 53), env=env,
                           use_kerberos=c.kerberos, use_ntlm=c.ntlm, timeout=10.0,
                           locate_srv=c.srv, port=c.mp.port, tls_trust=str(tls[0]) if tls else None,
                           tls_client=(str(cert[0]), str(cert[1])) if cert else None)
        out = dataclasses.asdict(res)
        self.log.append(f"{c.hostname} {c.ip}: register {name} -> {out}")
        return out

    # ---- unrelated traffic for the mixed capture ----------------------------------------------------
    def start_background(self) -> None:
        self.background = Background(self.world.root / "background")
        self.background.start()

    def background_step(self, i: int) -> None:
        if self.background is not None:
            self.background.step(i)

    def stop_background(self) -> None:
        if self.background is not None:
            self.background.stop()
            self.background = None
