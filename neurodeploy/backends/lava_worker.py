"""The Lava side of the Lava backend: builds a netlist from Lava processes and runs it.

Imported only by an interpreter that can import Lava. Run as a module it reads
cases from an ``.npz`` file and writes their recordings to another::

    python -m neurodeploy.backends.lava_worker cases IN.npz OUT.npz
    python -m neurodeploy.backends.lava_worker netx IN.npz OUT.npz

Each neuron layer is a ``LIF`` (``LIFReset`` with offset k + reset_offset + 1 for the k-th neuron
layer when resets are asked for, as netx staggers them), each dense layer a
``Dense`` or ``DelayDense``, each conv layer a ``Conv`` with the kernel flipped and
put in Lava's (x, y, f) order; input spikes come from a ``RingBuffer`` source,
spikes go to ``RingBuffer`` sinks and u, v are read every step by ``Read``
processes. Everything runs with ``Loihi2SimCfg(select_tag='fixed_pt')``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.conv.process import Conv as LavaConv
from lava.proc.dense.process import DelayDense, Dense as LavaDense
from lava.proc.io.sink import Read, RingBuffer as SpikeSink
from lava.proc.io.source import RingBuffer as SpikeSource
from lava.proc.lif.process import LIF, LIFReset

from neurodeploy.atomic import atomic_path
from neurodeploy.backends.lava import LavaCase, _load, read_cases, write_recordings
from neurodeploy.netlist import Conv, Dense, Flatten, Input, Netlist
from neurodeploy.sim import Recording


def to_lava(x: np.ndarray, ndim: int) -> np.ndarray:
    """Our (..., C, H, W) order to Lava's (..., x, y, f) = (..., W, H, C); 1-D shapes unchanged."""
    if ndim != 3:
        return x
    lead = x.ndim - 3
    return x.transpose(tuple(range(lead)) + (lead + 2, lead + 1, lead))


def from_lava_trace(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A Lava buffer (*lava shape, steps) to our (steps, *shape)."""
    data = np.moveaxis(np.asarray(data), -1, 0)
    return to_lava(data, len(shape)).reshape((data.shape[0],) + tuple(shape))


@dataclass
class _Probe:
    """The processes that record one neuron layer."""

    index: int
    shape: tuple[int, ...]
    spikes: SpikeSink
    reads: dict[str, Read] = field(default_factory=dict)


def _per_neuron(bias, shape: tuple[int, ...]) -> np.ndarray:
    if bias is None:
        return np.zeros(shape, np.int64)
    bias = np.asarray(bias, np.int64)
    if len(shape) == 3 and bias.shape == (shape[0],):
        bias = bias.reshape(-1, 1, 1)
    return np.broadcast_to(bias, shape)


def _neuron(layer, k: int, bias, reset_interval: int | None, reset_offset: int):
    n = layer.neuron
    shape = tuple(layer.shape)
    params = dict(
        shape=tuple(to_lava(np.empty(shape), len(shape)).shape),
        vth=int(n.vth),
        du=int(n.du),
        dv=int(n.dv),
        bias_mant=to_lava(_per_neuron(bias, shape), len(shape)).astype(np.int32),
        bias_exp=int(n.bias_exp),
    )
    if reset_interval:
        # Lava counts steps from 1: our step t is its t + 1.
        offset = (k + reset_offset + 1) % int(reset_interval)
        return LIFReset(**params, reset_interval=int(reset_interval), reset_offset=offset)
    return LIF(**params)


def _synapse(layer):
    if isinstance(layer, Dense):
        common = dict(weight_exp=int(layer.weight_exp), num_weight_bits=int(layer.weight_bits))
        weight = layer.weight.astype(np.int32)
        if layer.delay is not None and layer.delay.any():
            delay = layer.delay.astype(int)  # Lava insists on the default int dtype
            return DelayDense(weights=weight, delays=delay, max_delay=int(delay.max()), **common)
        return LavaDense(weights=weight, **common)
    # Lava's Conv is a true convolution over (x, y, f) with no weight exponent.
    weight = (layer.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1) << layer.weight_exp).astype(np.int32)
    return LavaConv(
        weight=weight,
        input_shape=tuple(reversed(layer.in_shape)),
        padding=tuple(reversed(layer.padding)),
        stride=tuple(reversed(layer.stride)),
        dilation=tuple(reversed(layer.dilation)),
        groups=int(layer.groups),
    )


def _connect(out_port, out_shape: tuple[int, ...], layer, in_port) -> None:
    """Connect spikes to a synapse; a dense layer after a (C, H, W) one takes them flattened C-first."""
    if isinstance(layer, Dense) and len(out_shape) == 3:
        out_port = out_port.transpose([2, 1, 0]).flatten()
    out_port.connect(in_port)


def build(net: Netlist, steps: int, spikes, bias, record, reset_interval) -> tuple[list, list[_Probe]]:
    """Lava processes for one sample; returns them and the probes of every neuron layer.

    ``spikes`` is (steps, *input shape) or None; ``bias`` replaces the input layer's.
    """
    procs, probes = [], []
    prev_port, prev_shape = None, None
    if spikes is not None:
        first = net.layers[0]
        shape = first.shape if isinstance(first, Input) else net.input_shape
        if not isinstance(first, Input) and isinstance(next(l for l in net.layers if not isinstance(l, Flatten)), Dense):
            shape = (int(np.prod(shape)),)
        data = to_lava(spikes.reshape((steps,) + tuple(shape)), len(shape))
        source = SpikeSource(data=np.moveaxis(data, 0, -1).astype(np.int32))
        procs.append(source)
        prev_port, prev_shape = source.s_out, tuple(shape)
    for k, i in enumerate(net.neuron_layers):
        layer = net.layers[i]
        layer_bias = bias if isinstance(layer, Input) and bias is not None else layer.bias
        lif = _neuron(layer, k, layer_bias, reset_interval, net.reset_offset)
        procs.append(lif)
        if isinstance(layer, Input):
            if prev_port is not None:
                prev_port.connect(lif.a_in)
        else:
            syn = _synapse(layer)
            procs.append(syn)
            if prev_port is not None:
                _connect(prev_port, prev_shape, layer, syn.s_in)
            syn.a_out.connect(lif.a_in)
        probes.append(_probe(i, tuple(layer.shape), lif, steps, record))
        prev_port, prev_shape = lif.s_out, tuple(layer.shape)
    return procs, probes


def _probe(index: int, shape, lif, steps: int, record) -> _Probe:
    sink = SpikeSink(shape=lif.s_out.shape, buffer=steps)
    lif.s_out.connect(sink.a_in)
    probe = _Probe(index, shape, sink)
    for name in ("u", "v"):
        if name in record:
            reader = Read(buffer=steps)
            reader.connect_var(getattr(lif, name))
            probe.reads[name] = reader
    return probe


def run_built(procs: list, probes: list[_Probe], steps: int) -> dict[str, dict[int, np.ndarray]]:
    """Run the processes for ``steps`` and return s, u, v traces as (steps, *shape) per layer."""
    out: dict[str, dict[int, np.ndarray]] = {"s": {}, "u": {}, "v": {}}
    try:
        procs[0].run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        for p in probes:
            out["s"][p.index] = from_lava_trace(p.spikes.data.get(), p.shape) != 0
            for name, reader in p.reads.items():
                out[name][p.index] = np.rint(from_lava_trace(reader.data.get(), p.shape)).astype(np.int32)
    finally:
        procs[0].stop()
    return out


def _sample(x, b: int, per_sample: bool):
    if x is None:
        return None
    return x[b] if per_sample else x


def run_case(case: LavaCase) -> Recording:
    """Run a case sample by sample and stack the traces like the simulator's recording."""
    batch, steps, net = case.batch(), case.steps, case.net
    first = net.layers[0]
    bias_per_sample = case.bias is not None and isinstance(first, Input) and np.ndim(case.bias) > len(first.shape)
    traces = []
    for b in range(batch):
        spikes = None if case.spikes is None else np.asarray(case.spikes)[b, :steps]
        procs, probes = build(net, steps, spikes, _sample(case.bias, b, bias_per_sample), case.record, case.resolved_reset())
        traces.append(run_built(procs, probes, steps))
    return _recording(traces, steps, case.record, net.neuron_layers[-1])


def _recording(traces: list[dict], steps: int, record, last: int) -> Recording:
    rec = Recording(steps=steps, batch=len(traces))
    for i in traces[0]["s"]:
        s = np.stack([t["s"][i] for t in traces])
        rec.spike_count[i] = int(s.sum())
        for counter in ("synaptic_events", "neuron_updates", "u_wraps", "v_saturations"):
            getattr(rec, counter)[i] = 0
        for name in record:
            getattr(rec, name)[i] = s if name == "s" else np.stack([t[name][i] for t in traces])
    rec.output_counts = np.stack([t["s"][last] for t in traces]).sum(axis=1).astype(np.int64)
    return rec


def run_netx(spec: dict, arrays: dict[str, np.ndarray]) -> Recording:
    """Run a netx file through lava-dl's ``netx.hdf5.Network``, one sample at a time."""
    steps, record = int(spec["steps"]), tuple(spec["record"])
    spikes, bias = arrays.get("spikes"), arrays.get("bias")
    layers = _netx_layers(spec["path"])
    per_sample = bias is not None and bias.ndim > len(layers[0][1])
    batch = spikes.shape[0] if spikes is not None else (bias.shape[0] if per_sample else 1)
    traces = []
    for b in range(batch):
        sample_spikes = None if spikes is None else spikes[b, :steps]
        procs, probes = _build_netx(spec, steps, sample_spikes, _sample(bias, b, per_sample), record, layers)
        traces.append(run_built(procs, probes, steps))
    return _recording(traces, steps, record, probes[-1].index)


def _build_netx(spec: dict, steps: int, spikes, bias, record, layers) -> tuple[list, list[_Probe]]:
    from lava.lib.dl.netx import hdf5

    input_shape = None if spikes is None else tuple(reversed(spikes.shape[1:]))
    net = hdf5.Network(net_config=spec["path"], reset_interval=spec["reset_interval"], input_shape=input_shape)
    procs = [net]
    if bias is not None:
        net.in_layer.neuron.bias_mant.init = to_lava(np.asarray(bias), bias.ndim).astype(np.int32)
    if spikes is not None:
        data = to_lava(spikes, spikes.ndim - 1)
        source = SpikeSource(data=np.moveaxis(data, 0, -1).astype(np.int32))
        source.s_out.connect(net.inp)
    probes = []
    built = [i for i, (kind, shape, has_neuron) in enumerate(layers) if kind in ("dense", "conv", "dense_rec") or (kind == "input" and has_neuron)]
    for index, block in zip(built, net.layers):
        shape = tuple(block.neuron.u.shape)
        ours = tuple(reversed(shape)) if len(shape) == 3 else shape
        probes.append(_probe(index, ours, block.neuron, steps, record))
    return procs, probes


def _netx_layers(path: str) -> list[tuple[str, tuple[int, ...], bool]]:
    """(type, stored shape, has a neuron group) of every layer in a netx file."""
    import h5py

    layers = []
    with h5py.File(path, "r") as f:
        for i in range(len(f["layer"])):
            group = f["layer"][str(i)]
            kind = np.asarray(group["type"][()]).reshape(-1)[0]
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            shape = tuple(int(s) for s in np.asarray(group["shape"][()]).reshape(-1)) if "shape" in group else ()
            layers.append((kind, shape, "neuron" in group))
    return layers


def main(argv: list[str]) -> int:
    mode, src, dst = argv
    if mode == "cases":
        recs = [run_case(case) for case in read_cases(Path(src))]
    else:
        recs = [run_netx(*_load(Path(src)))]
    with atomic_path(dst) as tmp:
        write_recordings(tmp, recs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
