"""The exact commands a finding gives for its fix (`Finding.fix_commands`), written once here.

Accounts are named as setspn takes them, ``DOMAIN\\name``: the NetBIOS domain is read from the account's
DN (its first ``DC=`` label, which is the NetBIOS name unless the domain was given another at its
creation) or, without directory facts, from the first label of the realm. kerbtrace never runs them.
"""

from __future__ import annotations

import re

from kerbtrace.context.directory.model import COMPUTER, Account

#: On the client, as an administrator: forget the SYSTEM logon session's tickets and cached failures
#: (a failed TGS lookup is cached for 15 minutes), then register again.
PURGE_CLIENT_TICKETS = "klist -li 0x3e7 purge"
RESTART_CLIENT = "Restart-Service -Name CcmExec"
LIST_DUPLICATE_SPNS = "setspn -X -F"
REPAIR_SECURE_CHANNEL = "Test-ComputerSecureChannel -Repair"
CHECK_TIME_SOURCE = "w32tm /query /source"
RESYNC_TIME = "w32tm /resync /rediscover"
#: Commands that run on the client itself (the fix script wraps them in Invoke-Command per client).
CLIENT_COMMANDS = frozenset({PURGE_CLIENT_TICKETS, RESTART_CLIENT, CHECK_TIME_SOURCE, RESYNC_TIME})
#: Names come from the wire and from pasted files: only characters SPNs and account names use pass into a
#: command, so a crafted name can never add a command or a pipe to the script.
_UNSAFE = re.compile(r"[^\w.$\\/:@-]")


def safe(value: str) -> str:
    """`value` with every character an SPN, host or account name does not use removed."""
    return _UNSAFE.sub("", value)


def domain_of(account: Account) -> str | None:
    """The NetBIOS domain guessed from the DN (``CN=svc-web,CN=Users,DC=corp,DC=lab`` -> ``CORP``)."""
    for rdn in account.dn.split(","):
        key, _, value = rdn.strip().partition("=")
        if key.upper() == "DC" and value:
            return value.upper()
    return None


def qualified(account: Account) -> str:
    """``CORP\\svc-web``: the account as setspn names it."""
    domain = domain_of(account)
    name = account.name
    if account.kind == COMPUTER and not name.endswith("$"):
        name += "$"  # setspn -X/-Q name a computer by its CN
    return safe(f"{domain}\\{name}" if domain else name)


def computer_account(host: str, realm: str | None) -> str:
    """The computer account of a host named by its DNS name, when the directory does not say:
    ``mp01.corp.lab`` in CORP.LAB -> ``CORP\\MP01$``."""
    short = host.split(".", 1)[0].upper()
    domain = (realm or host.partition(".")[2]).split(".", 1)[0].upper()
    return safe(f"{domain}\\{short}$" if domain else f"{short}$")


def on_computer(host: str, *commands: str) -> str:
    """Commands to run on one named computer (the MP), from the admin's console."""
    return f"Invoke-Command -ComputerName {safe(host)} -ScriptBlock {{ {'; '.join(commands)} }}"


def account_identity(name: str) -> str:
    """A sAMAccountName for the AD cmdlets' -Identity, quoted (a computer's ends in $): ``'WK07$'``."""
    return "'" + safe(name.split("@", 1)[0].split("\\")[-1]) + "'"


def setspn_query(spn: str) -> str:
    return f"setspn -Q {safe(spn)}"


def setspn_delete(spn: str, account: str) -> str:
    return f"setspn -D {safe(spn)} {safe(account)}"


def setspn_add(spn: str, account: str) -> str:
    """``setspn -S``: adds only after checking the forest for a duplicate."""
    return f"setspn -S {safe(spn)} {safe(account)}"


def host_spns(host: str) -> tuple[str, str]:
    """HOST/<fqdn> and HOST/<short>: the SPNs a computer account needs to serve HTTP through sPNMappings."""
    host = safe(host.lower().rstrip("."))
    return f"HOST/{host}", f"HOST/{host.split('.', 1)[0].upper()}"
