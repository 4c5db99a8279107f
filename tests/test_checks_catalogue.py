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
