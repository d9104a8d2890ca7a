"""Which simulator runs a netlist: numpy's (the default) or torch's on a device."""

from __future__ import annotations

import functools
from collections.abc import Callable

DEVICE_HELP = (
    "run the simulator on torch on this device (cpu, cuda, cuda:N); bit-exact with the default "
    "numpy simulator, which runs when this is not given"
)


def simulator(device: str | None = None) -> Callable:
    """:func:`neurodeploy.sim.simulate`, or for a ``device`` its torch twin there (torch imported only then)."""
    if device is None:
        from neurodeploy.sim import simulate

        return simulate
    from neurodeploy import sim_torch

    return functools.partial(sim_torch.simulate, device=device)
