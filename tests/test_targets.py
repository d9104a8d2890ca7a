"""Hardware targets: bundled files, a user's own file, and malformed files."""

from __future__ import annotations

import argparse
import dataclasses
import re
from importlib import resources

import pytest
from neurodeploy.commands import targets as targets_command
from neurodeploy.errors import InputFileError
from neurodeploy.targets import Target, list_targets, load_target

MINIMAL = """
name = "tiny"
[system]
cores_per_chip = 4
[core]
neurons = 16
"""


def write(tmp_path, text: str, name: str = "target.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bundled_targets_are_listed_and_load():
    assert {"loihi1", "loihi2"} <= set(list_targets())
    for name in list_targets():
        target = load_target(name)
        assert isinstance(target, Target) and target.name == name


def test_loihi1_limits_from_davies_2018():
    t = load_target("loihi1")
    assert (t.cores_per_chip, t.neurons_per_core) == (128, 1024)
    assert (t.input_axons_per_core, t.output_axons_per_core) == (4096, 4096)
    assert t.synapse_memory_bits == 16384 * 64
    assert t.delay == (0, 62) and not t.graded_spikes
    assert (t.energy.synaptic_op_pj, t.energy.neuron_update_pj) == (23.6, 52.0)


def test_loihi2_leaves_unpublished_figures_out():
    t = load_target("loihi2")
    assert t.cores_per_chip == 128 and t.graded_spikes and t.graded_spike_bits == 24
    assert t.synapse_memory_bits is None and t.input_axons_per_core is None and t.weight_exp is None
    assert t.energy.chip_crossing_pj is None and t.energy.spike_pj is None and t.timing.neuron_update_active_ns is None
    assert t.energy.basis.startswith("fitted to one measurement") and t.timing.basis.startswith("fitted to one")
    assert (t.max_chips, load_target("loihi1").max_chips) == (1152, 768)


@pytest.mark.parametrize("name", ["loihi1", "loihi2"])
def test_every_bundled_figure_carries_a_source_comment(name):
    """Each value line has a comment on it or directly above it (in the same block)."""
    lines = (resources.files("neurodeploy.hw_configs") / f"{name}.toml").read_text().splitlines()
    commented = False
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("["):
            commented = "#" in stripped
            continue
        if stripped.startswith("#"):
            commented = True
            continue
        if re.match(r"^\w+\s*=", stripped) and not stripped.startswith(("name", "description", "source")):
            assert commented or "#" in stripped, f"{name}.toml: no source for {stripped!r}"


def test_a_users_target_file(tmp_path):
    path = write(tmp_path, MINIMAL + "[synapse]\ndelay = [0, 7]\n[energy]\nsynaptic_op_pj = 10\n")
    t = load_target(path)
    assert (t.name, t.cores_per_chip, t.neurons_per_core, t.chips, t.allow_split) == ("tiny", 4, 16, 1, True)
    assert t.delay == (0, 7) and t.energy.synaptic_op_pj == 10.0 and t.energy.neuron_update_pj is None
    assert t.input_axons_per_core is None and t.path == str(path)


def test_run_conventions_come_from_the_target(tmp_path):
    assert (load_target("loihi2").conventions, load_target("loihi1").conventions) == ("loihi2", "lava")
    assert load_target(write(tmp_path, MINIMAL)).conventions == "lava"  # a file that says nothing: Lava's
    assert load_target(write(tmp_path, MINIMAL + '[run]\nconventions = "loihi2"\n', "b.toml")).conventions == "loihi2"


def test_target_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_target("loihi1").neurons_per_core = 5


@pytest.mark.parametrize(
    "text, expected",
    [
        (MINIMAL.replace("neurons = 16", 'neurons = "many"'), r"core\.neurons = 'many': expected an integer >= 1"),
        (MINIMAL.replace("neurons = 16", "neurons = 0"), r"core\.neurons = 0: expected an integer >= 1"),
        (MINIMAL.replace("neurons = 16", "neurons = true"), r"core\.neurons = True"),
        (MINIMAL.replace("neurons = 16", ""), r"missing key core\.neurons"),
        (MINIMAL.replace('name = "tiny"', ""), r"missing key name"),
        (MINIMAL + "[synapse]\ndelay = [9, 2]\n", r"synapse\.delay = \[9, 2\]: expected two integers"),
        (MINIMAL + "[synapse]\ngraded_spikes = 1\n", r"synapse\.graded_spikes = 1: expected true or false"),
        (MINIMAL + "[energy]\nsynaptic_op_pj = -1.0\n", r"energy\.synaptic_op_pj = -1\.0: expected a number >= 0"),
        (MINIMAL.replace("neurons = 16", "neurons = 16\nnuerons = 3"), r"unknown key core\.nuerons"),
        (MINIMAL + "[cache]\nsize = 3\n", r"unknown section \[cache\]"),
        (MINIMAL + '[run]\nconventions = "loihi3"\n', r"run\.conventions = 'loihi3': expected one of lava, loihi2"),
        (MINIMAL + "[system\n", r"not valid TOML"),
    ],
)
def test_malformed_target_files_name_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(InputFileError, match=expected) as info:
        load_target(path)
    assert str(path) in str(info.value)


def test_missing_target_names_the_bundled_ones(tmp_path):
    with pytest.raises(InputFileError, match=r"no such target file.*loihi1, loihi2"):
        load_target(tmp_path / "nope.toml")


def _run_targets_command(argv):
    parser = argparse.ArgumentParser()
    targets_command.add_arguments(parser)
    return targets_command.run(parser.parse_args(argv))


def test_targets_command_lists_key_limits(capsys):
    assert _run_targets_command([]) == 0
    out = capsys.readouterr().out
    assert "loihi1:" in out and "loihi2:" in out
    assert "1,024" in out and "8,192" in out and "23.6 pJ" in out


def test_targets_command_checks_a_users_file(tmp_path, capsys):
    assert _run_targets_command([str(write(tmp_path, MINIMAL))]) == 0
    out = capsys.readouterr().out
    assert "neurons_per_core" in out and "not checked" in out and "input axons a core" in out
    with pytest.raises(InputFileError, match=r"core\.neurons"):
        _run_targets_command([str(write(tmp_path, MINIMAL.replace("16", "-3"), "bad.toml"))])
