"""The Lava side of the Lava backend: builds a netlist from Lava processes and runs it.

Imported only by an interpreter that can import Lava. Run as a module it reads
cases from an ``.npz`` file and writes their recordings to another::

    python -m neurodeploy.backends.lava_worker cases IN.npz OUT.npz
    python -m neurodeploy.backends.lava_worker netx IN.npz OUT.npz

Each neuron layer is a ``LIF`` (``LIFReset`` with offset k + reset_offset + 1 for
the k-th neuron layer when resets are asked for, as netx staggers them), each
dense layer a ``Dense`` or ``DelayDense``, each conv layer a ``Conv`` with the
kernel flipped and put in Lava's (x, y, f) order; input spikes come from a
``RingBuffer`` source and one :class:`Recorder` takes s, u and v of every layer.
Lava runs one sample at a time; several samples (of one case or of many) share
one Lava run as disjoint networks, which pays compilation and start-up once.
Everything runs with ``Loihi2SimCfg(select_tag='fixed_pt')``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.process import Conv as LavaConv
from lava.proc.dense.process import DelayDense
from lava.proc.dense.process import Dense as LavaDense
from lava.proc.io.source import RingBuffer as SpikeSource
from lava.proc.lif.process import LIF, LIFReset
from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta

from neurodeploy.atomic import atomic_path
from neurodeploy.backends.lava_exchange import LavaCase, load_exchange, read_cases, write_recordings
from neurodeploy.counters import COUNTERS
from neurodeploy.exporters.netx import lava_dl_call_arguments
from neurodeploy.fixed_point import STATE_EXP
from neurodeploy.h5check import h5py_module
from neurodeploy.netlist import (
    DeltaNeuron,
    Dense,
    Flatten,
    Input,
    Netlist,
    RecurrentDense,
    SigmaNeuron,
    bias_per_neuron,
    is_graded,
)
from neurodeploy.progress import event_line
from neurodeploy.sim import Recording


def to_lava(x: np.ndarray, ndim: int) -> np.ndarray:
    """Our (..., C, H, W) order to Lava's (..., x, y, f) = (..., W, H, C); 1-D shapes unchanged."""
    if ndim != 3:
        return x
    lead = x.ndim - 3
    return x.transpose(tuple(range(lead)) + (lead + 2, lead + 1, lead))


def _per_neuron(bias, shape: tuple[int, ...]) -> np.ndarray:
    if bias is None:
        return np.zeros(shape, np.int64)
    return np.broadcast_to(bias_per_neuron(np.asarray(bias, np.int64), shape), shape)


def _graded_neuron(layer, bias):
    """Lava's Delta, Sigma or SigmaDelta for a sigma-delta layer, state_exp 6 as netx builds them."""
    n, shape = layer.neuron, tuple(layer.shape)
    lava_shape = tuple(to_lava(np.empty(shape), len(shape)).shape)
    if isinstance(n, SigmaNeuron):
        return Sigma(shape=lava_shape)
    common = dict(
        shape=lava_shape, vth=int(n.vth), spike_exp=int(n.spike_exp), state_exp=STATE_EXP, cum_error=bool(n.cum_error)
    )
    if isinstance(n, DeltaNeuron):
        return Delta(**common)
    mode = ActivationMode.RELU if n.activation == "relu" else ActivationMode.UNIT
    return SigmaDelta(**common, bias=to_lava(_per_neuron(bias, shape), len(shape)).astype(np.int32), act_mode=mode)


def _neuron(layer, k: int, bias, reset_interval: int | None, reset_offset: int):
    n = layer.neuron
    shape = tuple(layer.shape)
    if is_graded(n):
        return _graded_neuron(layer, bias)
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


def _synapse(layer, message_bits: int = 0):
    """Lava's synapse for ``layer``, taking messages of ``message_bits`` bits (0: binary spikes)."""
    if isinstance(layer, Dense):
        common = dict(
            weight_exp=int(layer.weight_exp), num_weight_bits=int(layer.weight_bits), num_message_bits=int(message_bits)
        )
        weight = layer.weight.astype(np.int32)
        if layer.delay is not None:  # as netx: a layer with a delay dataset is a DelayDense, zeros or not
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
        num_message_bits=int(message_bits),
    )


def _connect(out_port, out_shape: tuple[int, ...], layer, in_port) -> None:
    """Connect spikes to a synapse; a dense layer after a (C, H, W) one takes them flattened C-first."""
    if isinstance(layer, Dense) and len(out_shape) == 3:
        out_port = out_port.transpose([2, 1, 0]).flatten()
    out_port.connect(in_port)


class Recorder(AbstractProcess):
    """Records spikes (from OutPorts) and u, v (through RefPorts) of many layers, saved to ``path``.

    One process for all the traces of a run: Lava forks an OS process for every
    process, so one recorder costs far less than a sink or a ``Read`` per trace.
    Its buffer goes to an ``.npy`` file after the last step, because reading a Var
    back from Lava sends it one element at a time. Row t holds every target's
    values after step t, flattened in Lava's order.
    """

    def __init__(self, *, targets: list, steps: int, path: str) -> None:
        kinds = tuple("s" if isinstance(t, OutPort) else "var" for t in targets)
        sizes = [int(np.prod(t.shape)) for t in targets]
        super().__init__(kinds=kinds, sizes=sizes, steps=steps, path=path)
        for k, target in enumerate(targets):
            setattr(self, f"p{k}", InPort(shape=target.shape) if kinds[k] == "s" else RefPort(shape=target.shape))
        self.targets = targets

    def connect_targets(self) -> None:
        for k, target in enumerate(self.targets):
            port = getattr(self, f"p{k}")
            if isinstance(target, OutPort):
                target.connect(port)
            else:
                port.connect_var(target)


class _RecorderModelBase(PyLoihiProcessModel):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.buffer = np.zeros((proc_params["steps"], sum(proc_params["sizes"])), np.int64)

    def _slots(self, kind: str):
        offsets = np.cumsum([0] + list(self.proc_params["sizes"]))
        for k, this in enumerate(self.proc_params["kinds"]):
            if this == kind:
                yield getattr(self, f"p{k}"), offsets[k], offsets[k + 1]

    def run_spk(self) -> None:
        for port, lo, hi in self._slots("s"):
            self.buffer[self.time_step - 1, lo:hi] = port.recv().reshape(-1)

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        for port, lo, hi in self._slots("var"):
            self.buffer[self.time_step - 1, lo:hi] = port.read().reshape(-1)
        if self.time_step == self.proc_params["steps"]:
            with atomic_path(self.proc_params["path"]) as tmp, open(tmp, "wb") as fh:
                np.save(fh, self.buffer)


_RECORDER_MODELS: dict[tuple[str, ...], type] = {}


def _recorder_model(kinds: tuple[str, ...]) -> type:
    """A model class with one typed port a target (Lava types ports by class attribute)."""
    if kinds not in _RECORDER_MODELS:
        port_types = {"s": PyInPort.VEC_DENSE, "var": PyRefPort.VEC_DENSE}
        ports = {f"p{k}": LavaPyType(port_types[kind], np.int32) for k, kind in enumerate(kinds)}
        cls = type(f"RecorderModel{len(kinds)}", (_RecorderModelBase,), ports)
        cls = implements(proc=Recorder, protocol=LoihiProtocol)(cls)
        _RECORDER_MODELS[kinds] = tag("fixed_pt")(requires(CPU)(cls))
    return _RECORDER_MODELS[kinds]


Neurons = list[tuple[int, tuple[int, ...], AbstractProcess]]  # (layer index, our shape, neuron process)
Builder = Callable[[int], tuple[list, Neurons]]  # run length -> processes and neurons of one sample
Traces = dict[str, dict[int, np.ndarray]]  # var -> layer -> (steps, *shape)
GROUP_SIZE = 8  # samples a Lava run


def build(net: Netlist, steps: int, spikes, bias, reset_interval) -> tuple[list, Neurons]:
    """Lava processes for one sample of ``net``, and its neuron processes.

    ``spikes`` is (steps, *input shape) or None; ``bias`` replaces the input layer's.
    """
    procs, neurons = [], []
    prev_port = None
    prev_shape: tuple[int, ...] = ()  # of prev_port's output, once there is one
    bits = net.input_message_bits
    if spikes is not None:
        first = net.layers[0]
        shape = net.external_shape
        first_synapse = next(x for x in net.layers if not isinstance(x, Flatten))
        if not isinstance(first, Input) and isinstance(first_synapse, Dense):
            shape = (int(np.prod(shape)),)
        data = to_lava(spikes.reshape((steps,) + tuple(shape)), len(shape))
        source = SpikeSource(data=np.moveaxis(data, 0, -1).astype(np.int32))
        procs.append(source)
        prev_port, prev_shape = source.s_out, tuple(shape)
    for k, i in enumerate(net.neuron_layers):
        layer = net.layers[i]
        if isinstance(layer, Flatten):  # not among the neuron layers
            continue
        layer_bias = bias if isinstance(layer, Input) and bias is not None else layer.bias
        lif = _neuron(layer, k, layer_bias, reset_interval, net.reset_offset)
        procs.append(lif)
        if isinstance(layer, Input):
            if prev_port is not None:
                prev_port.connect(lif.a_in)
        else:
            syn = _synapse(layer, bits)
            procs.append(syn)
            if prev_port is not None:
                _connect(prev_port, prev_shape, layer, syn.s_in)
            syn.a_out.connect(lif.a_in)
            if isinstance(layer, RecurrentDense) and layer.weight_rec is not None:
                # as netx's RecurrentDense block: the input's message bits
                back = _synapse(
                    Dense(
                        weight=layer.weight_rec,
                        neuron=layer.neuron,
                        weight_exp=layer.weight_exp,
                        weight_bits=layer.weight_bits,
                    ),
                    bits,
                )
                procs.append(back)
                lif.s_out.connect(back.s_in)
                back.a_out.connect(lif.a_in)
        neurons.append((i, tuple(layer.shape), lif))
        prev_port, prev_shape = lif.s_out, tuple(layer.shape)
        bits = getattr(layer.neuron, "message_bits", 0)
    return procs, neurons


_MODELS: dict[type, type] = {}


def _run_config(procs: list, recorder: Recorder) -> Loihi2SimCfg:
    """``fixed_pt`` models, chosen by Lava's own selection once a process class.

    Lava searches (and re-imports) the model modules for every process at every
    compile; the choice is the same for every process of a class, so it is made
    once and handed over per process through Lava's exception map.
    """
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    for proc in procs:
        if type(proc) not in _MODELS:
            _MODELS[type(proc)] = cfg.select(proc, ProcGroupDiGraphs._find_proc_models(proc))
    models = {p: _MODELS[type(p)] for p in procs}
    models[recorder] = _recorder_model(recorder.proc_params["kinds"])
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)


def run_group(builders: list[Builder], steps: list[int], record, timings: dict | None = None) -> list[Traces]:
    """Run several samples as one Lava run (disjoint networks joined by one recorder).

    ``timings``, when given, accumulates seconds of "setup" (building, compiling,
    starting processes), "steps" (running them) and "finish" (stopping, reading).
    """
    clock = time.perf_counter()
    length = max(steps)
    procs, targets, where = [], [], []
    for j, builder in enumerate(builders):
        sample_procs, neurons = builder(length)
        procs += sample_procs
        for index, shape, neuron in neurons:
            graded = isinstance(neuron, (Delta, Sigma, SigmaDelta))
            for var in ("s",) + tuple(v for v in record if v != "s" and hasattr(neuron, v)):
                targets.append(neuron.s_out if var == "s" else getattr(neuron, var))
                where.append((j, index, var, shape, graded))
    tmp = Path(tempfile.mkdtemp(prefix="neurodeploy-lava-"))
    recorder = Recorder(targets=targets, steps=length, path=str(tmp / "traces.npy"))
    recorder.connect_targets()
    marks = [clock]
    try:
        try:
            recorder.create_runtime(run_cfg=_run_config(procs, recorder))
            marks.append(time.perf_counter())
            recorder.run(condition=RunSteps(num_steps=length))
            marks.append(time.perf_counter())
        finally:
            recorder.stop()
        data = np.load(tmp / "traces.npy", allow_pickle=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if timings is not None:
        marks.append(time.perf_counter())
        for name, seconds in zip(("setup", "steps", "finish"), np.diff(marks)):
            timings[name] = timings.get(name, 0.0) + float(seconds)
    return _split(data, where, steps)


def _split(data: np.ndarray, where: list, steps: list[int]) -> list[Traces]:
    out: list[Traces] = [{"s": {}, "u": {}, "v": {}, "sigma": {}, "act": {}} for _ in steps]
    lo = 0
    for j, index, var, shape, graded in where:
        size = int(np.prod(shape))
        lava_shape = tuple(reversed(shape)) if len(shape) == 3 else shape
        trace = to_lava(data[: steps[j], lo : lo + size].reshape((steps[j],) + lava_shape), len(shape))
        out[j][var][index] = trace != 0 if var == "s" and not graded else trace.astype(np.int32)
        lo += size
    return out


def _in_groups(
    builders: list[Builder], steps: list[int], record, size: int, timings, progress=None, owner: list[int] | None = None
) -> list[Traces]:
    """Run the samples ``size`` at a time; after each group ``progress`` (if any) gets the units done
    (cases, by ``owner``: each sample's case, in order; else samples) and steps done."""
    out: list[Traces] = []
    ends = {k: i + 1 for i, k in enumerate(owner or ())}  # each case's samples end here
    for g in range(0, len(builders), size):
        out += run_group(builders[g : g + size], steps[g : g + size], record, timings)
        if progress is not None:
            done = len(out)
            units = (
                [done, len(builders), "samples"]
                if len(ends) < 2
                else [sum(end <= done for end in ends.values()), len(ends), "cases"]
            )
            progress({"units": units, "steps": [sum(steps[:done]), sum(steps)]})
    return out


def _sample(x, b: int, per_sample: bool):
    if x is None:
        return None
    return x[b] if per_sample else x


def _padded(spikes: np.ndarray, length: int) -> np.ndarray:
    """Spikes of one sample padded with zeros to ``length`` steps (a longer run of its group)."""
    out = np.zeros((length,) + spikes.shape[1:], spikes.dtype)
    out[: len(spikes)] = spikes
    return out


def _case_builders(case: LavaCase) -> list[Builder]:
    net, first = case.net, case.net.layers[0]
    per_sample = case.bias is not None and isinstance(first, Input) and np.ndim(case.bias) > len(first.shape)
    spikes = None if case.spikes is None else np.asarray(case.spikes)[:, : case.steps]

    def builder(b: int) -> Builder:
        sample_spikes = None if spikes is None else spikes[b]
        bias = _sample(case.bias, b, per_sample)
        return lambda length: build(
            net, length, None if sample_spikes is None else _padded(sample_spikes, length), bias, case.resolved_reset()
        )

    return [builder(b) for b in range(case.batch())]


def run_cases(
    cases: list[LavaCase], group_size: int = GROUP_SIZE, timings: dict | None = None, progress=None
) -> list[Recording]:
    """Run every sample of every case, ``group_size`` samples a Lava run, and stack them per case.

    ``timings`` accumulates seconds as in :func:`run_group`; ``progress`` takes events as
    :class:`neurodeploy.progress.Progress` does.
    """
    builders, steps, owner = [], [], []
    record = tuple(sorted({v for case in cases for v in case.record}))
    for k, case in enumerate(cases):
        for builder in _case_builders(case):
            builders.append(builder)
            steps.append(case.steps)
            owner.append(k)
    traces = _in_groups(builders, steps, record, group_size, timings, progress, owner)
    return [
        _recording([t for t, o in zip(traces, owner) if o == k], case.steps, case.record, case.net.neuron_layers[-1])
        for k, case in enumerate(cases)
    ]


def _recording(traces: list[Traces], steps: int, record, last: int) -> Recording:
    rec = Recording(steps=steps, batch=len(traces))
    for i in traces[0]["s"]:
        s = np.stack([t["s"][i] for t in traces])
        rec.spike_count[i] = int(np.count_nonzero(s))
        for counter in COUNTERS:  # Lava's models count spikes only
            getattr(rec, counter).setdefault(i, 0)
        for name in record:
            if name == "s" or i in traces[0][name]:
                getattr(rec, name)[i] = s if name == "s" else np.stack([t[name][i] for t in traces])
    rec.output_counts = np.stack([t["s"][last] for t in traces]).sum(axis=1).astype(np.int64)
    return rec


def run_netx(spec: dict, arrays: dict[str, np.ndarray], progress=None) -> Recording:
    """Run a netx file through lava-dl's ``netx.hdf5.Network``, one sample a Lava run."""
    steps, record = int(spec["steps"]), tuple(spec["record"])
    spikes, bias = arrays.get("spikes"), arrays.get("bias")
    layers = _netx_layers(spec["path"])
    per_sample = bias is not None and bias.ndim > len(layers[0][1])
    batch = spikes.shape[0] if spikes is not None else (bias.shape[0] if bias is not None and per_sample else 1)
    traces = []
    for b in range(batch):
        sample_spikes = None if spikes is None else spikes[b, :steps]
        sample_bias = _sample(bias, b, per_sample)

        def build(_, s=sample_spikes, b=sample_bias):
            return _build_netx(spec, s, b, layers)

        traces += run_group([build], [steps], record)
        if progress is not None:
            progress({"units": [b + 1, batch, "samples"], "steps": [(b + 1) * steps, batch * steps]})
    return _recording(traces, steps, record, _netx_blocks(layers)[-1])


def _build_netx(spec: dict, spikes, bias, layers) -> tuple[list, Neurons]:
    from lava.lib.dl.netx import hdf5

    input_shape = None if spikes is None else tuple(reversed(spikes.shape[1:]))
    if "call" in spec:  # the call a user makes, its relative paths from the caller's folder
        os.chdir(spec["cwd"])
        net = hdf5.Network(**lava_dl_call_arguments(spec["call"]))
    else:
        net = hdf5.Network(
            net_config=spec["path"],
            reset_interval=spec["reset_interval"],
            reset_offset=spec["reset_offset"],
            input_shape=input_shape,
            spike_exp=spec.get("spike_exp", 6),
            input_message_bits=spec.get("input_message_bits", 0),
        )
    if bias is not None:
        net.in_layer.neuron.bias_mant.init = to_lava(np.asarray(bias), bias.ndim).astype(np.int32)
    if spikes is not None:
        if len(net.inp.shape) == 1:  # a dense first block takes (C, H, W) input flattened C-first
            spikes = spikes.reshape(len(spikes), -1)
        data = to_lava(spikes, spikes.ndim - 1)
        source = SpikeSource(data=np.moveaxis(data, 0, -1).astype(np.int32))
        delta = isinstance(
            net.in_layer.neuron, Delta
        )  # a Delta input layer encodes the input, as lava-dl's test feeds it
        source.s_out.connect(net.in_layer.neuron.a_in if delta else net.inp)
    neurons = []
    for index, block in zip(_netx_blocks(layers), net.layers):
        shape = tuple(block.neuron.s_out.shape)
        neurons.append((index, tuple(reversed(shape)) if len(shape) == 3 else shape, block.neuron))
    return [], neurons


NETX_BLOCKS = ("dense", "conv", "dense_rec")


def _netx_blocks(layers: list[tuple[str, tuple[int, ...], bool]]) -> list[int]:
    """File indices of the layers netx builds a block for: all but flatten and shape-only input."""
    return [i for i, (kind, _, neuron) in enumerate(layers) if kind in NETX_BLOCKS or (kind == "input" and neuron)]


def _netx_layers(path: str) -> list[tuple[str, tuple[int, ...], bool]]:
    """(type, stored shape, has a neuron group) of every layer in a netx file."""
    h5py = h5py_module()
    layers = []
    with h5py.File(path, "r") as f:
        for i in range(len(f["layer"])):
            group = f["layer"][str(i)]
            kind = np.asarray(group["type"][()]).reshape(-1)[0]
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            shape = tuple(int(s) for s in np.asarray(group["shape"][()]).reshape(-1)) if "shape" in group else ()
            layers.append((kind, shape, "neuron" in group))
    return layers


def _report(event: dict) -> None:
    print(event_line(event), file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    mode, src, dst = argv
    _report({"stage": "Lava imported"})
    if mode == "cases":
        recs = run_cases(read_cases(Path(src)), progress=_report)
    else:
        recs = [run_netx(*load_exchange(Path(src)), progress=_report)]
    with atomic_path(dst) as tmp:
        write_recordings(tmp, recs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
