"""Start-up: the command line does not import what only a context option needs (the LDAP client, the LDIF
parser, the log readers), nor the prefilter's numpy and libpcap binding before a capture is read."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("ldap3", "ldif", "kerbtrace.context.logs", "numpy", "pcapy")


def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_cli_imports_no_context_module():
    assert not _imported("import kerbtrace.cli") & set(HEAVY)


def test_context_modules_load_when_used():
    """The lazy imports still work: parsing an LDIF export and loading a log import what they need."""
    code = ("from kerbtrace.context.directory import parse_directory_text\n"
            "facts = parse_directory_text('dn: CN=MP01,DC=corp,DC=lab\\nsAMAccountName: MP01$\\n"
            "servicePrincipalName: HTTP/mp01.corp.lab\\n', 'x.ldif')\n"
            "assert facts.owners('HTTP/mp01.corp.lab'), facts\n"
            "from kerbtrace.context.directory.ldap_source import DirectoryError, query_ldap\n"
            "try:\n    query_ldap('gopher://x')\nexcept DirectoryError:\n    pass\n")
    mods = _imported(code)
    assert "ldif" in mods and "ldap3" in mods
