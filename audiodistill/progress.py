"""Progress of long loops as plain lines on stderr: a line every few seconds and one at the
end, so a long `eval`, `export` or `bench` is never silent for minutes (and the lines read
well in a Ray job's log, where a redrawn bar does not)."""

from __future__ import annotations

import sys
import time


class Progress:
    """`step()` once per item; prints "<what>: 12/292 utterances, 40 s" at most every
    `every_s` seconds, and always for the last item."""

    def __init__(self, what: str, total: int, unit: str = "utterances", every_s: float = 15.0):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done = 0
        self.started = self._last = time.perf_counter()

    def step(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            elapsed = now - self.started
            line = f"{self.what}: {self.done}/{self.total} {self.unit}, {elapsed:.0f} s"
            print(line, file=sys.stderr, flush=True)


class Stages:
    """Named stages of a command that has no item count (loading, tracing, deploying): a line
    as each begins, with the seconds since the command started."""

    def __init__(self, what: str):
        self.what, self.started = what, time.perf_counter()

    def __call__(self, stage: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"{self.what}: {stage}, {elapsed:.0f} s", file=sys.stderr, flush=True)
