"""The backends table that run and compare look up: every name runs as its entry says, and an
unknown name, a device or loihi2 conventions on Lava are refused with the choices named."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.cli import main
from neurodeploy.exporters.netx import write_netx
from neurodeploy.sim import simulate
from neurodeploy.simulators import BACKENDS, BackendError, find_backend

from fuzzing import sample_netlist


def test_the_simulator_entry_runs_the_simulator():
    net = sample_netlist(input_layer=True)
    rec = find_backend("sim").run(net, 12, record=("s", "v"), reset_interval=-1, conventions="loihi2")
    ref = simulate(net, 12, record=("s", "v"), conventions="loihi2")
    assert sum(rec.spike_count.values()) > 0
    for i in ref.s:
        assert np.array_equal(rec.s[i], ref.s[i]) and np.array_equal(rec.v[i], ref.v[i])
    assert not find_backend("sim").reference and find_backend("lava").reference


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(BackendError, match=r"^unknown backend 'loihi'; choose one of sim, lava$"):
        find_backend("loihi")
    assert list(BACKENDS) == ["sim", "lava"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"device": "cpu"}, "--device cpu: the device runs the simulator, not --backend lava"),
        ({"conventions": "loihi2"}, "--backend lava computes Lava's conventions only, not loihi2"),
    ],
)
def test_lava_refuses_what_only_the_simulator_does_before_starting(option, message):
    with pytest.raises(BackendError, match=message):
        find_backend("lava").run(sample_netlist(input_layer=True), 4, **option)


def test_run_offers_the_tables_names(tmp_path, capsys):
    net = tmp_path / "net.net"
    write_netx(sample_netlist(input_layer=True), net)
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(net), "--steps", "2", "--backend", "loihi", "-o", str(tmp_path / "out.npz")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'loihi'" in err and "sim" in err and "lava" in err
    assert (
        main(["run", str(net), "--steps", "2", "--backend", "lava", "--device", "cpu", "-o", str(tmp_path / "o.npz")])
        == 2
    )
    assert "the device runs the simulator" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()
