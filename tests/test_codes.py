"""Code tables: names agree with impacket/scapy and with the reference notes; lookups never raise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kerbtrace import codes

REPO = Path(__file__).resolve().parents[1]
SHARED_DOCS = REPO.parent / "shared" / "docs"

impacket_constants = pytest.importorskip("impacket.krb5.constants")
nt_errors = pytest.importorskip("impacket.nt_errors")
hresult_errors = pytest.importorskip("impacket.hresult_errors")
system_errors = pytest.importorskip("impacket.system_errors")


# ---------------------------------------------------------------------------------------------- impacket


def test_krb_names_match_impacket_for_every_code():
    known = {e.value: e.name for e in impacket_constants.ErrorCodes}
    assert len(known) > 60
    for value, name in known.items():
        assert codes.krb_error(value).name == name, value


def test_every_code_0_to_93_has_a_name_and_rfc_ones_are_named():
    known = {e.value for e in impacket_constants.ErrorCodes}
    for n in range(94):
        info = codes.krb_error(n)
        assert info.kind == "krb" and info.value == n and info.name and info.meaning
        if n in known:
            assert not info.name.startswith("KRB_ERROR_"), n


def test_krb_names_match_scapy_where_impacket_is_silent():
    kerberos = pytest.importorskip("scapy.layers.kerberos")
    field = next(f for f in kerberos.KRB_ERROR.fields_desc if f.name == "errorCode")
    scapy_names = field.i2s
    assert scapy_names[41] == "KRB_AP_ERR_MODIFIED"
    impacket_known = {e.value for e in impacket_constants.ErrorCodes}
    extra = [v for v in scapy_names if v not in impacket_known]
    assert extra  # IAKerb 85/86, RFC 8636 100
    for value in extra:
        assert codes.krb_error(value).name == scapy_names[value], value


def test_ntstatus_names_match_impacket():
    for value, info in codes.NTSTATUS.items():
        assert value in nt_errors.ERROR_MESSAGES, info.name
        assert nt_errors.ERROR_MESSAGES[value][0] == info.name


def test_hresult_names_match_impacket_where_known():
    both = [v for v in codes.HRESULTS if v in hresult_errors.ERROR_MESSAGES]
    assert len(both) >= 30
    for value in both:
        assert codes.hresult(value).name == hresult_errors.ERROR_MESSAGES[value][0], hex(value)


def test_win32_names_match_impacket_where_known():
    both = [v for v in codes.WIN32 if v in system_errors.ERROR_MESSAGES]
    assert len(both) >= 30
    for value in both:
        assert codes.win32(value).name == system_errors.ERROR_MESSAGES[value][0], value


def test_hresult_from_win32_uses_the_win32_name():
    for value in (5, 1326, 1331, 1355, 1722, 1909, 1396, 1398):
        hr = 0x80070000 | value
        expected = hresult_errors.ERROR_MESSAGES.get(hr, system_errors.ERROR_MESSAGES[value])[0]
        assert codes.hresult(hr).name == expected
        assert codes.hresult(hr).kind == "hresult"


def test_etype_names_match_impacket_and_scapy():
    kerberos = pytest.importorskip("scapy.layers.kerberos")
    for e in impacket_constants.EncryptionTypes:
        if e.value in codes.ETYPES:
            assert codes.etype_name(e.value).replace("-", "_") == e.name, e
    for value, name in kerberos._KRB_E_TYPES.items():
        if value in codes.ETYPES:
            assert codes.etype_name(value) == name.lower(), value
    assert codes.etype_name(18) == "aes256-cts-hmac-sha1-96"
    assert codes.etype_name(23) == "rc4-hmac"


def test_padata_names_match_scapy():
    kerberos = pytest.importorskip("scapy.layers.kerberos")
    both = [t for t in kerberos._PADATA_TYPES if t in codes.PADATA_TYPES]
    assert len(both) >= 25
    for t in both:
        assert codes.padata_name(t) == kerberos._PADATA_TYPES[t].replace("_", "-"), t


def test_msg_type_names_match_impacket():
    tags = {e.value: e.name for e in impacket_constants.ApplicationTagNumbers}
    for t in (10, 11, 12, 13, 14, 15, 20, 21, 22, 30):
        assert codes.msg_type_name(t) == tags[t].replace("_", "-")


# ---------------------------------------------------------------------------------------------- labels


def test_labels():
    assert codes.krb_error(41).label() == "KRB_AP_ERR_MODIFIED (41)"
    assert codes.ntstatus(0xC0000234).label() == "STATUS_ACCOUNT_LOCKED_OUT (0xC0000234)"
    assert codes.hresult(0x8009030E).label() == "SEC_E_NO_CREDENTIALS (0x8009030E)"
    assert codes.win32(1326).label() == "ERROR_LOGON_FAILURE (1326)"
    assert codes.hresult(0x00090312).label() == "SEC_I_CONTINUE_NEEDED (0x00090312)"
    for info in codes.all_codes():
        label = info.label()
        if info.kind in ("ntstatus", "hresult", "ccm"):
            assert re.fullmatch(r"\S+ \(0x[0-9A-F]{8}\)", label), label
        elif info.kind == "event":
            assert re.fullmatch(r"event \d+ \(.+\)", label), label
        elif info.kind == "iis":
            assert re.fullmatch(r"HTTP [1-5]\d\d\.\d+ \(.+\)", label), label
        else:
            assert re.fullmatch(r"\S+ \(-?\d+\)", label), label


def test_signed_and_unsigned_forms_agree():
    assert codes.hresult(-2146893022) is codes.hresult(0x80090322)
    assert codes.ntstatus(-1073741260).name == "STATUS_ACCOUNT_LOCKED_OUT"


def test_iis_sc_win32_status():
    assert codes.iis_win32_status(2148074254).name == "SEC_E_NO_CREDENTIALS"
    assert codes.iis_win32_status(2148074254).label() == "SEC_E_NO_CREDENTIALS (0x8009030E)"
    assert codes.iis_win32_status(5).name == "ERROR_ACCESS_DENIED"
    assert codes.iis_win32_status(5).kind == "win32"
    assert codes.iis_win32_status(0).kind == "win32"
    assert codes.iis_win32_status(2147942405).name == "E_ACCESSDENIED"
    assert codes.iis_win32_status(2148074274).name == "SEC_E_WRONG_PRINCIPAL"
    assert codes.iis_win32_status(590610).name == "SEC_I_CONTINUE_NEEDED"
    assert codes.iis_win32_status(2278556181).value == 0x87D00215


# ---------------------------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize(
    "call, value, prefix",
    [
        (codes.krb_error, 30, "KRB_ERROR_30"),
        (codes.krb_error, 999, "KRB_ERROR_999"),
        (codes.krb_error, -7, "KRB_ERROR_-7"),
        (codes.ntstatus, 0xC0FFEE01, "NTSTATUS_0xC0FFEE01"),
        (codes.hresult, 0x80071234, "HRESULT_FROM_WIN32(4660)"),
        (codes.hresult, 0x8BADF00D, "HRESULT_0x8BADF00D"),
        (codes.hresult, 0x87D00999, "CCM_0x87D00999"),
        (codes.win32, 54321, "WIN32_ERROR_54321"),
        (codes.iis_win32_status, 0xFFFFFFFF, "HRESULT_0xFFFFFFFF"),
        (codes.dns_rcode, 15, "RCODE15"),
    ],
)
def test_unknown_values_fall_back(call, value, prefix):
    info = call(value)
    assert info.name == prefix
    assert info.meaning and not info.normal and info.fix == ""
    assert str(value & 0xFFFFFFFF if info.kind != "krb" else value) in info.label() or "0x" in info.label()


def test_small_enum_fallbacks():
    assert codes.etype_name(99) == "etype-99"
    assert codes.padata_name(9999) == "PA-DATA-9999"
    assert codes.msg_type_name(99) == "msg-type-99"


def test_no_lookup_raises_on_odd_values():
    for v in (-(2**40), -1, 0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40):
        for call in (codes.krb_error, codes.ntstatus, codes.hresult, codes.win32, codes.iis_win32_status,
                     codes.dns_rcode):
            assert call(v).name
        assert codes.etype_name(v) and codes.padata_name(v) and codes.msg_type_name(v)


# ---------------------------------------------------------------------------------------------- contents


def test_normal_codes():
    assert codes.krb_error(25).normal and codes.krb_error(52).normal
    assert codes.hresult(0x00090312).normal
    for bad in (7, 14, 18, 24, 31, 37, 41, 68):
        assert not codes.krb_error(bad).normal
    assert not codes.hresult(0x80090322).normal


def test_failures_in_this_flow_carry_a_fix():
    must = [codes.krb_error(v) for v in (6, 7, 8, 12, 14, 18, 23, 24, 31, 33, 37, 41, 68)]
    must += [codes.ntstatus(v) for v in (0xC0000234, 0xC0000072, 0xC0000193, 0xC0000070, 0xC0000071,
                                         0xC0000133, 0xC000005E, 0xC0000413)]
    must += [codes.win32(v) for v in (1326, 1909, 1331, 1355, 1722, 12002, 12007, 12029, 12030)]
    must += [codes.hresult(v) for v in (0x80090322, 0x80090324, 0x80090311, 0x80072EE7)]
    for info in must:
        assert info.fix, info.label()
    for info in codes.all_codes():
        assert info.meaning.strip(), info.label()


def test_key_explanations_name_the_right_tools():
    m41 = codes.krb_error(41)
    assert "HTTP/<mp>" in m41.meaning and "setspn -Q HTTP/<mp fqdn>" in m41.fix and "setspn -D" in m41.fix
    assert "HOST/<mp>" in m41.fix and "Client Approval" in m41.fix
    assert "w32tm /resync" in codes.krb_error(37).fix and "5 minutes" in codes.krb_error(37).fix
    assert "/resetpwd" in codes.krb_error(31).fix
    assert "msDS-SupportedEncryptionTypes" in codes.krb_error(14).fix
    assert codes.hresult(0x80090322).fix == m41.fix
    assert "NTLM" in codes.krb_error(7).meaning


def test_unconfirmed_mappings_are_hedged():
    for value in (0x80090303, 0x80090342, 0x8009030C):
        assert "probably" in codes.hresult(value).meaning.lower(), hex(value)


def test_ccm_enums():
    expected = {0: "Registered", 1: "Pending", 2: "Reset", 3: "Error", 4: "CertificateReset"}
    assert codes.CCM_REG_STATUS == expected
    assert codes.CCM_APPROVAL_STATUS[1] == "Approved"
    assert codes.CCM_APPROVAL_STATUS[-1] == "Unknown"
    assert set(codes.CCM_APPROVAL_STATUS) == {-1, 0, 1, 2, 3}


# ------------------------------------------------------------------------------------------ reference notes


def _doc(name: str) -> str:
    path = SHARED_DOCS / name
    if not path.exists():
        pytest.skip(f"reference note {name} not present beside the repository")
    return path.read_text(encoding="utf-8")


def test_reference_krb_table_is_covered():
    text = _doc("kerberos-failures.md")
    section = text[text.index("### 7.1"):text.index("### 7.2")]
    rows = re.findall(r"^\| (\d+) \| (K\w+)", section, re.M)
    assert len(rows) >= 20
    for value, name in rows:
        # The note spells 14 as in impacket (ETYPE_NOSUPP); names must agree exactly.
        assert codes.krb_error(int(value)).name == name


def test_reference_ntstatus_table_is_complete():
    text = _doc("kerberos-failures.md")
    section = text[text.index("### 7.2"):text.index("## 8.")]
    rows = re.findall(r"^\| 0x([0-9A-F]{8}) \| (STATUS_\w+)", section, re.M)
    assert len(rows) >= 12
    for value, name in rows:
        info = codes.ntstatus(int(value, 16))
        assert info.name == name and info.fix


def test_reference_sspi_table_is_complete_with_iis_decimals():
    text = _doc("kerberos-failures.md")
    section = text[text.index("## 8."):text.index("## 9.")]
    rows = re.findall(r"^\| 0x([0-9A-F]{8}) \| (\d+) \| [-\d]* \| (SEC_[EI]_\w+)", section, re.M)
    assert len(rows) >= 25
    for hexval, decimal, name in rows:
        assert codes.hresult(int(hexval, 16)).name == name
        assert int(hexval, 16) in codes.HRESULTS, name
        assert codes.iis_win32_status(int(decimal)).name == name


def test_reference_registration_enums():
    text = _doc("ccm-protocol.md")
    for value, name in codes.CCM_REG_STATUS.items():
        assert f"{value} = **{name}**" in text
    for value in (-1, 0, 1, 2):
        word = codes.CCM_APPROVAL_STATUS[value].split()[0]
        assert f"**{value} {word}**" in text


# ---------------------------------------------------------------------------------------------- docs


def test_docs_codes_md_is_current():
    doc = REPO / "docs" / "codes.md"
    assert doc.read_text(encoding="utf-8") == codes._markdown()
