"""Progress lines for long steps: what runs, how far it is, how long it took.

A rule's log then shows where a slow job is (``tail -f logs/<rule>/<session>.log``)
instead of nothing for minutes.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

log = logging.getLogger("pipeline.progress")


@contextmanager
def step(name: str, *, logger: logging.Logger | None = None):
    """Log the start and the end (with elapsed seconds) of a step."""
    out = logger or log
    start = time.perf_counter()
    out.info("%s ...", name)
    try:
        yield
    finally:
        out.info("%s done (%.1f s)", name, time.perf_counter() - start)


class Progress:
    """``done/total`` lines at most every ``every_s`` seconds for a loop of ``total`` items.

    Examples
    --------
    >>> progress = Progress("realign", 150)
    >>> for i in range(150):
    ...     progress.update()
    """

    def __init__(self, name: str, total: int, *, every_s: float = 30.0,
                 logger: logging.Logger | None = None):
        self.name, self.total, self.every_s = name, int(total), float(every_s)
        self.done = 0
        self.start = self.last = time.perf_counter()
        self.log = logger or log

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            self.log.info("%s: %d/%d (%.0f s elapsed)", self.name, self.done, self.total,
                          now - self.start)
