"""Child-process bookkeeping: every process the lab starts is stopped by its own PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class LabError(RuntimeError):
    """A lab step failed; the message says which command and why."""


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True,
        timeout: float = 60.0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing output so failures can be reported with it."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(list(cmd), env=full_env, capture_output=True, text=True, timeout=timeout,
                          input=stdin)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} -> rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def start(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path | None = None
          ) -> subprocess.Popen[bytes]:
    """Start a long-running child; its output goes to ``log`` so a failed start can be diagnosed."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    try:
        return subprocess.Popen(list(cmd), env=full_env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
    """Stop one child by its PID and reap it; escalate to SIGKILL only if it ignores ``sig``."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    return proc.returncode


def wait_until(pred, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll ``pred`` until true; startup of daemons is asynchronous."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise LabError(f"timed out waiting for {what}")
