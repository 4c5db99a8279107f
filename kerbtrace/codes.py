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
from dataclasses import dataclass

__all__ = [
    "CCM_APPROVAL_STATUS",
    "CCM_REG_STATUS",
    "CodeInfo",
    "all_codes",
    "ccm_hresult",
    "dns_rcode",
    "etype_name",
    "hresult",
    "iis_win32_status",
    "krb_error",
    "msg_type_name",
    "ntstatus",
    "padata_name",
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

    kind: str  # "krb" | "ntstatus" | "hresult" | "win32" | "etype" | "padata" | "dns-rcode" | "ccm"
    value: int
    name: str
    meaning: str
    fix: str = ""
    normal: bool = False  # expected in healthy traffic

    def label(self) -> str:
        """``NAME (41)`` for small enumerations, ``NAME (0xC0000234)`` for 32-bit status codes."""
        if self.kind in _HEX_KINDS:
            return f"{self.name} (0x{self.value & 0xFFFFFFFF:08X})"
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

# ConfigMgr client-side HRESULTs ("0x87D0xxxx"); the names are descriptive, not SDK constants.
_CCM_ROWS: list[_Row] = [
    (0x87D00215, "CCM_ITEM_NOT_FOUND", "ConfigMgr 'Item not found' (deployment, policy or content); not an "
     "authentication error.", "", False),
    (0x87D00231, "CCM_POST_FAILED",
     "CcmMessaging could not deliver its message to the MP; usually the MP answered with an HTTP error (e.g. "
     "500.19, broken IIS configuration). Descriptive name: Microsoft publishes no constant for it.",
     "Look at the MP's IIS log for that request and at MP_*.log.", False),
    (0x87D0027E, "CCM_HTTP_STATUS",
     "Probably the MP answered with a non-200 HTTP status (logged with CCM_CcmHttp_Status StatusCode). "
     "Descriptive name: Microsoft publishes no constant for it.", "Look at the MP's IIS log for that "
     "request.", False),
]
CCM_HRESULTS: dict[int, CodeInfo] = _table("ccm", _CCM_ROWS)


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
            return CodeInfo("hresult", value, w.name, w.meaning, w.fix, w.normal)
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


def padata_name(t: int) -> str:
    return PADATA_TYPES.get(t) or f"PA-DATA-{t}"


def msg_type_name(t: int) -> str:
    return MSG_TYPES.get(t) or f"msg-type-{t}"


def all_codes() -> Iterator[CodeInfo]:
    """Every listed code, table by table (for docs and reports)."""
    for table in (KRB_ERRORS, NTSTATUS, HRESULTS, CCM_HRESULTS, WIN32, DNS_RCODES):
        yield from table.values()


def _markdown() -> str:
    """docs/codes.md: one table per kind, from the tables above."""
    titles = {
        "krb": "Kerberos KRB-ERROR codes",
        "ntstatus": "NTSTATUS (KRB-ERROR e-data, NTLM)",
        "hresult": "HRESULT / SSPI (IIS sc-win32-status >= 2147483648, CcmMessaging.log)",
        "ccm": "ConfigMgr client codes (0x87D0xxxx)",
        "win32": "Win32 errors (IIS sc-win32-status < 2147483648, WinHTTP)",
        "dns-rcode": "DNS response codes",
    }
    out = [
        "# Code tables",
        "",
        "Generated from `kerbtrace/codes.py` (`python -m kerbtrace.codes > docs/codes.md`); edit the tables "
        "there, not here.",
        "Normal = expected in healthy traffic. Texts saying \"probably\"/\"usually\" rest on mappings the "
        "references do not confirm. IIS logs HRESULTs as unsigned decimals: 2148074254 = 0x8009030E.",
        "",
    ]
    esc = str.maketrans({"|": "\\|", "\n": " ", "<": "&lt;", ">": "&gt;"})
    current = ""
    for c in all_codes():
        if c.kind != current:
            current = c.kind
            out += ["", f"## {titles[c.kind]}", "", "| Code | Normal | Meaning | Fix |", "|---|---|---|---|"]
        code = c.label() if c.kind in _HEX_KINDS else f"{c.name} ({c.value})"
        if c.kind in ("hresult", "ccm") and c.value >= 0x80000000:
            code += f"<br>IIS {c.value}"
        out.append(f"| {code} | {'yes' if c.normal else ''} | {c.meaning.translate(esc)} | "
                   f"{c.fix.translate(esc)} |")
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
