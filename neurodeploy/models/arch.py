"""Architecture specs in the papers' notation, e.g. ``784-400-400-10`` or ``15C5-P2-40C5-P2-300-10``.

Grammar (tokens joined by ``-``)::

    spec  := [input] layer ('-' layer)*
    input := N | HxW | CxHxW        first token only, and only when more tokens follow
    layer := N[bn]                  dense layer of N neurons
           | NCK[pP][sS][bn]        conv: N channels, K x K kernel, padding P, stride S
           | PK                     sum pooling, K x K window, stride K (no neurons)
           | Dp                     dropout with probability p (training only)

A leading plain number is the input width (``784`` in ``784-400-10``), never a layer;
``bn`` adds batch norm (foldable at eval time) between the synapses and the neurons.
The last layer must be dense: its neurons are the classes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from neurodeploy.errors import NeurodeployError


class ArchError(NeurodeployError, ValueError):
    """A malformed or inconsistent architecture spec; the message names the token."""


@dataclass(frozen=True)
class Dense:
    units: int
    batchnorm: bool = False


@dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int
    padding: int = 0
    stride: int = 1
    batchnorm: bool = False


@dataclass(frozen=True)
class SumPool:
    kernel: int


@dataclass(frozen=True)
class Dropout:
    p: float


Layer = Dense | Conv | SumPool | Dropout


@dataclass(frozen=True)
class Architecture:
    """A parsed spec: the declared input shape (if any) and the layers in order."""

    spec: str
    input_shape: tuple[int, ...] | None
    layers: tuple[Layer, ...]

    @property
    def num_outputs(self) -> int:
        return self.layers[-1].units  # type: ignore[union-attr]


_DENSE = re.compile(r"^(\d+)(bn)?$")
_CONV = re.compile(r"^(\d+)[Cc](\d+)(?:p(\d+))?(?:s(\d+))?(bn)?$")
_POOL = re.compile(r"^P(\d+)$")
_DROP = re.compile(r"^D(0?\.\d+|0)$")
_INPUT = re.compile(r"^\d+(?:x\d+){0,2}$")


def _layer(token: str, spec: str) -> Layer:
    if m := _DENSE.match(token):
        layer: Layer = Dense(int(m[1]), bool(m[2]))
    elif m := _CONV.match(token):
        layer = Conv(int(m[1]), int(m[2]), int(m[3] or 0), int(m[4] or 1), bool(m[5]))
    elif m := _POOL.match(token):
        layer = SumPool(int(m[1]))
    elif m := _DROP.match(token):
        layer = Dropout(float(m[1]))
    else:
        raise ArchError(
            f"arch {spec!r}: token {token!r} is not a layer "
            "(expected N, NCK[pP][sS] with optional 'bn', PK or Dp, e.g. 128, 32C5p2, P2, D0.2)"
        )
    sizes = [v for k, v in vars(layer).items() if k in ("units", "channels", "kernel", "stride")]
    if any(v < 1 for v in sizes):
        raise ArchError(f"arch {spec!r}: token {token!r} has a zero size")
    return layer


def parse_arch(spec: str) -> Architecture:
    """Parse ``spec``; raise :class:`ArchError` naming the bad token."""
    if not isinstance(spec, str) or not spec.strip():
        raise ArchError(f"arch {spec!r} is empty; expected e.g. '64-128-10' or '16C3p1-P2-10'")
    tokens = [t.strip() for t in spec.strip().split("-")]
    if any(not t for t in tokens):
        raise ArchError(f"arch {spec!r} has an empty token (two '-' in a row or a trailing '-')")
    input_shape = None
    if len(tokens) > 1 and _INPUT.match(tokens[0]):
        input_shape = tuple(int(v) for v in tokens[0].split("x"))
        tokens = tokens[1:]
    layers = tuple(_layer(t, spec) for t in tokens)
    if not isinstance(layers[-1], Dense):
        raise ArchError(f"arch {spec!r}: the last layer must be dense (the class neurons), got {tokens[-1]!r}")
    return Architecture(spec, input_shape, layers)


def _conv_out(size: int, kernel: int, padding: int, stride: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def layer_shapes(arch: Architecture, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Output shape of every layer for ``input_shape`` ((C, H, W) or (features,)).

    Checks the declared input against ``input_shape`` and that every layer fits.
    """
    shape = tuple(int(s) for s in input_shape)
    _check_input(arch, shape)
    shapes = []
    for i, layer in enumerate(arch.layers):
        where = f"arch {arch.spec!r}, layer {i + 1} ({type(layer).__name__})"
        if isinstance(layer, Dense):
            shape = (layer.units,)
        elif isinstance(layer, (Conv, SumPool)):
            if len(shape) != 3:
                raise ArchError(
                    f"{where}: needs a (C, H, W) input, got {shape}; conv and pooling come before dense layers"
                )
            c, h, w = shape
            if isinstance(layer, Conv):
                h, w = (_conv_out(s, layer.kernel, layer.padding, layer.stride) for s in (h, w))
                c = layer.channels
            else:
                h, w = h // layer.kernel, w // layer.kernel
            if h < 1 or w < 1:
                raise ArchError(f"{where}: output would be empty ({c}x{h}x{w}) for input {shape}")
            shape = (c, h, w)
        elif not 0.0 <= layer.p < 1.0:
            raise ArchError(f"{where}: dropout p = {layer.p} must be in [0, 1)")
        shapes.append(shape)
    return shapes


def _check_input(arch: Architecture, shape: tuple[int, ...]) -> None:
    declared = arch.input_shape
    if declared is None:
        return
    if len(declared) == 1:
        if declared[0] != math.prod(shape):
            raise ArchError(
                f"arch {arch.spec!r} starts with input width {declared[0]}, but the data has "
                f"{math.prod(shape)} features {shape}"
            )
    elif tuple(declared) not in (shape, shape[1:]):
        raise ArchError(f"arch {arch.spec!r} declares input {'x'.join(map(str, declared))}, but the data is {shape}")
