"""Per-operation costs fitted to one whole-network measurement on silicon.

A measurement gives the dynamic energy, the static power and the throughput of
one network; the mapper's operation counts of the same network, on the same kind
of input, turn them into per-operation figures. One measurement cannot tell the
energy of a synaptic operation from that of a neuron update, nor the time of an
operation from the end-of-step barrier, so their ratios come from a reference
target (Loihi 1's published figures) and one scale is fitted for energy and one
for time.

    python -m neurodeploy.cost_fit NET BIAS.npy

prints the figures fitted to lava-dl's PilotNet LIF measurement on Loihi 2 for
NET (lava-dl's PilotNet LIF netx file) driven by BIAS (the image as input-layer
bias mantissas, in the netlist's (C, H, W) order), as ``[energy]`` and
``[timing]`` lines of a target file.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from neurodeploy.cost import Activity, estimate_cost, measured_activity
from neurodeploy.mapping import Mapping, map_network
from neurodeploy.targets import Energy, Target, Timing, load_target


@dataclass(frozen=True)
class Measurement:
    """What was measured running one network on silicon, per inference of ``steps`` steps."""

    name: str
    inferences_per_s: float
    dynamic_mj: float  # dynamic energy of one inference
    static_w: float  # static power of one chip
    steps: int
    source: str


PILOTNET_LIF_LOIHI2 = Measurement(
    "PilotNet LIF on Loihi 2 (one chip)",
    408.91,
    1.093544,
    0.232078,
    16,
    "lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb (commit d825ac5): 408.91 inferences/s, "
    "0.679 W total, 0.447 W dynamic, 0.232 W static, 1.661 mJ (1.094 mJ dynamic) an inference of 16 steps, "
    "one frame as input-layer bias",
)


def fit_costs(mapping: Mapping, activity: Activity, measured: Measurement, reference: Target) -> tuple[Energy, Timing]:
    """Energy and time an operation that reproduce ``measured`` for ``mapping`` and ``activity``.

    Dynamic energy = synaptic events x e + neuron updates x r e, with r the
    reference's neuron-update to synaptic-op ratio; one step = the busiest core's
    operations plus the barrier, each the reference's time x one fitted scale.
    """
    if activity.steps != measured.steps:
        raise ValueError(f"the activity covers {activity.steps} steps, the measurement {measured.steps} an inference")
    e, t = reference.energy, reference.timing
    syn_ns, neuron_ns, barrier_ns = t.synaptic_op_ns, t.neuron_update_ns, t.barrier_sync_ns
    if (
        e.neuron_update_pj is None
        or e.synaptic_op_pj is None
        or syn_ns is None
        or neuron_ns is None
        or barrier_ns is None
    ):
        raise ValueError(f"the reference {reference.name} publishes no energy or time per operation to scale")
    ratio = e.neuron_update_pj / e.synaptic_op_pj
    ops = activity.total("synaptic_events") + ratio * activity.total("neuron_updates")
    synaptic_pj = measured.dynamic_mj * 1e9 / ops
    energy = Energy(
        synaptic_op_pj=synaptic_pj, neuron_update_pj=ratio * synaptic_pj, static_power_mw=measured.static_w * 1e3
    )
    shape = Timing(syn_ns, neuron_ns, None, barrier_ns)
    on_reference = dataclasses.replace(mapping, target=dataclasses.replace(mapping.target, timing=shape))
    latency_ns = estimate_cost(on_reference, activity).latency_ns
    if latency_ns is None:  # the timing is complete: set above
        raise ValueError(f"the reference {reference.name} gives no latency for this mapping")
    scale = 1e9 / measured.inferences_per_s / latency_ns
    timing = Timing(syn_ns * scale, neuron_ns * scale, None, barrier_ns * scale)
    return energy, timing


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    from neurodeploy.netio import load_netlist
    from neurodeploy.sim import simulate

    parser = argparse.ArgumentParser(prog="python -m neurodeploy.cost_fit", description=__doc__.split("\n\n")[0])
    parser.add_argument("net", help="lava-dl's PilotNet LIF netx file")
    parser.add_argument("bias", help="input-layer bias mantissas .npy, (C, H, W)")
    parser.add_argument("--target", default="loihi2", help="target whose limits place the network (default loihi2)")
    parser.add_argument("--reference", default="loihi1", help="target giving the ratios (default loihi1)")
    args = parser.parse_args(argv)
    net, measured, target = load_netlist(args.net), PILOTNET_LIF_LOIHI2, load_target(args.target)
    bias = np.load(args.bias).astype(np.int64)
    activity = measured_activity(simulate(net, measured.steps, bias=bias, conventions=target.conventions))
    energy, timing = fit_costs(map_network(net, target), activity, measured, load_target(args.reference))
    print(
        f"# {activity.total('synaptic_events'):,.0f} synaptic events, {activity.total('neuron_updates'):,.0f} "
        f"neuron updates an inference ({activity.basis})"
    )
    for section, figures in (("energy", energy), ("timing", timing)):
        print(f"[{section}]")
        for f in dataclasses.fields(figures):
            value = getattr(figures, f.name)
            if isinstance(value, float):
                print(f"{f.name} = {value:.4g}")


if __name__ == "__main__":
    main()
