"""Each integer rule of neurodeploy.fixed_point against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy import fixed_point as fx

A = np.array


def current(u, a_in, du):
    out, wrapped = fx.update_current(A(u, dtype=np.int64), A(a_in, dtype=np.int64), du)
    return out.tolist(), wrapped.tolist()


def voltage(v, u, bias, dv):
    out, saturated = fx.update_voltage(A(v, dtype=np.int64), A(u, dtype=np.int64), A(bias, dtype=np.int64), dv)
    return out.tolist(), saturated.tolist()


class TestDecay:
    def test_rounds_toward_zero_not_down(self):
        # 1000 * 4095 / 4096 = 999.76 and -1001 * 3072 / 4096 = -750.75
        assert fx.decay(A([1000, -1000, -1001]), 4095).tolist() == [999, -999, -1000]
        assert fx.decay(A([1001, -1001]), 3072).tolist() == [750, -750]
        assert fx.decay(A([1, -1]), 4095).tolist() == [0, 0]

    def test_du_minus_one_keeps_u(self):
        assert current([12345, -12345], [0, 0], du=-1) == ([12345, -12345], [False, False])

    def test_du_zero_still_decays_by_one_4096th(self):
        # factor 4096 - (0 + 1) = 4095: 4096 -> 4095, and a small u vanishes
        assert current([4096, -4096, 1, -1], [0] * 4, du=0) == ([4095, -4095, 0, 0], [False] * 4)

    def test_du_4095_clears_u_before_the_input(self):
        assert current([12345, -7], [2, -3], du=4095) == ([128, -192], [False, False])

    def test_du_1023_keeps_three_quarters(self):
        assert current([1000, -1001], [0, 0], du=1023) == ([750, -750], [False, False])

    def test_voltage_decay(self):
        assert voltage([100, -101], [0, 0], [0, 0], dv=0) == ([100, -101], [False, False])
        assert voltage([101, -101], [0, 0], [0, 0], dv=2048) == ([50, -50], [False, False])
        assert voltage([101, -101], [5, 5], [1, 1], dv=4096) == ([6, 6], [False, False])


class TestCurrentWrap:
    def test_plus_two_pow_23_is_kept(self):
        assert current([2**23 - 64], [1], du=-1) == ([2**23], [False])

    def test_above_two_pow_23_wraps_once(self):
        assert current([2**23 - 63], [1], du=-1) == ([-(2**23) + 1], [True])

    def test_minus_two_pow_23_becomes_plus(self):
        assert current([-(2**23) + 64], [-1], du=-1) == ([2**23], [True])

    def test_just_above_minus_two_pow_23_is_kept(self):
        assert current([-(2**23) + 65], [-1], du=-1) == ([-(2**23) + 1], [False])

    def test_one_subtraction_only(self):
        # 2**25 is not brought into 24 bits: Lava subtracts 2**24 a single time
        assert current([0], [2**19], du=4095) == ([2**24], [True])

    def test_the_sum_is_an_int32(self):
        # (2**25 + 1) << 6 = 2**31 + 64 wraps in int32 to -2**31 + 64, then gains 2**24
        assert current([0], [2**25 + 1], du=4095) == ([-(2**31) + 64 + 2**24], [True])


class TestVoltageSaturation:
    def test_clips_to_24_bits_symmetrically(self):
        limit = 2**23 - 1
        assert voltage([0, 0, 0], [2**23, -(2**23), limit], [0, 0, 0], dv=0) == (
            [limit, -limit, limit],
            [True, True, False],
        )

    def test_adds_u_and_bias_after_decay(self):
        assert voltage([limit := 2**23 - 1], [1], [0], dv=0) == ([limit], [True])
        assert voltage([1000], [-5], [64], dv=1024) == ([750 - 5 + 64], [False])


class TestBias:
    def test_positive_exponent_shifts_left(self):
        assert fx.effective_bias(A([3, -3]), 6).tolist() == [192, -192]

    def test_negative_exponent_is_a_floor_shift(self):
        assert fx.effective_bias(A([5, -5, 7, -1]), -1).tolist() == [2, -3, 3, -1]

    def test_zero_exponent(self):
        assert fx.effective_bias(A([5, -5]), 0).tolist() == [5, -5]


class TestShift:
    def test_floor_for_negative_exponents(self):
        assert fx.shift(A([7, -7, 6, -6]), -1).tolist() == [3, -4, 3, -3]
        assert fx.shift(A([7, -7]), 2).tolist() == [28, -28]


class TestDenseWeights:
    def test_mixed_loses_the_lowest_bit_at_8_bits(self):
        assert fx.dense_weights(A([3, -5, 7, 1]), 8).tolist() == [2, -6, 6, 0]

    def test_mixed_with_9_bits_is_untouched(self):
        assert fx.dense_weights(A([3, -5, 7, 1]), 9).tolist() == [3, -5, 7, 1]

    def test_mixed_clips_to_minus_256_and_255(self):
        assert fx.dense_weights(A([-300, 300, 1]), 8).tolist() == [-256, 254, 0]

    def test_excitatory_clips_and_floors(self):
        assert fx.dense_weights(A([300, 5, 0]), 8).tolist() == [255, 5, 0]
        assert fx.dense_weights(A([300, 7, 0]), 6).tolist() == [252, 4, 0]

    def test_inhibitory_truncates_toward_zero(self):
        assert fx.dense_weights(A([-300, -5, 0]), 8).tolist() == [-255, -5, 0]
        assert fx.dense_weights(A([-300, -7, 0]), 6).tolist() == [-252, -4, 0]

    @pytest.mark.parametrize("bits", [2, 5, 8])
    def test_idempotent(self, bits):
        rng = np.random.default_rng(bits)
        for w in (rng.integers(-300, 300, 50), rng.integers(0, 300, 50), rng.integers(-300, 1, 50)):
            once = fx.dense_weights(w, bits)
            assert np.array_equal(fx.dense_weights(once, bits), once)

    def test_not_idempotent_when_truncation_turns_mixed_into_inhibitory(self):
        once = fx.dense_weights(A([-256, 100]), 1)  # k = 8: 100 -> 0, leaving [-256, 0]
        assert once.tolist() == [-256, 0]
        assert fx.dense_weights(once, 1).tolist() == [-128, 0]  # inhibitory: -255, then k = 7 -> -128

    def test_sign_modes(self):
        assert fx.sign_mode(A([0, 3])) == "exc"
        assert fx.sign_mode(A([0, 0])) == "exc"
        assert fx.sign_mode(A([0, -3])) == "inh"
        assert fx.sign_mode(A([-1, 3])) == "mixed"


class TestWrapBits:
    def test_true_modulo(self):
        assert fx.wrap_bits(A([2**23, 2**23 - 1, -(2**23) - 1, 3 * 2**24 + 5]), 24).tolist() == [
            -(2**23),
            2**23 - 1,
            2**23 - 1,
            5,
        ]
