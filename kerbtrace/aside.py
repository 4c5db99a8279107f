"""Text computed in a forked process while this one goes on: a core that would idle does part of the work.

After a run with several processes the parent writes the reports alone, the JSON document and the text table
one after the other (on a large capture about a tenth of the run's wall time, with every other core idle).
`aside` forks a child that renders one of them into text and hands it back through a pipe; the parent writes
the other meanwhile, then the child's text. The child only computes: it writes no file and no stream, reads
the results (maybe on disk: `kerbtrace.spill` reads by offset, so the two processes do not share a file
position) and ends with `os._exit`, which runs no cleanup of the parent's. When the child fails in any way, or
the system cannot fork, the caller computes the text itself: the output never depends on the child.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def aside(render: Callable[[], str]) -> Callable[[], str | None]:
    """Start `render` in a forked child; the returned function waits for it and gives its text, or None when it
    failed or could not start (then call `render` here)."""
    if not hasattr(os, "fork"):
        return lambda: None
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return lambda: None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return lambda: None
    if pid == 0:  # the child: compute, hand the text over, end without the parent's cleanup
        status = 1
        try:
            os.close(read_end)
            data = memoryview(render().encode("utf-8"))
            while data:
                data = data[os.write(write_end, data):]
            status = 0
        except BaseException:  # noqa: BLE001, S110 - any failure: the parent computes the text itself
            pass
        finally:
            os._exit(status)
    os.close(write_end)

    def result() -> str | None:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        return data.decode("utf-8") if os.waitstatus_to_exitcode(status) == 0 else None

    return result


__all__ = ["aside"]
