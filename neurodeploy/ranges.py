"""argparse types with ranges: every numeric option is checked when parsed, and its range is
shown in ``--help`` (the CLI appends :attr:`Range.text` to the option's help).

``integer(1, 1024)`` takes whole numbers in 1 .. 1024; ``number(0, None, low_open=True)`` takes
finite numbers > 0; ``choices_list(("netx", "nir"))`` a comma-separated, non-empty selection.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

SEED_MAX = 2**63 - 2  # torch and numpy seeds; training also seeds with seed + 1


@dataclass(frozen=True)
class Range:
    """A number in [low, high] (either side open or absent); integers only if ``whole``."""

    low: float | None = None
    high: float | None = None
    whole: bool = True
    low_open: bool = False

    @property
    def text(self) -> str:
        kind = "an integer" if self.whole else "a finite number"
        if self.low is not None and self.high is not None:
            if self.low_open:
                return f"{kind} > {_show(self.low)} and <= {_show(self.high)}"
            return f"{kind} in {_show(self.low)} .. {_show(self.high)}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {_show(self.low)}"
        return f"{kind} <= {_show(self.high)}" if self.high is not None else kind

    def __call__(self, text: str) -> int | float:
        try:
            value = int(text) if self.whole else float(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.text}") from None
        if (not self.whole and not math.isfinite(value)) or not self._inside(value):
            raise argparse.ArgumentTypeError(f"{text} is not {self.text}")
        return value

    def _inside(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


def integer(low: int | None = None, high: int | None = None) -> Range:
    return Range(low, high, whole=True)


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Range:
    return Range(low, high, whole=False, low_open=low_open)


def seed() -> Range:
    return integer(0, SEED_MAX)


@dataclass(frozen=True)
class Choices:
    """A comma-separated selection of ``names``, at least one, each once."""

    names: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"comma-separated, from {', '.join(self.names)}"

    def __call__(self, text: str) -> tuple[str, ...]:
        picked = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        bad = [n for n in picked if n not in self.names]
        if bad or not picked:
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose one or more of {', '.join(self.names)}, comma-separated"
            )
        return picked


def show_ranges(parser: argparse.ArgumentParser) -> None:
    """Append each ranged option's range to its help text."""
    for action in parser._actions:
        text = getattr(action.type, "text", None)
        if text and action.help is not argparse.SUPPRESS and text not in (action.help or ""):
            action.help = f"{action.help} [{text}]" if action.help else f"[{text}]"


def _show(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
