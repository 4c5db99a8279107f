"""Hostile traffic recorded from real sockets on loopback: garbage base64 in Negotiate headers, a zlib
bomb in a CCM body, a truncated multipart. kerbtrace must warn (with frame numbers), stay fast and
bounded, and never raise.

The traffic is real: a small HTTP server and client exchange it over 127.0.0.77 while dumpcap records
it (needs the right to capture on `lo`, which CI has as root).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

import pytest

ADDR = "127.0.0.77"
BOUNDARY = "aAbBcCdDv1234567890VxXyYzZ"


def _bomb(size: int = 512 << 20) -> bytes:
    """zlib of `size` bytes of zeros, made in chunks so the test itself stays small."""
    comp = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    out = [comp.compress(chunk) for _ in range(size >> 20)]
    out.append(comp.flush())
    return b"".join(out)


def _multipart(body: bytes) -> bytes:
    header = '<Msg ReplyCompression="zlib" SchemaVersion="1.1"><Hooks><Hook3 Name="zlib-compress" /></Hooks>' \
             "<SourceHost>EVIL01</SourceHost><TargetEndpoint>MP_ClientRegistration</TargetEndpoint></Msg>"
    return (f"--{BOUNDARY}\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n".encode()
            + header.encode("utf-16") + f"\r\n--{BOUNDARY}\r\ncontent-type: application/octet-stream\r\n\r\n".encode()
            + body + f"\r\n--{BOUNDARY}--".encode())


def _serve(listener: socket.socket, replies: list[bytes]) -> None:
    conn, _ = listener.accept()
    with conn:
        for reply in replies:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                rest += conn.recv(65536)
            conn.sendall(reply)


def _request(auth: str | None, body: bytes) -> bytes:
    lines = ["CCM_POST /ccm_system_windowsauth/request HTTP/1.1", "Host: mp66.corp.lab", "User-Agent: ccmhttp",
             f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"', f"Content-Length: {len(body)}"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _response(status: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}"]
    if body:
        lines.append(f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"')
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def hostile_capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "hostile.pcapng"
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed (Debian: apt-get install tshark): it records the hostile traffic")
    dumpcap = subprocess.Popen(["dumpcap", "-i", "lo", "-f", f"host {ADDR}", "-n", "-q", "-s", "0", "-w", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        if dumpcap.poll() is not None:
            pytest.skip(f"dumpcap cannot capture on lo (run as root): {dumpcap.stderr.read().decode()[-300:]}")
        bomb = _bomb()
        requests = [
            _request(None, _multipart(zlib.compress(b"<x/>"))),
            _request("Negotiate !!!not*base64***", _multipart(bomb)),
            _request("Negotiate YIIFAAYGKwYBBQUCoIIE", _multipart(b"\x78\x9c\x01\x02")),  # truncated token
        ]
        replies = [
            _response("401 Unauthorized", ["WWW-Authenticate: Negotiate", "WWW-Authenticate: NTLM"]),
            _response("401 Unauthorized", ["WWW-Authenticate: Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg@@"]),
            _response("200 OK", ["WWW-Authenticate: Negotiate oRQwEqADCgEAoQsGCSqGSIL3EgECAg=="], _multipart(bomb)),
        ]
        listener = socket.create_server((ADDR, 8080))
        server = threading.Thread(target=_serve, args=(listener, replies))
        server.start()
        with socket.create_connection((ADDR, 8080), source_address=("127.0.0.78", 0)) as client:
            for req in requests:
                client.sendall(req)
                time.sleep(0.3)
        server.join(timeout=30)
        listener.close()
        time.sleep(0.5)
    finally:
        dumpcap.send_signal(signal.SIGINT)
        dumpcap.wait(timeout=20)
    return path


def test_hostile_traffic_gives_warnings_not_tracebacks(hostile_capture):
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "kerbtrace", "analyze", str(hostile_capture), "--json", "-"],
                         capture_output=True, text=True, timeout=300, env={**os.environ})
    elapsed = time.monotonic() - start
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    messages = " | ".join(w["message"] for w in doc["warnings"])
    assert "base64" in messages.lower(), messages
    assert "limit" in messages.lower() or "exceeds" in messages.lower(), messages
    assert all(w["frame"] for w in doc["warnings"] if "base64" in w["message"].lower())
    clients = doc["clients"]
    assert [c["client_ip"] for c in clients] == ["127.0.0.78"]
    # the MP never sent a readable registration reply: the outcome is not claimed
    assert clients[0]["verdict"] in ("inconclusive", "not_approved")
    assert elapsed < 120
