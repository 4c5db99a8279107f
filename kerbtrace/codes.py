"""Code tables: Kerberos errors, NTSTATUS, HRESULT/SSPI, Win32, etypes, PA-DATA, DNS RCODEs, CCM enums.

Constants only, kept apart from logic (like impacket's ``krb5/constants.py`` and Zeek's ``consts.zeek``)
so that every check and report names a code the same way. Each entry says, for a ConfigMgr admin looking
at a client -> DC -> MP exchange over HTTP, what happened and what to do. Texts that rest on a mapping
the references do not confirm say "probably" or "usually".

Lookups never raise: an unknown value comes back as a ``CodeInfo`` with a generated name and an empty fix.
Regenerate ``docs/codes.md`` with ``python -m kerbtrace.codes > docs/codes.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

__all__ = [
    "CCM_APPROVAL_STATUS",
    "CCM_REG_STATUS",
    "CodeInfo",
    "DC_EVENTS",
    "EVENT_CODE_FIELDS",
    "IIS_STATUS",
    "IisStatus",
    "KIND_TITLES",
    "all_codes",
    "ccm_hresult",
    "dc_event",
    "dns_rcode",
    "event_result",
    "iis_code",
    "iis_status",
    "etype_name",
    "hresult",
    "iis_win32_status",
    "krb_error",
    "msg_type_name",
    "ntstatus",
    "padata_name",
    "tls_alert_name",
    "tls_version_name",
    "win32",
]

# References quoted in the fix texts.
_APPROVAL_ARTICLE = (
    'ConfigMgr support blog "How It Works: Automatic Client Approval in Configuration Manager 2007"'
)
_IIS_KRB_ARTICLE = 'Microsoft article "Troubleshoot Kerberos failures in Internet Explorer" (IIS/HTTP SPNs)'
_KRB_LOGGING = "enable Kerberos event logging on the client (KB262177)"

_HEX_KINDS = frozenset({"ntstatus", "hresult", "ccm"})


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One code with its name, a plain-words meaning and the fix an admin can apply."""

    kind: str  # "krb" | "ntstatus" | "hresult" | "win32" | "etype" | "padata" | "dns-rcode" | "ccm" | "event" | "iis"
    value: int
    name: str
    meaning: str
    fix: str = ""
    normal: bool = False  # expected in healthy traffic
    approval: str = ""  # what the code means for ConfigMgr client approval

    def label(self) -> str:
        """``NAME (41)`` for small enumerations, ``NAME (0xC0000234)`` for 32-bit status codes."""
        if self.kind in _HEX_KINDS:
            return f"{self.name} (0x{self.value & 0xFFFFFFFF:08X})"
        if self.kind == "event":
            return f"event {self.value} ({self.name})"
        if self.kind == "iis":
            return f"HTTP {self.value // 1000}.{self.value % 1000} ({self.name})"
        return f"{self.name} ({self.value})"


# Row: (value, name, meaning, fix, normal)
_Row = tuple[int, str, str, str, bool]


def _table(kind: str, rows: list[_Row]) -> dict[int, CodeInfo]:
    return {v: CodeInfo(kind, v, n, m, f, ok) for v, n, m, f, ok in rows}


# ---------------------------------------------------------------------------------------------------------
# Kerberos KRB-ERROR error-code (RFC 4120 §7.5.9 spelling, e.g. KDC_ERROR_CLIENT_NOT_TRUSTED; RFC 4556,
# RFC 6113, RFC 8636, IAKerb draft)
_KRB_FIX_SPN_OTHER_ACCOUNT = (
    "Run setspn -Q HTTP/<mp fqdn> (and HTTP/<mp netbios name>). If the HTTP SPN sits on a user account "
    "(often one running a web service such as SQL Reporting Services on the MP), remove it with "
    "setspn -D HTTP/<mp fqdn> <account> so the HOST/<mp> SPN on the MP computer account is used; move "
    "that web "
    "service to its own port/SPN. If the MP computer account's password changed recently, check the secure "
    "channel (nltest /sc_verify:<domain>) and let replication converge. See the " + _APPROVAL_ARTICLE + "."
)

_KRB_ROWS: list[_Row] = [
    (0, "KDC_ERR_NONE", "No error.", "", True),
    (1, "KDC_ERR_NAME_EXP", "The client's entry in the directory has expired.", "Check the account's "
     "expiry date.",
     False),
    (2, "KDC_ERR_SERVICE_EXP", "The server's entry in the directory has expired.",
     "Check the service account's expiry date.", False),
    (3, "KDC_ERR_BAD_PVNO", "Requested Kerberos protocol version is not supported.",
     "Usually a non-Windows or broken Kerberos client; check the client software.", False),
    (4, "KDC_ERR_C_OLD_MAST_KVNO", "The client's key is encrypted in an old master key.", "", False),
    (5, "KDC_ERR_S_OLD_MAST_KVNO", "The server's key is encrypted in an old master key.", "", False),
    (6, "KDC_ERR_C_PRINCIPAL_UNKNOWN",
     "The DC does not know the client name (wrong name, account deleted, or not yet replicated to this DC). "
     "Also seen, harmlessly, while Windows servers hunt for a DC during S4U.",
     "Check that the client's computer account (<name>$) exists in the domain the request went to and has "
     "replicated to that DC; rejoin the client to the domain if the account was deleted.", False),
    (7, "KDC_ERR_S_PRINCIPAL_UNKNOWN",
     "The DC found no account holding the requested SPN. For HTTP/<mp> this means no account has "
     "HTTP/<mp> or "
     "HOST/<mp> (name typed as an alias/CNAME, NLB or wrong DNS suffix), the SPN is duplicated, or the "
     "MP sits "
     "in a forest the client's DC cannot route to (external trust). Negotiate then falls back to NTLM, and a "
     "client authenticated with NTLM is not auto-approved by Kerberos rules.",
     "Run setspn -Q HTTP/<mp fqdn> and setspn -Q HOST/<mp fqdn>; the MP computer account must hold "
     "HOST/<mp fqdn> "
     "(setspn -S HOST/<mp fqdn> <mp>$) and no other account may hold HTTP/<mp fqdn> (setspn -X lists "
     "duplicates). Make clients use the MP's real FQDN, not a CNAME. Across forests, Kerberos needs a forest "
     "trust with name-suffix routing (an external trust gives NTLM only). See the " + _APPROVAL_ARTICLE + ".",
     False),
    (8, "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
     "More than one account holds the requested name (duplicate SPN/UPN); Windows DCs usually answer 7 "
     "instead and log System event 11 (KDCEVENT_NAME_NOT_UNIQUE).",
     "Find the duplicates with setspn -X (or setspn -Q HTTP/<mp fqdn>) and remove the extra one with "
     "setspn -D.",
     False),
    (9, "KDC_ERR_NULL_KEY", "The client or server account has a null key (no password set).",
     "Reset the account's password.", False),
    (10, "KDC_ERR_CANNOT_POSTDATE", "The ticket cannot be postdated; usually a clock difference between "
     "client "
     "and DC.", "Synchronise time (w32tm /resync on the client; check the domain time hierarchy).", False),
    (11, "KDC_ERR_NEVER_VALID", "The requested start time is later than the end time; usually a clock "
     "difference between client and DC.", "Synchronise time (w32tm /resync on the client).", False),
    (12, "KDC_ERR_POLICY",
     "A logon restriction refused the request: workstation restriction (Log On To), logon hours, smart card "
     "required, or a selective-authentication trust that does not grant 'Allowed to authenticate' on the MP.",
     "Check the account's Log On To / logon hours / smart card settings; across a selective-authentication "
     "trust grant the client computers 'Allowed to authenticate' on the MP computer object.", False),
    (13, "KDC_ERR_BADOPTION",
     "The DC refused a requested ticket option (e.g. delegation to an SPN not in the allowed list, or an "
     "impending TGT expiry). Often benign while Windows probes delegation.", "", False),
    (14, "KDC_ERR_ETYPE_NOSUPP",
     "No encryption type is shared by the client, the DC and the target account (e.g. AES-only policy "
     "against "
     "an RC4-only account, or DES only).",
     "Compare the client's etypes with msDS-SupportedEncryptionTypes on the MP computer account (and the "
     "'Network security: Configure encryption types allowed for Kerberos' policy); reset the account "
     "password "
     "after enabling AES so AES keys exist.", False),
    (15, "KDC_ERR_SUMTYPE_NOSUPP", "The DC does not support the checksum type.", "", False),
    (16, "KDC_ERR_PADATA_TYPE_NOSUPP", "The DC does not support the pre-authentication type (often "
     "smart card / "
     "PKINIT without a DC certificate).", "Check the DC's Kerberos authentication certificate.", False),
    (17, "KDC_ERR_TRTYPE_NOSUPP", "The DC does not support the transited-realm encoding.", "", False),
    (18, "KDC_ERR_CLIENT_REVOKED",
     "The client's credentials have been revoked: the computer account is disabled, expired or locked out "
     "(logon hours also possible). The NTSTATUS in the error's e-data says which.",
     "Look at the NTSTATUS in the e-data; enable the computer account in AD (or rejoin the client) / "
     "wait for or "
     "clear the lockout.", False),
    (19, "KDC_ERR_SERVICE_REVOKED", "The service account's credentials have been revoked (disabled/locked).",
     "Enable the MP computer account.", False),
    (20, "KDC_ERR_TGT_REVOKED", "The TGT has been revoked (e.g. the account's password or state changed).",
     "Purge tickets (klist -li 0x3e7 purge) or restart the client.", False),
    (21, "KDC_ERR_CLIENT_NOTYET", "The client is not yet valid; try again later.", "", False),
    (22, "KDC_ERR_SERVICE_NOTYET", "The server is not yet valid; try again later.", "", False),
    (23, "KDC_ERR_KEY_EXPIRED",
     "The account's password has expired or must be changed.",
     "For a computer account: reset it (Test-ComputerSecureChannel -Repair or rejoin).", False),
    (24, "KDC_ERR_PREAUTH_FAILED",
     "Pre-authentication failed: wrong password/key. For a computer account the client's machine password no "
     "longer matches AD (broken secure channel); repeated failures lead to lockout (18).",
     "On the client run nltest /sc_verify:<domain> or Test-ComputerSecureChannel -Repair; rejoin if needed.",
     False),
    (25, "KDC_ERR_PREAUTH_REQUIRED",
     "Normal first answer to an AS-REQ without pre-authentication; the client retries with it at once.",
     "", True),
    (26, "KDC_ERR_SERVER_NOMATCH", "The requested server and the ticket do not match.", "", False),
    (27, "KDC_ERR_MUST_USE_USER2USER", "The server principal is valid for user-to-user only.", "", False),
    (28, "KDC_ERR_PATH_NOT_ACCEPTED", "The DC policy rejects the transited (cross-realm) path.",
     "Check the trust path between the client's and the MP's domains.", False),
    (29, "KDC_ERR_SVC_UNAVAILABLE",
     "The KDC service is unavailable (e.g. an RODC that cannot reach a writable DC); the client "
     "probably tries "
     "another DC.", "Check DC health and connectivity between RODC and writable DCs.", False),
    (31, "KRB_AP_ERR_BAD_INTEGRITY",
     "The DC could not decrypt a referral (inter-realm) ticket: the trust password differs on the two "
     "sides of "
     "the trust. Also: authenticator encrypted with the wrong session key.",
     "Reset the trust password on both sides: netdom trust <trusting> /domain:<trusted> /resetpwd "
     "/passwordT:<pw> (run on both domains) and let it replicate.", False),
    (32, "KRB_AP_ERR_TKT_EXPIRED",
     "The ticket has expired (or the server's clock is ahead). Windows usually gets a new ticket by itself; "
     "frequently logged for computer accounts.",
     "If it repeats, compare the MP's and DC's clocks (w32tm /stripchart /computer:<dc>).", False),
    (33, "KRB_AP_ERR_TKT_NYV",
     "The ticket is not yet valid: the server (MP) or a cross-realm DC clock is behind the issuing DC.",
     "Synchronise time on the MP and DCs (w32tm /resync); tolerance is 5 minutes.", False),
    (34, "KRB_AP_ERR_REPEAT", "The server saw the same authenticator twice (replay detected).",
     "Usually a retransmission/proxy replaying requests; check load balancers in front of the MP.", False),
    (35, "KRB_AP_ERR_NOT_US", "The ticket is for a different server or realm than the one it was sent to.",
     "Check DNS: the MP name must resolve to the MP, not to another host or a load balancer VIP.", False),
    (36, "KRB_AP_ERR_BADMATCH",
     "Ticket and authenticator name different clients, or the TGS-REQ went to the wrong KDC.", "", False),
    (37, "KRB_AP_ERR_SKEW",
     "Clock skew: the client's clock differs from the DC's or the MP's by more than the tolerance (5 minutes "
     "by default).",
     "Run w32tm /resync on the client (and check the MP/DC with w32tm /query /status); the maximum tolerance "
     "is 5 minutes (Kerberos policy 'Maximum tolerance for computer clock synchronization').", False),
    (38, "KRB_AP_ERR_BADADDR", "The ticket's address list does not include the sender's address.",
     "Check NAT between client and MP.", False),
    (39, "KRB_AP_ERR_BADVERSION", "Protocol version mismatch.", "", False),
    (40, "KRB_AP_ERR_MSG_TYPE", "Invalid message type / unexpected token (e.g. a truncated or mangled "
     "Authorization header).", "Check proxies or load balancers that rewrite HTTP headers.", False),
    (41, "KRB_AP_ERR_MODIFIED",
     "The MP could not decrypt the service ticket: the HTTP/<mp> SPN is registered on another account "
     "(often a "
     "user account running a web service), is duplicated, the name resolved to another host (CNAME/alias), "
     "IIS uses the app-pool account key instead of the machine key, or the MP's machine password changed. "
     "The client sees SEC_E_WRONG_PRINCIPAL and is not authenticated.",
     _KRB_FIX_SPN_OTHER_ACCOUNT, False),
    (42, "KRB_AP_ERR_BADORDER", "Message out of order.", "", False),
    (44, "KRB_AP_ERR_BADKEYVER", "The server does not have the key version the ticket was encrypted with "
     "(stale password or replication lag).", "Let AD replication converge; check the MP's secure channel.",
     False),
    (45, "KRB_AP_ERR_NOKEY", "The server has no key for the ticket's encryption type.",
     "Check msDS-SupportedEncryptionTypes on the MP account and reset its password after changing etypes.",
     False),
    (46, "KRB_AP_ERR_MUT_FAIL", "Mutual authentication failed.", "", False),
    (47, "KRB_AP_ERR_BADDIRECTION", "Incorrect message direction.", "", False),
    (48, "KRB_AP_ERR_METHOD", "Alternative authentication method required.", "", False),
    (49, "KRB_AP_ERR_BADSEQ", "Incorrect sequence number in message.", "", False),
    (50, "KRB_AP_ERR_INAPP_CKSUM", "Inappropriate type of checksum in message.", "", False),
    (51, "KRB_AP_PATH_NOT_ACCEPTED", "Policy rejects transited path.", "", False),
    (52, "KRB_ERR_RESPONSE_TOO_BIG",
     "Normal: the reply is too large for UDP, so the client retries the same request over TCP.", "", True),
    (60, "KRB_ERR_GENERIC",
     "Generic error: e.g. a token too large (too many group memberships), password changes not "
     "replicated, or "
     "an SPN that is too long.", "Read the e-text/e-data; check the account's group count (MaxTokenSize).",
     False),
    (61, "KRB_ERR_FIELD_TOOLONG", "A field is too long (on TCP: the reserved high bit of the length was "
     "set).",
     "", False),
    (62, "KDC_ERROR_CLIENT_NOT_TRUSTED", "PKINIT: the client certificate is not trusted.", "", False),
    (63, "KDC_ERROR_KDC_NOT_TRUSTED", "PKINIT: the KDC certificate is not trusted.", "", False),
    (64, "KDC_ERROR_INVALID_SIG", "PKINIT: invalid signature.", "", False),
    (65, "KDC_ERR_KEY_TOO_WEAK", "The key is too weak (PKINIT DH parameters, or RC4/DES "
     "disallowed).", "", False),
    (66, "KDC_ERR_CERTIFICATE_MISMATCH", "PKINIT: certificate does not match.", "", False),
    (67, "KRB_AP_ERR_NO_TGT", "No TGT available to validate user-to-user.", "", False),
    (68, "KDC_ERR_WRONG_REALM",
     "Wrong realm: the request or cross-realm ticket was presented to a DC of the wrong domain (DNS/DC "
     "locator "
     "picked the wrong KDC); for AS requests it can be a normal client referral.",
     "Check the client's DNS suffix and the _kerberos SRV records for each realm on the referral "
     "path.", False),
    (69, "KRB_AP_ERR_USER_TO_USER_REQUIRED", "User-to-user authentication required.", "", False),
    (70, "KDC_ERR_CANT_VERIFY_CERTIFICATE", "PKINIT: the certificate cannot be verified.", "", False),
    (71, "KDC_ERR_INVALID_CERTIFICATE", "PKINIT: invalid certificate.", "", False),
    (72, "KDC_ERR_REVOKED_CERTIFICATE", "PKINIT: the certificate is revoked.", "", False),
    (73, "KDC_ERR_REVOCATION_STATUS_UNKNOWN", "PKINIT: revocation status unknown.", "", False),
    (74, "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE", "PKINIT: revocation status unavailable.", "", False),
    (75, "KDC_ERR_CLIENT_NAME_MISMATCH", "PKINIT: client name does not match the certificate.", "", False),
    (76, "KDC_ERR_KDC_NAME_MISMATCH", "PKINIT: KDC name mismatch.", "", False),
    (77, "KDC_ERR_INCONSISTENT_KEY_PURPOSE", "PKINIT: inconsistent key purpose.", "", False),
    (78, "KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED", "PKINIT: certificate digest not accepted.", "", False),
    (79, "KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED", "PKINIT: checksum must be included.", "", False),
    (80, "KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED", "PKINIT: signed-data digest not accepted.", "", False),
    (81, "KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED", "PKINIT: public-key encryption not supported.", "",
     False),
    (85, "KRB_AP_ERR_IAKERB_KDC_NOT_FOUND", "IAKerb: the server found no KDC.", "", False),
    (86, "KRB_AP_ERR_IAKERB_KDC_NO_RESPONSE", "IAKerb: no KDC answered the server.", "", False),
    (90, "KDC_ERR_PREAUTH_EXPIRED", "FAST: the pre-authentication data expired.", "", False),
    (91, "KDC_ERR_MORE_PREAUTH_DATA_REQUIRED", "FAST: more pre-authentication data required; the client "
     "continues.", "", True),
    (92, "KDC_ERR_PREAUTH_BAD_AUTHENTICATION_SET", "FAST: bad authentication set.", "", False),
    (93, "KDC_ERR_UNKNOWN_CRITICAL_FAST_OPTIONS", "FAST: unknown critical FAST options.", "", False),
    (100, "KDC_ERR_NO_ACCEPTABLE_KDF", "PKINIT: no acceptable key-derivation function (RFC 8636).", "",
     False),
]
KRB_ERRORS: dict[int, CodeInfo] = _table("krb", _KRB_ROWS)


# ---------------------------------------------------------------------------------------------------------
# NTSTATUS (KERB-EXT-ERROR / PA-PW-SALT e-data, NTLM, event logs). Names per impacket nt_errors.
_NT_ROWS: list[_Row] = [
    (0x00000000, "STATUS_SUCCESS", "Success.", "", True),
    (0x00000103, "STATUS_PENDING", "Operation pending.", "", True),
    (0xC0000016, "STATUS_MORE_PROCESSING_REQUIRED",
     "Another authentication leg is needed (NTLM/Negotiate continue).", "", True),
    (0xC0000022, "STATUS_ACCESS_DENIED", "Access denied.", "", False),
    (0xC000005E, "STATUS_NO_LOGON_SERVERS", "No DC could be reached to process the logon.",
     "Check DNS SRV records (_ldap._tcp.dc._msdcs.<domain>) and that the client reaches a DC on 88/389/445.",
     False),
    (0xC0000064, "STATUS_NO_SUCH_USER", "The account does not exist.",
     "Check the computer account exists in the client's domain (rejoin if deleted).", False),
    (0xC000006A, "STATUS_WRONG_PASSWORD", "Wrong password (for a computer: machine password out of sync).",
     "On the client: Test-ComputerSecureChannel -Repair or rejoin.", False),
    (0xC000006C, "STATUS_PASSWORD_RESTRICTION", "A password-update rule was violated.", "", False),
    (0xC000006D, "STATUS_LOGON_FAILURE", "The logon failed (bad name or credentials).",
     "Check the account and its password / secure channel.", False),
    (0xC000006E, "STATUS_ACCOUNT_RESTRICTION",
     "Account restriction (e.g. Protected Users membership, blank password, policy).",
     "Check the account's restrictions and group memberships (Protected Users blocks NTLM and RC4).", False),
    (0xC000006F, "STATUS_INVALID_LOGON_HOURS", "The account may not log on at this time (logon hours); comes "
     "with KRB error 18 or 12.", "Adjust the account's logon hours.", False),
    (0xC0000070, "STATUS_INVALID_WORKSTATION", "The account may not log on from this workstation ('Log "
     "On To' "
     "restriction); comes with KRB error 12.", "Clear or extend the account's 'Log On To' list.", False),
    (0xC0000071, "STATUS_PASSWORD_EXPIRED", "The password has expired; comes with KRB error 23.",
     "Reset the password (computer: Test-ComputerSecureChannel -Repair).", False),
    (0xC0000072, "STATUS_ACCOUNT_DISABLED", "The account is disabled; comes with KRB error 18.",
     "Enable the computer account in AD (or rejoin the client).", False),
    (0xC00000DF, "STATUS_NO_SUCH_DOMAIN", "The domain does not exist or could not be contacted.",
     "Check DNS for the domain and the trust.", False),
    (0xC0000133, "STATUS_TIME_DIFFERENCE_AT_DC", "Clock difference with the DC is too large; comes with KRB "
     "error 37 or 11.", "w32tm /resync on the client; check the domain time hierarchy (5-minute tolerance).",
     False),
    (0xC000015B, "STATUS_LOGON_TYPE_NOT_GRANTED",
     "The account lacks the logon right (e.g. 'Access this computer from the network' on the MP).",
     "Check user rights assignment on the MP ('Access this computer from the network').", False),
    (0xC000018A, "STATUS_NO_TRUST_LSA_SECRET", "The machine has no trust secret for its domain.",
     "Rejoin the machine to the domain.", False),
    (0xC000018B, "STATUS_NO_TRUST_SAM_ACCOUNT",
     "The domain has no computer/trust account for this machine or trust (seen over external trusts, "
     "KB2008039).", "Rejoin the machine, or repair the trust.", False),
    (0xC000018C, "STATUS_TRUSTED_DOMAIN_FAILURE", "The trust between the domains failed.",
     "netdom trust ... /verify; reset the trust password (/resetpwd).", False),
    (0xC000018D, "STATUS_TRUSTED_RELATIONSHIP_FAILURE",
     "The trust between this computer and its domain failed (broken secure channel).",
     "Test-ComputerSecureChannel -Repair or rejoin.", False),
    (0xC0000192, "STATUS_NETLOGON_NOT_STARTED", "The Netlogon service is not running.",
     "Start Netlogon on the machine that logged it.", False),
    (0xC0000193, "STATUS_ACCOUNT_EXPIRED", "The account has expired; comes with KRB error 18.",
     "Clear the account's expiry date.", False),
    (0xC0000198, "STATUS_NOLOGON_INTERDOMAIN_TRUST_ACCOUNT", "An inter-domain trust account was used to "
     "log on.",
     "", False),
    (0xC0000199, "STATUS_NOLOGON_WORKSTATION_TRUST_ACCOUNT",
     "A computer account was used where a user logon is expected (normal for some NTLM probes).", "", False),
    (0xC000019B, "STATUS_DOMAIN_TRUST_INCONSISTENT", "Domain name/SID inconsistent with the trust "
     "information.",
     "Recreate or repair the trust.", False),
    (0xC0000224, "STATUS_PASSWORD_MUST_CHANGE", "The password must be changed before logon; comes with KRB "
     "error 23.", "Reset the account password.", False),
    (0xC0000234, "STATUS_ACCOUNT_LOCKED_OUT", "The account is locked out after too many bad passwords; comes "
     "with KRB error 18.", "Unlock the account and find the source of the bad passwords (DC event "
     "4740/4771).",
     False),
    (0xC00002FA, "STATUS_SMARTCARD_LOGON_REQUIRED", "Smart card logon is required; comes with KRB error 12.",
     "", False),
    (0xC00002FD, "STATUS_KDC_UNKNOWN_ETYPE", "The KDC does not support the requested encryption type.",
     "Check msDS-SupportedEncryptionTypes and the Kerberos etype policy.", False),
    (0xC000035B, "STATUS_BAD_BINDINGS", "Channel binding (Extended Protection) mismatch.",
     "Check TLS-terminating proxies and IIS Extended Protection on the MP.", False),
    (0xC0000388, "STATUS_DOWNGRADE_DETECTED",
     "Possible downgrade attack detected; often just no connectivity to a DC.", "Check DC connectivity.",
     False),
    (0xC0000413, "STATUS_AUTHENTICATION_FIREWALL_FAILED",
     "Selective authentication: the client is not 'Allowed to authenticate' to the MP across the trust.",
     "Grant 'Allowed to authenticate' on the MP computer object to the clients' domain/computers.", False),
]
NTSTATUS: dict[int, CodeInfo] = _table("ntstatus", _NT_ROWS)


# ---------------------------------------------------------------------------------------------------------
# Win32 error codes (IIS sc-win32-status, CcmMessaging, WinHTTP). Names per impacket system_errors.
_W32_ROWS: list[_Row] = [
    (0, "ERROR_SUCCESS", "Success.", "", True),
    (2, "ERROR_FILE_NOT_FOUND", "File not found (IIS: the requested path does not exist).", "", False),
    (5, "ERROR_ACCESS_DENIED",
     "Access denied. In an IIS 7+ log line '401 2 5' this is the normal anonymous first request before the "
     "Negotiate challenge; on other lines, or with FREB 401.2, it can mean a kernel-mode vs app-pool SPN "
     "mismatch.", "If it is not followed by an authenticated request, see KRB_AP_ERR_MODIFIED (41).", False),
    (64, "ERROR_NETNAME_DELETED", "The network connection was closed by the client (IIS).", "", False),
    (121, "ERROR_SEM_TIMEOUT", "Network timeout.", "", False),
    (126, "ERROR_MOD_NOT_FOUND", "A module could not be loaded. With IIS 500.19 on the MP: broken IIS "
     "configuration (e.g. a missing compression scheme DLL).", "Repair the MP's IIS configuration "
     "(applicationHost.config) or reinstall the MP role.", False),
    (995, "ERROR_OPERATION_ABORTED", "The I/O was aborted.", "", False),
    (1225, "ERROR_CONNECTION_REFUSED", "The remote computer refused the connection.",
     "Check the MP's IIS bindings/firewall on 80/443.", False),
    (1231, "ERROR_NETWORK_UNREACHABLE", "Network unreachable.", "Check routing to the MP/DC.", False),
    (1232, "ERROR_HOST_UNREACHABLE", "Host unreachable.", "Check routing to the MP/DC.", False),
    (1236, "ERROR_CONNECTION_ABORTED", "Connection aborted locally.", "", False),
    (1244, "ERROR_NOT_AUTHENTICATED", "The user was not authenticated.", "", False),
    (1311, "ERROR_NO_LOGON_SERVERS", "No DC is available to process the logon.",
     "Check DNS SRV records and connectivity to the DCs.", False),
    (1317, "ERROR_NO_SUCH_USER", "The account does not exist.", "", False),
    (1326, "ERROR_LOGON_FAILURE", "Logon failure: unknown name or bad password.",
     "Check the account's credentials / the client's secure channel (nltest /sc_verify:<domain>).", False),
    (1327, "ERROR_ACCOUNT_RESTRICTION", "An account restriction prevented the logon.", "", False),
    (1328, "ERROR_INVALID_LOGON_HOURS", "The account may not log on at this time.", "", False),
    (1329, "ERROR_INVALID_WORKSTATION", "The account may not log on from this computer.", "", False),
    (1330, "ERROR_PASSWORD_EXPIRED", "The password has expired.", "", False),
    (1331, "ERROR_ACCOUNT_DISABLED", "The account is disabled.", "Enable the account in AD.", False),
    (1332, "ERROR_NONE_MAPPED", "No mapping between account names and SIDs.", "", False),
    (1355, "ERROR_NO_SUCH_DOMAIN", "The domain does not exist or no DC could be contacted (DC locator "
     "failed).",
     "Check the client's DNS servers and the _ldap._tcp.dc._msdcs.<domain> SRV records.", False),
    (1396, "ERROR_WRONG_TARGET_NAME", "The target account name is incorrect (Win32 form of "
     "SEC_E_WRONG_PRINCIPAL, see KRB_AP_ERR_MODIFIED 41).", _KRB_FIX_SPN_OTHER_ACCOUNT, False),
    (1398, "ERROR_TIME_SKEW", "Client and server clocks differ too much (Win32 form of SEC_E_TIME_SKEW).",
     "w32tm /resync; tolerance is 5 minutes.", False),
    (1722, "RPC_S_SERVER_UNAVAILABLE", "The RPC server is unavailable (DC/MP unreachable over RPC, or "
     "blocked "
     "by a firewall).", "Check name resolution and firewall (135 + dynamic RPC ports).", False),
    (1727, "RPC_S_CALL_FAILED_DNE", "The remote procedure call failed and did not execute.", "", False),
    (1788, "ERROR_TRUSTED_DOMAIN_FAILURE", "The trust between the domains failed.",
     "Verify/reset the trust (netdom trust ... /verify, /resetpwd).", False),
    (1789, "ERROR_TRUSTED_RELATIONSHIP_FAILURE", "The trust between this computer and its domain failed.",
     "Test-ComputerSecureChannel -Repair or rejoin.", False),
    (1790, "ERROR_TRUST_FAILURE", "The network logon failed.", "", False),
    (1793, "ERROR_ACCOUNT_EXPIRED", "The account has expired.", "", False),
    (1907, "ERROR_PASSWORD_MUST_CHANGE", "The password must be changed.", "", False),
    (1909, "ERROR_ACCOUNT_LOCKED_OUT", "The account is locked out.", "Unlock it; find the bad-password "
     "source.",
     False),
    (1935, "ERROR_AUTHENTICATION_FIREWALL_FAILED",
     "Selective authentication: the account is not allowed to authenticate to the MP.",
     "Grant 'Allowed to authenticate' on the MP computer object.", False),
    (10054, "WSAECONNRESET", "Connection reset by the peer.", "", False),
    (10060, "WSAETIMEDOUT", "Connection attempt timed out.", "", False),
    (10061, "WSAECONNREFUSED", "Connection refused.", "", False),
    (12002, "ERROR_WINHTTP_TIMEOUT", "The HTTP request to the MP timed out.",
     "Check the network path and the MP's IIS / CCM application pools.", False),
    (12007, "ERROR_WINHTTP_NAME_NOT_RESOLVED", "The MP's name could not be resolved in DNS.",
     "Fix the MP's A record / the client's DNS servers and suffix search list.", False),
    (12029, "ERROR_WINHTTP_CANNOT_CONNECT", "The TCP connection to the MP failed.",
     "Check that IIS on the MP listens on the port and that firewalls allow it.", False),
    (12030, "ERROR_WINHTTP_CONNECTION_ERROR", "The connection to the MP was aborted or reset (name of this "
     "code is probably WinHTTP's; WinINet calls it 'connection aborted').",
     "Check proxies, load balancers and TLS inspection between client and MP.", False),
    (12175, "ERROR_WINHTTP_SECURE_FAILURE", "TLS failure talking to the MP (probably a certificate problem "
     "on an HTTPS MP).", "Check the MP's IIS certificate chain, CRL reachability and the client's trust "
     "store.",
     False),
]
WIN32: dict[int, CodeInfo] = _table("win32", _W32_ROWS)


# ---------------------------------------------------------------------------------------------------------
# HRESULT / SSPI status (SEC_E_*, SEC_I_*), as signed or unsigned 32-bit. Names per impacket hresult_errors.
_HR_ROWS: list[_Row] = [
    (0x00000000, "S_OK", "Success.", "", True),
    (0x00090312, "SEC_I_CONTINUE_NEEDED", "Normal: another authentication leg is needed (NTLM challenge or "
     "a Kerberos retry).", "", True),
    (0x00090313, "SEC_I_COMPLETE_NEEDED", "Normal: the token must be completed.", "", True),
    (0x00090314, "SEC_I_COMPLETE_AND_CONTINUE", "Normal: complete the token and continue.", "", True),
    (0x00090317, "SEC_I_CONTEXT_EXPIRED", "The security context expired.", "", False),
    (0x00090320, "SEC_I_INCOMPLETE_CREDENTIALS", "Credentials incomplete (TLS client certificate "
     "requested).", "", False),
    (0x80004005, "E_FAIL", "Unspecified error.", "", False),
    (0x80070005, "E_ACCESSDENIED",
     "Access denied (Win32 5). IIS FREB 401.2 with ErrorCode 2147942405 can mean kernel-mode authentication "
     "and an app-pool identity SPN mismatch.", "See KRB_AP_ERR_MODIFIED (41); check useAppPoolCredentials.",
     False),
    (0x80090302, "SEC_E_UNSUPPORTED_FUNCTION",
     "Unsupported request; for NTLM, the 128-bit session security requirement was not met.",
     "Align the NTLM 'Minimum session security' policies of client and MP.", False),
    (0x80090303, "SEC_E_TARGET_UNKNOWN",
     "Target unknown or unreachable; probably the client got KDC_ERR_S_PRINCIPAL_UNKNOWN (7) for the SPN.",
     "See KDC_ERR_S_PRINCIPAL_UNKNOWN (7): setspn -Q HTTP/<mp fqdn>.", False),
    (0x80090304, "SEC_E_INTERNAL_ERROR", "An error that did not map to an SSPI code / the LSA could not be "
     "contacted.", "", False),
    (0x80090305, "SEC_E_SECPKG_NOT_FOUND",
     "The requested security package does not exist (seen as IIS '401 1 2148074245' when Kerberos fails).",
     "Check the MP's Windows Authentication providers (Negotiate, NTLM) in IIS. " + _IIS_KRB_ARTICLE + ".",
     False),
    (0x80090308, "SEC_E_INVALID_TOKEN",
     "Malformed or out-of-context token; for NTLM usually the legs of one handshake went over different "
     "connections (load balancer without affinity).", "Enable client affinity / keep-alive on load balancers "
     "in front of the MP.", False),
    (0x8009030C, "SEC_E_LOGON_DENIED",
     "The logon attempt failed (bad credentials, decryption failure or account state). Probably what "
     "IIS logs "
     "when the MP cannot decrypt the Kerberos ticket.", "See KRB_AP_ERR_MODIFIED (41) and the client's "
     "secure channel.", False),
    (0x8009030D, "SEC_E_UNKNOWN_CREDENTIALS", "The credentials supplied were not recognised.", "", False),
    (0x8009030E, "SEC_E_NO_CREDENTIALS",
     "Usually normal: the anonymous first request or the NTLM challenge leg (IIS '401 2/1 2148074254'). "
     "On the "
     "client side it can mean 'no credentials in the security package', e.g. a Protected Users member.",
     "Only a problem if no successful authenticated request follows.", True),
    (0x8009030F, "SEC_E_MESSAGE_ALTERED", "A signature/MIC check failed.", "", False),
    (0x80090310, "SEC_E_OUT_OF_SEQUENCE", "Message out of sequence.", "", False),
    (0x80090311, "SEC_E_NO_AUTHENTICATING_AUTHORITY",
     "No DC/KDC could be contacted (DNS SRV, firewall on port 88, or no trust path). No NTLM fallback "
     "follows.",
     "Check the client's DNS (_kerberos._tcp.<domain>, _ldap._tcp.dc._msdcs.<domain>) and port 88 to "
     "the DCs.",
     False),
    (0x80090317, "SEC_E_CONTEXT_EXPIRED", "The security context expired or was closed (probably an expired "
     "ticket).", "", False),
    (0x80090318, "SEC_E_INCOMPLETE_MESSAGE", "Truncated token.", "", False),
    (0x80090322, "SEC_E_WRONG_PRINCIPAL",
     "The target principal name is incorrect: the MP could not decrypt the service ticket "
     "(KRB_AP_ERR_MODIFIED 41, KB2090913) because the HTTP/<mp> SPN is on another account or duplicated.",
     _KRB_FIX_SPN_OTHER_ACCOUNT, False),
    (0x80090324, "SEC_E_TIME_SKEW", "Client and server clocks are skewed (KRB_AP_ERR_SKEW 37).",
     "w32tm /resync on the client; tolerance is 5 minutes.", False),
    (0x80090326, "SEC_E_ILLEGAL_MESSAGE", "TLS: unexpected or badly formatted message.", "", False),
    (0x80090328, "SEC_E_CERT_EXPIRED", "A certificate has expired (HTTPS MP or PKINIT).",
     "Renew the MP's web server / client authentication certificate.", False),
    (0x80090330, "SEC_E_DECRYPT_FAILURE", "Data could not be decrypted.", "", False),
    (0x80090333, "SEC_E_UNFINISHED_CONTEXT_DELETED", "The context was deleted mid-handshake (logon failure).",
     "", False),
    (0x80090338, "SEC_E_MAX_REFERRALS_EXCEEDED", "Too many Kerberos referrals (loop, or more than the "
     "maximum "
     "of 6 hops).", "Check trusts and name-suffix routing between the client's and MP's forests.", False),
    (0x80090341, "SEC_E_KDC_UNABLE_TO_REFER", "The KDC could not refer the request to the MP's realm "
     "(cross-forest routing).", "Enable name-suffix routing for the MP's DNS suffix on the forest trust.",
     False),
    (0x80090342, "SEC_E_KDC_UNKNOWN_ETYPE", "The KDC does not support the requested etype (probably "
     "KDC_ERR_ETYPE_NOSUPP 14).", "See KDC_ERR_ETYPE_NOSUPP (14): msDS-SupportedEncryptionTypes.", False),
    (0x80090346, "SEC_E_BAD_BINDINGS", "Channel binding (Extended Protection) mismatch.",
     "Check TLS-terminating proxies and IIS Extended Protection on the MP.", False),
    (0x80090348, "SEC_E_NO_KERB_KEY", "No Kerberos key (the acceptor lacks the key; probably "
     "KRB_AP_ERR_NOKEY 45).", "", False),
    (0x80090350, "SEC_E_DOWNGRADE_DETECTED", "Possible downgrade attack; often just no connectivity to a DC.",
     "Check DC connectivity from the client.", False),
    (0x80090357, "SEC_E_CROSSREALM_DELEGATION_FAILURE", "Constrained delegation to a target outside the "
     "realm.",
     "", False),
    (0x80190191, "BG_E_HTTP_ERROR_401", "HTTP 401 surfaced as an HRESULT: the MP refused authentication.",
     "Read the IIS log line and the Negotiate tokens of the 401.", False),
]
HRESULTS: dict[int, CodeInfo] = _table("hresult", _HR_ROWS)

# ConfigMgr client and MP HRESULTs ("0x87D0xxxx"). Microsoft publishes no constants for them: the names are
# descriptive (except CCM_E_BAD_HTTP_STATUS_CODE, which CcmMessaging.log prints), the quoted texts are the
# ones CMTrace's error lookup gives (as listed in Scott McAllister's "ConfigMgr and Intune error codes").
# Rows: (value, name, meaning, approval impact, fix, normal)
_ARow = tuple[int, str, str, str, str, bool]


def _atable(kind: str, rows: list[_ARow]) -> dict[int, CodeInfo]:
    return {v: CodeInfo(kind, v, n, m, f, ok, a) for v, n, m, a, f, ok in rows}


_CCM_NO_REQUEST = ("The registration request did not reach the MP or got no usable answer: the client is not "
                   "registered at all (not merely unapproved) until a retry succeeds.")
_CCM_SIGNING = ("Concerns message signing and certificates, not Kerberos: a client whose registration or "
                "later messages fail this way is not (or no longer) treated as a trusted client by the MP.")
_CCM_NOT_AUTH = "Not an authentication or registration error: approval is decided elsewhere."
_CCM_ROWS: list[_ARow] = [
    (0x87D00213, "CCM_TIMEOUT", "CMTrace: 'Timeout occurred'. A ConfigMgr operation (often a message to the MP) "
     "timed out.", _CCM_NO_REQUEST, "Check the network path to the MP and the MP's CCM application pools.",
     False),
    (0x87D00215, "CCM_ITEM_NOT_FOUND", "CMTrace: 'Item not found' (deployment, policy or content); not an "
     "authentication error.", _CCM_NOT_AUTH, "", False),
    (0x87D00221, "CCM_INVALID_USER", "CMTrace: 'Invalid user'.", "Probably an account the client or MP cannot "
     "use; read the log line around it.", "", False),
    (0x87D00224, "CCM_INVALID_MESSAGE", "CMTrace: 'Invalid message'. The MP or client could not read a "
     "ConfigMgr message (truncated or altered body, often a proxy).", _CCM_NO_REQUEST,
     "Check proxies and load balancers between client and MP.", False),
    (0x87D00227, "CCM_FUNCTIONALITY_DISABLED", "CMTrace: 'Functionality disabled'.", _CCM_NOT_AUTH, "", False),
    (0x87D00228, "CCM_INVALID_ENDPOINT", "CMTrace: 'Invalid endpoint'. The message named an MP endpoint that "
     "does not exist (MP role broken or half installed).", _CCM_NO_REQUEST,
     "Check mpcontrol.log and MP_*.log; reinstall the MP role if the endpoints are missing.", False),
    (0x87D00229, "CCM_GET_CREDENTIALS_FAILED", "CMTrace: 'Failed to get credentials'.",
     "Probably the client could not obtain credentials for an authenticated request: no Kerberos, not "
     "auto-approved.", "Check the client's secure channel (nltest /sc_verify:<domain>).", False),
    (0x87D00230, "CCM_LOGON_AS_CREDENTIALS_FAILED", "CMTrace: 'Error logging on as given credentials' "
     "(network access or client push account).", "Concerns a configured ConfigMgr account, not the client's "
     "computer account; not a registration error by itself.", "Check the account's password and rights.",
     False),
    (0x87D00231, "CCM_TRANSIENT_ERROR",
     "CMTrace: 'Transient error'. CcmMessaging could not deliver its message to the MP ('Post to "
     "http://<mp>/ccm_system_windowsauth/request failed with 0x87d00231'); usually the MP answered with an HTTP "
     "error (e.g. 500.19, broken IIS configuration) or a token could not be obtained (Entra ID joined clients).",
     _CCM_NO_REQUEST, "Look at the MP's IIS log for that request (sc-status, sc-substatus, sc-win32-status) and "
                      "at MP_*.log; for Entra ID clients at CCM_STS.log on the MP.", False),
    (0x87D00232, "CCM_MESSAGE_NOT_SIGNED", "CMTrace: 'Message not signed'.", _CCM_SIGNING,
     "Check the client's self-signed or PKI certificate (ClientAuth.log) and the MP's MP_RegistrationManager.log.",
     False),
    (0x87D00233, "CCM_MESSAGE_NOT_TRUSTED", "CMTrace: 'Message not trusted'.", _CCM_SIGNING,
     "Check whether the client is approved and its certificate is the one the site holds (client record not "
     "blocked, no duplicate certificate).", False),
    (0x87D00238, "CCM_PUBLIC_KEY_NOT_FOUND", "CMTrace: 'Public key not found'. The site has no public key for "
     "the client (registration incomplete or record deleted).", "The MP does not know the client yet: it "
     "must register again; approval follows from that registration.",
     "Restart the SMS Agent Host service (ccmexec) so the client registers again.", False),
    (0x87D00239, "CCM_CLIENT_ID_NOT_FOUND", "CMTrace: 'Client id not found'. The site has no record of this "
     "client GUID (record deleted, or the client never registered).", "The client is unknown to the site until it "
     "registers again.", "Restart ccmexec so the client registers; if the record was deleted on purpose, "
     "check for duplicate GUIDs (cloned images).", False),
    (0x87D00243, "CCM_PUBLIC_KEY_MISMATCH", "CMTrace: 'Public key mismatch'. The client's certificate differs "
     "from the one the site recorded (reimaged machine, duplicate GUID, or regenerated certificate).",
     "The MP treats the client as a possible impostor: it stays unapproved or is blocked until the record "
     "is fixed.", "Delete the stale client record (or reset the client's certificate and GUID) and let the "
     "client register again.", False),
    (0x87D00248, "CCM_NETWORK_ERROR", "CMTrace: 'There was an error in network communication'.",
     _CCM_NO_REQUEST, "Check connectivity, proxies and TLS between client and MP.", False),
    (0x87D0025E, "CCM_MESSAGE_NOT_TRUSTED_TO_FORWARD", "CMTrace: 'Encountered a message which was not "
     "sufficiently trusted to forward to an endpoint for processing'. The MP refused a message from a client "
     "it does not trust (probably an unapproved or unsigned client).", "Usually a consequence of the client "
     "not being approved (or not signing its messages), not its cause.",
     "Approve the client or fix its registration first; see MP_RegistrationManager.log.", False),
    (0x87D00269, "CCM_MP_NOT_FOUND", "CMTrace: 'Required management point not found'. The client found no MP "
     "(site assignment, boundaries, DNS publishing or AD publishing).", "No MP, no registration request: the "
     "client is not registered.", "Check ClientLocation.log and LocationServices.log, boundaries and "
     "boundary groups, and the MP's DNS/AD publishing.", False),
    (0x87D0027E, "CCM_E_BAD_HTTP_STATUS_CODE",
     "CMTrace: 'Bad HTTP status code'. The MP answered with a non-200 HTTP status (CcmMessaging.log prints "
     "Text=CCM_E_BAD_HTTP_STATUS_CODE and CCM_CcmHttp_Status with the StatusCode).",
     "If the request was the registration (ccm_system_windowsauth), the client is not registered until it "
     "succeeds.", "Look at the MP's IIS log line for that request: sc-status, sc-substatus, sc-win32-status.",
     False),
    (0x87D00280, "CCM_EMPTY_CERT_STORE", "CMTrace: 'Empty certificate store'. No certificate in the store the "
     "client looks in (PKI client certificate missing, HTTPS MP).", _CCM_SIGNING,
     "Enrol the client authentication certificate, or check the certificate selection criteria.", False),
    (0x87D00281, "CCM_NO_MATCHING_CERT", "CMTrace: 'No certificate matching criteria specified'.", _CCM_SIGNING,
     "Check the client certificate selection criteria and the certificate's enhanced key usage.", False),
    (0x87D00283, "CCM_MISSING_PRIVATE_KEY", "CMTrace: 'Missing private key'.", _CCM_SIGNING,
     "Re-enrol the client certificate (or delete the SMS self-signed certificates and restart ccmexec).",
     False),
    (0x87D00286, "CCM_INVALID_SMS_AUTHORITY", "CMTrace: 'Invalid SMS authority' (the client's site code does "
     "not match the MP's site).", "The client talks to an MP of another site: it is not registered there.",
     "Reassign the client to the right site code.", False),
    (0x87D00287, "CCM_SIGNING_CERT_MISSING", "CMTrace: 'The signing certificate is missing'.", _CCM_SIGNING,
     "Delete the SMS signing certificate on the client and restart ccmexec, or reinstall the client.", False),
    (0x87D00292, "CCM_INBAND_SIGNATURE_FAILED", "CMTrace: 'Client unable to compute message signature for "
     "InBand Auth'.", _CCM_SIGNING, "Check the client's certificates and its private keys' permissions.", False),
    (0x87D00293, "CCM_SITE_SIGNING_CERT_REFRESH_FAILED", "CMTrace: 'Client unable to Refresh Site server "
     "signing certificate'.", _CCM_SIGNING, "Check LocationServices.log and the client's trusted root key.",
     False),
    (0x87D00295, "CCM_REGISTRATION_CERT_INVALID", "CMTrace: 'Registration certificate is either missing or "
     "invalid'. The MP could not validate the certificate sent with the registration request (expired, "
     "untrusted, or missing).", "Registration fails (MP_RegistrationManager.log 'Registration failed'); the "
     "client is neither registered nor approved.", "Check the client certificate's validity and chain; in "
     "MP_RegistrationManager.log read the certificate validation lines.", False),
    (0x87D00298, "CCM_CLIENT_RECORD_NOT_VALIDATED", "CMTrace: 'The client's database record could not be "
     "validated'.", "The MP does not trust the client's record: it is treated as unapproved until the record "
     "is valid.", "Check for a blocked or duplicate record in the console; delete it and let the client "
     "register again.", False),
]
CCM_HRESULTS: dict[int, CodeInfo] = _atable("ccm", _CCM_ROWS)


# ---------------------------------------------------------------------------------------------------------
# DNS RCODEs (RFC 1035 §4.1.1, RFC 2136)
_DNS_ROWS: list[_Row] = [
    (0, "NOERROR", "The name was answered (may still be an empty answer).", "", True),
    (1, "FORMERR", "The DNS server could not parse the query.", "", False),
    (2, "SERVFAIL", "The DNS server failed (forwarder/conditional forwarder or zone load problem, often "
     "cross-forest DNS).", "Check the client's DNS server, its forwarders and conditional forwarders for the "
     "other forest.", False),
    (3, "NXDOMAIN", "The name does not exist (missing record/zone or wrong DNS suffix).",
     "Create the missing record (MP A record, _kerberos/_ldap SRV records) or fix the client's DNS suffix.",
     False),
    (4, "NOTIMP", "The query type is not implemented.", "", False),
    (5, "REFUSED", "The DNS server refused by policy.", "Allow the client's subnet on that DNS "
     "server.", False),
    (6, "YXDOMAIN", "Name exists when it should not (dynamic update).", "", False),
    (7, "YXRRSET", "RR set exists when it should not (dynamic update).", "", False),
    (8, "NXRRSET", "RR set that should exist does not (dynamic update).", "", False),
    (9, "NOTAUTH", "Server not authoritative for the zone.", "", False),
    (10, "NOTZONE", "Name not contained in zone.", "", False),
]
DNS_RCODES: dict[int, CodeInfo] = _table("dns-rcode", _DNS_ROWS)


# ---------------------------------------------------------------------------------------------------------
# Small enumerations: etypes, PA-DATA, message types, CCM registration enums.
ETYPES: dict[int, str] = {
    1: "des-cbc-crc",
    2: "des-cbc-md4",
    3: "des-cbc-md5",
    5: "des3-cbc-md5",
    7: "des3-cbc-sha1",
    16: "des3-cbc-sha1-kd",
    17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128",
    20: "aes256-cts-hmac-sha384-192",
    23: "rc4-hmac",
    24: "rc4-hmac-exp",
    25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
    -128: "rc4-md4",
    -133: "rc4-plain-exp",
    -135: "rc4-hmac-old-exp",
}

# ---------------------------------------------------------------------------------------------------------
# Directory attributes (MS-ADTS 2.2.16 userAccountControl, 2.2.7 msDS-SupportedEncryptionTypes,
# 6.1.6.7.9 trustAttributes / trustType / trustDirection; same values in Samba's lsa.idl and samr.idl).

USER_ACCOUNT_CONTROL: dict[int, str] = {
    0x00000001: "SCRIPT",
    0x00000002: "ACCOUNTDISABLE",
    0x00000008: "HOMEDIR_REQUIRED",
    0x00000010: "LOCKOUT",
    0x00000020: "PASSWD_NOTREQD",
    0x00000040: "PASSWD_CANT_CHANGE",
    0x00000080: "ENCRYPTED_TEXT_PWD_ALLOWED",
    0x00000100: "TEMP_DUPLICATE_ACCOUNT",
    0x00000200: "NORMAL_ACCOUNT",
    0x00000800: "INTERDOMAIN_TRUST_ACCOUNT",
    0x00001000: "WORKSTATION_TRUST_ACCOUNT",
    0x00002000: "SERVER_TRUST_ACCOUNT",
    0x00010000: "DONT_EXPIRE_PASSWORD",
    0x00020000: "MNS_LOGON_ACCOUNT",
    0x00040000: "SMARTCARD_REQUIRED",
    0x00080000: "TRUSTED_FOR_DELEGATION",
    0x00100000: "NOT_DELEGATED",
    0x00200000: "USE_DES_KEY_ONLY",
    0x00400000: "DONT_REQ_PREAUTH",
    0x00800000: "PASSWORD_EXPIRED",
    0x01000000: "TRUSTED_TO_AUTH_FOR_DELEGATION",
    0x04000000: "PARTIAL_SECRETS_ACCOUNT",
}

# msDS-SupportedEncryptionTypes bit -> Kerberos etype number (named through ETYPES); the higher bits are
# features, not etypes.
SUPPORTED_ETYPE_BITS: dict[int, int] = {0x01: 1, 0x02: 3, 0x04: 23, 0x08: 17, 0x10: 18}
SUPPORTED_ETYPE_FEATURES: dict[int, str] = {
    0x20: "FAST-supported",
    0x40: "compound-identity-supported",
    0x80: "claims-supported",
    0x100: "resource-SID-compression-disabled",
}

TRUST_TYPES: dict[int, str] = {1: "DOWNLEVEL", 2: "UPLEVEL", 3: "MIT", 4: "DCE", 5: "AAD"}
TRUST_DIRECTIONS: dict[int, str] = {0: "DISABLED", 1: "INBOUND", 2: "OUTBOUND", 3: "BIDIRECTIONAL"}
TRUST_ATTRIBUTES: dict[int, str] = {
    0x001: "NON_TRANSITIVE",
    0x002: "UPLEVEL_ONLY",
    0x004: "QUARANTINED_DOMAIN",
    0x008: "FOREST_TRANSITIVE",
    0x010: "CROSS_ORGANIZATION",
    0x020: "WITHIN_FOREST",
    0x040: "TREAT_AS_EXTERNAL",
    0x080: "USES_RC4_ENCRYPTION",
    0x200: "CROSS_ORGANIZATION_NO_TGT_DELEGATION",
    0x400: "PIM_TRUST",
    0x800: "CROSS_ORGANIZATION_ENABLE_TGT_DELEGATION",
}
# `nltest /domain_trusts /v` prints trustAttributes as words in "( Attr: ... )". withinforest, foresttrans,
# quarantined and non-trans are seen in public outputs; the others are the likely spelling, unconfirmed.
NLTEST_TRUST_ATTRIBUTE_WORDS: dict[str, int] = {
    "non-trans": 0x001,
    "uplevel": 0x002,
    "quarantined": 0x004,
    "foresttrans": 0x008,
    "crossorg": 0x010,
    "withinforest": 0x020,
    "external": 0x040,
    "rc4": 0x080,
    "pimtrust": 0x400,
}

PADATA_TYPES: dict[int, str] = {
    1: "PA-TGS-REQ",
    2: "PA-ENC-TIMESTAMP",
    3: "PA-PW-SALT",
    11: "PA-ETYPE-INFO",
    14: "PA-PK-AS-REQ-OLD",
    15: "PA-PK-AS-REP-OLD",
    16: "PA-PK-AS-REQ",
    17: "PA-PK-AS-REP",
    19: "PA-ETYPE-INFO2",
    20: "PA-SVR-REFERRAL-INFO",
    128: "PA-PAC-REQUEST",
    129: "PA-FOR-USER",
    130: "PA-FOR-X509-USER",
    131: "PA-FOR-CHECK-DUPS",
    132: "PA-AS-CHECKSUM",
    133: "PA-FX-COOKIE",
    134: "PA-AUTHENTICATION-SET",
    135: "PA-AUTH-SET-SELECTED",
    136: "PA-FX-FAST",
    137: "PA-FX-ERROR",
    138: "PA-ENCRYPTED-CHALLENGE",
    141: "PA-OTP-CHALLENGE",
    142: "PA-OTP-REQUEST",
    147: "PA-PKINIT-KX",
    149: "PA-REQ-ENC-PA-REP",
    150: "PA-AS-FRESHNESS",
    161: "KERB-KEY-LIST-REQ",
    162: "KERB-KEY-LIST-REP",
    165: "PA-SUPPORTED-ENCTYPES",
    166: "PA-EXTENDED-ERROR",
    167: "PA-PAC-OPTIONS",
    170: "KERB-SUPERSEDED-BY-USER",
    171: "KERB-DMSA-KEY-PACKAGE",
}

MSG_TYPES: dict[int, str] = {
    10: "AS-REQ",
    11: "AS-REP",
    12: "TGS-REQ",
    13: "TGS-REP",
    14: "AP-REQ",
    15: "AP-REP",
    16: "TGT-REQ",
    17: "TGT-REP",
    20: "KRB-SAFE",
    21: "KRB-PRIV",
    22: "KRB-CRED",
    30: "KRB-ERROR",
}

# ClientRegistrationResponse Status (SDK ClientRegistrationStatus).
CCM_REG_STATUS: dict[int, str] = {
    0: "Registered",
    1: "Pending",
    2: "Reset",
    3: "Error",
    4: "CertificateReset",
}

# ClientRegistrationResponse ApprovalStatus (SDK ClientRegistrationApprovalStatus; 3 seen for Azure AD).
CCM_APPROVAL_STATUS: dict[int, str] = {
    -1: "Unknown",
    0: "Pending (not approved)",
    1: "Approved",
    2: "NotApplicable",
    3: "AAD",
}

# TLS protocol versions (RFC 8446 §4.2.1; 0x7Fxx are TLS 1.3 drafts).
TLS_VERSIONS: dict[int, str] = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}

# TLS AlertDescription (RFC 8446 §6, RFC 5246 §7.2; IANA TLS Alerts registry), Wireshark spelling.
TLS_ALERTS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}



# ---------------------------------------------------------------------------------------------------------
# Approval impact of the tables above, and the tables of DC/client events and IIS status codes.
# Every entry says what the code means for a ConfigMgr client's approval under "automatically approve
# computers in trusted domains": only a client that authenticated to the MP with Kerberos is approved.

_A_NORMAL = "Normal step of a healthy exchange; on its own it does not affect approval."
_A_NO_TGT = ("If it concerns the client's computer account (<name>$), the client gets no TGT, so no ticket for "
             "HTTP/<mp>: it cannot authenticate to the MP with Kerberos and is not auto-approved. For other "
             "accounts (users, a password spray) it does not concern registration.")
_A_NO_TICKET = ("The client gets no service ticket for HTTP/<mp>: Negotiate falls back to NTLM (or fails), and a "
                "client authenticated with NTLM is registered but not auto-approved (stays pending).")
_A_MP_REJECTS = ("The MP cannot accept the client's Kerberos ticket: the client is not authenticated with "
                 "Kerberos and is not auto-approved (an NTLM retry, if any, is not auto-approved either).")
_A_TIME = ("Clock difference: Kerberos fails for the client (at its DC or at the MP) and it is not "
           "auto-approved until the clocks agree.")
_A_TRUST = ("The cross-domain part of the ticket request failed: a client from another domain gets no ticket "
            "for the MP and is not auto-approved.")
_A_ACCOUNT = ("If it concerns the client's computer account, the DC refuses it tickets: the client cannot "
              "authenticate with Kerberos and is not auto-approved.")
_A_NO_DC = ("No DC reachable: no Kerberos and no NTLM fallback either; the registration fails (or is "
            "unauthenticated) and the client is not auto-approved.")
_A_NO_MP = ("The client never reaches the MP: no registration request arrives, so the client is not registered "
            "at all (not merely unapproved).")
_A_MP_BROKEN = "The MP fails the request: the client is not registered until the MP is repaired."

_APPROVAL_DEFAULT_FAILURE = {
    "krb": ("If this answered one of the client computer's own Kerberos requests (its TGT, its ticket for "
            "HTTP/<mp>, or the MP's check of that ticket), the client does not authenticate to the MP with "
            "Kerberos and is not auto-approved; for other accounts or services it does not concern registration."),
    "ntstatus": ("Matters only when it concerns the client's computer account, the MP or the trust between "
                 "them; then the client cannot authenticate with Kerberos and is not auto-approved."),
    "hresult": ("Matters when logged for the client's registration request (CcmMessaging.log, "
                "ClientIDManagerStartup.log, or IIS sc-win32-status on /ccm_system_windowsauth/request): then "
                "the registration did not authenticate with Kerberos and the client is not auto-approved."),
    "win32": ("Matters when logged for the client's registration request or its computer account: then the "
              "registration did not authenticate with Kerberos and the client is not auto-approved."),
    "dns-rcode": ("Matters when the name is the MP's or a DC locator record (_kerberos, _ldap SRV) the client "
                  "needs: then it reaches neither the MP nor a KDC, and is not registered or not approved."),
}

_APPROVAL_SPECIFIC: dict[str, dict[int, str]] = {
    "krb": {
        **dict.fromkeys((6, 9, 18, 23, 24), _A_NO_TGT),
        **dict.fromkeys((7, 8, 12, 14, 26, 60, 65), _A_NO_TICKET),
        **dict.fromkeys((35, 36, 40, 41, 44, 45), _A_MP_REJECTS),
        **dict.fromkeys((10, 11, 32, 33, 37), _A_TIME),
        **dict.fromkeys((28, 31, 51, 68), _A_TRUST),
        29: _A_NO_DC,
    },
    "ntstatus": {
        **dict.fromkeys((0xC0000064, 0xC000006A, 0xC000006D, 0xC000006E, 0xC000006F, 0xC0000070, 0xC0000071,
                         0xC0000072, 0xC0000193, 0xC0000224, 0xC0000234, 0xC000018D), _A_ACCOUNT),
        **dict.fromkeys((0xC000018B, 0xC000018C, 0xC000019B, 0xC0000413), _A_TRUST),
        **dict.fromkeys((0xC000005E, 0xC00000DF, 0xC0000388), _A_NO_DC),
        0xC0000133: _A_TIME,
        0xC00002FD: _A_NO_TICKET,
        0xC000035B: _A_MP_REJECTS,
        0xC000015B: ("The MP refuses the client's network logon (user right on the MP): the client is not "
                     "authenticated and not auto-approved."),
    },
    "hresult": {
        0x80070005: ("In IIS '401 2 5' it is the normal anonymous first request; with FREB 401.2 after an "
                     "authenticated request it means the MP rejected the ticket: not auto-approved."),
        **dict.fromkeys((0x80090322, 0x8009030C, 0x80090308, 0x80090346, 0x80090348, 0x80090305), _A_MP_REJECTS),
        **dict.fromkeys((0x80090303, 0x80090342), _A_NO_TICKET),
        **dict.fromkeys((0x80090338, 0x80090341), _A_TRUST),
        **dict.fromkeys((0x80090311, 0x80090350), _A_NO_DC),
        0x80090324: _A_TIME,
        0x80190191: "The MP refused authentication (HTTP 401): the client is not auto-approved.",
    },
    "win32": {
        5: ("In an IIS 7+ line '401 2 5' it is the normal anonymous first request (the Negotiate challenge): "
            "approval depends on the client's next, authenticated request."),
        **dict.fromkeys((1326, 1327, 1328, 1329, 1330, 1331, 1793, 1907, 1909), _A_ACCOUNT),
        **dict.fromkeys((1311, 1355), _A_NO_DC),
        **dict.fromkeys((1788, 1935), _A_TRUST),
        1789: _A_ACCOUNT,
        1396: _A_MP_REJECTS,
        1398: _A_TIME,
        **dict.fromkeys((1225, 1231, 1232, 10054, 10060, 10061, 12002, 12007, 12029, 12030, 12175), _A_NO_MP),
        126: _A_MP_BROKEN,
    },
    "dns-rcode": {},
}


def _add_approval(table: dict[int, CodeInfo]) -> None:
    """Fill ``approval`` in place (the dict keeps its identity, so importers see the filled entries)."""
    for value, info in table.items():
        if info.approval:
            continue
        text = _APPROVAL_SPECIFIC.get(info.kind, {}).get(value)
        if text is None:
            text = _A_NORMAL if info.normal else _APPROVAL_DEFAULT_FAILURE.get(info.kind, "")
        table[value] = replace(info, approval=text)


for _t in (KRB_ERRORS, NTSTATUS, HRESULTS, WIN32, DNS_RCODES):
    _add_approval(_t)


# Windows events that explain registration failures: the DC's Security log (4768-4776, account changes), the
# client's and the DC's System log (Kerberos, KDC, NETLOGON). Event IDs are per source; the meaning names it.
_EV_ROWS: list[_ARow] = [
    (3, "A Kerberos error message was received",
     "System log, source Security-Kerberos, only with Kerberos event logging on (KB262177): the machine received "
     "a KRB-ERROR; 'Error Code' is the Kerberos error in hex (0x19 = 25 is normal).",
     "Follow the error code: on the client, one for HTTP/<mp> explains why Kerberos to the MP failed.",
     "Read the Error Code and the Server Name; look it up with kerbtrace explain.", False),
    (4, "The Kerberos client received a KRB_AP_ERR_MODIFIED error from the server",
     "System log of the client, source Security-Kerberos: the server (for HTTP/<mp>: the MP) could not decrypt "
     "the ticket; the event names the target SPN and the account the ticket was for.", _A_MP_REJECTS,
     "The HTTP/<mp> SPN is on the wrong account or duplicated: see KRB_AP_ERR_MODIFIED (41).", False),
    (11, "KDCEVENT_NAME_NOT_UNIQUE",
     "System log of a DC, source Kerberos-Key-Distribution-Center: several accounts hold the same SPN (e.g. "
     "HTTP/<mp> on the MP and on a user account); the DC answers KDC_ERR_S_PRINCIPAL_UNKNOWN (7).",
     _A_NO_TICKET, "setspn -X lists duplicates; remove the extra one with setspn -D <spn> <account>.", False),
    (16, "No suitable key for the target account (TGS)",
     "System log of a DC, source Kerberos-Key-Distribution-Center: probably the TGS request's etypes and the "
     "target account's keys have nothing in common (event text lists both).", _A_NO_TICKET,
     "Compare msDS-SupportedEncryptionTypes on the MP account with the client's etypes; reset the account's "
     "password after enabling AES.", False),
    (27, "No suitable key for the target account",
     "System log of a DC, source Kerberos-Key-Distribution-Center: probably the same etype/key mismatch as "
     "event 16, logged when the account's available etypes do not include a requested one.", _A_NO_TICKET,
     "As for event 16: check msDS-SupportedEncryptionTypes and reset the account password.", False),
    (1102, "The audit log was cleared", "Security log: the log was cleared; events before it are missing.",
     "None, but the events that would explain a failure may be gone.", "Export the log earlier next time.",
     False),
    (3210, "This computer could not authenticate with a domain controller",
     "System log of the client, source NETLOGON: the machine's secure channel is broken (its password no longer "
     "matches its computer account).", _A_NO_TGT,
     "Test-ComputerSecureChannel -Repair (or nltest /sc_reset:<domain>), or rejoin the client.", False),
    (4624, "An account was successfully logged on",
     "Security log of the machine logged on to; on the MP, logon type 3 for <client>$ probably marks the "
     "client's authenticated request, and 'Authentication Package' says Kerberos or NTLM.",
     "Kerberos: the client authenticated as approval requires. NTLM: a fallback; the client is not "
     "auto-approved.", "", True),
    (4625, "An account failed to log on",
     "Security log of the machine the logon was attempted on (on the MP for a rejected request): 'Status' and "
     "'Sub Status' are NTSTATUS codes saying why.",
     "For <client>$ on the MP: the client's request was not authenticated; it is not auto-approved.",
     "Look up the Sub Status (e.g. 0xC000006A wrong password, 0xC0000234 locked out).", False),
    (4722, "A user account was enabled", "Security log of a DC: an account (also a computer account) was "
     "enabled.", "After it, a disabled client's Kerberos requests succeed again.", "", True),
    (4725, "A user account was disabled", "Security log of a DC: an account (also a computer account) was "
     "disabled.", "For <client>$: its requests fail with KDC_ERR_CLIENT_REVOKED (18); not auto-approved.",
     "Enable the computer account.", False),
    (4738, "A user account was changed", "Security log of a DC: attributes of a user account changed (e.g. "
     "userAccountControl, supported encryption types).", "Matters when the account holds HTTP/<mp> or runs the "
     "MP's web service.", "", True),
    (4740, "A user account was locked out",
     "Security log of a DC (search the PDC emulator first, lockouts reach it at once): an account was locked "
     "out after too many bad passwords; 'Caller Computer Name' is where they came from.",
     "For <client>$: its requests fail with KDC_ERR_CLIENT_REVOKED (18) and STATUS_ACCOUNT_LOCKED_OUT; not "
     "auto-approved.", "Unlock the account and stop the source of the bad passwords.", False),
    (4741, "A computer account was created", "Security log of a DC: a computer account was created (domain "
     "join).", "A rejoined client has a new account and usually a new ticket key; registration can proceed.",
     "", True),
    (4742, "A computer account was changed", "Security log of a DC: a computer account changed; the event shows "
     "changed 'Service Principal Names' and 'User Account Control'.",
     "Matters when the MP's account lost HOST/<mp> or HTTP/<mp>, or a client's account was disabled.",
     "Check the SPN list (setspn -L <mp>).", True),
    (4743, "A computer account was deleted", "Security log of a DC: a computer account was deleted.",
     "For a client: its TGT requests fail with KDC_ERR_C_PRINCIPAL_UNKNOWN (6); not auto-approved.",
     "Rejoin the client to the domain.", False),
    (4767, "A user account was unlocked", "Security log of a DC: an account was unlocked.",
     "After it, a locked-out client's Kerberos requests succeed again.", "", True),
    (4768, "A Kerberos authentication ticket (TGT) was requested",
     "Security log of a DC: an AS request; 'Result Code' is the Kerberos error in hex (0x0 success, 0x6 "
     "unknown name, 0x12 revoked, 0x17 expired password). Bad passwords are logged as 4771 instead.",
     "For <client>$ with a failure: it gets no TGT, so no ticket for HTTP/<mp>, and is not auto-approved. "
     "Success, or other accounts, do not affect approval.", "Look up the Result Code.", True),
    (4769, "A Kerberos service ticket was requested",
     "Security log of a DC: a TGS request; 'Service Name' is the account holding the SPN, 'Failure Code' the "
     "Kerberos error in hex (0x0 success, 0x7 no account holds the SPN, 0xE etype).",
     "For a ticket to the MP: success issued to the MP computer account (<mp>$) is what approval needs; success "
     "issued to a user account means the SPN is on the wrong account (KRB_AP_ERR_MODIFIED at the MP); 0x7 means "
     "NTLM fallback.", "Look up the Failure Code; compare Service Name with the MP's computer account.", True),
    (4770, "A Kerberos service ticket was renewed", "Security log of a DC: a service ticket was renewed.",
     _A_NORMAL, "", True),
    (4771, "Kerberos pre-authentication failed",
     "Security log of a DC: an AS request failed pre-authentication; 'Failure Code' is the Kerberos error in "
     "hex (0x18 = 24 wrong password, 0x12 revoked, 0x25 clock skew).",
     "For <client>$: its machine password no longer matches AD (broken secure channel) or it is locked out; "
     "it gets no TGT, so no ticket for HTTP/<mp>, and is not auto-approved. For users (a password spray) it "
     "does not concern registration.",
     "Look up the Failure Code; for 0x18 on a computer account repair its secure channel.", False),
    (4776, "The computer attempted to validate the credentials for an account",
     "Security log of a DC: NTLM credential validation; 'Error Code' is an NTSTATUS (0x0 success).",
     "For <client>$ with 'Source Workstation' the client at registration time: the MP authenticated it with "
     "NTLM, even when the code is 0x0; such a client is not auto-approved.",
     "Find out why Kerberos was not used (SPN, trust, DC reachability) before this NTLM logon.", False),
    (4781, "The name of an account was changed", "Security log of a DC: an account (also a computer account) "
     "was renamed.", "A renamed client or MP needs matching SPNs and DNS names; until then Kerberos to the MP "
     "can fail.", "Check setspn -L on the renamed account.", True),
    (5136, "A directory service object was modified",
     "Security log of a DC (directory service changes auditing): an attribute changed, e.g. servicePrincipalName "
     "on the MP or on a user account.", "An HTTP/<mp> SPN added to a user account breaks Kerberos to the MP "
     "(KRB_AP_ERR_MODIFIED): not auto-approved.", "Check which account holds HTTP/<mp> (setspn -Q).", True),
    (5719, "This computer was not able to set up a secure session with a domain controller",
     "System log, source NETLOGON: no DC of the domain answered at boot or later.", _A_NO_DC,
     "Check DNS SRV records and connectivity to the DCs.", False),
    (5722, "The session setup from the computer failed to authenticate",
     "System log of a DC, source NETLOGON: a computer's secure-channel logon was refused (password mismatch).",
     _A_NO_TGT, "Reset the computer account or rejoin the client.", False),
    (5723, "The session setup from the computer failed: no trust account",
     "System log of a DC, source NETLOGON: the computer account the machine uses does not exist.", _A_NO_TGT,
     "Rejoin the client to the domain.", False),
]
DC_EVENTS: dict[int, CodeInfo] = _atable("event", _EV_ROWS)

# Which field of an event holds a result code, and which table decodes it.
EVENT_CODE_FIELDS: dict[int, tuple[str, str]] = {
    3: ("Error Code", "krb"),
    4768: ("Result Code", "krb"),
    4769: ("Failure Code", "krb"),
    4771: ("Failure Code", "krb"),
    4776: ("Error Code", "ntstatus"),
    4625: ("Status / Sub Status", "ntstatus"),
}


# IIS sc-status.sc-substatus (IIS 6.0 SDK custom error texts; "The HTTP status code in IIS 7.0 and later",
# KB943891). Value = status * 1000 + substatus.
def _iis(status: int, sub: int) -> int:
    return status * 1000 + sub


_IIS_ROWS: list[_ARow] = [
    (_iis(200, 0), "OK", "The request succeeded. On /ccm_system_windowsauth/request with cs-username "
     "DOMAIN\\HOST$: Windows authentication succeeded.", "The request is authenticated; whether with Kerberos "
     "or NTLM is not in the log line (the capture or the DC's 4769/4776 say).", "", True),
    (_iis(401, 0), "Unauthorized", "Authentication is required; no substatus.", "Depends on what follows.", "",
     True),
    (_iis(401, 1), "Logon failed", "The credentials sent were rejected, or one more handshake leg is needed "
     "(sc-win32-status 2148074254 in a multi-leg, probably NTLM, handshake).",
     "With a failure status the client is not authenticated and not auto-approved.",
     "Decode sc-win32-status (kerbtrace explain <value>).", False),
    (_iis(401, 2), "Logon failed due to server configuration",
     "No acceptable credentials in the request. The first 401.2 of a client (sc-win32-status 2148074254 on "
     "IIS 6, 5 on IIS 7+) is the normal anonymous request answered with WWW-Authenticate: Negotiate.",
     "Normal when the client's authenticated request follows; if none follows, the client never "
     "authenticated.", "If no authenticated request follows, check the MP's Windows Authentication providers.",
     True),
    (_iis(401, 3), "Unauthorized due to ACL on resource", "NTFS permissions on the MP's files refused the "
     "authenticated user.", "The request fails after authentication: not registered.",
     "Repair the permissions of the CCM virtual directories (reinstall the MP role).", False),
    (_iis(401, 4), "Authorization failed by filter", "An ISAPI filter refused the request.", _A_MP_BROKEN,
     "Check the ISAPI filters on the MP site.", False),
    (_iis(401, 5), "Authorization failed by ISAPI/CGI application", "The MP's ISAPI extension refused the "
     "request.", _A_MP_BROKEN, "Check CcmIsapi.log on the MP.", False),
    (_iis(401, 7), "Access denied by URL authorization policy", "URL authorization on the web server refused "
     "the request.", _A_MP_BROKEN, "Check URL authorization rules on the CCM virtual directories.", False),
    (_iis(403, 4), "SSL required", "The MP requires HTTPS for this URL; the client used HTTP.",
     "The request is refused: not registered over this path.", "Check the MP's HTTPS setting and the client's "
     "HTTPS mode.", False),
    (_iis(403, 6), "IP address rejected", "An IP address restriction refused the client.", _A_NO_MP,
     "Check IP restrictions on the MP site.", False),
    (_iis(403, 7), "Client certificate required", "HTTPS MP: the client sent no client certificate.",
     "HTTPS MPs authenticate clients by certificate, not Kerberos: the request is refused, the client is not "
     "registered.", "Enrol a client authentication certificate on the client.", False),
    (_iis(403, 13), "Client certificate revoked", "HTTPS MP: the client certificate is revoked.",
     "The request is refused: not registered.", "Re-enrol the client certificate.", False),
    (_iis(403, 16), "Client certificate is untrusted or invalid", "HTTPS MP: the MP does not trust the client "
     "certificate's chain.", "The request is refused: not registered.", "Import the issuing CA chain on the MP.",
     False),
    (_iis(403, 17), "Client certificate has expired or is not yet valid", "HTTPS MP: the client certificate is "
     "expired or not yet valid.", "The request is refused: not registered.", "Renew the client certificate; "
     "check clocks.", False),
    (_iis(404, 0), "Not found", "The URL does not exist on the MP (MP role not installed, or wrong site).",
     _A_MP_BROKEN, "Check mpcontrol.log; reinstall the MP role.", False),
    (_iis(404, 6), "Verb denied", "Request filtering refused the HTTP verb; CCM_POST is a custom verb that must "
     "be allowed.", _A_MP_BROKEN, "Allow the CCM_POST verb in request filtering on the MP site.", False),
    (_iis(405, 0), "Method not allowed", "The handler does not accept the verb (e.g. WebDAV or a handler mapping "
     "taking CCM_POST).", _A_MP_BROKEN, "Check the handler mappings of the CCM virtual directories.", False),
    (_iis(500, 0), "Internal server error", "The MP's module or ISAPI extension failed.", _A_MP_BROKEN,
     "Read CcmIsapi.log and MP_*.log on the MP.", False),
    (_iis(500, 19), "Configuration data is invalid", "IIS could not read the MP's configuration (broken "
     "applicationHost.config, e.g. a missing compression scheme DLL, sc-win32-status 126).", _A_MP_BROKEN,
     "Repair the IIS configuration or reinstall the MP role.", False),
    (_iis(503, 0), "Service unavailable (application pool unavailable)", "The MP's application pool is stopped "
     "or failing.", _A_MP_BROKEN, "Start the CCM application pools; read the System log for WAS errors.", False),
    (_iis(503, 2), "Concurrent request limit exceeded", "The MP is overloaded.", _A_MP_BROKEN,
     "Check the MP's load and the application pool limits.", False),
]
IIS_STATUS: dict[int, CodeInfo] = _atable("iis", _IIS_ROWS)


def dc_event(event_id: int) -> CodeInfo:
    """Windows event ID (DC Security log, client/DC System log); an unlisted ID gets ``EVENT_<n>``."""
    info = DC_EVENTS.get(event_id)
    if info is not None:
        return info
    return CodeInfo("event", event_id, f"EVENT_{event_id}", "Event ID not in kerbtrace's table.")


def event_result(event_id: int, code: int) -> CodeInfo | None:
    """The result/failure code of an event, decoded by the table its field uses (4771 0x18 -> KRB 24).

    None when the event carries no such code.
    """
    field = EVENT_CODE_FIELDS.get(event_id)
    if field is None:
        return None
    return krb_error(code) if field[1] == "krb" else ntstatus(code)


def iis_code(status: int, substatus: int) -> CodeInfo:
    """IIS ``sc-status.sc-substatus``; an unlisted pair gets its numbers as name."""
    info = IIS_STATUS.get(_iis(status, substatus))
    if info is not None:
        return info
    word = {2: "success", 3: "redirection", 4: "client error", 5: "server error"}.get(status // 100, "status")
    return CodeInfo("iis", _iis(status, substatus), f"HTTP {status}.{substatus}",
                    f"Unlisted IIS status ({word}).", normal=status < 400)


@dataclass(frozen=True, slots=True)
class IisStatus:
    """One IIS log line's ``sc-status sc-substatus sc-win32-status``, decoded and classified.

    ``outcome``: "success", "challenge" (the anonymous first request answered with the Negotiate challenge:
    normal when the client's authenticated request follows), "handshake" (a further leg, probably NTLM),
    "auth_failure", "client_error", "server_error".
    """

    status: int
    substatus: int
    win32: int | None
    code: CodeInfo
    win32_info: CodeInfo | None
    outcome: str
    normal: bool
    note: str

    def label(self) -> str:
        """``401.2 SEC_E_NO_CREDENTIALS (0x8009030E)``, as an admin would search for it."""
        text = f"{self.status}.{self.substatus}"
        return f"{text} {self.win32_info.label()}" if self.win32_info is not None else text


_IIS_CHALLENGE_WIN32 = frozenset({0x8009030E, 5})


def iis_status(status: int, substatus: int = 0, win32: int | None = None) -> IisStatus:
    """Decode an IIS log line's status fields; the first 401.2 with 2148074254 (or 5) is the normal challenge."""
    code = iis_code(status, substatus)
    w = iis_win32_status(win32) if win32 is not None else None
    wv = None if win32 is None else win32 & 0xFFFFFFFF
    if 200 <= status < 400:
        outcome, normal, note = "success", True, code.meaning
    elif status == 401 and substatus == 2 and wv in _IIS_CHALLENGE_WIN32 | {None}:
        outcome, normal = "challenge", True
        note = ("The anonymous first request, answered with WWW-Authenticate: Negotiate (IIS 6 logs "
                "2148074254, IIS 7+ logs 5): normal when the client's authenticated request follows.")
    elif status == 401 and substatus == 1 and wv == 0x8009030E:
        outcome, normal = "handshake", True
        note = ("A further leg of a multi-leg handshake (probably the NTLM challenge): normal when a 200 "
                "follows, but a client authenticated with NTLM is not auto-approved.")
    elif status == 401:
        outcome, normal = "auth_failure", False
        note = (w.meaning if w is not None and not w.normal else code.meaning)
    elif status < 500:
        outcome, normal, note = "client_error", False, code.meaning
    else:
        outcome, normal, note = "server_error", False, code.meaning
    return IisStatus(status, substatus, wv, code, w, outcome, normal, note)


# ---------------------------------------------------------------------------------------------------------
# Lookups


def krb_error(code: int) -> CodeInfo:
    """KRB-ERROR error-code; an unassigned value gets the name ``KRB_ERROR_<n>``."""
    info = KRB_ERRORS.get(code)
    if info is not None:
        return info
    return CodeInfo("krb", code, f"KRB_ERROR_{code}", "Kerberos error code not assigned in RFC 4120 or the "
                    "Microsoft extensions.")


def ntstatus(value: int) -> CodeInfo:
    """NTSTATUS (signed or unsigned 32-bit)."""
    value &= 0xFFFFFFFF
    info = NTSTATUS.get(value)
    if info is not None:
        return info
    sev = value >> 30
    kind_word = ("success", "informational", "warning", "error")[sev]
    return CodeInfo("ntstatus", value, f"NTSTATUS_0x{value:08X}", f"Unlisted NTSTATUS ({kind_word} code).")


def hresult(value: int) -> CodeInfo:
    """HRESULT / SSPI status (signed or unsigned). 0x8007xxxx is decoded through its Win32 code."""
    value &= 0xFFFFFFFF
    info = HRESULTS.get(value)
    if info is not None:
        return info
    info = CCM_HRESULTS.get(value)
    if info is not None:
        return info
    if value & 0xFFFF0000 == 0x80070000:  # HRESULT_FROM_WIN32
        w = WIN32.get(value & 0xFFFF)
        if w is not None:
            return CodeInfo("hresult", value, w.name, w.meaning, w.fix, w.normal, w.approval)
        return CodeInfo("hresult", value, f"HRESULT_FROM_WIN32({value & 0xFFFF})",
                        f"Win32 error {value & 0xFFFF} wrapped in an HRESULT (unlisted).")
    if value & 0xFFFF0000 == 0x87D00000:
        return CodeInfo("ccm", value, f"CCM_0x{value:08X}", "ConfigMgr client error code (unlisted).")
    word = "failure" if value & 0x80000000 else "success"
    return CodeInfo("hresult", value, f"HRESULT_0x{value:08X}", f"Unlisted HRESULT ({word} code).")


def ccm_hresult(value: int) -> CodeInfo:
    """ConfigMgr 0x87D0xxxx code (same as ``hresult``; named for readers of CcmMessaging.log)."""
    return hresult(value)


def win32(value: int) -> CodeInfo:
    """Win32 error code (decimal)."""
    info = WIN32.get(value)
    if info is not None:
        return info
    return CodeInfo("win32", value, f"WIN32_ERROR_{value}", "Unlisted Win32 error code.")


def iis_win32_status(value: int) -> CodeInfo:
    """IIS ``sc-win32-status``: unsigned decimal; >= 0x80000000 (or a SEC_I_ value) is an HRESULT."""
    value &= 0xFFFFFFFF
    if value >= 0x80000000 or (value and value in HRESULTS):
        return hresult(value)
    return win32(value)


def dns_rcode(value: int) -> CodeInfo:
    """DNS response code."""
    info = DNS_RCODES.get(value)
    if info is not None:
        return info
    return CodeInfo("dns-rcode", value, f"RCODE{value}", "Unlisted DNS response code.")


def etype_name(etype: int) -> str:
    """``aes256-cts-hmac-sha1-96`` style name (MIT/Wireshark spelling)."""
    return ETYPES.get(etype) or f"etype-{etype}"


def flag_names(table: dict[int, str], value: int) -> tuple[str, ...]:
    """Names of the bits set in `value` (an unlisted bit as ``0x...``), lowest bit first."""
    out = []
    bit = 1
    value &= 0xFFFFFFFF
    while value:
        if value & 1:
            out.append(table.get(bit) or f"0x{bit:X}")
        value >>= 1
        bit <<= 1
    return tuple(out)


def supported_etypes(value: int) -> tuple[str, ...]:
    """msDS-SupportedEncryptionTypes as etype names and feature words."""
    out = [etype_name(e) for bit, e in SUPPORTED_ETYPE_BITS.items() if value & bit]
    out += [w for bit, w in SUPPORTED_ETYPE_FEATURES.items() if value & bit]
    known = sum(SUPPORTED_ETYPE_BITS) + sum(SUPPORTED_ETYPE_FEATURES)
    out += flag_names({}, value & ~known)
    return tuple(out)


def padata_name(t: int) -> str:
    return PADATA_TYPES.get(t) or f"PA-DATA-{t}"


def msg_type_name(t: int) -> str:
    return MSG_TYPES.get(t) or f"msg-type-{t}"


def tls_version_name(version: int) -> str:
    """``TLS 1.2`` style name; drafts of TLS 1.3 as ``TLS 1.3 (draft 28)``, others as hex."""
    name = TLS_VERSIONS.get(version)
    if name is not None:
        return name
    if version >> 8 == 0x7F:
        return f"TLS 1.3 (draft {version & 0xFF})"
    return f"0x{version:04X}"


def tls_alert_name(description: int) -> str:
    """``handshake_failure`` style name of a TLS alert description."""
    return TLS_ALERTS.get(description) or f"alert_{description}"


def all_codes() -> Iterator[CodeInfo]:
    """Every listed code, table by table (for docs and reports)."""
    for table in (KRB_ERRORS, NTSTATUS, HRESULTS, CCM_HRESULTS, WIN32, DNS_RCODES, DC_EVENTS, IIS_STATUS):
        yield from table.values()


# Table titles, for docs/codes.md and `kerbtrace explain`.
KIND_TITLES: dict[str, str] = {
    "krb": "Kerberos KRB-ERROR codes",
    "ntstatus": "NTSTATUS (KRB-ERROR e-data, NTLM, event Status)",
    "hresult": "HRESULT / SSPI (IIS sc-win32-status >= 2147483648, CcmMessaging.log)",
    "ccm": "ConfigMgr client codes (0x87D0xxxx)",
    "win32": "Win32 errors (IIS sc-win32-status < 2147483648, WinHTTP)",
    "dns-rcode": "DNS response codes",
    "event": "Windows events (DC Security log, client and DC System log)",
    "iis": "IIS sc-status.sc-substatus",
}

_EXPLAIN_DOC = """## kerbtrace explain

`kerbtrace explain CODE` looks a code up in these tables, in whatever notation it was met, and prints its
name, meaning, what it means for client approval, and the usual fix (`--json` for the `kerbtrace-explain/1`
document: `query`, `found`, `matches[]` with `kind`, `value`, `name`, `label`, `meaning`, `approval`, `fix`,
`normal`, and `results[]` for an event's codes or `iis` for an IIS status, `hints[]`).

| Notation | Example | Read as |
|---|---|---|
| IIS sc-win32-status (unsigned decimal) | `2148074254` | HRESULT 0x8009030E |
| hex, with or without 0x | `0x8009030E`, `8009030E`, `C0000234` | HRESULT, NTSTATUS, ConfigMgr by range |
| signed decimal | `-2146893042` | the same 32 bits |
| 8 digits printed without 0x | `80070005` | decimal, and also as hex |
| names, any case, MIT spelling | `sec_e_wrong_principal`, `KRB5KRB_AP_ERR_MODIFIED` | exact name |
| part of a name | `MODIFIED` | names containing it |
| Kerberos number | `41`, `0x18` | KRB error (also Win32, event ID, DNS when listed) |
| event ID with its result code | `4771 0x18`, `4771:0x18`, `event 4771 0x18` | the event, its code decoded |
| event 4625 Status and Sub Status | `4625 0xC000006D 0xC000006A` | the event, both NTSTATUS codes |
| IIS status | `401.2`, `401 2 5`, `401.2 2148074254` | IIS status, substatus, sc-win32-status |

A kind word before the code narrows the search: `event`, `iis`/`http`, `krb`, `ntstatus`, `win32`, `hresult`,
`ccm`, `dns`. A bare small number can belong to several tables (24 is a Kerberos error; 5 a Win32 error, a
Kerberos error and a DNS code): every listed entry is shown, most likely first (the table that usually uses
the notation, then codes that occur around registration).

Exit status: 0 the code is in a table; 1 it is in none (the message says what its form still tells, e.g.
HRESULT_FROM_WIN32(n), or more than 32 bits); 2 the argument is not a code in any notation (empty, `0xZZ`).

Other parts call the same tables: `krb_error`, `ntstatus`, `hresult`, `win32`, `iis_win32_status`,
`dc_event(id)`, `event_result(id, code)` (4771 0x18 -> KDC_ERR_PREAUTH_FAILED), `iis_code(status,
substatus)`, and `iis_status(status, substatus, win32)` -> `IisStatus` with `outcome` ("success",
"challenge" for the normal first 401.2 with 2148074254 or 5, "handshake", "auth_failure", "client_error",
"server_error"), `normal`, `note` and `label()`.
"""


def _markdown() -> str:
    """docs/codes.md: one table per kind, from the tables above."""
    out = [
        "# Code tables",
        "",
        "Generated from `kerbtrace/codes.py` (`python -m kerbtrace.codes > docs/codes.md`); edit the tables "
        "there, not here.",
        "Normal = expected in healthy traffic. Texts saying \"probably\"/\"usually\" rest on mappings the "
        "references do not confirm. IIS logs HRESULTs as unsigned decimals: 2148074254 = 0x8009030E.",
        "Approval = what the code means for a client's approval under \"automatically approve computers in "
        "trusted domains\" (only a client that authenticated to the MP with Kerberos is approved); an empty cell "
        "means the table's default, given under its heading.",
        "",
        _EXPLAIN_DOC,
    ]
    esc = str.maketrans({"|": "\\|", "\n": " ", "<": "&lt;", ">": "&gt;"})
    current = ""
    for c in all_codes():
        if c.kind != current:
            current = c.kind
            out += ["", f"## {KIND_TITLES[c.kind]}", ""]
            default = _APPROVAL_DEFAULT_FAILURE.get(c.kind)
            if default:
                out += [f"Approval, where the cell is empty: {default.translate(esc)} (Normal codes: {_A_NORMAL})", ""]
            if c.kind == "event":
                out += ["Result codes: " + "; ".join(
                    f"{k} '{f}' is {'a Kerberos error in hex' if t == 'krb' else 'an NTSTATUS'}"
                    for k, (f, t) in sorted(EVENT_CODE_FIELDS.items())) + ".", ""]
            out += ["| Code | Normal | Meaning | Approval | Fix |", "|---|---|---|---|---|"]
        code = (c.label() if c.kind in _HEX_KINDS | {"event", "iis"} else f"{c.name} ({c.value})").translate(esc)
        if c.kind in ("hresult", "ccm") and c.value >= 0x80000000:
            code += f"<br>IIS {c.value}"
        approval = "" if c.approval in (default, _A_NORMAL) and default else c.approval
        out.append(f"| {code} | {'yes' if c.normal else ''} | {c.meaning.translate(esc)} | "
                   f"{approval.translate(esc)} | {c.fix.translate(esc)} |")
    out += ["", "## Encryption types", "", "| etype | name |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in ETYPES.items()]
    out += ["", "## PA-DATA types", "", "| type | name |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in PADATA_TYPES.items()]
    out += ["", "## Kerberos message types", "", "| msg-type | name |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in MSG_TYPES.items()]
    out += ["", "## ClientRegistrationResponse Status", "", "| Status | meaning |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in CCM_REG_STATUS.items()]
    out += ["", "## ClientRegistrationResponse ApprovalStatus", "", "| ApprovalStatus | meaning "
     "|", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in CCM_APPROVAL_STATUS.items()]
    out += ["", "3 (AAD) is not in the SDK enum; clients log `Approval status 3` for Azure AD "
     "registration.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(_markdown(), end="")
