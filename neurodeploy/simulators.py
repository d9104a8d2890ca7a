"""What runs a netlist: the backends table that ``run`` and ``compare`` look up (our simulator, Lava's
fixed-point models), and which simulator runs, numpy's (the default) or torch's on a device."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurodeploy.errors import NeurodeployError

if TYPE_CHECKING:
    from neurodeploy.netlist import Netlist
    from neurodeploy.sim import Recording

DEVICE_HELP = (
    "run the simulator on torch on this device (cpu, cuda, cuda:N); bit-exact with the default "
    "numpy simulator, which runs when this is not given"
)


class BackendError(NeurodeployError):
    """A backend that does not exist, or cannot run as asked (a device, run conventions)."""


def simulator(device: str | None = None) -> Callable:
    """:func:`neurodeploy.sim.simulate`, or for a ``device`` its torch twin there (torch imported only then)."""
    if device is None:
        from neurodeploy.sim import simulate

        return simulate
    from neurodeploy import sim_torch

    return functools.partial(sim_torch.simulate, device=device)


@dataclass(frozen=True)
class Backend:
    """A way to run a netlist.

    ``run(net, steps, *, spikes, bias, record, reset_interval, conventions, device)`` returns a
    :class:`~neurodeploy.sim.Recording`, the arguments as :func:`neurodeploy.sim.simulate` takes
    them. A ``reference`` backend runs elsewhere than our simulator: it counts no u wraps or v
    saturations (the simulator counts them for it), and ``compare`` checks the simulator against it
    on a few samples.
    """

    name: str
    help: str  # for the command line
    label: str  # for the report
    run: Callable[..., Recording]
    reference: bool


def _simulate(net: Netlist, steps: int, *, device: str | None = None, **kwargs) -> Recording:
    return simulator(device)(net, steps, **kwargs)


def _lava(net: Netlist, steps: int, *, conventions: str = "lava", device: str | None = None, **kwargs) -> Recording:
    if device:
        raise BackendError(f"--device {device}: the device runs the simulator, not --backend lava")
    if conventions != "lava":
        raise BackendError(f"--backend lava computes Lava's conventions only, not {conventions}")
    from neurodeploy.backends.lava import run_lava

    return run_lava(net, steps, **kwargs)


BACKENDS = {
    b.name: b
    for b in (
        Backend("sim", "our bit-accurate simulator", "the simulator", _simulate, reference=False),
        Backend("lava", "Lava's fixed-point models", "Lava fixed_pt CPU models", _lava, reference=True),
    )
}


def find_backend(name: str) -> Backend:
    """The backend called ``name``; :class:`BackendError` naming the choices for another name."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
