"""Tests of the analytic hexagonal grid code (localization/grid_code.py)."""
import math

import numpy as np
import pytest

from spatial_memory_ros.localization.grid_code import GridCode, decoding_stats


@pytest.fixture(scope="module")
def code() -> GridCode:
    return GridCode()


def test_default_code_has_at_least_three_modules_with_ratio_about_1_4(code):
    assert code.num_modules >= 3
    np.testing.assert_allclose(code.periods[1:] / code.periods[:-1], 1.4)


def test_phases_are_periodic_on_each_module_lattice(code):
    position = np.array([3.3, -1.7])
    for index, module in enumerate(code.modules):
        for vector in module.basis.T:
            shifted = code.phases(position + vector)[index]
            difference = (shifted - code.phases(position)[index] + 0.5) % 1.0 - 0.5
            np.testing.assert_allclose(difference, 0.0, atol=1e-9)


def test_hexagonal_lattice_vectors_are_sixty_degrees_apart(code):
    a, b = code.modules[0].basis.T
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert math.degrees(math.acos(cosine)) == pytest.approx(60.0)


def test_path_integration_matches_encoding_the_end_point(code):
    rng = np.random.default_rng(0)
    position = np.array([1.0, 2.0])
    phases = code.phases(position)
    for step in rng.normal(0.0, 0.3, size=(200, 2)):
        phases = code.integrate(phases, step)
        position = position + step
    difference = (phases - code.phases(position) + 0.5) % 1.0 - 0.5
    np.testing.assert_allclose(difference, 0.0, atol=1e-9)


def test_exact_phases_decode_to_the_position(code):
    for position in ([0.0, 0.0], [4.2, -3.1], [-7.5, 6.0]):
        decoded = code.decode(code.phases(np.array(position)))
        np.testing.assert_allclose(decoded, position, atol=1e-6)


def test_quantise_and_dequantise_are_exact_inverses_on_the_levels(code):
    for bits in (2, 3, 4, 6):
        levels = 1 << bits
        codes = np.random.default_rng(bits).integers(0, levels, size=(code.num_modules, 2))
        assert np.array_equal(code.quantise(code.dequantise(codes, bits), bits), codes)


def test_quantisation_moves_each_phase_by_at_most_half_a_level(code):
    phases = code.phases(np.random.default_rng(1).uniform(-10, 10, size=(50, 2)))
    for bits in (2, 4, 6):
        roundtrip = code.dequantise(code.quantise(phases, bits), bits)
        difference = np.abs((roundtrip - phases + 0.5) % 1.0 - 0.5)
        assert difference.max() <= 0.5 / (1 << bits) + 1e-12


def test_pack_and_unpack_give_a_message_of_the_advertised_size(code):
    codes = code.encode_position((2.5, 7.25), 4)
    value = code.pack(codes, 4)
    assert 0 <= value < 2 ** code.message_bits(4)
    assert np.array_equal(code.unpack(value, 4), codes)


@pytest.mark.slow
def test_quantised_decoding_error_shrinks_with_bits_over_a_maze():
    code = GridCode()
    extent = (0.0, 0.0, 15.0, 15.0)
    coarse = decoding_stats(code, 2, extent, samples=40)
    fine = decoding_stats(code, 6, extent, samples=40)
    assert fine["far_off_rate"] == 0.0
    assert fine["p95_error_m"] < 0.02 < coarse["mean_error_m"] < 0.15


def test_a_prior_position_lets_the_receiver_decode_near_it(code):
    position = np.array([40.0, -35.0])
    codes = code.encode_position(position, 4)
    decoded = code.decode_position(codes, 4, near=(39.0, -34.5), radius=3.0)
    assert np.linalg.norm(decoded - position) < 0.05


@pytest.mark.parametrize("call, words", [
    (lambda c: c.quantise(np.zeros((5, 2)), 0), "bits per phase"),
    (lambda c: c.dequantise(np.full((5, 2), 16), 4), "0..15"),
    (lambda c: c.dequantise(np.zeros((3, 2), dtype=int), 4), "shaped"),
    (lambda c: c.phases(np.array([np.nan, 0.0])), "finite"),
    (lambda c: c.unpack(-1, 4), "integer in"),
    (lambda c: GridCode(num_modules=2), "at least 3 modules"),
])
def test_bad_input_is_a_clear_value_error(code, call, words):
    with pytest.raises(ValueError, match=words):
        call(code)
