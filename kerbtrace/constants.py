"""Named constants for values the stages compare: Kerberos message types, DNS types and rcodes,
verdicts, severities, auth kinds and capture views.

One place, so no module compares `msg_type` with a bare number. `KrbError` is built from the table of
Kerberos errors in `kerbtrace.codes` (one list of names, not two).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from kerbtrace.codes import KRB_ERRORS


class KrbMsg(IntEnum):
    """Kerberos message types (RFC 4120 5.10)."""

    AS_REQ = 10
    AS_REP = 11
    TGS_REQ = 12
    TGS_REP = 13
    AP_REQ = 14
    AP_REP = 15
    KRB_ERROR = 30


class NtlmMsg(IntEnum):
    """NTLMSSP message types (MS-NLMP 2.2.1)."""

    NEGOTIATE = 1
    CHALLENGE = 2
    AUTHENTICATE = 3


#: Kerberos error codes by name: ``KrbError.KDC_ERR_S_PRINCIPAL_UNKNOWN`` (from the table in kerbtrace.codes).
KrbError = IntEnum("KrbError", {info.name: code for code, info in KRB_ERRORS.items()})

KDC_REQUESTS = frozenset((KrbMsg.AS_REQ, KrbMsg.TGS_REQ))
KDC_REPLIES = frozenset((KrbMsg.AS_REP, KrbMsg.TGS_REP))
REQUESTS = frozenset((KrbMsg.AS_REQ, KrbMsg.TGS_REQ, KrbMsg.AP_REQ))


class DcEventId(IntEnum):
    """The DC Security events kerbtrace reads (names and meanings in `kerbtrace.codes.DC_EVENTS`)."""

    TGT = 4768  # a Kerberos TGT was requested (AS)
    SERVICE_TICKET = 4769  # a service ticket was requested (TGS)
    TICKET_RENEWED = 4770
    PREAUTH_FAILED = 4771
    LOGON_FAILED = 4625  # NTLM / interactive logon failure (Status, SubStatus)


class DnsType(IntEnum):
    A = 1
    CNAME = 5
    AAAA = 28
    SRV = 33


DNS_NAME_TYPES = frozenset((DnsType.A, DnsType.AAAA, DnsType.CNAME))


class DnsRcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5

#: CCM ApprovalStatus values that leave the client usable (names in `kerbtrace.codes.CCM_APPROVAL_STATUS`):
#: 1 approved, 2 not applicable (PKI), 3 Azure AD. 0 is pending.
APPROVED_STATUSES = frozenset((1, 2, 3))
PENDING_STATUS = 0


class Verdict(StrEnum):
    APPROVED = "approved"
    NOT_APPROVED = "not_approved"
    INCONCLUSIVE = "inconclusive"


class Cause(StrEnum):
    """Every cause a finding can name: the checks' codes (one module each in `kerbtrace.checks`), `unexplained`
    (a not-approved client no check explains) and `ok`. Context that names a cause (DC events, hedged
    candidates) names it through this, never as a written-out string."""

    OK = "ok"
    ACCOUNT_REVOKED = "account_revoked"
    APPROVAL_PENDING = "approval_pending"
    CLOCK_SKEW = "clock_skew"
    DNS_FAILURE = "dns_failure"
    DUPLICATE_GUID = "duplicate_guid"
    ETYPE_UNSUPPORTED = "etype_unsupported"
    INCOMPLETE_CAPTURE = "incomplete_capture"
    KDC_UNREACHABLE = "kdc_unreachable"
    MP_HTTP_ERROR = "mp_http_error"
    NO_KERBEROS_ATTEMPT = "no_kerberos_attempt"
    NO_TICKET_KDC_NOT_VISIBLE = "no_ticket_kdc_not_visible"
    NO_TRUST_PATH = "no_trust_path"
    NTLM_FALLBACK = "ntlm_fallback"
    PREAUTH_FAILED = "preauth_failed"
    REGISTRATION_ENCRYPTED = "registration_encrypted"
    SPN_DUPLICATE = "spn_duplicate"
    SPN_MISSING = "spn_missing"
    SPN_WRONG_ACCOUNT = "spn_wrong_account"
    TICKET_KEY_MISMATCH = "ticket_key_mismatch"
    TRUST_BROKEN = "trust_broken"
    UNEXPLAINED = "unexplained"


class DcSaw(StrEnum):
    """What a DC's log says of a client that is not one check's cause: a lockout (the checks' account_revoked
    stands for it) and the tickets the DC issued."""

    ACCOUNT_LOCKED = "account_locked"
    MP_TICKET_ISSUED = "mp_ticket_issued"
    TGT_ISSUED = "tgt_issued"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Auth(StrEnum):
    """What a client authenticated to the MP with."""

    KERBEROS = "kerberos"
    NTLM = "ntlm"
    NONE = "none"
    TLS = "tls"  # the registration went inside TLS: its authentication cannot be read


class Leg(StrEnum):
    """How a leg of the exchange appears in the capture."""

    CLEAR = "clear"
    TLS = "tls"
    SEEN = "seen"
    NOT_SEEN = "not_seen"


class View(StrEnum):
    """What part of a client's exchange the capture shows (see docs/json-schema.md)."""

    FULL = "full"  # HTTP to the MP in clear and the client's KDC traffic (or KDC traffic of the input)
    MP_SIDE = "mp_side"  # HTTP to the MP only: the input holds no KDC traffic at all
    KDC_SIDE = "kdc_side"  # Kerberos only: the registration is not in the capture
    TLS_KDC = "client_side_tls"  # TLS to the MP and the client's Kerberos traffic
    TLS_ONLY = "mp_side_tls"  # TLS to the MP, no KDC traffic
    DNS_ONLY = "dns_only"  # only the client's lookups of the MP


__all__ = ["DNS_NAME_TYPES", "KDC_REPLIES", "KDC_REQUESTS", "REQUESTS", "Auth", "DnsRcode", "DnsType", "KrbError",
           "KrbMsg", "Leg", "Severity", "Verdict", "View"]
