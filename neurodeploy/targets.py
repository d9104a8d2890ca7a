"""Hardware targets: the limits and per-operation costs of a chip, read from TOML.

A target file has the sections ``[system]``, ``[core]``, ``[synapse]``,
``[neuron]``, ``[run]``, ``[energy]`` and ``[timing]`` (see ``neurodeploy/hw_configs/*.toml``
for annotated examples). Any limit may be left out when no figure is known: the
design-rule checks and the cost model then report it as unchecked or unknown
rather than assume a value.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path

from neurodeploy import fixed_point as fx
from neurodeploy.errors import InputFileError, NeurodeployError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Range = tuple[int, int]


@dataclass(frozen=True)
class Energy:
    """Energy an operation in picojoules (static power in milliwatts); ``None`` where unpublished."""

    synaptic_op_pj: float | None = None  # one spike delivered over one synapse
    neuron_update_pj: float | None = None  # one neuron stepped (the idle / inactive figure)
    neuron_update_active_pj: float | None = None  # one neuron stepped that spiked
    spike_pj: float | None = None  # one spike sent out of a neuron
    static_power_mw: float | None = None  # a chip's static (leakage) power
    chip_crossing_pj: float | None = None  # one spike message sent to a core on another chip
    source: str = ""  # where the figures come from, printed with every cost estimate
    basis: str = ""  # what kind of figures they are (published, fitted...), printed beside the energy


@dataclass(frozen=True)
class Timing:
    """Time an operation in nanoseconds; ``None`` where unpublished."""

    synaptic_op_ns: float | None = None
    neuron_update_ns: float | None = None
    neuron_update_active_ns: float | None = None
    barrier_sync_ns: float | None = None  # end-of-step synchronisation across the chip
    source: str = ""
    basis: str = ""  # printed beside the latency


@dataclass(frozen=True)
class Target:
    """The limits a mapper and the design-rule checks need; ``None`` where unknown."""

    name: str
    cores_per_chip: int
    neurons_per_core: int
    description: str = ""
    path: str = ""  # the file it was read from
    chips: int = 1
    max_chips: int | None = None  # chips in the largest system built of this chip
    allow_split: bool = True
    neurons_per_chip: int | None = None
    synapses_per_chip: int | None = None
    input_axons_per_core: int | None = None
    output_axons_per_core: int | None = None
    synapse_memory_bits: int | None = None  # a core's synapse memory
    synapse_index_bits: int = 0  # bits a stored synapse takes besides its weight
    synapse_delay_bits: int = 0  # further bits a synapse takes when the layer has delays
    weight_bits: int | None = None  # most weight bits a synapse holds
    weight_mantissa: Range | None = None
    weight_exp: Range | None = None
    delay: Range | None = None
    graded_spikes: bool = False
    graded_spike_bits: int | None = None
    vth: Range | None = None
    bias_mantissa: Range | None = None
    bias_exp: Range | None = None
    du: Range | None = None
    dv: Range | None = None
    u_bits: int | None = None
    v_bits: int | None = None
    conventions: str = "lava"  # run conventions (fixed_point.CONVENTIONS) of what the target computes
    energy: Energy = Energy()
    timing: Timing = Timing()

    @property
    def cores(self) -> int:
        """Cores in the whole system."""
        return self.cores_per_chip * self.chips


@dataclass(frozen=True)
class _Key:
    section: str
    key: str
    attr: str
    kind: str  # count (int >= 1), bits (0..64), width (1..64), range, exponents, bool, float, str
    required: bool = False


_SCHEMA = (
    _Key("", "name", "name", "str", required=True),
    _Key("", "description", "description", "str"),
    _Key("system", "chips", "chips", "count"),
    _Key("system", "max_chips", "max_chips", "count"),
    _Key("system", "cores_per_chip", "cores_per_chip", "count", required=True),
    _Key("system", "neurons_per_chip", "neurons_per_chip", "count"),
    _Key("system", "synapses_per_chip", "synapses_per_chip", "count"),
    _Key("system", "allow_split", "allow_split", "bool"),
    _Key("core", "neurons", "neurons_per_core", "count", required=True),
    _Key("core", "input_axons", "input_axons_per_core", "count"),
    _Key("core", "output_axons", "output_axons_per_core", "count"),
    _Key("core", "synapse_memory_bits", "synapse_memory_bits", "count"),
    _Key("core", "synapse_index_bits", "synapse_index_bits", "bits"),
    _Key("core", "synapse_delay_bits", "synapse_delay_bits", "bits"),
    _Key("synapse", "weight_bits", "weight_bits", "width"),
    _Key("synapse", "weight_mantissa", "weight_mantissa", "range"),
    _Key("synapse", "weight_exp", "weight_exp", "exponents"),
    _Key("synapse", "delay", "delay", "range"),
    _Key("synapse", "graded_spikes", "graded_spikes", "bool"),
    _Key("synapse", "graded_spike_bits", "graded_spike_bits", "width"),
    _Key("neuron", "vth", "vth", "range"),
    _Key("neuron", "bias_mantissa", "bias_mantissa", "range"),
    _Key("neuron", "bias_exp", "bias_exp", "exponents"),
    _Key("neuron", "du", "du", "range"),
    _Key("neuron", "dv", "dv", "range"),
    _Key("neuron", "u_bits", "u_bits", "width"),
    _Key("neuron", "v_bits", "v_bits", "width"),
    _Key("run", "conventions", "conventions", "conventions"),
) + tuple(
    _Key(section, f.name, f.name, "str" if f.name in ("source", "basis") else "float")
    for section, cls in (("energy", Energy), ("timing", Timing))
    for f in fields(cls)
)

_EXPECTED = {
    "count": "an integer >= 1, at most 2**53",
    "bits": "an integer >= 0, at most 64",
    "width": "an integer >= 1, at most 64 (bits)",
    "range": "two integers [low, high] with low <= high, within +-2**53",
    "exponents": "two integers [low, high] with low <= high, within +-64",
    "bool": "true or false",
    "float": "a number >= 0, finite",
    "str": "a string",
    "conventions": f"one of {', '.join(fx.CONVENTIONS)}",
}


MAX_INT = 2**53  # integers beyond this are refused (and floats are exact below it)
MAX_BITS = 64  # bit widths, and exponents in either direction (a shift beyond leaves an int64)
MAX_FILE_BYTES = 1 << 20  # a target file is a page of TOML


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT


def _valid(kind: str, value) -> bool:
    if kind == "count":
        return _is_int(value) and value >= 1
    if kind == "bits":
        return _is_int(value) and 0 <= value <= MAX_BITS
    if kind == "width":
        return _is_int(value) and 1 <= value <= MAX_BITS
    if kind in ("range", "exponents"):
        bound = MAX_BITS if kind == "exponents" else MAX_INT
        return (
            isinstance(value, list)
            and len(value) == 2
            and all(_is_int(v) and abs(v) <= bound for v in value)
            and value[0] <= value[1]
        )
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "float":
        return (_is_int(value) or (isinstance(value, float) and math.isfinite(value))) and value >= 0
    if kind == "conventions":
        return value in fx.CONVENTIONS
    return isinstance(value, str)


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _check_known(path: str, data: dict) -> None:
    """Refuse sections and keys the schema does not know (typos would otherwise pass silently)."""
    sections = {k.section for k in _SCHEMA if k.section}
    for name, value in data.items():
        if isinstance(value, dict):
            if name not in sections:
                raise InputFileError(f"{path}: unknown section [{name}]; expected one of {sorted(sections)}")
            known = sorted(k.key for k in _SCHEMA if k.section == name)
            for key in value:
                if key not in known:
                    raise InputFileError(f"{path}: unknown key {name}.{key}; [{name}] takes {known}")
        elif name not in {k.key for k in _SCHEMA if not k.section}:
            raise InputFileError(f"{path}: unknown top-level key {name!r} (did you mean to put it in a section?)")


def parse_target(data: dict, path: str) -> Target:
    """Validate the parsed TOML ``data`` of ``path`` and build its :class:`Target`."""
    _check_known(path, data)
    values: dict = {"path": path}
    costs: dict[str, dict] = {"energy": {}, "timing": {}}
    for spec in _SCHEMA:
        table = data if not spec.section else data.get(spec.section, {})
        if spec.key not in table:
            if spec.required:
                raise InputFileError(f"{path}: missing key {_dotted(spec.section, spec.key)} ({_EXPECTED[spec.kind]})")
            continue
        value = table[spec.key]
        if not _valid(spec.kind, value):
            raise InputFileError(
                f"{path}: key {_dotted(spec.section, spec.key)} = {value!r}: expected {_EXPECTED[spec.kind]}"
            )
        if spec.section in ("energy", "timing"):
            costs[spec.section][spec.key] = value if spec.kind == "str" else float(value)
        else:
            values[spec.attr] = tuple(value) if spec.kind in ("range", "exponents") else value
    target = Target(**values, energy=Energy(**costs["energy"]), timing=Timing(**costs["timing"]))
    if _too_many_chips(target):
        raise InputFileError(f"{path}: system.chips = {target.chips} {_too_many_chips(target)}")
    return target


def _too_many_chips(target: Target) -> str:
    """Why ``target.chips`` is too many, or ''."""
    if target.max_chips is None or target.chips <= target.max_chips:
        return ""
    return f"exceeds system.max_chips = {target.max_chips:,}, the largest {target.name} system"


def with_chips(target: Target, chips: int) -> Target:
    """``target`` as a system of ``chips`` chips, within its ``max_chips``."""
    sized = replace(target, chips=chips)
    if _too_many_chips(sized):
        raise NeurodeployError(f"--chips {chips} {_too_many_chips(sized)}")
    return sized


def _bundled_dir():
    return resources.files("neurodeploy.hw_configs")


def list_targets() -> list[str]:
    """Names of the targets bundled with the package."""
    return sorted(p.name[:-5] for p in _bundled_dir().iterdir() if p.name.endswith(".toml"))


def load_target(name_or_path: str | os.PathLike) -> Target:
    """A bundled target by name ('loihi1', 'loihi2') or a user's TOML file by path."""
    text_name = str(name_or_path)
    if text_name in list_targets():
        resource = _bundled_dir() / f"{text_name}.toml"
        return _parse_text(resource.read_text(encoding="utf-8"), f"{text_name} (bundled {resource.name})")
    path = Path(name_or_path)
    if not path.is_file():
        raise InputFileError(
            f"{text_name}: no such target file, and not a bundled target (bundled: {', '.join(list_targets())})"
        )
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputFileError(f"{path}: {size} bytes; a target file has at most {MAX_FILE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read target file: {err}") from err
    return _parse_text(text, str(path))


def _parse_text(text: str, path: str) -> Target:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputFileError(f"{path}: not valid TOML: {err}") from err
    except RecursionError:
        raise InputFileError(f"{path}: not valid TOML for a target: arrays or tables nest too deep") from None
    return parse_target(data, path)
