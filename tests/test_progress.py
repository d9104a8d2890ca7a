"""Progress of long runs: a line rewritten in place on a terminal, a line per stage in a log."""

from __future__ import annotations

import io

from neurodeploy.progress import Progress, event_line, parse_event


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(progress: Progress, cases: int = 100) -> None:
    progress({"stage": "Lava imported"})
    for k in range(1, cases + 1):
        progress({"units": [k, cases, "cases"], "steps": [k * 20, cases * 20]})
    progress.close()


def test_a_log_gets_a_line_per_stage_and_tenth():
    log = io.StringIO()
    _feed(Progress("lava", log))
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("lava: Lava imported (")
    assert lines[-1] == "lava: 100/100 cases, 2,000/2,000 steps"
    assert 10 <= len(lines) <= 12 and "\r" not in log.getvalue()
    assert any("left" in line for line in lines[1:-1])


def test_a_terminal_gets_one_line_rewritten():
    tty = Terminal()
    _feed(Progress("lava", tty))
    text = tty.getvalue()
    assert text.count("\r") == 101 and text.count("\n") == 2  # the stage line, then the work line ended once
    assert text.endswith("100/100 cases, 2,000/2,000 steps\n")
    assert "50/100 cases, 1,000/2,000 steps" in text


def test_events_cross_a_pipe_and_other_lines_do_not():
    event = {"units": [3, 9, "samples"], "steps": [60, 180]}
    assert parse_event(event_line(event)) == event
    assert parse_event("Traceback (most recent call last):") is None
    assert parse_event(event_line(event)[:-3]) is None
