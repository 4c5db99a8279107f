"""NTLMSSP messages (MS-NLMP 2.2.1) -> `NtlmMessage`: who authenticates, and the server's clock.

Only the cleartext fields a diagnosis uses are read: the flags, the identity in AUTHENTICATE, the
target name and MsvAvTimestamp of CHALLENGE, and the NT response length (NTLMv1 vs v2, anonymous).
Every offset/length pair is checked against the buffer; a bad one raises `DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerbtrace.constants import NtlmMsg

from . import DecodeError

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE_UNICODE = 0x00000001
MSV_AV_EOL = 0
MSV_AV_TIMESTAMP = 7
# FILETIME (100 ns ticks since 1601-01-01) -> Unix epoch.
_FILETIME_EPOCH_OFFSET = 11644473600
_MAX_AV_PAIRS = 64


@dataclass(slots=True)
class NtlmMessage:
    """One NTLMSSP message."""

    msg_type: int  # 1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE
    flags: int  # NegotiateFlags
    domain: str | None = None  # AUTHENTICATE DomainName
    user: str | None = None  # AUTHENTICATE UserName (empty for anonymous)
    workstation: str | None = None  # AUTHENTICATE Workstation
    target_name: str | None = None  # CHALLENGE TargetName (the server's domain or host)
    timestamp: float | None = None  # CHALLENGE MsvAvTimestamp (epoch): the server's clock
    nt_response_len: int | None = None  # AUTHENTICATE: 24 = NTLMv1, > 24 = NTLMv2, 0 = anonymous


def _field(raw: bytes, at: int) -> tuple[int, int]:
    """(offset, length) of the 8-byte {Len, MaxLen, BufferOffset} descriptor at `at`, bounds-checked."""
    if at + 8 > len(raw):
        raise DecodeError("NTLMSSP header truncated")
    n = int.from_bytes(raw[at : at + 2], "little")
    off = int.from_bytes(raw[at + 4 : at + 8], "little")
    if n and off + n > len(raw):
        raise DecodeError(f"NTLMSSP field at {off}+{n} beyond the {len(raw)}-byte message")
    return off, n


def _text(raw: bytes, at: int, unicode: bool) -> str:
    off, n = _field(raw, at)
    data = raw[off : off + n]
    return data.decode("utf-16-le", "replace") if unicode else data.decode("cp437", "replace")


def _timestamp(raw: bytes, off: int, n: int) -> float | None:
    """MsvAvTimestamp from the TargetInfo AV_PAIR list, if present."""
    pos, end = off, off + n
    for _ in range(_MAX_AV_PAIRS):
        if pos + 4 > end:
            return None
        av_id = int.from_bytes(raw[pos : pos + 2], "little")
        av_len = int.from_bytes(raw[pos + 2 : pos + 4], "little")
        pos += 4
        if av_id == MSV_AV_EOL or pos + av_len > end:
            return None
        if av_id == MSV_AV_TIMESTAMP and av_len == 8:
            ticks = int.from_bytes(raw[pos : pos + 8], "little")
            return (ticks - _FILETIME_EPOCH_OFFSET * 10_000_000) / 1e7  # integer first: keeps the µs
        pos += av_len
    return None


def decode_ntlm(raw: bytes) -> NtlmMessage:
    """Decode an NTLMSSP NEGOTIATE / CHALLENGE / AUTHENTICATE message; DecodeError if malformed."""
    raw = bytes(raw)
    if raw[:8] != SIGNATURE:
        raise DecodeError("not an NTLMSSP message")
    if len(raw) < 16:
        raise DecodeError("NTLMSSP message truncated")
    msg_type = int.from_bytes(raw[8:12], "little")
    if msg_type == NtlmMsg.NEGOTIATE:
        return NtlmMessage(NtlmMsg.NEGOTIATE, int.from_bytes(raw[12:16], "little"))
    if msg_type == NtlmMsg.CHALLENGE:
        if len(raw) < 32:
            raise DecodeError("NTLMSSP CHALLENGE truncated")
        flags = int.from_bytes(raw[20:24], "little")
        msg = NtlmMessage(NtlmMsg.CHALLENGE, flags, target_name=_text(raw, 12, bool(flags & NEGOTIATE_UNICODE)))
        if len(raw) >= 48:
            off, n = _field(raw, 40)
            if n:
                msg.timestamp = _timestamp(raw, off, n)
        return msg
    if msg_type == NtlmMsg.AUTHENTICATE:
        if len(raw) < 64:
            raise DecodeError("NTLMSSP AUTHENTICATE truncated")
        flags = int.from_bytes(raw[60:64], "little")
        uni = bool(flags & NEGOTIATE_UNICODE)
        return NtlmMessage(
            NtlmMsg.AUTHENTICATE,
            flags,
            domain=_text(raw, 28, uni),
            user=_text(raw, 36, uni),
            workstation=_text(raw, 44, uni),
            nt_response_len=_field(raw, 20)[1],
        )
    raise DecodeError(f"unknown NTLMSSP message type {msg_type}")
