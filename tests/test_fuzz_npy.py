"""Input arrays (.npy) for `run` and `map`: random corruptions (bytes, header, dtype, shape, values)
are refused with one clean error naming the file, never a crash, a pickle or a huge allocation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from neurodeploy.commands.run import load_bias, load_spikes

from fuzzing import byte_corrupter, cases, corrupt_bytes, fuzz, npy_bytes, npy_header_edit, sample_netlist, wrong_array

STEPS = 9
CASES = 300  # of each kind, for each of the two arrays


def _inputs():
    """(name, valid .npy bytes, loader) for input spikes and for input-layer biases."""
    rng = np.random.default_rng(0)
    spiking, biased = sample_netlist(input_layer=False), sample_netlist(input_layer=True)
    spikes = rng.random((3, STEPS) + spiking.input_shape) < 0.3
    bias = rng.integers(-50, 50, (3,) + biased.layers[0].shape)
    return [
        ("spikes", npy_bytes(spikes), lambda path: load_spikes(str(path), spiking, STEPS)),
        ("bias", npy_bytes(bias), lambda path: load_bias(str(path), biased)),
    ]


def _structured(valid: bytes):
    """Half arrays of the wrong dtype, shape or values; the rest lying headers, a fifth of them with bytes
    corrupted too."""
    good = np.load(io.BytesIO(valid))

    def corrupt(rng, path) -> str:
        choice = rng.random()
        if choice < 0.5:
            data, kind = wrong_array(rng, good)
        elif choice < 0.8:
            data, kind = npy_header_edit(valid, rng)
        else:
            data, kind = corrupt_bytes(npy_header_edit(valid, rng)[0], rng)[0], "header+bytes"
        path.write_bytes(data)
        return "array " + kind

    return corrupt


@pytest.mark.parametrize("name,valid,load", _inputs(), ids=["spikes", "bias"])
@pytest.mark.parametrize("kind", ["bytes", "structured"])
def test_corrupted_input_arrays_are_refused_cleanly(tmp_path, name, valid, load, kind):
    path = tmp_path / "case.npy"
    path.write_bytes(valid)
    load(path)
    corrupter = byte_corrupter(valid) if kind == "bytes" else _structured(valid)
    tally = fuzz(cases(CASES), corrupter, load, path, tmp_path / "failing", 0 if kind == "bytes" else 1_000_000)
    print(tally.summary(f".npy {name} {kind}"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.total == cases(CASES)
    assert tally.refused > tally.total // 3, "the corruptions should mostly break the file"
