"""Lenient CCM reading, on messages made by the lab's own builder (lab/ccm_message.py) with the variants
that differ between ConfigMgr versions and tools: another root element for the registration reply, the
client GUID only in the header's SourceID, a Body Length that disagrees with the body.

The end to end case (lab MP and client over loopback, recorded, analysed) is in tests/test_lab_ccm.py.
"""

from __future__ import annotations

import socket
import threading
import zlib

import pytest

pytest.importorskip("cryptography")

from kerbtrace.decoders.ccm import decode_ccm  # noqa: E402
from kerbtrace.decoders.http import HttpMessage  # noqa: E402
from kerbtrace.pipeline import is_registration_request  # noqa: E402
from lab import ccm_message as ccm  # noqa: E402

SMSID = "GUID:0B1F5036-1111-4A2B-9C3D-4E5F60718293"
IDENTITY = ccm.make_identity("wk02", key_bits=1024)


def _request(**kw: object) -> bytes:
    args = dict(netbios="wk02", fqdn="wk02.corp.lab", smsid=SMSID, mp_fqdn="mp01.corp.lab", identity=IDENTITY)
    args.update(kw)
    return ccm.build_registration_request(**args)  # type: ignore[arg-type]


def _reply(**kw: object) -> bytes:
    args = dict(status=1, approval_status=0, smsid=SMSID, mp_netbios="MP01", client_netbios="WK02",
                request_id="{AB}")
    args.update(kw)
    return ccm.build_registration_reply(**args)  # type: ignore[arg-type]


def test_smsid_only_in_source_id() -> None:
    msg = decode_ccm(ccm.CONTENT_TYPE, _request(smsid="", source_id=SMSID))
    assert msg is not None and msg.kind == "registration_request"
    assert (msg.smsid, msg.smsid_from, msg.source_id) == (SMSID, "header", SMSID)
    assert msg.netbios_name == "WK02" and not msg.warnings


def test_body_smsid_wins_over_source_id() -> None:
    other = "GUID:11111111-2222-3333-4444-555555555555"
    msg = decode_ccm(ccm.CONTENT_TYPE, _request(source_id=other))
    assert msg is not None and (msg.smsid, msg.smsid_from) == (SMSID, "body")


def test_no_guid_anywhere() -> None:
    msg = decode_ccm(ccm.CONTENT_TYPE, _request(smsid=""))
    assert msg is not None and msg.smsid == "" and msg.smsid_from is None
    # a SourceID that is not a GUID: is not taken for one
    msg = decode_ccm(ccm.CONTENT_TYPE, _request(smsid="", source_id="WK02"))
    assert msg is not None and msg.smsid == "" and msg.smsid_from is None


@pytest.mark.parametrize("root", ["RegistrationReply", "ClientRegistrationReply", "Reply"])
def test_reply_with_another_root_on_a_registration_endpoint(root: str) -> None:
    raw = _reply(root=root)
    msg = decode_ccm(ccm.CONTENT_TYPE, raw, answers_registration=True)
    assert msg is not None and msg.kind == "registration_response"
    assert (msg.status, msg.approval_status, msg.smsid) == (1, 0, SMSID)
    assert any(root in w for w in msg.warnings)
    # not the answer to a registration request: not taken for a registration reply
    other = decode_ccm(ccm.CONTENT_TYPE, raw)
    assert other is not None and other.kind == "other" and other.approval_status is None


def _edit_body(raw: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    """The same multipart with its body XML changed by `edit` (header, and its Length, kept)."""
    b = ("--" + ccm.BOUNDARY).encode()
    head, body_part, tail = raw.split(b"\r\n" + b)
    part_headers, compressed = body_part.split(b"\r\n\r\n", 1)
    xml = zlib.decompress(compressed)[:-2].decode("utf-16-le")
    plain = edit(xml).encode("utf-16-le") + b"\x00\x00"
    return head + b"\r\n" + b + part_headers + b"\r\n\r\n" + zlib.compress(plain) + b"\r\n" + b + tail


def test_reply_attributes_on_a_child_element() -> None:
    raw = _edit_body(_reply(root="Reply"), lambda xml: f"<Envelope><Meta Site=\"LAB\"/>{xml}</Envelope>")
    msg = decode_ccm(ccm.CONTENT_TYPE, raw, answers_registration=True)
    assert msg is not None and msg.kind == "registration_response"
    assert (msg.status, msg.approval_status, msg.smsid) == (1, 0, SMSID)


def test_reply_without_outcome_attributes_stays_other() -> None:
    raw = _edit_body(_reply(root="Reply"), lambda xml: xml.replace('Status="1"', "").replace('ApprovalStatus="0"', ""))
    msg = decode_ccm(ccm.CONTENT_TYPE, raw, answers_registration=True)
    assert msg is not None and msg.kind == "other" and msg.approval_status is None


def test_enum_names_for_status_values() -> None:
    raw = _edit_body(_reply(), lambda xml: xml.replace('Status="1"', 'Status="Pending"')
                     .replace('ApprovalStatus="0"', 'ApprovalStatus="Pending"'))
    msg = decode_ccm(ccm.CONTENT_TYPE, raw, answers_registration=True)
    assert msg is not None and (msg.status, msg.approval_status) == (1, 0)
    raw = _edit_body(_reply(), lambda xml: xml.replace('ApprovalStatus="0"', 'ApprovalStatus="maybe"'))
    msg = decode_ccm(ccm.CONTENT_TYPE, raw, answers_registration=True)
    assert msg is not None and msg.approval_status is None and any("ApprovalStatus" in w for w in msg.warnings)


@pytest.mark.parametrize("declared", [0, 7, 100000])
def test_wrong_body_length_is_a_note_not_distrust(declared: int) -> None:
    req = decode_ccm(ccm.CONTENT_TYPE, _request(declared_length=declared))
    assert req is not None and req.kind == "registration_request"
    assert (req.netbios_name, req.fq_name, req.smsid) == ("WK02", "wk02.corp.lab", SMSID)
    assert any("header Length says" in w for w in req.warnings)
    rep = decode_ccm(ccm.CONTENT_TYPE, _reply(declared_length=declared), answers_registration=True)
    assert rep is not None and rep.kind == "registration_response" and rep.approval_status == 0
    assert any("header Length says" in w for w in rep.warnings)


def test_registration_endpoints() -> None:
    def req(uri: str) -> HttpMessage:
        return HttpMessage(is_request=True, frame=1, time=0.0, method="CCM_POST", uri=uri, version="HTTP/1.1")

    reg = decode_ccm(ccm.CONTENT_TYPE, _request())
    assert is_registration_request(req("/ccm_system_windowsauth/request"), None)
    assert is_registration_request(req("/CCM_System/request?x=1"), reg)
    assert not is_registration_request(req("/ccm_system/request"), None)  # signed policy traffic
    assert not is_registration_request(req("/SMS_MP/.sms_aut"), reg)


# ------------------------------------------------------------------------------------------ over real sockets

ADDR = "127.0.5.60"


def _answer_one(listener: socket.socket, reply: bytes) -> None:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += conn.recv(65536)
        conn.sendall(reply)


def test_other_root_reply_over_the_wire_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A registration on the Windows-auth endpoint answered 200 with Status=1 ApprovalStatus=0 under another
    root element, recorded from real sockets: the reply is read, the client is not approved (and the
    verdict is not left open as if the reply were unreadable)."""
    from kerbtrace.analysis import analyze
    from tests.loopback import recording

    body = _request(smsid="", source_id=SMSID)
    request = ("CCM_POST /ccm_system_windowsauth/request HTTP/1.1\r\nHost: mp01.corp.lab\r\nUser-Agent: ccmhttp\r\n"
               f"Content-Type: {ccm.CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    reply_body = _reply(root="RegistrationReply")
    reply = (f"HTTP/1.1 200 OK\r\nContent-Type: {ccm.CONTENT_TYPE}\r\nContent-Length: {len(reply_body)}\r\n\r\n"
             ).encode() + reply_body
    pcap = tmp_path / "other_root.pcapng"
    with recording(pcap, f"host {ADDR}"), socket.create_server((ADDR, 80)) as listener:
        server = threading.Thread(target=_answer_one, args=(listener, reply))
        server.start()
        with socket.create_connection((ADDR, 80), source_address=("127.0.5.61", 0)) as client:
            client.sendall(request)
            while client.recv(65536):
                pass
        server.join(timeout=10)
    result = analyze([str(pcap)], progress=False)
    [client_result] = result.clients
    assert client_result.client.hostname == "WK02" and client_result.client.smsid == SMSID
    assert client_result.verdict == "not_approved"
    assert any("RegistrationReply" in w.message for w in result.diag.warnings)
