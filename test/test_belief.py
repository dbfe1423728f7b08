"""Tests of the belief's translation kernel (localization/belief.py): bilinear shift, motion blur, 2-D moves."""
import math

import numpy as np
import pytest

from spatial_memory_ros.localization.belief import apply_translation, translation_kernel, translation_kernel_1d


def kernel_moments(offset: int, taps: np.ndarray) -> tuple[float, float]:
    positions = offset + np.arange(len(taps))
    mean = float(taps @ positions)
    return mean, float(taps @ (positions - mean) ** 2)


@pytest.mark.parametrize("shift", [0.0, 0.3, -1.75, 2.5])
def test_bilinear_kernel_moves_the_mean_exactly_and_spreads_by_f_one_minus_f(shift):
    offset, taps = translation_kernel_1d(shift)
    mean, variance = kernel_moments(offset, taps)
    fraction = shift - math.floor(shift)
    assert taps.sum() == pytest.approx(1.0)
    assert mean == pytest.approx(shift)
    assert variance == pytest.approx(fraction * (1 - fraction))


def test_motion_blur_tops_the_kernel_up_to_the_requested_spread():
    offset, taps = translation_kernel_1d(0.4, blur_sigma=1.5)
    mean, variance = kernel_moments(offset, taps)
    assert mean == pytest.approx(0.4, abs=1e-6)
    assert variance == pytest.approx(1.5 ** 2, rel=0.05)


def test_two_dimensional_kernel_is_the_seed_style_outer_product():
    (offset_y, offset_x), kernel = translation_kernel(1.0, 1.0)
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel.max() == pytest.approx(1.0)
    assert (offset_y, offset_x) == (1, 1)


def test_apply_translation_moves_a_point_mass_by_whole_cells():
    belief = np.zeros((9, 9))
    belief[4, 4] = 1.0
    moved = apply_translation(belief, 2.0, -3.0)
    assert moved[1, 6] == pytest.approx(1.0)
