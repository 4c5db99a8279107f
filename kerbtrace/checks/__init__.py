"""Checks: one module per cause, each a pure function `check(client, ctx) -> Finding | None`.

`verdict.evaluate` runs them all, decides the verdict from the MP's answer and orders the findings so
the primary cause comes first; `fleet` looks across all clients afterwards. A newcomer finds any
cause's logic in the module named after its code.
"""

from __future__ import annotations

from kerbtrace.checks.base import Context, Evidence, Finding
from kerbtrace.checks.fleet import FLEET_CODES
from kerbtrace.checks.verdict import (
                                     CAUSE_CODES,
                                     CHECKS,
                                     UNEXPLAINED,
                                     evaluate,
                                     judge,
                                     late_findings,
                                     order,
                                     settle,
                                     steps_of,
                                     verdict_of,
                                     with_steps,
)

__all__ = ["CAUSE_CODES", "CHECKS", "FLEET_CODES", "UNEXPLAINED", "Context", "Evidence", "Finding", "evaluate",
           "judge", "late_findings", "order", "settle", "steps_of", "verdict_of", "with_steps"]
