"""What the user named on the command line, as the list of capture files to read, in time order.

Support engineers receive folders of captures (a dumpcap ring buffer `name_00001_20261204103000.pcapng`,
several MPs' captures side by side). A directory stands for the capture files in it, a quoted glob
pattern for the files it matches; both are read in the order of their first packet's time (the files'
names need not sort that way), each as a capture of its own (frame numbers per file), except the files of
one ring (`ring_groups`), which are read as one capture.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from kerbtrace.diagnostics import Diagnostics
from kerbtrace.sources import CaptureError, open_capture

#: File name endings taken from a directory (anything can be named explicitly).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz", ".ntar")
_GLOB_CHARS = frozenset("*?[")
#: A ring file's name, as dumpcap, editcap -c and `kerbtrace live --write` give it:
#: `<prefix>_<NNNNN>[_<YYYYMMDDhhmmss>].<ext>`.
_RING_NAME = re.compile(r"^(?P<prefix>.+?)_(?P<number>\d{5,})(?:_\d{14})?(?P<ext>\.[A-Za-z0-9.]+)$")


def expand_inputs(names: list[str]) -> list[str]:
    """Each name as given when it is a file (or missing: its error is reported later); a directory's capture
    files, or a glob pattern's matches, in the order of their first packet's time."""
    out: list[str] = []
    for name in names:
        if os.path.isdir(name):
            found = [str(p) for p in sorted(Path(name).iterdir())
                     if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES)]
        elif not os.path.exists(name) and _GLOB_CHARS & set(name):
            found = [p for p in sorted(glob.glob(name)) if os.path.isfile(p)]
        else:
            out.append(name)
            continue
        out.extend(sorted(found, key=_first_time) if found else [name])
    return out


def _first_time(path: str) -> tuple[int, float, str]:
    """Sort key: files with a first packet by its time, then the unreadable or empty ones by name."""
    try:
        with open_capture(path, Diagnostics()) as cap:
            for _frame, time, _linktype, _data in cap:
                return 0, time, path
    except (CaptureError, OSError):
        pass
    return 1, 0.0, path


def ring_groups(paths: list[str]) -> list[list[int]]:
    """The inputs as captures: runs of files of one ring become one capture, every other file is one alone.

    Files are one ring when, next to each other in `paths`, their names are `<prefix>_<NNNNN>[_<timestamp>]<ext>`
    with the same directory, prefix and ending, and numbers that follow each other (N, N+1, ...): the files a
    ring buffer rotated into. A missing number (a file deleted, or not given) starts a new capture, since an
    exchange cut there cannot be stitched. Returns lists of indices into `paths`, in order."""
    groups: list[list[int]] = []
    last: tuple[str, str, int] | None = None
    for index, path in enumerate(paths):
        match = _RING_NAME.match(os.path.basename(path))
        key = None
        if match:
            key = (os.path.join(os.path.dirname(path), match["prefix"]), match["ext"], int(match["number"]))
        if key is not None and last is not None and key[:2] == last[:2] and key[2] == last[2] + 1:
            groups[-1].append(index)
        else:
            groups.append([index])
        last = key
    return groups
