"""A progress bar on stderr for long provisioning, drawn only when stderr is a terminal.

`issuing certificates [##########..........] 200/400  41/s  5s left`, redrawn in place (carriage return, clear
to the end of the line) at most every REDRAW seconds, and always for the first and the last count, so that
drawing costs nothing next to key generation however often the count is reported. Not a terminal (a pipe, a
CI log): nothing is drawn at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

REDRAW = 0.1  # seconds between redraws
WIDTH = 20  # characters of the bar itself
CLEAR_LINE = "\r\x1b[K"


class ProgressBar:
    """Callable as progress(done, total); `close()` ends the line once anything was drawn."""

    def __init__(self, label: str, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream
        self.clock = clock
        self.started: float | None = None
        self.drawn_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        finished = total > 0 and done >= total
        if self.drawn_at is not None and not finished and now - self.drawn_at < REDRAW:
            return
        self.drawn_at = now
        self.stream.write(CLEAR_LINE + self.line(done, total, now - self.started))
        self.stream.flush()

    def line(self, done: int, total: int, elapsed: float) -> str:
        filled = WIDTH * done // total if total else 0
        text = f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total}"
        if done and elapsed > 0:
            rate = done / elapsed
            text += f"  {rate:.0f}/s"
            if done < total:
                text += f"  {(total - done) / rate:.0f}s left"
        return text

    def close(self) -> None:
        if self.drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def progress_bar(label: str, stream: TextIO | None = None) -> Iterator[ProgressBar | None]:
    """A ProgressBar on `stream` (default stderr) when it is a terminal, else None (nothing to draw)."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        yield None
        return
    bar = ProgressBar(label, out)
    try:
        yield bar
    finally:
        bar.close()
