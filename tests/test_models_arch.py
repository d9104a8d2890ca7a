"""Architecture specs in the papers' notation."""

import pytest
from neurodeploy.models.arch import ArchError, Conv, Dense, Dropout, SumPool, layer_shapes, parse_arch


def test_mlp_with_input_width():
    arch = parse_arch("784-400-400-10")
    assert arch.input_shape == (784,)
    assert arch.layers == (Dense(400), Dense(400), Dense(10))
    assert layer_shapes(arch, (1, 28, 28)) == [(400,), (400,), (10,)]


def test_tssl_mnist_cnn():
    arch = parse_arch("15C5-P2-40C5-P2-300-10")
    assert arch.input_shape is None
    assert arch.layers == (Conv(15, 5), SumPool(2), Conv(40, 5), SumPool(2), Dense(300), Dense(10))
    assert layer_shapes(arch, (1, 28, 28)) == [(15, 24, 24), (15, 12, 12), (40, 8, 8), (40, 4, 4), (300,), (10,)]


def test_padding_stride_batchnorm_dropout():
    arch = parse_arch("32C5p2-P2-64C5p2-P2-1024-10")
    assert arch.layers[0] == Conv(32, 5, padding=2)
    assert layer_shapes(arch, (1, 28, 28))[3] == (64, 7, 7)
    arch = parse_arch("2x34x34-12C5p1s2bn-D0.2-128bn-10")
    assert arch.input_shape == (2, 34, 34)
    assert arch.layers == (Conv(12, 5, 1, 2, True), Dropout(0.2), Dense(128, True), Dense(10))


def test_single_number_is_a_layer():
    assert parse_arch("10").layers == (Dense(10),) and parse_arch("10").input_shape is None


@pytest.mark.parametrize(
    "spec, words",
    [
        ("", "empty"),
        ("64--10", "empty token"),
        ("64-128-", "empty token"),
        ("64-12x8-10", "'12x8' is not a layer"),
        ("64-128-P2", "last layer must be dense"),
        ("16C0-10", "zero size"),
        ("64-abc-10", "'abc' is not a layer"),
    ],
)
def test_malformed_specs_name_the_token(spec, words):
    with pytest.raises(ArchError, match=words):
        parse_arch(spec)


@pytest.mark.parametrize(
    "spec, shape, words",
    [
        ("784-128-10", (1, 8, 8), "input width 784.*64 features"),
        ("64-128-P2-10", (1, 8, 8), r"needs a \(C, H, W\) input"),
        ("16C9-10", (1, 8, 8), "output would be empty"),
        ("28x28-16C3-10", (1, 8, 8), "declares input 28x28"),
    ],
)
def test_specs_that_do_not_fit_the_data(spec, shape, words):
    with pytest.raises(ArchError, match=words):
        layer_shapes(parse_arch(spec), shape)
