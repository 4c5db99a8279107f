"""Does the capture show the outcome the lab configured? A scenario that fails this is not written."""

from __future__ import annotations

from lab.scenarios import Outcome
from lab.world import REALMS

Evidence = list[dict[str, object]]


def _kinds(ev: Evidence, kind: str, **match: object) -> list[dict[str, object]]:
    return [e for e in ev if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def _final_http(ev: Evidence) -> dict[str, object] | None:
    resp = _kinds(ev, "http_response")
    return resp[-1] if resp else None


def problems(o: Outcome, ev: Evidence) -> list[str]:
    """Every mismatch between the expected outcome, the client's own result and the capture."""
    out: list[str] = []
    res = o.result or {}
    spn = f"HTTP/{o.mp_name}"
    final = _final_http(ev)
    status = final["status"] if final else None
    if o.client.mp.https:
        return _https_problems(o, ev, res, spn)
    if o.verdict == "approved":
        if status != 200 or res.get("approval_status") != 1:
            out.append(f"expected approval, got HTTP {status}, client result {res}")
    elif o.cause != "dns_failure" and status == 200 and res.get("approval_status") == 1:
        out.append("client was approved although the scenario expects no approval")
    if o.auth == "kerberos" and not _kinds(ev, "http_ap_req"):
        out.append("no AP-REQ in the HTTP Authorization header")
    if o.auth == "ntlm" and not _kinds(ev, "http_ntlm_auth"):
        out.append("no NTLMSSP AUTHENTICATE in the HTTP Authorization header")
    if o.auth == "none" and (_kinds(ev, "http_ap_req") or _kinds(ev, "http_ntlm_auth")):
        out.append("client authenticated although the scenario expects no authentication")
    if res.get("auth") != o.auth:
        out.append(f"client reports auth {res.get('auth')!r}, scenario expects {o.auth!r}")
    cause = o.cause
    if cause in ("ok", "duplicate_guid") and not _kinds(ev, "tgs_rep", sname=spn):
        out.append(f"no TGS-REP with ticket {spn}")
    if cause == "ok" and o.client.realm != "CORP.LAB" and not _kinds(ev, "tgs_rep", sname="krbtgt/CORP.LAB"):
        out.append("no referral TGS-REP with ticket krbtgt/CORP.LAB")
    if cause == "duplicate_guid" and (status != 200 or res.get("status") != 1):
        out.append(f"expected a 200 with Status=1 (pending), got HTTP {status}, result {res}")
    if cause == "spn_wrong_account" and (not _kinds(ev, "tgs_rep", sname=spn) or status != 401
                                         or (final or {}).get("error_code") not in (31, 41)):
        out.append(f"expected TGS-REP {spn} then a final 401 carrying error 31 or 41, got {final}")
    if cause in ("spn_missing", "no_trust_path") and not _kinds(ev, "krb_error", error_code=7, sname=spn):
        out.append(f"no KDC_ERR_S_PRINCIPAL_UNKNOWN for {spn}")
    if cause == "clock_skew" and (status != 401 or (final or {}).get("error_code") != 37):
        out.append(f"expected a final 401 carrying KRB_AP_ERR_SKEW (37) for the skewed AP-REQ, got {final}")
    if cause == "account_revoked" and not [e for e in _kinds(ev, "krb_error") if e["error_code"] in (1, 12, 18)]:
        out.append("no KRB-ERROR refusing the client account")
    if "preauth_failed" in o.secondary and not _kinds(ev, "krb_error", error_code=24):
        out.append("no KDC_ERR_PREAUTH_FAILED")
    if cause == "dns_failure" and (not _kinds(ev, "dns_response", rcode=3) or final is not None):
        out.append("expected NXDOMAIN and no HTTP")
    if "ntlm_fallback" in o.secondary and cause != "trust_broken" and status != 200:
        out.append(f"NTLM fallback should still be answered 200, got {status}")
    out += _location_problems(o, ev, res)
    out += _new_cause_problems(o, ev, res, status)
    return out


def _https_problems(o: Outcome, ev: Evidence, res: dict[str, object], spn: str) -> list[str]:
    """HTTPS MP: the Kerberos exchange is in clear, HTTP is not; the client's own result holds the truth."""
    out = []
    truth = o.truth or {}
    hello = _kinds(ev, "tls_client_hello", server_ip=o.client.mp.ip, port=443, sni=o.mp_name)
    if not hello:
        out.append(f"no TLS ClientHello to {o.client.mp.ip}:443 naming {o.mp_name}")
    if _kinds(ev, "http_response") or _kinds(ev, "http_ap_req") or _kinds(ev, "http_ntlm_auth"):
        out.append("HTTP of an HTTPS registration is readable in the capture")
    if res.get("auth") != truth.get("auth") or res.get("approval_status") != truth.get("approval_status"):
        out.append(f"client result {res} differs from what the lab expects: {truth}")
    if res.get("statuses", [None])[-1] != 200:  # type: ignore[index]
        out.append(f"expected the registration to end with 200 inside TLS, got {res.get('statuses')}")
    if o.cause == "registration_encrypted":
        rep = _kinds(ev, "tgs_rep", sname=spn)
        if not rep or not hello or int(rep[0]["frame"]) < int(hello[0]["frame"]):  # type: ignore[call-overload]
            out.append(f"expected the TGS-REP for {spn} after the ClientHello (ticket fetched after the 401)")
    if o.cause == "spn_missing" and (not _kinds(ev, "krb_error", error_code=7, sname=spn)
                                     or _kinds(ev, "tgs_rep", sname=spn)):
        out.append(f"expected KDC_ERR_S_PRINCIPAL_UNKNOWN for {spn} and no ticket")
    return out


def _location_problems(o: Outcome, ev: Evidence, res: dict[str, object]) -> list[str]:
    """A client that locates its MP through SRV: SRV answer naming the MP, then the MP's A lookup."""
    if not o.client.srv:
        return []
    out = []
    srv = _kinds(ev, "dns_srv_response", name=o.client.srv, rcode=0)
    if not srv or o.mp_name not in srv[0]["targets"]:
        out.append(f"no SRV answer for {o.client.srv} naming {o.mp_name}")
    if res.get("mp_fqdn") != o.mp_name:
        out.append(f"client used MP {res.get('mp_fqdn')!r}, scenario expects {o.mp_name!r}")
    a = _kinds(ev, "dns_response", name=o.mp_name)
    if srv and (not a or int(a[0]["frame"]) < int(srv[0]["frame"])):  # type: ignore[call-overload]
        out.append("no A lookup of the SRV target after the SRV answer")
    return out


def _new_cause_problems(o: Outcome, ev: Evidence, res: dict[str, object], status: object) -> list[str]:
    out = []
    cause = o.cause
    krb = [e for e in ev if e["kind"] in ("as_rep", "tgs_rep", "krb_error", "krb_request_unanswered")]
    if cause == "trust_broken":
        child_kdc, parent_kdc = REALMS[o.client.realm].kdc_ip, REALMS["CORP.LAB"].kdc_ip
        if not _kinds(ev, "tgs_rep", sname="krbtgt/CORP.LAB", kdc=child_kdc):
            out.append("no referral TGS-REP krbtgt/CORP.LAB from the client's own KDC")
        if not _kinds(ev, "krb_error", kdc=parent_kdc, error_code=31):
            out.append("the parent KDC did not refuse the referral TGT with KRB_AP_ERR_BAD_INTEGRITY")
        if _kinds(ev, "tgs_rep", sname=f"HTTP/{o.mp_name}") or status != 401:
            out.append(f"expected no service ticket and a final 401, got {status}")
    if cause == "kdc_unreachable":
        if not _kinds(ev, "krb_request_unanswered", msg_type=10) or _kinds(ev, "as_rep"):
            out.append("expected unanswered AS-REQs and no AS-REP")
        if res.get("statuses") != [401]:
            out.append(f"expected the anonymous 401 only, got {res.get('statuses')}")
    if cause == "etype_unsupported" and (not _kinds(ev, "krb_error", error_code=14) or _kinds(ev, "as_rep")):
        out.append("expected KDC_ERR_ETYPE_NOSUPP and no TGT")
    if cause in ("etype_unsupported", "no_kerberos_attempt") and res.get("statuses") != [401]:
        out.append(f"expected the anonymous 401 only, got {res.get('statuses')}")
    if cause == "no_kerberos_attempt" and krb:
        out.append("Kerberos traffic from a client that has no credentials")
    if cause == "ntlm_fallback":
        if _kinds(ev, "tgs_rep") or _kinds(ev, "krb_error") or status != 200 or res.get("approval_status") != 0:
            out.append(f"expected NTLM straight away, 200 with ApprovalStatus=0; got {status}, {res}")
    return out
