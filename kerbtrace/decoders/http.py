"""Incremental HTTP/1.x parser for one direction of a TCP connection.

It runs on every HTTP byte of large captures, so it works on whole buffers with `bytes.find` and
slices (never per byte or per regex), keeps at most `max_header` bytes of an unfinished header
block and `max_body` bytes of a body, and still consumes the rest of a long body so the stream
stays in sync. Bad input never raises: it is reported to `Diagnostics` (kind "http") and the
parser resynchronises on the next line that looks like a start line.

Any token is accepted as a method (ConfigMgr uses `CCM_POST`, WebDAV `PROPFIND`, ...) and no port
is assumed; the caller decides which connections are HTTP (see `looks_like_http`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kerbtrace.diagnostics import Diagnostics

# RFC 9110 token characters; a method is made of these only.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = b"0123456789abcdefABCDEF"
_MAX_METHOD = 32
_MAX_LINE = 16 * 1024  # longest start line / resync tail kept while waiting for its end
_MAX_CHUNK_LINE = 1024  # chunk-size line, extensions included
_MAX_PENDING_METHODS = 4096

# Parser states.
(_START, _HEAD, _BODY_LEN, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _BODY_EOF, _SKIP,
 _OPAQUE) = range(10)


@dataclass(slots=True)
class HttpMessage:
    """One request or response, as Wireshark would show it."""

    is_request: bool
    version: str  # "HTTP/1.1"
    method: str | None = None  # requests: any token method (CCM_POST, PROPFIND, ...)
    uri: str | None = None
    status: int | None = None  # responses
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)  # in order, names as sent (+ trailers)
    body: bytes = b""  # de-chunked; at most max_body bytes kept
    body_truncated: bool = False  # body longer than max_body, or bytes of it lost / cut by end of stream
    first_frame: int = 0  # frame of the first byte of the message
    frame: int = 0  # frame that completed the message (Wireshark shows the message there)
    time: float = 0.0  # capture time of `frame`

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive)."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def headers_named(self, name: str) -> list[str]:
        """Every value of header `name`, in order (several WWW-Authenticate lines are common)."""
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


def _is_request_line(line: bytes) -> bool:
    """`<token> <uri> HTTP/1.x` (line without its CR/LF)."""
    sp1 = line.find(b" ")
    if sp1 <= 0 or sp1 > _MAX_METHOD or line[:sp1].translate(None, _TCHAR):
        return False
    sp2 = line.rfind(b" ")
    if sp2 <= sp1 + 1:
        return False
    version = line[sp2 + 1 :]
    return len(version) == 8 and version.startswith(b"HTTP/1.")


def _is_status_line(line: bytes) -> bool:
    """`HTTP/1.x NNN [reason]` (line without its CR/LF)."""
    return (
        len(line) >= 12
        and line.startswith(b"HTTP/1.")
        and line[8:9] == b" "
        and line[9:12].isdigit()
        and (len(line) == 12 or line[12:13] == b" ")
    )


def looks_like_http(payload: bytes) -> bool:
    """Cheap test on the first payload of a connection: an HTTP/1.x request or status line."""
    eol = payload.find(b"\n", 0, _MAX_LINE)
    if eol >= 0:
        line = payload[:eol].rstrip(b"\r")
        return _is_status_line(line) or _is_request_line(line)
    # Start line not complete in the first segment: judge the prefix.
    if payload.startswith(b"HTTP/1."):
        return True
    sp = payload.find(b" ", 0, _MAX_METHOD + 1)
    if sp <= 0 or payload[:sp].translate(None, _TCHAR):
        return False
    return payload[sp + 1 : sp + 2] in (b"/", b"*", b"h", b"H") or len(payload) == sp + 1


def _content_length(values: list[str]) -> int | None:
    """Content-Length from all its header values; None when absent, -1 when invalid or conflicting."""
    if not values:
        return None
    found = None
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or not part.isascii() or len(part) > 18:
                return -1
            n = int(part)
            if found is not None and n != found:
                return -1
            found = n
    return -1 if found is None else found


class HttpStreamParser:
    """Feeds in-order bytes of one direction of a connection; returns complete messages."""

    __slots__ = (
        "is_request", "diag", "max_header", "max_body", "_buf", "_buf_frame", "_state", "_msg",
        "_remaining", "_body", "_scan", "_msg_start", "_line_start", "_methods", "_last_frame",
        "_last_time", "_trailer_bytes", "_ready",
    )

    def __init__(self, is_request: bool, diag: Diagnostics, *, max_header: int = 64 * 1024,
                 max_body: int = 4 << 20) -> None:
        self.is_request = is_request
        self.diag = diag
        self.max_header = max_header
        self.max_body = max_body
        self._buf = bytearray()  # unconsumed bytes (start line, headers, chunk lines, resync tail)
        self._buf_frame = 0  # frame that delivered the first byte of `_buf`
        self._state = _START
        self._msg: HttpMessage | None = None
        self._remaining = 0  # body / chunk bytes still to come
        self._body = bytearray()
        self._scan = 0  # where the search for the end of the header block resumes
        self._msg_start = 0
        self._line_start = True  # `_buf[0]` is the start of a line (resync candidates)
        # methods of requests whose responses are due (a list: an empty deque costs 600 bytes a connection)
        self._methods: list[str] = []
        self._last_frame = 0
        self._last_time = 0.0
        self._trailer_bytes = 0
        self._ready: list[HttpMessage] = []  # completed by `gap`, handed out by the next feed/close

    # -- public API ---------------------------------------------------------------------------------

    def expect_response_to(self, method: str) -> None:
        """Queue the method of a request whose response this (response) parser will see next."""
        if len(self._methods) < _MAX_PENDING_METHODS:
            self._methods.append(method)

    def feed(self, data: bytes, frame: int, time: float) -> list[HttpMessage]:
        """Consume the next bytes of the stream; return the messages they complete, in order."""
        out = self._ready
        self._ready = []
        if not data:
            return out
        buf = self._buf
        carry = len(buf)  # bytes in `buf` that came from earlier frames
        if not carry:
            self._buf_frame = frame
        buf += data
        self._last_frame = frame
        self._last_time = time
        n = len(buf)
        pos = 0
        while pos < n:
            st = self._state
            if st == _BODY_LEN or st == _CHUNK_DATA:
                take = min(self._remaining, n - pos)
                self._keep_body(buf, pos, take)
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                if st == _BODY_LEN:
                    self._finish(out, frame, time)
                else:
                    self._state = _CHUNK_END
            elif st == _START:
                pos = self._start(buf, pos, n, carry, frame)
                if self._state == _START:
                    break
            elif st == _HEAD:
                pos = self._head(buf, pos, n, out, frame, time)
                if self._state == _HEAD:
                    break
            elif st == _CHUNK_SIZE:
                pos = self._chunk_size(buf, pos, n, frame)
                if self._state == _CHUNK_SIZE:
                    break
            elif st == _CHUNK_END:
                if buf[pos] == 10:
                    pos += 1
                elif buf[pos] == 13:
                    if pos + 1 >= n:
                        break
                    if buf[pos + 1] != 10:
                        self._drop(frame, "chunk data not followed by CRLF")
                        continue
                    pos += 2
                else:
                    self._drop(frame, "chunk data not followed by CRLF")
                    continue
                self._state = _CHUNK_SIZE
            elif st == _TRAILER:
                pos = self._trailer(buf, pos, n, out, frame, time)
                if self._state == _TRAILER:
                    break
            elif st == _BODY_EOF:
                self._keep_body(buf, pos, n - pos)
                pos = n
            elif st == _SKIP:
                pos = self._resync(buf, pos, n, carry if carry >= pos else -1)
                if self._state == _SKIP:
                    break
            else:  # _OPAQUE: after 101 Switching Protocols / CONNECT, not HTTP any more
                pos = n
        if pos >= n:
            buf.clear()
        else:
            del buf[:pos]
            if pos >= carry:
                self._buf_frame = frame
            self._scan -= pos
            self._msg_start -= pos
        return out

    def gap(self, missing: int, frame: int) -> None:
        """`missing` bytes were never captured: give up the message in progress and resynchronise."""
        st = self._state
        if st == _OPAQUE:
            return
        if st == _BODY_LEN and self._msg is not None:
            # Only body bytes are lost; the headers are intact and the length keeps us in sync.
            self._msg.body_truncated = True
            self.diag.warn(frame, f"HTTP: {missing} bytes of a message body were not captured", "http")
            if missing < self._remaining:
                self._remaining -= missing
                return
            # The body ended inside the gap; what followed it is lost too.
            self._finish(self._ready, frame, self._last_time)
        elif st == _BODY_EOF and self._msg is not None:
            self._msg.body_truncated = True
            self.diag.warn(frame, f"HTTP: {missing} bytes of a message body were not captured", "http")
            return
        elif st not in (_START, _SKIP) or self._buf.strip():
            self.diag.warn(frame, f"HTTP: {missing} bytes not captured; message in progress dropped", "http")
        self._reset_message()
        self._buf.clear()
        self._state = _SKIP
        self._line_start = True

    def close(self, frame: int | None, time: float | None) -> list[HttpMessage]:
        """End of the stream: a read-until-close body is complete; anything else partial is reported."""
        out = self._ready
        self._ready = []
        if frame is None:
            frame = self._last_frame
        if time is None:
            time = self._last_time
        st = self._state
        if st == _BODY_EOF:
            self._finish(out, frame, time)
        elif self._msg is not None and st in (_BODY_LEN, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER):
            # Headers are complete and worth keeping (a 401's challenge); the body is not.
            self.diag.warn(self._last_frame, "HTTP: stream ended inside a message body", "http")
            self._msg.body_truncated = True
            self._finish(out, self._last_frame, self._last_time)
        elif st == _HEAD or (st == _START and self._buf.strip()):
            self.diag.warn(self._last_frame, "HTTP: stream ended inside a message header", "http")
        self._reset_message()
        self._buf.clear()
        self._state = _START
        return out

    # -- states -------------------------------------------------------------------------------------

    def _start(self, buf: bytearray, pos: int, n: int, carry: int, frame: int) -> int:
        # Empty lines between messages are allowed (RFC 9112 2.2).
        while pos < n and (buf[pos] == 13 or buf[pos] == 10):
            pos += 1
        if pos >= n:
            return pos
        eol = buf.find(b"\n", pos, pos + _MAX_LINE)
        if eol < 0:
            if n - pos >= _MAX_LINE or not self._plausible_prefix(buf, pos, n):
                self._garbage(frame, buf, pos)
            return pos
        line = bytes(buf[pos:eol]).rstrip(b"\r")
        ok = _is_request_line(line) if self.is_request else _is_status_line(line)
        if not ok:
            self._garbage(frame, buf, pos)
            return pos
        first = self._buf_frame if pos < carry else frame
        self._msg = HttpMessage(self.is_request, "", first_frame=first)
        self._msg_start = pos
        self._scan = eol
        self._state = _HEAD
        return pos

    def _plausible_prefix(self, buf: bytearray, pos: int, n: int) -> bool:
        """Could the incomplete line at `pos` still become a start line?"""
        head = bytes(buf[pos : pos + _MAX_METHOD + 1])
        if not self.is_request:
            k = min(len(head), 7)
            return head[:k] == b"HTTP/1."[:k]
        sp = head.find(b" ")
        token = head if sp < 0 else head[:sp]
        return not token.translate(None, _TCHAR) and (sp != 0) and (sp > 0 or len(head) <= _MAX_METHOD)

    def _head(self, buf: bytearray, pos: int, n: int, out: list[HttpMessage], frame: int, time: float) -> int:
        end = -1
        i = self._scan
        while True:
            i = buf.find(b"\n", i, n)
            if i < 0 or i + 1 >= n:
                break
            c = buf[i + 1]
            if c == 10:
                end = i + 2
                break
            if c == 13:
                if i + 2 >= n:
                    break
                if buf[i + 2] == 10:
                    end = i + 3
                    break
            i += 1
        if end < 0:
            if n - self._msg_start > self.max_header:
                self.diag.warn(frame, f"HTTP: header block longer than {self.max_header} bytes", "http")
                self._reset_message()
                self._state = _SKIP
                self._line_start = False
                return self._msg_start + 1
            self._scan = max(self._msg_start, (i if i >= 0 else n) - 1)
            return pos
        if end - self._msg_start > self.max_header:
            self.diag.warn(frame, f"HTTP: header block longer than {self.max_header} bytes", "http")
            self._reset_message()
            self._state = _SKIP
            self._line_start = False
            return self._msg_start + 1
        self._parse_head(bytes(buf[self._msg_start : end]).decode("latin-1"), frame)
        self._begin_body(out, frame, time)
        return end

    def _parse_head(self, block: str, frame: int) -> None:
        msg = self._msg
        assert msg is not None
        lines = block.split("\n")
        start = lines[0].rstrip("\r")
        if self.is_request:
            sp1 = start.find(" ")
            sp2 = start.rfind(" ")
            msg.method = start[:sp1]
            msg.uri = start[sp1 + 1 : sp2]
            msg.version = start[sp2 + 1 :]
        else:
            msg.version = start[:8]
            msg.status = int(start[9:12])
            msg.reason = start[13:]
        headers = msg.headers
        bad = 0
        for raw in lines[1:]:
            line = raw.rstrip("\r")
            if not line:
                continue
            if line[0] == " " or line[0] == "\t":  # obsolete line folding
                if headers:
                    name, value = headers[-1]
                    headers[-1] = (name, f"{value} {line.strip()}" if value else line.strip())
                else:
                    bad += 1
                continue
            c = line.find(":")
            if c <= 0:
                bad += 1
                continue
            headers.append((line[:c].rstrip(), line[c + 1 :].strip()))
        if bad:
            self.diag.warn(frame, f"HTTP: {bad} malformed header line(s) ignored", "http")

    def _begin_body(self, out: list[HttpMessage], frame: int, time: float) -> None:
        """Decide how the body is delimited (RFC 9112 6.3) and enter the matching state."""
        msg = self._msg
        assert msg is not None
        chunked = False
        te = msg.headers_named("Transfer-Encoding")
        if te:
            codings = [c.strip().lower() for c in ",".join(te).split(",") if c.strip()]
            chunked = bool(codings) and codings[-1] == "chunked"
        length = None if te else _content_length(msg.headers_named("Content-Length"))
        if self.is_request:
            if chunked:
                self._enter_chunked()
            elif te:
                self.diag.warn(frame, f"HTTP: request Transfer-Encoding {','.join(te)!r} not understood",
                               "http")
                self._finish(out, frame, time)
            elif length == -1:
                self.diag.warn(frame, "HTTP: invalid Content-Length in request; body ignored", "http")
                self._finish(out, frame, time)
            elif length:
                self._remaining = length
                self._state = _BODY_LEN
            else:
                self._finish(out, frame, time)
            return
        status = msg.status or 0
        if 100 <= status < 200:
            # Interim response (100 Continue, ...): the final response to the same request follows.
            self._finish(out, frame, time)
            if status == 101:
                self._state = _OPAQUE
            return
        method = self._methods.pop(0) if self._methods else "GET"
        if method == "HEAD" or status == 204 or status == 304:
            self._finish(out, frame, time)
        elif method == "CONNECT" and 200 <= status < 300:
            self._finish(out, frame, time)
            self._state = _OPAQUE
        elif chunked:
            self._enter_chunked()
        elif length is not None and length >= 0:
            if length:
                self._remaining = length
                self._state = _BODY_LEN
            else:
                self._finish(out, frame, time)
        else:
            if length == -1:
                self.diag.warn(frame, "HTTP: invalid Content-Length in response; reading until close", "http")
            self._state = _BODY_EOF

    def _enter_chunked(self) -> None:
        self._state = _CHUNK_SIZE
        self._trailer_bytes = 0

    def _chunk_size(self, buf: bytearray, pos: int, n: int, frame: int) -> int:
        eol = buf.find(b"\n", pos, pos + _MAX_CHUNK_LINE)
        if eol < 0:
            if n - pos >= _MAX_CHUNK_LINE:
                self._drop(frame, "chunk-size line too long")
            return pos
        line = bytes(buf[pos:eol])
        semi = line.find(b";")
        digits = (line if semi < 0 else line[:semi]).strip()
        if not digits or len(digits) > 15 or digits.translate(None, _HEX):
            self._drop(frame, f"bad chunk-size line {line[:40]!r}")
            return pos
        size = int(digits, 16)
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
        else:
            self._state = _TRAILER
        return eol + 1

    def _trailer(self, buf: bytearray, pos: int, n: int, out: list[HttpMessage], frame: int,
                 time: float) -> int:
        msg = self._msg
        assert msg is not None
        while True:
            eol = buf.find(b"\n", pos, n)
            if eol < 0:
                if n - pos + self._trailer_bytes > self.max_header:
                    self._drop(frame, "chunked trailer too long")
                return pos
            line = bytes(buf[pos:eol]).rstrip(b"\r").decode("latin-1")
            self._trailer_bytes += eol + 1 - pos
            pos = eol + 1
            if not line:
                self._finish(out, frame, time)
                return pos
            if self._trailer_bytes > self.max_header:
                self._drop(frame, "chunked trailer too long")
                return pos
            c = line.find(":")
            if c > 0:
                msg.headers.append((line[:c].rstrip(), line[c + 1 :].strip()))

    def _resync(self, buf: bytearray, pos: int, n: int, seg: int) -> int:
        """Skip to the next line that looks like a start line; keep only a bounded tail meanwhile.

        Candidates are line starts and `seg`, the first byte of the newest segment: after a lost
        segment the next message usually begins on a segment boundary, not after a newline.
        """
        start = pos
        i = pos
        while True:
            k = buf.find(b"HTTP/1.", i, n)
            if k < 0:
                break
            if self.is_request:
                nl = buf.rfind(b"\n", start, k)
                first = nl + 1 if nl >= 0 else (start if self._line_start else -1)
                cands: tuple[int, ...] = (first, seg) if first < seg <= k else (first,)
            else:
                ok = (k == start and self._line_start) or (k > start and buf[k - 1] == 10) or k == seg
                cands = (k,) if ok else ()
            eol = buf.find(b"\n", k, n)
            for ls in cands:
                if ls < 0:
                    continue
                if eol < 0:
                    if n - ls <= _MAX_LINE:
                        self._line_start = True
                        return ls  # wait for the rest of the candidate line
                    continue
                line = bytes(buf[ls:eol]).rstrip(b"\r")
                if _is_request_line(line) if self.is_request else _is_status_line(line):
                    self._state = _START
                    self._line_start = True
                    return ls
            i = k + 1
        last_nl = buf.rfind(b"\n", start, n)
        if last_nl >= 0:
            pos = last_nl + 1
            self._line_start = True
        if n - pos > _MAX_LINE:
            pos = n
            self._line_start = False
        return pos

    # -- helpers ------------------------------------------------------------------------------------

    def _keep_body(self, buf: bytearray, pos: int, take: int) -> None:
        room = self.max_body - len(self._body)
        if take <= room:
            self._body += buf[pos : pos + take]
        else:
            if room > 0:
                self._body += buf[pos : pos + room]
            if self._msg is not None:
                self._msg.body_truncated = True

    def _finish(self, out: list[HttpMessage], frame: int, time: float) -> None:
        msg = self._msg
        if msg is not None:
            msg.body = bytes(self._body)
            msg.frame = frame
            msg.time = time
            out.append(msg)
        self._reset_message()
        self._state = _START

    def _reset_message(self) -> None:
        self._msg = None
        self._body = bytearray()
        self._remaining = 0

    def _drop(self, frame: int, why: str) -> None:
        self.diag.warn(frame, f"HTTP: {why}; message dropped", "http")
        self._reset_message()
        self._state = _SKIP
        self._line_start = False

    def _garbage(self, frame: int, buf: bytearray, pos: int) -> None:
        what = "request" if self.is_request else "status"
        self.diag.warn(frame, f"HTTP: expected a {what} line, got {bytes(buf[pos : pos + 24])!r}; resyncing",
                       "http")
        self._reset_message()
        self._state = _SKIP
        self._line_start = False
