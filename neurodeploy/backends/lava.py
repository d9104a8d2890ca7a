"""Run a netlist in Lava's bit-accurate CPU models (``fixed_pt``), the reference the simulator must equal.

Lava 0.10 needs Python 3.10 and numpy < 2. When this interpreter cannot import
it, the run happens in a subprocess with the interpreter of
:func:`neurodeploy.backends.lava_env.lava_python`; cases and recordings travel
through a temporary ``.npz`` file of plain arrays and one JSON string (no pickle).

What Lava accepts, and so what :func:`check_lava_limits` enforces:

- bias mantissas within int16 (Lava's LIF holds ``bias_mant`` as int16 and would wrap);
- dense weights within int32 (Lava casts them to int32 before clipping to 8 bits);
- conv: ``weight_exp >= 0`` (Lava's Conv has no weight exponent: a positive one is
  folded into the weights), every possible sum of ``|w| << weight_exp`` below 2**31
  (Lava casts the float64 sum to int32), kernel, stride, padding, dilation and
  groups at most 127 (Lava stores them as int8);
- spikes into a synaptic layer are 0/1 (Lava's binary-spike synapses), spikes into an
  input layer within int32.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurodeploy.backends.lava_env import lava_in_process, lava_python
from neurodeploy.backends.lava_exchange import LavaCase, LavaError, read_recordings, save_exchange, write_cases
from neurodeploy.netlist import Conv, Dense, Input, Netlist
from neurodeploy.progress import Progress, parse_event
from neurodeploy.sim import RECORDABLE, Recording

NO_LAVA = "no Lava environment: run scripts/lava-env.sh or set NEURODEPLOY_LAVA_PYTHON"
INT16 = (-(2**15), 2**15 - 1)
INT32_LIMIT = 2**31
LAVA_INT8_MAX = 127


def run_lava(
    net: Netlist,
    steps: int,
    *,
    spikes: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    record: tuple[str, ...] = ("s",),
    reset_interval: int | None = -1,
) -> Recording:
    """Run ``net`` in Lava like :func:`neurodeploy.sim.simulate` (one Lava run a sample).

    The recording has s, u, v as asked, ``spike_count`` and ``output_counts``; the
    other counters stay zero.
    """
    return run_lava_cases([LavaCase(net, steps, spikes, bias, tuple(record), reset_interval)])[0]


def run_lava_cases(cases: Sequence[LavaCase]) -> list[Recording]:
    """Run many cases, paying Lava's import once (one subprocess for all of them)."""
    for k, case in enumerate(cases):
        check_lava_limits(case, f"case {k}")
    if lava_in_process():
        from neurodeploy.backends.lava_worker import run_cases

        return run_cases(list(cases), progress=Progress("lava"))
    return _in_subprocess("cases", lambda path: write_cases(path, cases))


def run_netx_in_lava(
    path: str | os.PathLike,
    steps: int,
    *,
    bias: np.ndarray | None = None,
    spikes: np.ndarray | None = None,
    reset_interval: int | None = None,
    record: tuple[str, ...] = ("s",),
    reset_offset: int = 0,
    spike_exp: int = 6,
    input_message_bits: int = 0,
) -> Recording:
    """Run a netx HDF5 file through lava-dl's own ``netx.hdf5.Network`` (one sample a run).

    ``bias`` sets the input layer's bias mantissas ((C, H, W) or per sample; netx
    reads none from the file); ``spikes`` (batch, steps, *input shape) feed the
    network's input port (a Delta input layer's neurons); ``reset_interval``, ``reset_offset``,
    ``spike_exp`` and ``input_message_bits`` are netx's. The
    recording is keyed by the file's layer index and holds every layer netx builds.
    """
    path = Path(path)
    if not path.exists():
        raise LavaError(f"{path}: no such netx file")
    _check_record(record)
    spec = {
        "path": str(path.resolve()),
        "steps": int(steps),
        "reset_interval": reset_interval,
        "reset_offset": int(reset_offset),
        "record": list(record),
        "spike_exp": int(spike_exp),
        "input_message_bits": int(input_message_bits),
    }
    return _run_netx_spec(spec, bias, spikes)


def run_lava_dl_call(
    call: str,
    steps: int,
    *,
    bias: np.ndarray | None = None,
    spikes: np.ndarray | None = None,
    record: tuple[str, ...] = ("s",),
) -> Recording:
    """:func:`run_netx_in_lava` with the network built by ``call``, a ``netx.hdf5.Network(...)`` call as
    :func:`neurodeploy.exporters.netx.lava_dl_call` prints it (its arguments are read as literals; a
    relative ``net_config`` is taken from this process's working folder)."""
    from neurodeploy.exporters.netx import lava_dl_call_arguments

    path = Path(str(lava_dl_call_arguments(call).get("net_config", "")))
    if not path.is_file():
        raise LavaError(f"{call}: net_config {str(path)!r} is not a file")
    _check_record(record)
    spec = {"call": call, "cwd": os.getcwd(), "path": str(path.resolve()), "steps": int(steps), "record": list(record)}
    return _run_netx_spec(spec, bias, spikes)


def _run_netx_spec(spec: dict, bias, spikes) -> Recording:
    arrays = {k: np.asarray(v) for k, v in (("bias", bias), ("spikes", spikes)) if v is not None}
    if lava_in_process():
        from neurodeploy.backends.lava_worker import run_netx

        return run_netx(spec, arrays, Progress("lava"))
    return _in_subprocess("netx", lambda p: save_exchange(p, spec, arrays))[0]


def check_lava_limits(case: LavaCase, where: str = "case") -> None:
    """Raise :class:`LavaError` where ``case`` leaves the ranges Lava computes exactly."""
    _check_record(case.record)
    net = case.net
    for i, layer in enumerate(net.layers):
        label = f"{where}, layer {i} ({layer.kind})"
        bias = case.bias if isinstance(layer, Input) and case.bias is not None else getattr(layer, "bias", None)
        if not net.graded:  # a sigma-delta bias is an int32 after its shift, which the netlist checks
            _within(label, "bias mantissa", bias, *INT16)
        if isinstance(layer, Dense):
            _within(label, "weight", layer.weight, -INT32_LIMIT, INT32_LIMIT - 1)
        if isinstance(layer, Conv):
            _check_conv(label, layer)
    if case.spikes is not None:
        spikes = np.asarray(case.spikes)
        if isinstance(net.layers[0], Input) or net.input_message_bits:
            _within(f"{where}, input spikes", "value", spikes, -INT32_LIMIT, INT32_LIMIT - 1)
        elif spikes.size and not np.isin(spikes, (0, 1)).all():
            raise LavaError(f"{where}, input spikes: Lava's synapses take binary spikes, got values other than 0 and 1")


def _check_conv(label: str, layer: Conv) -> None:
    if layer.weight_exp < 0:
        raise LavaError(
            f"{label}: weight_exp = {layer.weight_exp}; Lava's Conv has no weight exponent, it must be >= 0"
        )
    bound = int(np.abs(layer.weight).reshape(layer.weight.shape[0], -1).sum(axis=1).max(initial=0)) << layer.weight_exp
    if bound >= INT32_LIMIT:
        raise LavaError(f"{label}: a conv sum can reach {bound}, Lava casts it to int32 (limit {INT32_LIMIT - 1})")
    for name in ("stride", "padding", "dilation"):
        if max(getattr(layer, name)) > LAVA_INT8_MAX:
            raise LavaError(f"{label}: {name} = {getattr(layer, name)} exceeds Lava's int8 limit {LAVA_INT8_MAX}")
    if max(layer.weight.shape[2:]) > LAVA_INT8_MAX or layer.groups > LAVA_INT8_MAX:
        raise LavaError(f"{label}: kernel {layer.weight.shape[2:]} or groups {layer.groups} exceed Lava's int8 limit")


def _within(label: str, name: str, value, lo: int, hi: int) -> None:
    if value is None:
        return
    arr = np.asarray(value)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = int(arr.min() if arr.min() < lo else arr.max())
        raise LavaError(f"{label}: {name} {bad} is outside Lava's range [{lo}, {hi}]")


def _check_record(record) -> None:
    bad = set(record) - set(RECORDABLE)
    if bad:
        raise LavaError(f"cannot record {sorted(bad)}; choose from {RECORDABLE}")


# --- running the worker in another interpreter ---------------------------------


def _in_subprocess(mode: str, write_input) -> list[Recording]:
    exe = lava_python()
    if exe is None:
        raise LavaError(NO_LAVA)
    with tempfile.TemporaryDirectory(prefix="neurodeploy-lava-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        write_input(src)
        cmd = [exe, "-m", "neurodeploy.backends.lava_worker", mode, str(src), str(dst)]
        progress = Progress("lava")
        progress({"stage": f"starting {exe}"})
        try:
            proc = subprocess.Popen(
                cmd, env=worker_env(Path(tmp)), cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
        except OSError as err:
            raise LavaError(f"cannot start the Lava interpreter {exe}: {err}") from err
        tail: deque[str] = deque(maxlen=15)  # the worker's last lines of its own, for an error
        with proc:
            for line in proc.stderr or ():
                event = parse_event(line.rstrip("\n"))
                if event is None:
                    tail.append(line.rstrip("\n"))
                else:
                    progress(event)
        progress.close()
        if proc.returncode != 0 or not dst.exists():
            lines = "\n".join(tail).strip()
            raise LavaError(f"the Lava run with {exe} failed (exit status {proc.returncode}):\n{lines}")
        progress({"stage": "done"})
        return read_recordings(dst)


def worker_env(tmp: Path) -> dict[str, str]:
    """The Lava interpreter's environment: this process's, with neurodeploy alone on its path.

    Only a link to this package goes on PYTHONPATH, never the folder it is installed in
    nor the caller's PYTHONPATH: those hold this interpreter's packages (numpy 2 among
    them), which Lava's Python 3.10 must not import.
    """
    path = tmp / "package"
    path.mkdir()
    (path / "neurodeploy").symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(path)
    return env
