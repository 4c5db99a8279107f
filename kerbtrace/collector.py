"""CPython's cyclic garbage collector, tuned for one long run over a big capture.

A gigabyte capture piles up long-lived state (connections, clients, their messages) that the
cyclic collector would rescan on every full collection: 15-20 % of a 1 GB run, and young
collections every 700 allocations cost a few % more. While a `RelaxedCollector` is active, young
collections are rarer and `tick` moves the objects alive so far into the permanent generation,
out of the collector's sight; reference counting still frees each object as soon as it is unused.
Writing the reports afterwards only reads the results and makes no reference cycle (the tests check it):
`off` stops the collector for it, whose young collections cost a quarter of the JSON report's time.
Leaving the block restores the thresholds, the collector and makes the frozen objects collectable again.
"""

from __future__ import annotations

import gc

#: Allocations between young collections while the run lasts (CPython's default is 700).
GC_THRESHOLD = 20_000


class RelaxedCollector:
    """Context manager; nesting is fine (the inner block restores what the outer one set)."""

    def __enter__(self) -> RelaxedCollector:
        self.saved = gc.get_threshold()
        self.enabled = gc.isenabled()
        gc.set_threshold(max(self.saved[0], GC_THRESHOLD), *self.saved[1:])
        return self

    @staticmethod
    def tick() -> None:
        """Freeze what is alive now: later collections only look at newer objects."""
        gc.freeze()

    @staticmethod
    def off() -> None:
        """No collection until the block ends, for work that makes no reference cycles: reference counting
        alone frees what it drops."""
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        gc.set_threshold(*self.saved)
        gc.unfreeze()
        if self.enabled:
            gc.enable()
