"""Every numeric option has a range checked by argparse and shown in --help; the issue's cases exit 2 with
the range in the message, before any work."""

from __future__ import annotations

import pytest
from neurodeploy.cli import build_parser, main
from neurodeploy.extras import missing_extra
from neurodeploy.ranges import Choices, Range

CASES = [
    ("train", ["--threads", "-1"], "--threads: -1 is not an integer in 1 .. 4096"),
    ("train", ["--lr", "-1"], "--lr: -1 is not a finite number > 0 and <= 10"),
    ("train", ["--lr", "nan"], "--lr: nan is not a finite number"),
    ("train", ["--lr", "0"], "--lr: 0 is not a finite number > 0"),
    ("train", ["--weight-decay", "-1"], "--weight-decay: -1 is not a finite number in 0 .. 10"),
    ("train", ["--seed", str(10**23)], "--seed: 100000000000000000000000 is not an integer in 0 .. "),
    ("train", ["--vth", "inf"], "--vth: inf is not a finite number > 0"),
    ("train", ["--bin-us", "-5"], "--bin-us: -5 is not an integer in 1 .."),
    ("train", ["--bin-us", "0"], "--bin-us: 0 is not an integer in 1 .."),
    ("train", ["--steps", "0"], "--steps/-T: 0 is not an integer in 1 .. 100000"),
    ("compare", ["m.pt", "--batch-size", "0"], "--batch-size: 0 is not an integer in 1 .. 65536"),
    ("compare", ["m.pt", "--calibrate", "-5"], "--calibrate: -5 is not an integer in 0 .. 1000000"),
    ("conformance", ["--seed", "-1"], "--seed: -1 is not an integer in 0 .."),
    ("map", ["n.net", "--target", "loihi1", "--steps", "-5"], "--steps: -5 is not an integer in 1 .."),
    ("map", ["n.net", "--target", "loihi1", "--rate", "nan"], "--rate: nan is not a finite number in 0 .. 1"),
    ("export", ["m.pt", "--calibrate", "-5"], "--calibrate: -5 is not an integer in 0 .. 1000000"),
    ("export", ["m.nir", "--steps", str(10**20)], "--steps: 100000000000000000000 is not an integer in 1 .. 100000"),
    ("export", ["m.nir", "--steps", "3000000000"], "--steps: 3000000000 is not an integer in 1 .. 100000"),
    ("export", ["m.pt", "--format", ","], "--format: ',': choose one or more of netx, nir, onnx"),
    ("run", ["n.net", "--steps", "0", "-o", "o.npz"], "--steps: 0 is not an integer in 1 .."),
]


@pytest.mark.parametrize("command, args, message", CASES)
def test_out_of_range_options_exit_2_naming_the_range(capsys, command, args, message):
    _parser_or_skip(command)
    with pytest.raises(SystemExit) as exit_:
        main([command, *args, *(["-o", "x.pt"] if command == "train" else [])])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"neurodeploy {command}: error: argument {message}" in err, err


@pytest.mark.parametrize("command", ["train", "export", "compare", "map", "run", "conformance", "demo", "inspect"])
def test_every_numeric_option_has_a_range_shown_in_help(command):
    parser = _parser_or_skip(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.type in (int, float):
            pytest.fail(f"{command} {action.option_strings}: {action.type.__name__} without a range")
        if isinstance(action.type, (Range, Choices)):
            assert action.type.text in sub.format_help().replace("\n", " ").replace("  ", " ") or action.type.text in (
                action.help or ""
            ), action.option_strings


def _parser_or_skip(command: str):
    """The command's parser; a skip naming the extra where its options need one that is missing."""
    try:
        return build_parser(command)
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        pytest.skip(f"neurodeploy {command} needs the '{extra}' extra")
