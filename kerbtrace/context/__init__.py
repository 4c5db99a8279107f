"""Context beside the capture: directory facts, IIS/MP/client logs, DC security events, the MP's keytab.

What an admin collects besides a capture enters the analysis here, beside the checks and never inside
the decoders. `Beside` holds what one run was given, loaded once; the checks read it through
`kerbtrace.checks.base.Context`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kerbtrace.context.dc_events import DcEventLog
    from kerbtrace.context.directory import DirectoryFacts
    from kerbtrace.context.keytab import Keytab
    from kerbtrace.context.logs import LogContext


@dataclass(slots=True)
class Beside:
    """Everything given beside the captures for one run (each None when not given)."""

    directory: DirectoryFacts | None = None
    keytab: Keytab | None = None
    logs: LogContext | None = None
    dc_events: DcEventLog | None = None
