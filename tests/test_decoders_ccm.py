"""CCM message decoder on bodies built exactly as the ConfigMgr messaging tools build them."""

from __future__ import annotations

import time
import tracemalloc
import zlib
from email import message_from_bytes

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kerbtrace.decoders import ccm as ccm_module
from kerbtrace.decoders.ccm import DEFAULT_BOUNDARY, decode_ccm

CT = f'multipart/mixed; boundary="{DEFAULT_BOUNDARY}"'

HEADER = (
    '<Msg ReplyCompression="zlib" SchemaVersion="1.1"><Body Type="ByteRange" Length="{length}" Offset="0" />'
    "<CorrelationID>{00000000-0000-0000-0000-000000000000}</CorrelationID>"
    '<Hooks><Hook3 Name="zlib-compress" /></Hooks><ID>{5DD100CD-DF1D-45F5-BA17-A327F43465F8}</ID>'
    '<Payload Type="inline" /><Priority>0</Priority><Protocol>http</Protocol><ReplyMode>Sync</ReplyMode>'
    "<ReplyTo>direct:WS01:SccmMessaging</ReplyTo><SentTime>2023-10-22T13:00:00Z</SentTime>"
    "<SourceHost>WS01</SourceHost><TargetAddress>mp:MP_ClientRegistration</TargetAddress>"
    "<TargetEndpoint>MP_ClientRegistration</TargetEndpoint><TargetHost>mp01.corp.local</TargetHost>"
    "<Timeout>60000</Timeout></Msg>"
)
REQUEST = (
    '<ClientRegistrationRequest><Data HashAlgorithm="1.2.840.113549.1.1.11" SMSID="" RequestType="Registration" '
    'TimeStamp="2023-10-22T13:00:00Z"><AgentInformation AgentIdentity="CCMSetup.exe" '
    'AgentVersion="5.00.8325.0000" AgentType="0" /><Certificates><Encryption Encoding="HexBinary" KeyType="1">'
    '3082AB</Encryption><Signing Encoding="HexBinary" KeyType="1">3082AB</Signing></Certificates>'
    '<DiscoveryProperties><Property Name="Netbios Name" Value="WS01" />'
    '<Property Name="FQ Name" Value="ws01.corp.local" /><Property Name="Locale ID" Value="2057" />'
    '<Property Name="InternetFlag" Value="0" /><Property Name="HardwareID1" Value="2:ABCDEF0123" />'
    "</DiscoveryProperties></Data><Signature><SignatureValue>00FF</SignatureValue></Signature>"
    "</ClientRegistrationRequest>"
)
RESPONSE = ('<ClientRegistrationResponse ResponseType="Registration" TimeStamp="2023-10-22T13:00:01Z" Status="0" '
            'SMSID="GUID:1AF488D8-7B42-4842-A4BD-B3A2842BBC42" ApprovalStatus="1"/>')


def build(header: str, body: str, *, compress: bool = True, boundary: str = DEFAULT_BOUNDARY,
          part_headers: tuple[bytes, bytes] = (b"content-type: text/plain; charset=UTF-16",
                                               b"content-type: application/octet-stream"),
          bom: bool = True) -> bytes:
    """Request/reply body as ccm-protocol.md section 2 describes it (the tools' byte layout)."""
    plain = body.encode("utf-16-le") + b"\x00\x00"
    length = len(plain)  # Length counts the NUL, not the CRLF appended below
    plain += b"\r\n"
    header = header.replace("{length}", str(length))
    part1 = (b"\xff\xfe" if bom else b"") + header.encode("utf-16-le")
    part2 = zlib.compress(plain) if compress else plain
    b = boundary.encode()
    return (b"--" + b + b"\r\n" + part_headers[0] + b"\r\n\r\n" + part1 + b"\r\n--" + b + b"\r\n" +
            part_headers[1] + b"\r\n\r\n" + part2 + b"\r\n--" + b + b"--")


def test_registration_request() -> None:
    body = build(HEADER, REQUEST)
    # The layout is a valid MIME multipart: the standard library splits it into the same two parts.
    mime = message_from_bytes(b"Content-Type: " + CT.encode() + b"\r\n\r\n" + body)
    parts = [p.get_payload(decode=True) for p in mime.get_payload()]
    assert parts[0].startswith(b"\xff\xfe<\x00M\x00s\x00g\x00") and parts[1][:2] == b"\x78\x9c"
    m = decode_ccm(CT, body)
    assert m is not None and m.warnings == []
    assert m.kind == "registration_request"
    assert (m.msg_id, m.source_host, m.source_id, m.target_endpoint, m.target_host, m.reply_mode) == (
        "{5DD100CD-DF1D-45F5-BA17-A327F43465F8}", "WS01", None, "MP_ClientRegistration", "mp01.corp.local", "Sync")
    assert (m.netbios_name, m.fq_name, m.smsid, m.request_type) == ("WS01", "ws01.corp.local", "", "Registration")
    assert (m.agent_identity, m.agent_version, m.hardware_id) == ("CCMSetup.exe", "5.00.8325.0000", "2:ABCDEF0123")
    assert m.status is None and m.approval_status is None


def test_registration_response() -> None:
    header = HEADER.replace("MP_ClientRegistration", "direct:WS01:SccmMessaging")
    m = decode_ccm(CT, build(header, RESPONSE))
    assert m is not None and m.warnings == []
    assert m.kind == "registration_response"
    assert (m.status, m.approval_status, m.smsid, m.response_type) == (
        0, 1, "GUID:1AF488D8-7B42-4842-A4BD-B3A2842BBC42", "Registration")
    pending = RESPONSE.replace('Status="0"', 'Status="1"').replace('ApprovalStatus="1"', 'ApprovalStatus="-1"')
    m = decode_ccm(CT, build(header, pending))
    assert (m.status, m.approval_status) == (1, -1)


def test_variants_the_mp_tolerates() -> None:
    """Unquoted/other boundary, upper-case and extra part headers, no BOM, reordered and plain body."""
    reordered = HEADER.replace("<SourceHost>WS01</SourceHost>", "").replace("<Msg ", "<Msg ").replace(
        "</Msg>", "<SourceHost>WS01</SourceHost></Msg>")
    body = build(reordered, REQUEST, boundary="b0undary-42", bom=False,
                 part_headers=(b"Content-Type: text/plain; charset=UTF-16\r\nContent-Disposition: form-data",
                               b"CONTENT-TYPE: application/octet-stream\r\nContent-Transfer-Encoding: binary"))
    m = decode_ccm("multipart/mixed; boundary=b0undary-42; charset=x", body)
    assert m is not None and m.warnings == [] and (m.netbios_name, m.source_host) == ("WS01", "WS01")
    # Without Hook3 zlib-compress the body is plain UTF-16LE (PXEThief style).
    plain_header = HEADER.replace('<Hooks><Hook3 Name="zlib-compress" /></Hooks>', "")
    m = decode_ccm(CT, build(plain_header, REQUEST, compress=False))
    assert m is not None and m.warnings == [] and m.fq_name == "ws01.corp.local"
    # Any zlib level (78 01 / 78 5E / 78 DA headers).
    for level in (0, 1, 6, 9):
        raw = build(HEADER, RESPONSE)
        part2 = zlib.compress(RESPONSE.encode("utf-16-le") + b"\x00\x00\r\n", level)
        start = raw.index(b"\r\n\r\n", raw.index(b"application/octet-stream")) + 4
        raw = raw[:start] + part2 + b"\r\n--" + DEFAULT_BOUNDARY.encode() + b"--"
        assert decode_ccm(None, raw).approval_status == 1


def test_not_ccm_multipart_is_none() -> None:
    assert decode_ccm(CT, b"") is None  # empty 200
    assert decode_ccm("text/html", b"<html><body>403 - Forbidden</body></html>") is None
    assert decode_ccm(None, b"<HTML>policy not ready</HTML>") is None
    assert decode_ccm(CT, b"no boundary anywhere in here") is None


def test_zlib_bomb_is_cut_quickly_and_small() -> None:
    comp = zlib.compressobj(9)
    zero = bytes(1 << 20)
    chunks = [comp.compress(zero) for _ in range(1024)]  # 1 GiB of zeros, streamed
    chunks.append(comp.flush())
    bomb = b"".join(chunks)
    assert len(bomb) < 2 << 20
    body = (b"--" + DEFAULT_BOUNDARY.encode() + b"\r\ncontent-type: text/plain; charset=UTF-16\r\n\r\n\xff\xfe" +
            HEADER.replace("{length}", "1073741824").encode("utf-16-le") + b"\r\n--" + DEFAULT_BOUNDARY.encode() +
            b"\r\ncontent-type: application/octet-stream\r\n\r\n" + bomb + b"\r\n--" + DEFAULT_BOUNDARY.encode() +
            b"--")
    tracemalloc.start()
    t0 = time.perf_counter()
    m = decode_ccm(CT, body)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert m is not None and any("exceeds 4 MiB limit" in w for w in m.warnings)
    assert m.source_host == "WS01"  # the header part is still read
    print(f"zlib bomb: cut in {dt * 1000:.0f} ms, peak {peak >> 20} MiB traced")
    assert dt < 2.0 and peak < 64 << 20


def test_bad_input_gives_warnings_not_exceptions() -> None:
    good = build(HEADER, REQUEST)
    # Truncated anywhere: never raises; the header survives once part 1 is complete.
    for cut in range(0, len(good), 7):
        m = decode_ccm(CT, good[:cut])
        if m is not None:
            assert isinstance(m.warnings, list)
    m = decode_ccm(CT, good[: len(good) - 40])
    assert m.source_host == "WS01" and m.warnings
    # Missing part 2.
    only_header = good[: good.index(b"\r\n--" + DEFAULT_BOUNDARY.encode() + b"\r\ncontent-type: application")]
    m = decode_ccm(CT, only_header + b"\r\n--" + DEFAULT_BOUNDARY.encode() + b"--")
    assert m.kind == "registration_request" and "no body part" in m.warnings
    # Garbage in place of the zlib stream and of the header.
    m = decode_ccm(CT, good.replace(b"\x78\x9c", b"\x78\x9c\xff\xff\xff"))
    assert m.netbios_name is None and any("inflate" in w or "XML" in w for w in m.warnings)
    m = decode_ccm(CT, b"--" + DEFAULT_BOUNDARY.encode() + b"\r\n\r\n\x00\xd8\x00\xd8garbage\r\n--" +
                   DEFAULT_BOUNDARY.encode() + b"--")
    assert m is not None and m.kind == "other" and m.warnings
    # Odd-length and invalid UTF-16 (lone surrogate).
    m = decode_ccm(CT, build(HEADER, REQUEST).replace(b"\xff\xfe<\x00", b"\xff\xfe\x00\xd8<\x00", 1))
    assert any("bad UTF-16" in w for w in m.warnings)


def test_entity_expansion_is_refused() -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'
                        for i in range(10))
              + ']><ClientRegistrationResponse Status="&lol9;" ApprovalStatus="1"/>')
    t0 = time.perf_counter()
    m = decode_ccm(CT, build(HEADER, laughs))
    assert time.perf_counter() - t0 < 1.0
    assert m.status is None and any("DOCTYPE" in w for w in m.warnings)
    m = decode_ccm(CT, build('<!DOCTYPE x SYSTEM "file:///etc/passwd"><Msg/>', RESPONSE))
    assert any("header" in w and "DOCTYPE" in w for w in m.warnings)
    assert m.approval_status == 1  # the zlib body is still read


# --- the expat readers against ElementTree -------------------------------------------------------------
# decode_ccm reads the XML with expat handlers that keep only what it uses; ElementTree (the tree the
# decoder used to build) is the reference: the same documents must give the same values and the same errors.

_NAMES = ["Msg", "ID", "SourceHost", "SourceID", "Hooks", "Hook3", "Body", "TargetEndpoint", "SentTime", "Data",
          "AgentInformation", "Property", "ClientRegistrationResponse", "ClientRegistrationRequest", "p:Data", "x"]
_ATTRS = ["Name", "Value", "Length", "SMSID", "Status", "ApprovalStatus", "xmlns", "xmlns:p", "p:Name"]
_VALUES = ["zlib-compress", "ZLIB-COMPRESS", "Netbios Name", "FQ Name", "hardwareid1", "1", "-1", "urn:x", "a&amp;b",
           "&lt;", "GUID:1"]


@st.composite
def _xml_documents(draw) -> str:
    """Small documents of the CCM vocabulary, well-formed or damaged (cut, a character changed, entities).
    (No lone surrogate: the decoder's text comes from a UTF-16 decode, which replaces them.)"""
    def element(depth: int) -> str:
        name = draw(st.sampled_from(_NAMES))
        attrs = draw(st.dictionaries(st.sampled_from(_ATTRS), st.sampled_from(_VALUES), max_size=3))
        head = name + "".join(f' {k}="{v}"' for k, v in attrs.items())
        parts = []
        for _ in range(draw(st.integers(0, 4 if depth < 3 else 0))):
            if draw(st.booleans()):
                parts.append(draw(st.sampled_from([" text ", "\n", "a &amp; b", "<![CDATA[<x>]]>", "<!-- c -->",
                                                   "<?pi x?>", "&#65;"])))
            else:
                parts.append(element(depth + 1))
        return f"<{head}>{''.join(parts)}</{name}>" if parts else f"<{head}/>"

    text = element(0)
    damage = draw(st.sampled_from(["none", "cut", "byte", "entity", "junk", "bom"]))
    if damage == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif damage == "byte":
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + draw(st.sampled_from(["<", ">", "&", '"', "/", "\x00", "\ufffd"])) + text[i + 1:]
    elif damage == "entity":
        text = text.replace(">", ">&undefined;", 1)
    elif damage == "junk":
        text += draw(st.sampled_from(["<x/>", "x", " "]))
    elif damage == "bom":
        text = "\ufeff" + text
    return text


def _plain(attrs: dict[str, str]) -> dict[str, str]:
    """Attributes without a namespace: the only ones the decoder reads (ElementTree spells a namespaced one
    "{uri}name", expat "uri}name")."""
    return {k: v for k, v in attrs.items() if "}" not in k}


def _reference(text: str) -> tuple:
    """What the readers must find, from ElementTree's tree (or its error)."""
    from xml.etree import ElementTree

    if not text:
        return ("error", None)
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        return ("error", str(exc))
    def local(tag: str) -> str:
        return tag.rpartition("}")[2]

    texts: dict[str, str] = {}
    compressed, lengths = False, []
    for el in root:
        name = local(el.tag)
        texts.setdefault(name, el.text or "")
        if name == "Hooks":
            compressed = any((h.get("Name") or "").lower() == "zlib-compress" for h in el)
        elif name == "Body":
            lengths.append(el.get("Length"))
    every = [(local(el.tag), _plain(el.attrib)) for el in root.iter()]
    last = {name: attrs for name, attrs in every if name in ("Data", "AgentInformation")}
    props = {(a.get("Name") or "").lower(): a.get("Value") for name, a in every if name == "Property"}
    props = {k: v for k, v in props.items() if k in ("netbios name", "fq name", "hardwareid1")}
    return ("ok", local(root.tag), texts, compressed, lengths, every[:256], last, props)


@settings(max_examples=400, deadline=None, database=None)
@given(_xml_documents())
@example('<Msg><Hooks><Hook3 Name="zlib-compress"/></Hooks><Hooks><Hook1 Name="x"/></Hooks></Msg>')  # the last governs
@example("<Msg><ID> a <x>b</x> c </ID><ID>d</ID><Body Length='1'/><Body/></Msg>")  # text before the first child
@example('<R><Property Name="FQ Name" Value="a"/><Property Name="fq name" Value="b"/><Data SMSID="1"/><Data/></R>')
def test_expat_readers_match_elementtree(text: str) -> None:
    expected = _reference(text)
    header, body = ccm_module._Header(), ccm_module._Body()
    warnings: list[str] = []
    ok = ccm_module._parse(text, warnings, "header", header.start, header.data, header.end)
    ok_body = ccm_module._parse(text, warnings, "body", body.start)
    assert ok == ok_body
    if expected[0] == "error":
        why = "empty" if expected[1] is None else f"XML not well-formed ({expected[1]})"
        assert not ok and warnings == [f"header: {why}", f"body: {why}"]
        return
    assert ok and not warnings
    _, root, texts, compressed, lengths, first, last, props = expected
    assert (header.root, header.texts, header.compressed, header.lengths) == (root, texts, compressed, lengths)
    plain_last = {name: _plain(attrs) for name, attrs in body.last.items()}
    assert ([(n, _plain(a)) for n, a in body.first], plain_last, body.properties) == (first, last, props)
