"""One memory budget: what a file or an option may make the process allocate, checked from the
declared shapes (of a netlist, a checkpoint's architecture, an array's header, a decompressed
stream, a simulation's records) before anything is allocated.

The budget is ``--max-bytes`` on the command line, else the environment variable
``NEURODEPLOY_MAX_BYTES`` (bytes, or with a suffix k, M, G, T: powers of 1024), else 4 GiB.
Every refusal names what needed the memory, how much, the budget, and how to raise it.
"""

from __future__ import annotations

import os
import re

from neurodeploy.errors import NeurodeployError

ENV = "NEURODEPLOY_MAX_BYTES"
DEFAULT_BYTES = 4 << 30
NEURON_BYTES = 256  # what a neuron may cost to simulate and map (state, inputs, records of a few steps)
_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_override: int | None = None


class BudgetError(NeurodeployError):
    """Something would need more memory than the budget; the message says what and how to raise it."""


def parse_bytes(text: str) -> int:
    """``123``, ``512M``, ``4G`` (powers of 1024) -> bytes >= 1; ValueError otherwise."""
    found = re.fullmatch(r"\s*(\d{1,15})\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not found or int(found[1]) < 1:
        raise ValueError(f"{text!r} is not a size in bytes (e.g. 4G, 512M, 1000000)")
    return int(found[1]) * _SUFFIXES[found[2].lower()]


def limit() -> int:
    """The budget in bytes: :func:`set_limit`'s, else $NEURODEPLOY_MAX_BYTES, else 4 GiB."""
    if _override is not None:
        return _override
    text = os.environ.get(ENV)
    if not text:
        return DEFAULT_BYTES
    try:
        return parse_bytes(text)
    except ValueError as err:
        raise BudgetError(f"${ENV}: {err}") from None


def set_limit(nbytes: int | None) -> None:
    """Set the budget for this process (None: back to the environment's or the default)."""
    global _override
    _override = nbytes


def require(nbytes: int, what: str) -> None:
    """Raise :class:`BudgetError` if ``what`` (a phrase naming the file and the thing) needs more than the budget."""
    budget = limit()
    if nbytes > budget:
        raise BudgetError(
            f"{what}: needs {_size(nbytes)} ({nbytes} bytes), more than the memory budget of "
            f"{_size(budget)}; raise it with --max-bytes or ${ENV} if this is meant"
        )


def max_neurons() -> int:
    """The neurons a netlist may hold in all: the budget at :data:`NEURON_BYTES` a neuron."""
    return limit() // NEURON_BYTES


def _size(nbytes: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.4g} {unit}"
    return f"{nbytes} bytes"
