"""Private network namespace for the lab and per-client source-address selection.

libkrb5 never binds a source address, so a KDC sees every client as 127.0.0.1 unless routing picks another
source. Inside the namespace the lab rewrites the ``local`` route of each server address to carry
``src <client-ip>`` while that client runs; the kernel then uses that source for every socket the client's
processes open towards those servers (Kerberos UDP/TCP, DNS, HTTP), without touching the programs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

from lab import procs

NETNS_PREFIX = "kerbtrace-lab-"
INSIDE_ENV = "KERBTRACE_LAB_INSIDE"


def netns_name() -> str:
    """One namespace per build process: two builds (or a test's build next to a manual one) never share it."""
    return f"{NETNS_PREFIX}{os.getpid()}"


def inside() -> bool:
    return os.environ.get(INSIDE_ENV, "").startswith(NETNS_PREFIX)


def run_inside(argv: Sequence[str], cwd: os.PathLike[str] | str | None = None) -> int:
    """Create the namespace, re-run this program inside it, and delete the namespace whatever happens."""
    if os.geteuid() != 0:
        raise procs.LabError("the capture lab needs root (network namespace, dumpcap, route changes)")
    name = netns_name()
    if name in procs.run(["ip", "netns", "list"]).stdout.split():  # left over by a crashed build of this PID
        procs.run(["ip", "netns", "del", name])
    procs.run(["ip", "netns", "add", name])
    try:
        procs.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        env = dict(os.environ, **{INSIDE_ENV: name})
        cmd = ["ip", "netns", "exec", name, sys.executable, *argv]
        return subprocess.run(cmd, env=env, cwd=cwd).returncode
    finally:
        procs.run(["ip", "netns", "del", name], check=False)


def _set_src(server_ips: Sequence[str], src: str) -> None:
    for ip in server_ips:
        procs.run(["ip", "route", "replace", "local", f"{ip}/32", "dev", "lo", "src", src, "table", "local"])


@contextlib.contextmanager
def source_address(client_ip: str, server_ips: Sequence[str]) -> Iterator[None]:
    """While active, connections from this namespace to ``server_ips`` leave from ``client_ip``."""
    _set_src(server_ips, client_ip)
    try:
        yield
    finally:
        clear_routes(server_ips)


def clear_routes(server_ips: Sequence[str]) -> None:
    """Remove the per-server local routes; the 127.0.0.0/8 route still covers those addresses."""
    for ip in server_ips:
        procs.run(["ip", "route", "del", "local", f"{ip}/32", "dev", "lo", "table", "local"], check=False)
