"""Checks on exchanges built directly: the causes no lab capture exercises, user identities and lockouts,
the fleet findings, and the verdict module's rules."""

from __future__ import annotations

from types import SimpleNamespace

from kerbtrace.checks import Context, Finding, evaluate, order
from kerbtrace.checks.fleet import common_cause, lockout_sources
from kerbtrace.decoders.ccm import CcmMessage
from kerbtrace.decoders.gss import AuthToken
from kerbtrace.decoders.kerberos import KerberosMessage, TicketInfo
from kerbtrace.events import KerberosEvent
from kerbtrace.exchanges.client import AuthLeg, ClientExchange, KdcExchange
from kerbtrace.exchanges.lockouts import LockoutWatch

KDC, MP, MP_NAME = "10.0.0.2", "10.0.0.10", "mp01.corp.lab"
KERBEROS = AuthToken("Negotiate", "krb5", mech="kerberos",
                     kerberos=KerberosMessage(14, ticket=TicketInfo("CORP.LAB", f"HTTP/{MP_NAME}", 18, 3)))
NTLM = AuthToken("Negotiate", "ntlmssp", mech="ntlm")


def ev(frame, msg, client="10.1.0.5", request=True):
    if request:
        return KerberosEvent(frame, float(frame), client, 50000 + frame, KDC, 88, "udp", msg)
    return KerberosEvent(frame, float(frame), KDC, 88, client, 50000 + frame - 1, "udp", msg)


def exchange(frame, req, rep, client="10.1.0.5"):
    return KdcExchange(client, KDC, ev(frame, req, client), ev(frame + 1, rep, client, request=False))


def leg(frame, status, token=None, reply=None):
    out = AuthLeg(frame, float(frame), 1, MP, 80, "CCM_POST", "/ccm_system_windowsauth/request", MP_NAME,
                  token=token, client_ip="10.1.0.5")
    out.response_frame, out.status, out.reply = frame + 1, status, reply
    return out


def client_with(legs=(), kdc=(), ip="10.1.0.5") -> ClientExchange:
    client = ClientExchange(ip, mp_ip=MP, mp_name=MP_NAME)
    client.legs, client.kdc = list(legs), list(kdc)
    return client


def as_error(frame, cname, code, nt_status=None, client="10.1.0.5"):
    return exchange(frame, KerberosMessage(10, realm="CORP.LAB", sname="krbtgt/CORP.LAB", cname=cname),
                    KerberosMessage(30, realm="CORP.LAB", cname=cname, crealm="CORP.LAB", error_code=code,
                                    nt_status=nt_status), client)


def test_mp_http_error_is_the_cause_of_a_500():
    verdict, findings = evaluate(client_with([leg(10, 401), leg(20, 500, KERBEROS)]), Context())
    assert verdict == "not_approved" and findings[0].code == "mp_http_error"
    assert "HTTP 500" in findings[0].summary and "Kerberos authentication" in findings[0].summary
    assert {20, 21} <= {e.frame for e in findings[0].evidence}


def test_trust_broken_on_wrong_realm_and_policy():
    referral = TicketInfo("OTHER.LAB", "krbtgt/CORP.LAB", 18, 2)  # cross-realm TGT issued by OTHER.LAB
    for code, words in ((68, "another realm"), (12, "selective authentication")):
        failed = exchange(30, KerberosMessage(12, realm="CORP.LAB", sname=f"HTTP/{MP_NAME}", ticket=referral),
                          KerberosMessage(30, realm="CORP.LAB", error_code=code))
        verdict, findings = evaluate(client_with([leg(10, 401), leg(40, 200, NTLM)], [failed]), Context())
        assert findings[0].code == "trust_broken", code
        assert words in findings[0].summary and {30, 31} <= {e.frame for e in findings[0].evidence}


def test_account_revoked_names_the_ntstatus_and_the_kind_of_account():
    disabled = as_error(2, "WK01$", 18, 0xC0000072)
    verdict, findings = evaluate(client_with([leg(10, 401)], [disabled]), Context())
    assert (verdict, findings[0].code) == ("not_approved", "account_revoked")
    assert "computer account WK01$: disabled" in findings[0].summary
    assert "STATUS_ACCOUNT_DISABLED (0xC0000072)" in findings[0].codes


def test_a_user_identity_locked_out_in_the_capture():
    attempts = [as_error(20 + 2 * i, "sms_connect", 24) for i in range(3)]
    locked = as_error(30, "sms_connect", 18, 0xC0000234)
    client = client_with([leg(10, 401)], [*attempts, locked])
    verdict, findings = evaluate(client, Context())
    assert (verdict, findings[0].code) == ("not_approved", "account_revoked")
    summary = findings[0].summary
    assert "user account sms_connect" in summary and "locked out in this capture: 3 failed" in summary
    assert "STATUS_ACCOUNT_LOCKED_OUT (0xC0000234)" in findings[0].codes
    assert {21, 23, 25, 31} <= {e.frame for e in findings[0].evidence}
    assert "preauth_failed" in {f.code for f in findings}
    # a user logging on at the computer before it registers is not the ConfigMgr client
    before = [as_error(1, "alice", 18, 0xC0000234)]
    ok_tgt = exchange(3, KerberosMessage(10, realm="CORP.LAB", cname="WK01$"), KerberosMessage(11, cname="WK01$",
                                                                                             crealm="CORP.LAB"))
    verdict, findings = evaluate(client_with([leg(10, 401), leg(20, 200, NTLM)], [*before, ok_tgt]), Context())
    assert "account_revoked" not in {f.code for f in findings}


def test_approval_pending_after_kerberos_names_duplicate_guid_as_a_candidate():
    reply = CcmMessage("registration_response", status=0, approval_status=0)
    verdict, findings = evaluate(client_with([leg(10, 401), leg(20, 200, KERBEROS, reply)]), Context())
    assert (verdict, findings[0].code, findings[0].severity) == ("not_approved", "approval_pending", "error")
    assert findings[0].candidates == ["duplicate_guid"] and 21 in {e.frame for e in findings[0].evidence}
    reply = CcmMessage("registration_response", status=0, approval_status=1)
    verdict, findings = evaluate(client_with([leg(10, 401), leg(20, 200, KERBEROS, reply)]), Context())
    assert (verdict, findings[0].code) == ("approved", "ok")


def test_every_row_that_is_not_approved_carries_a_cause():
    verdict, findings = evaluate(client_with([leg(10, 401)]), Context())
    assert verdict == "not_approved" and findings
    verdict, findings = evaluate(client_with([leg(10, 200)]), Context())
    assert verdict == "inconclusive" and findings


def test_order_returns_new_findings_and_leaves_the_checks_results_alone():
    error = Finding("spn_missing", "error", "x")
    ordered = order("approved", [error, Finding("ok", "info", "y")])
    assert [f.code for f in ordered] == ["ok", "spn_missing"] and ordered[1].severity == "warning"
    assert error.severity == "error"


def test_lockout_sources_lists_the_addresses_of_one_principal():
    watch = LockoutWatch()
    frame = 0
    for client, tries in (("10.1.0.5", 3), ("10.1.0.6", 2), ("10.1.0.7", 1)):
        for _ in range(tries):
            frame += 2
            watch.feed(ev(frame, KerberosMessage(10, realm="CORP.LAB", cname="sms_connect"), client))
            watch.feed(ev(frame + 1, KerberosMessage(30, realm="CORP.LAB", error_code=24), client, request=False))
    frame += 2
    watch.feed(ev(frame, KerberosMessage(10, realm="CORP.LAB", cname="sms_connect"), "10.1.0.7"))
    watch.feed(ev(frame + 1, KerberosMessage(30, realm="CORP.LAB", error_code=18), "10.1.0.7", request=False))
    (finding,) = lockout_sources(watch.principals.values())
    assert finding.code == "lockout_sources" and finding.subject == "sms_connect@CORP.LAB"
    assert [(s["address"], s["failures"]) for s in finding.sources] == [("10.1.0.5", 3), ("10.1.0.6", 2),
                                                                        ("10.1.0.7", 1)]
    assert "user account" in finding.summary and "locked out" in finding.summary
    assert finding.evidence[0].frame == 3
    lone = LockoutWatch()
    lone.feed(ev(2, KerberosMessage(10, realm="CORP.LAB", cname="WK01$")))
    lone.feed(ev(3, KerberosMessage(30, realm="CORP.LAB", error_code=24), request=False))
    assert lockout_sources(lone.principals.values()) == [], "one stale try of one address is no lockout"


def test_common_cause_names_the_mp_when_many_clients_fail_alike():
    def result(ip, code, account="WK$@CORP.LAB"):
        client = ClientExchange(ip, mp_name=MP_NAME, account=account)
        return SimpleNamespace(client=client, verdict="not_approved", primary=Finding(code, "error", "x"))

    (finding,) = common_cause([result(f"10.1.0.{i}", "spn_wrong_account") for i in range(3)])
    assert (finding.subject, finding.cause, len(finding.clients)) == (MP_NAME, "spn_wrong_account", 3)
    assert common_cause([result(f"10.1.0.{i}", "spn_wrong_account") for i in range(2)]) == []
    by_user = common_cause([result(f"10.1.0.{i}", "account_revoked", "sms_connect@CORP.LAB") for i in range(2)])
    assert [f.subject for f in by_user] == ["sms_connect@CORP.LAB"]


def test_client_offset_reads_a_zoneless_ccm_stamp_as_utc():
    """A CCM TimeStamp without a zone is the client's UTC clock, whatever this machine's zone is."""
    import os
    import time

    from kerbtrace.checks.clock_skew import client_offset

    first = leg(5, 200)
    first.request_time = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    first.request_ccm = CcmMessage("registration_request", timestamp="2023-11-14T22:18:20")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        assert client_offset(client_with(legs=[first])) == (300.0, 5)
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_watches_of_parts_merge_into_what_one_watch_keeps_under_its_caps(monkeypatch):
    """Each process of a partitioned run watches its own clients' failures; merged, they give what one watch over
    all clients keeps, also past the cap on sources per principal (a part holds up to that cap of its own, so a
    merge that did not cut again listed up to twice as many). The cap on principals bounds the merge too."""
    import random

    from kerbtrace.exchanges import lockouts

    monkeypatch.setattr(lockouts, "MAX_SOURCES", 7)
    rng = random.Random(5)
    one, parts = LockoutWatch(), [LockoutWatch(), LockoutWatch()]
    frame = 0
    for _ in range(400):
        client = f"10.1.{rng.randrange(2)}.{rng.randrange(12)}"
        principal = rng.choice(("sms_connect", "WK01$", "WK02$", "svc_a", "svc_b"))
        frame += 2
        code = rng.choice((24, 24, 18))
        for watch in (one, parts[int(client.split(".")[2])]):  # the third byte names the client's part
            watch.feed(ev(frame, KerberosMessage(10, realm="CORP.LAB", cname=principal), client))
            watch.feed(ev(frame + 1, KerberosMessage(30, realm="CORP.LAB", error_code=code), client, request=False))

    def shape(entries):
        return [(e.principal, [(s.address, s.failures, s.revoked, s.frames) for s in e.sources.values()])
                for e in entries]

    merged = lockouts.merge(p.principals.values() for p in parts)
    assert len(merged) == 5 and all(len(e.sources) == 7 for e in merged)
    assert sum(len(e.sources) for p in parts for e in p.principals.values()) > 5 * 7  # the parts kept more
    assert shape(merged) == shape(one.principals.values())
    assert lockout_sources(merged) == lockout_sources(one.principals.values())
    monkeypatch.setattr(lockouts, "MAX_PRINCIPALS", 3)
    assert shape(lockouts.merge(p.principals.values() for p in parts)) == shape(merged[:3])
