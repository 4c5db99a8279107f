"""The exchanges stage piece by piece: each pairing module, and the correlator's registration-evidence rule,
fed with records built directly (DNS payloads by scapy, as on the wire)."""

from __future__ import annotations

from scapy.all import DNS, DNSQR, DNSRR

from kerbtrace.checks import Context, evaluate
from kerbtrace.decoders.dns import peek_dns
from kerbtrace.decoders.gss import AuthToken
from kerbtrace.decoders.http import HttpMessage
from kerbtrace.decoders.kerberos import KerberosMessage, TicketInfo
from kerbtrace.events import DnsEvent, HttpEvent, KerberosEvent, TlsEvent
from kerbtrace.exchanges.client import DnsLookup
from kerbtrace.exchanges.correlator import Correlator
from kerbtrace.exchanges.dns_pairing import DnsPairing, RawLookup
from kerbtrace.exchanges.http_legs import HttpLegs
from kerbtrace.exchanges.kdc_pairing import KdcPairing
from kerbtrace.exchanges.mp_names import MpNames

CLIENT, KDC, DNS_SERVER, MP = "10.1.0.5", "10.0.0.2", "10.0.0.53", "10.0.0.10"
MP_NAME = "mp01.corp.lab"
TGT = TicketInfo("CORP.LAB", "krbtgt/CORP.LAB", 18, 2)


def krb(frame, msg, *, request, transport="udp", sport=50000, stream=None, src=CLIENT, kdc=KDC):
    if request:
        return KerberosEvent(frame, frame / 10, src, sport, kdc, 88, transport, msg, stream)
    return KerberosEvent(frame, frame / 10, kdc, 88, src, sport, transport, msg, stream)


def tgs_req(sname):
    return KerberosMessage(12, realm="CORP.LAB", sname=sname, ticket=TGT)


def dns(frame, name, qtype, *, response, rcode=0, answer=None, ident=7, client=CLIENT):
    msg = DNS(id=ident, qr=int(response), rcode=rcode, qd=DNSQR(qname=name, qtype=qtype),
              an=[DNSRR(rrname=name, type=qtype, rdata=answer)] if answer else [])
    src, dst = (DNS_SERVER, client) if response else (client, DNS_SERVER)
    return DnsEvent(frame, frame / 10, src, dst, peek_dns(bytes(msg)))


def http_request(frame, uri, token=None):
    msg = HttpMessage(True, "HTTP/1.1", method="CCM_POST", uri=uri, headers=[("Host", MP_NAME)], frame=frame)
    return HttpEvent(frame, frame / 10, CLIENT, 50100, MP, 80, 1, msg, [token] if token else [])


def http_response(frame, request: HttpEvent, status):
    msg = HttpMessage(False, "HTTP/1.1", status=status, frame=frame)
    return HttpEvent(frame, frame / 10, CLIENT, 50100, MP, 80, 1, msg, request=request.msg)


# --- pairing modules ---------------------------------------------------------------------
def test_kdc_pairing_pairs_udp_by_ports_and_tcp_in_order():
    pairing = KdcPairing()
    first = pairing.feed(krb(1, tgs_req("HTTP/a"), request=True))
    retry = pairing.feed(krb(2, tgs_req("HTTP/a"), request=True))
    done = pairing.feed(krb(3, KerberosMessage(13), request=False))
    assert done is retry and done is not first and done.reply.frame == 3 and done.request.frame == 2
    a = pairing.feed(krb(4, tgs_req("HTTP/a"), request=True, transport="tcp", stream=9))
    b = pairing.feed(krb(5, tgs_req("HTTP/b"), request=True, transport="tcp", stream=9))
    assert pairing.feed(krb(6, KerberosMessage(13), request=False, transport="tcp", stream=9)) is a
    assert pairing.feed(krb(7, KerberosMessage(30, error_code=7), request=False, transport="tcp", stream=9)) is b
    assert b.error_code == 7 and b.sname == "HTTP/b"
    orphan = pairing.feed(krb(8, KerberosMessage(11), request=False, sport=50001))
    assert orphan.request is None and orphan.client_ip == CLIENT and orphan.kdc_ip == KDC


def test_dns_pairing_decodes_only_what_matters():
    pairing = DnsPairing(MpNames((MP_NAME,)))
    assert pairing.feed(dns(1, "www.example.org", "A", response=False, ident=1)) is None
    raw = pairing.feed(dns(2, "www.example.org", "A", response=True, answer="192.0.2.1", ident=1))
    assert isinstance(raw, RawLookup) and raw.frame == 1
    pairing.feed(dns(3, MP_NAME, "A", response=False, ident=2))
    found = pairing.feed(dns(4, MP_NAME, "A", response=True, answer=MP, ident=2))
    assert isinstance(found, DnsLookup) and (found.frame, found.response_frame) == (3, 4)
    assert found.answers == [(MP_NAME, 1, MP)] and found.resolved
    pairing.feed(dns(5, "mp01.other.lab", "A", response=False, ident=3))
    failed = pairing.feed(dns(6, "mp01.other.lab", "A", response=True, rcode=3, ident=3))
    assert failed.failed and failed.rcode == 3
    pairing.feed(dns(7, MP_NAME, "AAAA", response=False, ident=4))
    (unanswered,) = pairing.unanswered()
    assert (unanswered.frame, unanswered.qtype, unanswered.response_frame) == (7, 28, None)


def test_http_legs_only_for_registration_requests():
    legs = HttpLegs()
    policy = http_request(1, "/ccm_system/request")
    assert legs.request(policy) is None, "signed CCM traffic of a registered client is not a registration"
    assert legs.response(http_response(2, policy, 200)) is None
    reg = http_request(3, "/ccm_system_windowsauth/request")
    leg = legs.request(reg)
    assert leg is not None and leg.host == MP_NAME and leg.status is None
    assert legs.response(http_response(4, reg, 401)) is leg and (leg.status, leg.response_frame) == (401, 4)


# --- correlator: registration evidence ------------------------------------------------------
def _run(events, mp_names=()):
    correlator = Correlator(mp_names=mp_names)
    for ev in events:
        correlator.feed(ev)
    return correlator, correlator.finish()


def test_an_empty_aaaa_answer_beside_a_working_a_record_makes_no_client():
    events = [dns(1, MP_NAME, "A", response=False, ident=1), dns(2, MP_NAME, "A", response=True, answer=MP, ident=1),
              dns(3, MP_NAME, "AAAA", response=False, ident=2), dns(4, MP_NAME, "AAAA", response=True, ident=2)]
    assert _run(events, (MP_NAME,))[1] == []
    assert _run(events[2:], (MP_NAME,))[1] == [], "an empty AAAA answer alone is normal for an IPv4-only MP"


def test_a_failed_lookup_of_the_mp_with_nothing_after_it_is_a_client():
    nx = [dns(1, MP_NAME, "A", response=False, ident=1), dns(2, MP_NAME, "A", response=True, rcode=3, ident=1)]
    (client,) = _run(nx, (MP_NAME,))[1]
    assert client.ip == CLIENT and client.view["label"] == "dns_only"
    verdict, findings = evaluate(client, Context())
    assert (verdict, findings[0].code) == ("not_approved", "dns_failure")
    resolved_later = nx + [dns(3, MP_NAME, "A", response=False, ident=3),
                           dns(4, MP_NAME, "A", response=True, answer=MP, ident=3)]
    assert _run(resolved_later, (MP_NAME,))[1] == []
    unanswered = [dns(1, MP_NAME, "A", response=False, ident=1)]
    (client,) = _run(unanswered, (MP_NAME,))[1]
    assert evaluate(client, Context())[1][0].code == "dns_failure"


def test_an_http_ticket_makes_a_client_only_for_a_known_mp():
    events = [krb(1, tgs_req(f"HTTP/{MP_NAME}"), request=True),
              krb(2, KerberosMessage(30, realm="CORP.LAB", sname=f"HTTP/{MP_NAME}", error_code=7), request=False)]
    correlator, clients = _run(events)
    assert clients == [] and correlator.unknown_spn_hosts() == {MP_NAME: 1}
    correlator, (client,) = _run(events, (MP_NAME,))
    assert correlator.unknown_spn_hosts() == {}
    assert client.mp_name == MP_NAME and client.view == {"mp_http": "not_seen", "kdc": "seen", "dns": "not_seen",
                                                        "label": "kdc_side"}
    verdict, findings = evaluate(client, Context())
    assert (verdict, findings[0].code) == ("not_approved", "spn_missing")
    ok = [krb(1, tgs_req(f"HTTP/{MP_NAME}"), request=True),
          krb(2, KerberosMessage(13, ticket=TicketInfo("CORP.LAB", f"HTTP/{MP_NAME}", 18, 3)), request=False)]
    (client,) = _run(ok, (MP_NAME,))[1]
    verdict, findings = evaluate(client, Context())
    assert verdict == "inconclusive" and findings[0].code == "incomplete_capture"
    assert "registration (HTTP to the MP) is not in the capture" in findings[0].summary


def test_late_traffic_of_a_client_already_handed_out_makes_no_new_row():
    request = http_request(1, "/ccm_system_windowsauth/request")
    correlator = Correlator()
    for ev in (request, http_response(2, request, 200)):
        correlator.feed(ev)
    correlator.now = 1000.0
    (done,) = list(correlator.completed(settle=30))
    assert done.ip == CLIENT
    for ev in (dns(3, MP_NAME, "AAAA", response=False, ident=5), dns(4, MP_NAME, "AAAA", response=True, rcode=2,
                                                                    ident=5),
               krb(5, tgs_req(f"HTTP/{MP_NAME}"), request=True)):
        correlator.feed(ev)
    assert correlator.finish() == []


def test_tls_to_the_mp_is_an_encrypted_registration():
    hello = TlsEvent(3, 0.3, CLIENT, 50200, MP, 443, 4, sni=MP_NAME, version="TLS 1.2", certificate_requested=True,
                     client_certificate=False, server_frame=4)
    ticket = [krb(1, tgs_req(f"HTTP/{MP_NAME}"), request=True),
              krb(2, KerberosMessage(13, ticket=TicketInfo("CORP.LAB", f"HTTP/{MP_NAME}", 18, 3)), request=False)]
    (client,) = _run([*ticket, hello], (MP_NAME,))[1]
    assert client.view["mp_http"] == "tls" and client.view["label"] == "client_side_tls" and client.auth == "tls"
    verdict, findings = evaluate(client, Context())
    assert verdict == "inconclusive" and findings[0].code == "registration_encrypted"
    assert "no certificate" in findings[0].summary and {3, 2} <= {e.frame for e in findings[0].evidence}
    failed = [ticket[0], krb(2, KerberosMessage(30, realm="CORP.LAB", sname=f"HTTP/{MP_NAME}", error_code=7),
                             request=False)]
    (client,) = _run([*failed, hello], (MP_NAME,))[1]
    verdict, findings = evaluate(client, Context())
    assert (verdict, findings[0].code) == ("not_approved", "spn_missing")
    assert "registration_encrypted" in {f.code for f in findings}
    other = TlsEvent(3, 0.3, CLIENT, 50200, "10.9.9.9", 443, 4, sni="www.example.org")
    assert _run([other], (MP_NAME,))[1] == [], "TLS to another server is not a registration"


def test_an_auth_token_leg_is_kept_with_its_client():
    token = AuthToken("Negotiate", "krb5", mech="kerberos", kerberos=KerberosMessage(14, ticket=TicketInfo(
        "CORP.LAB", f"HTTP/{MP_NAME}", 18, 3)))
    request = http_request(5, "/ccm_system_windowsauth/request", token)
    (client,) = _run([request, http_response(6, request, 200)])[1]
    assert client.auth == "kerberos" and client.mp_name == MP_NAME and client.legs[0].ap_req is not None
    assert client.view["label"] == "mp_side"


def test_policy_traffic_adds_to_a_timeline_but_never_makes_a_client():
    policy = http_request(1, "/ccm_system/request")
    assert _run([policy, http_response(2, policy, 200)], (MP_NAME,))[1] == []
    reg = http_request(3, "/ccm_system_windowsauth/request")
    later = http_request(5, "/ccm_system/request")
    (client,) = _run([reg, http_response(4, reg, 200), later])[1]
    assert [e.frame for e in client.timeline] == [3, 4, 5] and len(client.legs) == 1


def test_the_client_guid_is_read_from_the_header_source_id_too():
    from kerbtrace.checks.duplicate_guid import check as duplicate_guid
    from kerbtrace.decoders.ccm import CcmMessage

    correlator = Correlator()
    for ip, host in (("10.1.0.5", "PC01"), ("10.1.0.6", "PC02")):
        ccm = CcmMessage("registration_request", source_id="GUID:1234", netbios_name=host)
        request = http_request(len(correlator.clients) + 1, "/ccm_system_windowsauth/request")
        request.client_ip, request.ccm = ip, ccm
        correlator.feed(request)
    clients = correlator.finish()
    assert [c.smsid for c in clients] == ["GUID:1234", "GUID:1234"]
    ctx = Context()
    for c in clients:
        ctx.add(c)
    assert all(duplicate_guid(c, ctx) is not None for c in clients)


def test_tls_on_443_to_the_address_of_a_host_the_client_got_a_ticket_for():
    name = "mp09.corp.lab"
    ticket = [krb(1, tgs_req(f"HTTP/{name}"), request=True),
              krb(2, KerberosMessage(13, ticket=TicketInfo("CORP.LAB", f"HTTP/{name}", 18, 3)), request=False)]
    lookup = [dns(3, name, "A", response=False, ident=9), dns(4, name, "A", response=True, answer="10.0.0.99", ident=9)]
    hello = TlsEvent(5, 0.5, CLIENT, 50300, "10.0.0.99", 443, 6, version="TLS 1.3")
    (client,) = _run([*ticket, *lookup, hello])[1]
    assert client.tls[0].why == "ticket" and client.mp_name == name and client.view["mp_http"] == "tls"
    sql = TlsEvent(5, 0.5, CLIENT, 50300, MP, 1433, 6)
    request = http_request(1, "/ccm_system_windowsauth/request")
    (client,) = _run([request, http_response(2, request, 401), sql])[1]
    assert client.tls == [], "TLS to the MP's server on another port (SQL, WSUS) is not a registration"


def _scan(correlator: Correlator, settle: float) -> list[str]:
    """The clients a tick must hand out, by the definition: a scan of the whole table in its order."""
    out = []
    for ip, client in correlator.clients.items():
        quiet = correlator.now - client.last_time
        if hasattr(client, "final_leg"):
            final = client.final_leg
            answered = final is not None and (final.reply is not None or final.status == 200)
        else:  # a quiet client waiting on disk: its stand-in says
            answered = client.answered
        if quiet > correlator.idle_timeout or (answered and quiet > settle):
            out.append(ip)
    return out


def test_ticks_hand_out_exactly_the_clients_a_scan_of_the_table_finds():
    """`completed` looks only at clients whose due time passed (a heap); on random traffic of 400 clients
    (requests, 401s and 200s at random times, answers whose owner the bounded table forgot, quiet clients
    waiting on disk), every tick hands
    out the same clients in the same order as a scan of the whole table."""
    import random

    rnd = random.Random(7)
    events = []
    for n in range(400):
        ip = f"10.2.{n // 250}.{n % 250 + 1}"
        t = rnd.uniform(0, 3000)
        for leg in range(rnd.randint(1, 3)):
            frame = len(events) + 1
            req = HttpMessage(True, "HTTP/1.1", method="CCM_POST", uri="/ccm_system_windowsauth/request",
                              headers=[("Host", MP_NAME)], frame=frame)
            events.append(HttpEvent(frame, t, ip, 50100 + leg, MP, 80, n * 4 + leg, req, []))
            t += rnd.choice((0.01, 1.0, 45.0, 700.0))
            if rnd.random() < 0.8:  # some requests are never answered
                status = rnd.choice((401, 401, 200, 500))
                resp = HttpMessage(False, "HTTP/1.1", status=status, frame=frame + 1)
                events.append(HttpEvent(frame + 1, t, ip, 50100 + leg, MP, 80, n * 4 + leg, resp, request=req))
            t += rnd.choice((0.5, 40.0, 650.0))
    events.sort(key=lambda e: e.time)
    correlator = Correlator(idle_timeout=600.0)
    correlator.max_pending = 16  # answers whose owner was forgotten change legs too
    handed = rested = 0
    for i, ev in enumerate(events):
        correlator.feed(ev)
        if i % 5 == 0:
            expected = _scan(correlator, 30.0)
            got = [c.ip for c in correlator.completed(settle=30.0)]
            assert got == expected
            handed += len(got)
            rested += any(not hasattr(c, "final_leg") for c in dict.values(correlator.clients))
    assert handed > 100  # the ticks did hand clients out (the comparison was not vacuous)
    assert correlator._answer_epoch > 0  # and answers whose owner was forgotten came in
    assert rested  # and quiet clients waited on disk meanwhile
