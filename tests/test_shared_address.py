"""Two computers behind one address (NAT, a reused DHCP lease) are two clients, not one.

The capture is the lab's duplicate_guid traffic with the second computer's address rewritten to the
first one's (scapy rewrites the IP headers of the real packets; payloads are untouched).
"""

from __future__ import annotations

import json

import pytest

from kerbtrace.analysis import analyze
from tests.conftest import CAPTURES

pytest.importorskip("scapy.all")  # the test extra
from scapy.all import IP, rdpcap, wrpcap  # noqa: E402


def test_two_computers_behind_one_address_are_reported_apart(tmp_path):
    manifest = json.loads((CAPTURES / "duplicate_guid.json").read_text())
    first, second = manifest["clients"]
    packets = rdpcap(str(CAPTURES / "duplicate_guid.pcapng"))
    for pkt in packets:
        if IP in pkt:
            for field in ("src", "dst"):
                if getattr(pkt[IP], field) == second["client_ip"]:
                    setattr(pkt[IP], field, first["client_ip"])
            del pkt[IP].chksum
    shared = tmp_path / "shared.pcap"
    wrpcap(str(shared), packets)
    result = analyze([str(shared)], progress=False)
    by_host = {r.client.hostname: r for r in result.clients}
    assert {first["hostname"], second["hostname"]} <= set(by_host)
    assert by_host[first["hostname"]].verdict == first["verdict"]
    assert by_host[second["hostname"]].verdict == second["verdict"]
    assert by_host[second["hostname"]].primary.code == second["cause"]
