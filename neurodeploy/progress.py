"""Progress of a long run on stderr: one line rewritten in place on a terminal, a line per stage in a log.

Events are dicts: ``{"stage": text}`` for a stage reached, ``{"units": [done, total,
noun], "steps": [done, total]}`` for work done (noun: "cases", "samples"). The Lava worker sends them as lines of
:data:`PREFIX` + JSON on its stderr (:func:`event_line`, :func:`parse_event`).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

PREFIX = "neurodeploy-progress "
LOG_EVERY = 0.1  # in a log, a line each tenth of the work


def event_line(event: dict) -> str:
    """The line that carries ``event`` across a pipe."""
    return PREFIX + json.dumps(event)


def parse_event(line: str) -> dict | None:
    """The event a line carries, or None for any other line."""
    if not line.startswith(PREFIX):
        return None
    try:
        event = json.loads(line[len(PREFIX) :])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Shows events of one run labelled ``label``; the time left is estimated from the steps done so far."""

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label, self.stream = label, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.work_start = time.monotonic()
        self.logged = -1.0
        self.open_line = False

    def __call__(self, event: dict) -> None:
        if "stage" in event:
            self._line(f"{event['stage']} ({_duration(time.monotonic() - self.start)})", final=True)
            self.work_start = time.monotonic()
        elif "steps" in event:
            self._work(event)

    def _work(self, event: dict) -> None:
        (done, total), (units, of, noun) = event["steps"], event["units"]
        fraction = done / total if total else 1.0
        if not self.tty and fraction < 1.0 and fraction - self.logged < LOG_EVERY:
            return
        self.logged = fraction
        elapsed = time.monotonic() - self.work_start
        left = f", {_duration(elapsed * (total - done) / done)} left" if 0 < done < total else ""
        self._line(f"{units}/{of} {noun}, {done:,}/{total:,} steps{left}", final=fraction >= 1.0)

    def _line(self, text: str, final: bool) -> None:
        if self.tty:
            end = "\n" if final else ""
            self.stream.write(f"\r\033[K{self.label}: {text}{end}")
            self.open_line = not final
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line left open on a terminal."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False
