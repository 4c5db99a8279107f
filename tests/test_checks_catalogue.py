"""The cause catalogue: one module per code, documented, and docs/causes.md in step with the code."""

from __future__ import annotations

from kerbtrace.checks import CAUSE_CODES, CHECKS
from kerbtrace.checks.__main__ import catalogue
from tests.conftest import REPO


def test_each_cause_lives_in_a_module_named_after_it():
    for module in CHECKS:
        assert module.__name__.rsplit(".", 1)[1] == module.CODE
        assert module.__doc__ and module.__doc__.startswith(module.CODE + ":")
    assert len(set(CAUSE_CODES)) == len(CAUSE_CODES)
    issue_codes = {"ok", "spn_wrong_account", "spn_missing", "no_trust_path", "trust_broken", "clock_skew",
                   "account_revoked", "preauth_failed", "ntlm_fallback", "no_kerberos_attempt", "kdc_unreachable",
                   "dns_failure", "duplicate_guid", "etype_unsupported", "incomplete_capture"}
    assert issue_codes <= set(CAUSE_CODES)


def test_docs_causes_is_current():
    assert (REPO / "docs" / "causes.md").read_text() == catalogue()


def test_every_cause_names_its_references_and_findings_carry_them():
    from kerbtrace.analysis import analyze
    from tests.conftest import CAPTURES

    for module in CHECKS:
        assert module.REFERENCES and all(isinstance(r, str) and len(r) > 10 for r in module.REFERENCES)
    result = analyze([str(CAPTURES / "mixed.pcapng")], progress=False)
    findings = [f for r in result.clients for f in r.findings if f.code != "unexplained"]
    assert findings
    by_code = {m.CODE: list(m.REFERENCES) for m in CHECKS}
    assert all(f.references == by_code[f.code] for f in findings)
