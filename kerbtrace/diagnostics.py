"""Warnings about the input (bad records, malformed packets, bombs), with Wireshark frame numbers.

Every stage reports what it could not read here instead of raising, so one bad packet never stops
the analysis of the rest and nothing is lost silently. Memory stays bounded: only the first
`keep` messages are stored, the rest are counted per kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Warning_:
    frame: int | None
    message: str
    kind: str = "input"
    input: int | None = 0  # which capture file (frame numbers are per file); None: a context file's


@dataclass(slots=True)
class Diagnostics:
    keep: int = 500
    warnings: list[Warning_] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    fatal: str | None = None
    current_input: int | None = 0  # set by the run before each file (None while context files are read)
    def warn(self, frame: int | None, message: str, kind: str = "input") -> None:
        """Record a problem with the input; `kind` groups messages for the summary."""
        if frame is not None and message.startswith(f"frame {frame}: "):
            message = message[len(f"frame {frame}: "):]  # the frame is reported beside the message
        if len(self.warnings) < self.keep:
            self.warnings.append(Warning_(frame, message, kind, self.current_input))
        else:
            self.dropped[kind] += 1

    def as_json(self) -> list[dict]:
        out = [{"input": w.input, "frame": w.frame, "message": w.message} for w in self.warnings]
        for kind, n in sorted(self.dropped.items()):
            out.append({"frame": None, "message": f"{n} more '{kind}' warnings not listed"})
        return out
