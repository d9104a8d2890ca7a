"""Input encodings: shapes, determinism from a seed, and their exact spike timing."""

import numpy as np
import pytest
import torch
from neurodeploy.encoding import EncodingError, encode, input_kind, make_encoding

X = torch.tensor([[0.0, 0.25, 0.5, 1.0]])


def test_direct_is_the_constant_sample():
    out = encode(X, make_encoding("direct"), 4)
    assert out.shape == (4, 1, 4)
    assert torch.equal(out, X.expand(4, 1, 4))
    assert input_kind(make_encoding("direct")) == "current"


def test_rate_is_reproducible_from_a_seed():
    enc = make_encoding("rate")
    x = torch.rand(8, 1, 5, 5, generator=torch.Generator().manual_seed(3))
    a = encode(x, enc, 6, torch.Generator().manual_seed(7))
    b = encode(x.numpy(), enc, 6, torch.Generator().manual_seed(7))
    c = encode(x, enc, 6, torch.Generator().manual_seed(8))
    assert a.shape == (6, 8, 1, 5, 5) and torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert input_kind(enc) == "spikes"


def test_rate_probability_follows_the_pixel():
    x = torch.tensor([0.0, 0.3, 1.0]).expand(2000, 3)
    spikes = encode(x, make_encoding("rate", gain=1.0), 10, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(spikes.mean((0, 1)).numpy(), [0.0, 0.3, 1.0], atol=0.01)


def test_latency_spikes_once_brighter_earlier():
    out = encode(X, make_encoding("latency"), 5)
    assert out.sum(0).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    first = out[:, 0].argmax(0).tolist()
    assert first[1:] == [3, 2, 0]  # round((1 - x) * 4)


def test_events_are_binary_and_time_major():
    x = torch.zeros(2, 3, 2, 4, 4)
    x[1, 2, 1, 0, 3] = 4
    out = encode(x, make_encoding("events"), 3)
    assert out.shape == (3, 2, 2, 4, 4) and out[2, 1, 1, 0, 3] == 1.0 and out.sum() == 1
    with pytest.raises(EncodingError, match="4 time bins, expected 3"):
        encode(torch.zeros(2, 4, 2, 4, 4), make_encoding("events"), 3)


@pytest.mark.parametrize(
    "name, params, words",
    [
        ("poisson", {}, "unknown encoding"),
        ("rate", {"gain": 0}, "gain"),
        ("direct", {"gain": 2}, "takes no parameters"),
    ],
)
def test_bad_encodings(name, params, words):
    with pytest.raises(EncodingError, match=words):
        make_encoding(name, **params)
