"""A progress line on stderr for long work: count, percent, rate, elapsed time and ETA.

Drawn only when stderr is a terminal (a log file or a pipe gets no carriage returns), at most
ten times a second.
"""

from __future__ import annotations

import sys
import time

REDRAW_S = 0.1


def clock(seconds: float) -> str:
    """1:05 or 1:02:05."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Bar:
    """`[label] 120/1000 images  12%  340/s  0:01 elapsed, ETA 0:03  note`, redrawn in place."""

    def __init__(self, label: str, total: int, unit: str = "items", stream=None):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.stream = getattr(self.stream, "unfiltered", self.stream)  # its own \r and erase codes, unescaped
        self.shown = self.stream.isatty()
        self.done = 0
        self.note = ""  # shown after the counts: the last epoch's loss, say
        self.started = time.monotonic()
        self._drawn = self.started - REDRAW_S  # the first advance draws

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.shown and (now - self._drawn >= REDRAW_S or self.done >= self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(now) + "\033[K")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        percent = 100 * self.done / self.total if self.total else 100.0
        pace = f"{rate:,.0f}/s" if rate >= 1 or rate == 0 else f"{1 / rate:,.1f} s each"
        return (f"[{self.label}] {self.done:,}/{self.total:,} {self.unit}  {percent:3.0f}%  {pace}  "
                f"{clock(elapsed)} elapsed, ETA {clock(eta)}" + (f"  {self.note}" if self.note else ""))

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()
