"""Capture backend: dumpcap as a child process writing pcapng to a pipe that kerbtrace reads.

Measured on the project's machines (docs/live.md): dumpcap -> pipe -> the project's streaming pcapng
reader kept every packet at rates where scapy's sockets lost most of them, and libpcap's BPF filter
runs in the kernel. dumpcap is Wireshark's own capture engine (maintained, on Windows with Npcap too),
and it reports kernel drops when it stops, which kerbtrace passes on.
"""

from __future__ import annotations

import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

#: The MP's HTTP(S), Kerberos and DNS, and every non-first IP fragment: those carry no port, and a
#: fragmented Kerberos reply must not lose its tail to the filter.
DEFAULT_FILTER = ("tcp port 80 or tcp port 443 or port 88 or port 53"
                  " or (ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)")
BUFFER_MIB = 32  # kernel buffer: absorbs bursts while Python is busy with a batch of verdicts
READ_SIZE = 1 << 18
QUEUE_CHUNKS = 64  # at most 16 MiB read ahead of the analysis
WINDOWS = sys.platform == "win32"

_DROPS = re.compile(r"Packets received/dropped on interface '([^']*)': (\d+)/(\d+)")


class BackendError(RuntimeError):
    """The capture could not be started or stopped working (the message says why, with dumpcap's words)."""


@dataclass(slots=True)
class CaptureStats:
    """What dumpcap reported when it stopped: packets the interface received and the kernel dropped."""

    received: int | None = None
    dropped: int | None = None


def dumpcap_command(interface: str, bpf: str, snaplen: int = 0) -> list[str]:
    exe = shutil.which("dumpcap")
    if exe is None:
        raise BackendError("dumpcap is not installed (Debian: apt-get install tshark; Windows: Wireshark "
                           "with Npcap)")
    cmd = [exe, "-i", interface, "-f", bpf, "-B", str(BUFFER_MIB), "-w", "-", "-q"]
    if snaplen:
        cmd += ["-s", str(snaplen)]
    return cmd


class PipeStream:
    """The read end of dumpcap's stdout, for the capture readers.

    `read1` returns what has arrived (`partial_reads` tells the readers not to wait for a full chunk);
    while nothing arrives it calls `on_idle` every `idle` seconds, so the verdicts of exchanges that timed
    out still come on a quiet network. b"" means dumpcap closed the pipe (stopped or failed).

    On POSIX the analysing thread waits with select() itself: a reader thread would hand the GIL back and
    forth for every packet dumpcap writes, and measured, that alone halved the rate kept up with. Windows
    cannot select() on a pipe: there a thread reads the pipe into a bounded queue."""

    partial_reads = True
    closed = False

    def __init__(self, fd: int, on_idle: Callable[[], None], idle: float = 1.0) -> None:
        self.fd = fd
        self.on_idle = on_idle
        self.idle = idle
        self._rest = b""
        self._ended = False
        self._chunks: queue.Queue[bytes] | None = None
        if WINDOWS:
            self._chunks = queue.Queue(QUEUE_CHUNKS)  # full: dumpcap waits, then the kernel buffer fills
            threading.Thread(target=self._pump, args=(fd,), name="kerbtrace-capture-pipe", daemon=True).start()

    def _pump(self, fd: int) -> None:
        assert self._chunks is not None
        try:
            while True:
                chunk = os.read(fd, READ_SIZE)
                self._chunks.put(chunk)
                if not chunk:
                    return
        except OSError:
            self._chunks.put(b"")

    def _next_chunk(self) -> bytes:
        while True:
            if self._chunks is not None:
                try:
                    return self._chunks.get(timeout=self.idle)
                except queue.Empty:
                    pass
            elif select.select([self.fd], [], [], self.idle)[0]:
                try:
                    return os.read(self.fd, READ_SIZE)
                except InterruptedError:
                    continue
            self.on_idle()

    def read1(self, size: int = READ_SIZE) -> bytes:
        if not self._rest:
            if self._ended:
                return b""
            self._rest = self._next_chunk()
            if not self._rest:
                self._ended = True
                return b""
        if len(self._rest) <= size:
            out, self._rest = self._rest, b""
        else:
            out, self._rest = self._rest[:size], self._rest[size:]
        return out

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes unless the pipe ends (headers are read this way)."""
        parts, got = [], 0
        while got < size:
            piece = self.read1(size - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def close(self) -> None:
        self.closed = True


class Dumpcap:
    """One dumpcap child: started with `start`, asked to stop by its own PID with `interrupt` (SIGINT makes
    it flush and print its statistics), reaped with `finish` once its pipe has ended."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        self.stats = CaptureStats()
        self.log = ""  # dumpcap's stderr once it stopped

    def start(self) -> int:
        """Start dumpcap; the file descriptor of its pcapng output."""
        # A process group of its own: the terminal's Ctrl-C reaches kerbtrace, which stops dumpcap after it.
        group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if WINDOWS  # type: ignore[attr-defined]
                 else {"start_new_session": True})
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL,
                                         **group)
        except OSError as exc:
            raise BackendError(f"cannot start dumpcap: {exc}") from None
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def interrupt(self) -> None:
        """Ask dumpcap to stop (SIGINT: it writes what it holds and its statistics, then closes the pipe,
        which the reader still drains); returns at once."""
        if self.proc is not None and self.proc.poll() is None:
            # Windows has no SIGINT for another process: Ctrl-Break to its process group (UNCONFIRMED that
            # dumpcap then prints its statistics there as it does on SIGINT).
            os.kill(self.proc.pid, signal.CTRL_BREAK_EVENT if WINDOWS else signal.SIGINT)  # type: ignore[attr-defined]

    def finish(self, timeout: float = 10.0) -> None:
        """After the pipe ended: reap dumpcap (by its PID) and read its statistics."""
        proc = self.proc
        if proc is None:
            return
        self.interrupt()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        self.log = self.messages()
        self.stats = parse_stats(self.log)
        self._err.close()

    def messages(self) -> str:
        """What dumpcap wrote on stderr (its errors and final statistics), bounded."""
        if self._err.closed:
            return ""
        self._err.seek(0)
        return self._err.read(1 << 16).decode(errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None


def parse_stats(text: str) -> CaptureStats:
    """Sum dumpcap's 'Packets received/dropped on interface' lines."""
    found = _DROPS.findall(text)
    if not found:
        return CaptureStats()
    return CaptureStats(sum(int(r) for _, r, _ in found), sum(int(d) for _, _, d in found))


def failure_reason(text: str) -> str:
    """dumpcap's own explanation of a failed capture, without its banner and statistics lines."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Capturing on", "File:",
                                                                                          "Packets"))]
    return " ".join(lines)[:500] or "dumpcap stopped without a message"
