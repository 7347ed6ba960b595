"""One run per output folder.

Snakemake locks its *working directory*; two runs started from two working
directories on the same ``output_dir`` would both write the same session
outputs. The workflow therefore takes a lock file in ``output_dir`` when it
starts (``onstart``) and releases it when it ends (``onsuccess`` / ``onerror``).

A lock left by a run that was killed is *stale*: on the same host, its PID no
longer runs, and the next run takes the lock over (so the README's command
resumes after ``kill -9``). A lock from another host cannot be checked; it is
removed with ``resstore unlock --output-dir <output_dir>`` once that run is
known to be gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from pipeline.errors import PipelineInputError

log = logging.getLogger(__name__)

LOCK_NAME = ".resstore.lock"


def lock_path(output_dir) -> Path:
    return Path(output_dir) / LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(output_dir) -> dict | None:
    path = lock_path(output_dir)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"host": "?", "pid": -1, "started": "?", "workdir": "?", "unreadable": True}


def is_stale(lock: dict) -> bool:
    """True when the lock's run is known to be gone (same host, PID not running)."""
    return lock.get("host") == socket.gethostname() and not _alive(int(lock.get("pid", -1)))


def acquire(output_dir, *, pid: int | None = None, workdir: str | None = None) -> dict:
    """Take the output folder's lock, or raise naming the run that holds it.

    Raises
    ------
    PipelineInputError
        Another live run (or one on another host) holds the lock.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    mine = {"host": socket.gethostname(), "pid": int(pid or os.getpid()),
            "workdir": str(workdir or os.getcwd()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = lock_path(output_dir)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(output_dir) or {}
            if held.get("host") == mine["host"] and int(held.get("pid", -1)) == mine["pid"]:
                return mine  # this run already holds it
            if is_stale(held):
                log.warning("%s: stale lock of PID %s (not running on %s, started %s) taken over",
                            path, held.get("pid"), held.get("host"), held.get("started"))
                path.unlink(missing_ok=True)
                continue
            raise PipelineInputError(
                path, f"another run holds this output folder: PID {held.get('pid')} on host "
                      f"{held.get('host')}, started {held.get('started')} from "
                      f"{held.get('workdir')}. Wait for it, or if it is gone run: resstore "
                      f"unlock --output-dir {output_dir}") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(mine) + "\n")
        return mine
    raise PipelineInputError(path, "could not take the output folder's lock")


def release(output_dir, *, pid: int | None = None) -> None:
    """Remove the lock if this process (``pid``) holds it."""
    held = read_lock(output_dir)
    if held and held.get("host") == socket.gethostname() and \
            int(held.get("pid", -1)) == int(pid or os.getpid()):
        lock_path(output_dir).unlink(missing_ok=True)


def force_unlock(output_dir) -> dict | None:
    """Remove the lock whoever holds it (``resstore unlock``); returns what it said."""
    held = read_lock(output_dir)
    lock_path(output_dir).unlink(missing_ok=True)
    return held
