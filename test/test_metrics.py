"""Tests of the localisation metrics (evaluation/metrics.py)."""
import math

import numpy as np
import pytest

from spatial_memory_ros.evaluation.metrics import ate_rmse, drift_per_100m, heading_errors, path_length, position_errors


def straight_line(steps: int = 101, length: float = 100.0) -> np.ndarray:
    x = np.linspace(0.0, length, steps)
    return np.column_stack([x, np.zeros(steps), np.zeros(steps)])


def test_ate_is_zero_for_a_perfect_estimate():
    truth = straight_line()
    assert ate_rmse(truth, truth) == 0.0


def test_ate_of_a_constant_offset_is_the_offset():
    truth = straight_line()
    estimate = truth + np.array([3.0, 4.0, 0.0])
    assert ate_rmse(estimate, truth) == pytest.approx(5.0)


def test_ate_is_a_root_mean_square_not_a_mean():
    truth = np.zeros((2, 2))
    estimate = np.array([[0.0, 0.0], [2.0, 0.0]])
    assert ate_rmse(estimate, truth) == pytest.approx(math.sqrt(2.0))
    assert position_errors(estimate, truth).tolist() == [0.0, 2.0]


def test_drift_per_100m_uses_the_final_error_and_the_true_path_length():
    truth = straight_line(length=200.0)
    estimate = truth.copy()
    estimate[-1, 1] = 6.0
    assert path_length(truth) == pytest.approx(200.0)
    assert drift_per_100m(estimate, truth) == pytest.approx(3.0)
    assert drift_per_100m(estimate, truth, distance=50.0) == pytest.approx(12.0)


def test_drift_of_a_robot_that_never_moved_is_nan():
    still = np.zeros((5, 2))
    assert math.isnan(drift_per_100m(still, still))


def test_heading_errors_wrap_around():
    estimate = np.array([[0.0, 0.0, math.pi - 0.1]])
    truth = np.array([[0.0, 0.0, -math.pi + 0.1]])
    assert heading_errors(estimate, truth)[0] == pytest.approx(0.2)


@pytest.mark.parametrize("estimate, truth, words", [
    (np.zeros((3, 2)), np.zeros((4, 2)), "one pose per time step"),
    (np.zeros((0, 2)), np.zeros((0, 2)), "non-empty"),
    (np.zeros(3), np.zeros(3), "(N, 2)"),
    (np.array([[np.nan, 0.0]]), np.zeros((1, 2)), "non-finite"),
])
def test_bad_input_is_a_clear_value_error(estimate, truth, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ate_rmse(estimate, truth)


def test_wilson_interval_brackets_the_rate_and_stays_in_zero_one():
    from spatial_memory_ros.evaluation.metrics import wilson_interval

    low, high = wilson_interval(47, 50)
    assert round(low, 2) == 0.84 and round(high, 2) == 0.98
    assert wilson_interval(5, 5)[1] == 1.0 and wilson_interval(0, 5)[0] == 0.0
    assert all(v != v for v in wilson_interval(0, 0))  # NaN without trials


def test_mcnemar_exact_p_is_a_two_sided_sign_test_on_the_discordant_pairs():
    from spatial_memory_ros.evaluation.metrics import mcnemar_exact_p

    assert mcnemar_exact_p(5, 0) == pytest.approx(2 / 32)  # 5 of 5 one way
    assert mcnemar_exact_p(3, 3) == 1.0 and mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(12, 1) == pytest.approx(mcnemar_exact_p(1, 12))
    assert mcnemar_exact_p(12, 1) == pytest.approx(28 / 8192)  # 2 * (1 + 13) / 2**13
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact_p(-1, 2)


def test_paired_difference_interval_matches_a_hand_worked_table():
    from spatial_memory_ros.evaluation.metrics import paired_difference_interval

    # 12 seeds both solve, 9 only the first, 2 only the second, 21 neither: the difference 7/44 with the interval
    # 0.011 to 0.295, worked by hand from the formula of Newcombe's method 10 (continuity-corrected phi = 0.471).
    first = [True] * 21 + [False] * 23
    second = [True] * 12 + [False] * 9 + [True] * 2 + [False] * 21
    diff, low, high = paired_difference_interval(first, second)
    assert diff == pytest.approx(7 / 44)
    assert low == pytest.approx(0.0112, abs=5e-4) and high == pytest.approx(0.2954, abs=5e-4)


def test_paired_difference_interval_uses_the_pairing_and_rejects_unequal_lengths():
    from spatial_memory_ros.evaluation.metrics import paired_difference_interval, wilson_interval

    # 50 seeds, the second method fails on 5 seeds the first solves and never the other way round
    first, second = [True] * 47 + [False] * 3, [True] * 42 + [False] * 8
    diff, low, high = paired_difference_interval(first, second)
    assert diff == pytest.approx(0.10) and 0.0 < low < diff < high
    # the intervals of the two rates alone overlap: pairing is what separates them
    assert wilson_interval(42, 50)[1] > wilson_interval(47, 50)[0]
    assert all(v != v for v in paired_difference_interval([], []))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference_interval([True], [True, False])
