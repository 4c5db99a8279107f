"""The MP's keytab beside the capture: which key a presented ticket was encrypted under, and who it names.

A ticket the MP cannot decrypt (KRB_AP_ERR_MODIFIED / BAD_INTEGRITY) is usually encrypted with the key
of another account holding the SPN. With the keytab of the MP's computer account (as `ktpass` writes
it), kerbtrace tries the keys itself: a ticket that opens under the MP's key proves the SPN resolves to
the MP; one that opens under no key of the keytab proves it was issued for another account. Opening the
ticket also gives the authenticator's client time (exact clock skew) and the PAC's client identity.

impacket does the keytab parsing, the ASN.1 and the Kerberos crypto (RFC 3961/3962, RC4-HMAC): none of
that is hand-written here. Key material never leaves this module: no key, session key, ticket or
authenticator byte is printed, logged, stored in a result or put in an exception text.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from pathlib import Path

from kerbtrace.codes import etype_name
from kerbtrace.context.text import ContextInputError, read_bounded

#: A keytab of a few hundred keys is a few tens of KiB; anything far larger is not a keytab.
MAX_KEYTAB_BYTES = 1 << 20
KEY_USAGE_TICKET = 2  # RFC 4120 7.5.1: AS-REP/TGS-REP ticket, encrypted with the service key
KEY_USAGE_AUTHENTICATOR = 11  # AP-REQ Authenticator, encrypted with the ticket's session key
AD_IF_RELEVANT = 1
AD_WIN2K_PAC = 128


class KeytabError(Exception):
    """The keytab could not be read; the message says why (never with key bytes)."""


@dataclass(frozen=True, slots=True)
class _Key:
    principal: str
    kvno: int
    etype: int
    value: bytes = field(repr=False)  # the key itself: stays inside this module


@dataclass(slots=True)
class TicketProof:
    """What the keytab says about one AP-REQ presented to the MP (no key or ticket bytes in it)."""

    sname: str | None
    realm: str | None
    etype: int | None
    kvno: int | None
    opened: bool
    key_principal: str | None = None  # the keytab entry whose key opened the ticket
    reason: str = ""  # why it did not open
    client: str | None = None  # cname@crealm sealed inside the ticket
    authtime: float | None = None
    authenticator_time: float | None = None  # the client's clock (ctime + cusec) when it sent the AP-REQ
    pac_client: str | None = None  # PAC_CLIENT_INFO name (the account the KDC vouches for)
    pac_logon: str | None = None  # PAC logon info: DOMAIN\\EffectiveName
    pac_sid: str | None = None  # PAC logon info: the account's SID

    def describe(self) -> str:
        what = f"ticket for {self.sname}@{self.realm} ({etype_name(self.etype) if self.etype else 'etype ?'}, " \
               f"kvno {self.kvno})"
        if not self.opened:
            return f"{what} does not open with any key of the keytab: {self.reason}"
        text = f"{what} opens with the key of {self.key_principal}: issued to {self.client}"
        if self.pac_logon or self.pac_client:
            text += f"; PAC names {self.pac_logon or self.pac_client}"
            if self.pac_sid:
                text += f" ({self.pac_sid})"
        return text


class Keytab:
    """The keys of a keytab file, tried against the tickets presented to the MP."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._keys = _load(Path(path))

    @property
    def principals(self) -> list[str]:
        return sorted({k.principal for k in self._keys})

    def entries(self) -> list[tuple[str, int, str]]:
        """(principal, kvno, etype name) of every key: what the keytab holds, without the keys."""
        return [(k.principal, k.kvno, etype_name(k.etype)) for k in self._keys]

    def open_ap_req(self, ap_req: bytes) -> TicketProof:
        """Try every key of the keytab that fits the ticket's etype on an AP-REQ (raw DER, no GSS framing)."""
        from impacket.krb5.asn1 import AP_REQ
        from pyasn1.codec.der import decoder
        from pyasn1.error import PyAsn1Error

        try:
            ap = decoder.decode(ap_req, asn1Spec=AP_REQ())[0]
            ticket = ap["ticket"]
            enc = ticket["enc-part"]
            etype = int(enc["etype"])
            kvno = int(enc["kvno"]) if enc["kvno"].hasValue() else None
            sname = "/".join(str(c) for c in ticket["sname"]["name-string"])
            realm = str(ticket["realm"])
            cipher = bytes(enc["cipher"])
            auth_etype = int(ap["authenticator"]["etype"])
            auth_cipher = bytes(ap["authenticator"]["cipher"])
        except (PyAsn1Error, KeyError, ValueError, TypeError) as exc:
            why = f"the AP-REQ is not readable ({type(exc).__name__})"
            return TicketProof(None, None, None, None, False, reason=why)
        proof = TicketProof(sname, realm, etype, kvno, False)
        candidates = [k for k in self._keys if k.etype == etype]
        if not candidates:
            have = ", ".join(sorted({etype_name(k.etype) for k in self._keys})) or "none"
            proof.reason = f"the keytab has no {etype_name(etype)} key (it has: {have})"
            return proof
        # The matching kvno first: a key of another version is tried too (a keytab lagging behind a reset).
        candidates.sort(key=lambda k: (k.kvno != kvno, k.principal.lower() != _service_principal(sname, realm)))
        for key in candidates:
            plain = _decrypt(key.etype, key.value, KEY_USAGE_TICKET, cipher)
            if plain is None:
                continue
            proof.opened, proof.key_principal = True, f"{key.principal} (kvno {key.kvno})"
            _read_ticket(plain, proof, auth_etype, auth_cipher)
            return proof
        tried = ", ".join(f"{k.principal} kvno {k.kvno}" for k in candidates[:6])
        proof.reason = (f"no {etype_name(etype)} key of the keytab decrypts it (tried {tried}): the KDC encrypted it "
                        "with the key of another account holding the SPN, or the keytab is older than the "
                        "account's current key")
        return proof


def _service_principal(sname: str, realm: str) -> str:
    return f"{sname}@{realm}".lower()


def _load(path: Path) -> list[_Key]:
    from impacket.krb5.keytab import Keytab as ImpacketKeytab

    try:
        data = read_bounded(path, MAX_KEYTAB_BYTES, "a keytab")
    except ContextInputError as exc:
        raise KeytabError(str(exc)) from None
    if data[:2] not in (b"\x05\x02", b"\x05\x01"):
        raise KeytabError(f"{path}: not a keytab (an MIT keytab starts with 0x0502, as ktpass and ktutil write it)")
    if data[:2] == b"\x05\x01":
        raise KeytabError(f"{path}: keytab version 0x0501 (pre-1.3 MIT) is not supported; export it again with "
                          "ktpass or ktutil")
    try:
        parsed = ImpacketKeytab(data)
    except Exception as exc:  # noqa: BLE001 - impacket's structures raise anything on a cut file
        raise KeytabError(f"{path}: truncated or malformed keytab ({type(exc).__name__})") from None
    keys = []
    for entry in parsed.entries:
        if entry.deleted:
            continue
        main = entry.main_part
        principal = main["principal"].prettyPrint()
        principal = principal.decode("utf-8", "replace") if isinstance(principal, bytes) else str(principal)
        keys.append(_Key(principal, int(entry.kvno), int(main["keyblock"]["keytype"]),
                         bytes(main["keyblock"]["keyvalue"]["data"])))
    if not keys:
        raise KeytabError(f"{path}: the keytab holds no key")
    return keys


def _decrypt(etype: int, key: bytes, usage: int, cipher: bytes) -> bytes | None:
    """Plaintext, or None when this key does not decrypt it (checksum mismatch) or the etype is unknown."""
    from impacket.krb5.crypto import InvalidChecksum, Key, _enctype_table

    table = _enctype_table.get(etype)
    if table is None:
        return None
    try:
        return table.decrypt(Key(etype, key), usage, cipher)
    except (InvalidChecksum, ValueError, IndexError, TypeError):
        return None


def _read_ticket(plain: bytes, proof: TicketProof, auth_etype: int, auth_cipher: bytes) -> None:
    """EncTicketPart: the client name, the PAC, and with the session key the authenticator's time."""
    from impacket.krb5.asn1 import Authenticator, EncTicketPart
    from pyasn1.codec.der import decoder
    from pyasn1.error import PyAsn1Error

    try:
        part = decoder.decode(plain, asn1Spec=EncTicketPart())[0]
        cname = "/".join(str(c) for c in part["cname"]["name-string"])
        proof.client = f"{cname}@{part['crealm']}"
        proof.authtime = _kerberos_time(str(part["authtime"]))
        session_etype = int(part["key"]["keytype"])
        session_key = bytes(part["key"]["keyvalue"])
        if part["authorization-data"].hasValue():
            _read_pac(part["authorization-data"], proof)
    except (PyAsn1Error, KeyError, ValueError, TypeError):
        return
    if session_etype != auth_etype:
        return
    plain_auth = _decrypt(session_etype, session_key, KEY_USAGE_AUTHENTICATOR, auth_cipher)
    if plain_auth is None:
        return
    try:
        auth = decoder.decode(plain_auth, asn1Spec=Authenticator())[0]
        ctime = _kerberos_time(str(auth["ctime"]))
        if ctime is not None:
            proof.authenticator_time = ctime + int(auth["cusec"]) / 1e6
    except (PyAsn1Error, KeyError, ValueError, TypeError):
        return


def _read_pac(auth_data, proof: TicketProof) -> None:
    """AD-IF-RELEVANT -> AD-WIN2K-PAC -> PAC_CLIENT_INFO and, where the KDC wrote one, the logon info."""
    from impacket.krb5.asn1 import AD_IF_RELEVANT as AdIfRelevant
    from impacket.krb5.pac import (
        PAC_CLIENT_INFO,
        PAC_CLIENT_INFO_TYPE,
        PAC_INFO_BUFFER,
        PAC_LOGON_INFO,
        PACTYPE,
        VALIDATION_INFO,
    )
    from pyasn1.codec.der import decoder

    for element in auth_data:
        if int(element["ad-type"]) != AD_IF_RELEVANT:
            continue
        inner = decoder.decode(bytes(element["ad-data"]), asn1Spec=AdIfRelevant())[0]
        for item in inner:
            if int(item["ad-type"]) != AD_WIN2K_PAC:
                continue
            pac = bytes(item["ad-data"])
            head = PACTYPE(pac)
            buffers = head["Buffers"]
            for i in range(min(int(head["cBuffers"]), 32)):
                info = PAC_INFO_BUFFER(buffers[i * 16:(i + 1) * 16])
                start, size = int(info["Offset"]), int(info["cbBufferSize"])
                data = pac[start:start + size]
                try:
                    if info["ulType"] == PAC_CLIENT_INFO_TYPE:
                        client = PAC_CLIENT_INFO(data)
                        proof.pac_client = client["Name"].decode("utf-16-le", "replace")
                    elif info["ulType"] == PAC_LOGON_INFO:
                        validation = VALIDATION_INFO()
                        validation.fromString(data)
                        logon = validation["Data"]
                        name = str(logon["EffectiveName"])
                        domain = str(logon["LogonDomainName"])
                        proof.pac_logon = f"{domain}\\{name}" if domain else name
                        sid = logon["LogonDomainId"].formatCanonical()
                        proof.pac_sid = f"{sid}-{int(logon['UserId'])}"
                except Exception:  # noqa: BLE001,S112 - one unreadable PAC buffer leaves the others
                    continue


def _kerberos_time(text: str) -> float | None:
    """KerberosTime "YYYYMMDDHHMMSSZ" -> epoch seconds."""
    try:
        return float(calendar.timegm((int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]),
                                      int(text[10:12]), int(text[12:14]), 0, 0, 0)))
    except (ValueError, IndexError):
        return None


__all__ = ["Keytab", "KeytabError", "TicketProof"]
