"""Kerberos over TCP (RFC 4120 7.2.2): each message is preceded by a 4-byte big-endian length."""

from __future__ import annotations


class KerberosTcpFramer:
    """Splits one direction of a TCP stream into Kerberos messages (several per stream, or one over
    many segments). A length with the reserved high bit set, or above `max_message`, means the stream
    is not Kerberos framing: `error` says why and nothing more is returned, so garbage never grows
    the buffer."""

    __slots__ = ("max_message", "error", "_buf")

    def __init__(self, max_message: int = 1 << 20) -> None:
        self.max_message = max_message
        self.error: str | None = None
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished message held back (0 at a message boundary)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Complete messages (without the length prefix) that `data` finishes."""
        if self.error is not None:
            return []
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 4:
            length = int.from_bytes(buf[pos:pos + 4], "big")
            if length & 0x80000000:
                self.error = ("length prefix has the reserved high bit set "
                              f"(0x{length:08x}): not Kerberos TCP framing")
                break
            if length > self.max_message:
                self.error = f"message length {length} exceeds the {self.max_message}-byte limit"
                break
            if len(buf) - pos - 4 < length:
                break
            out.append(bytes(buf[pos + 4:pos + 4 + length]))
            pos += 4 + length
        if self.error is not None:
            buf.clear()
        elif pos:
            del buf[:pos]
        return out
