"""course_lib.chapters.ch05: chapter 5's fixed-focus closed forms and SGD's flow-time axis."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import flow
from course_lib.chapters import ch05
from course_lib.law import LOSS_NAMES


def test_fixed_focus_closed_form_follows_the_margin_law():
    t = np.geomspace(1.0, 1e4, 50)
    loss, incentive = ch05.fixed_focus_closed_form("soft", 0.4, t, C=20)
    mu = flow.fixed_focus_margin("soft", 0.4, t, C=20)
    assert np.allclose(loss, flow.reduced_loss("soft", 0.4, mu, C=20))
    assert np.allclose(incentive, flow.focus_incentive("soft", 0.4, mu, C=20))
    assert np.all(np.diff(loss) < 0)  # the margin grows, the loss falls
    # hard attention's incentive rises to log C
    hard = ch05.fixed_focus_closed_form("hard", 0.6, [1e8], C=20)[1]
    assert hard[0] == pytest.approx(np.log(20), rel=1e-4)


def test_fixed_focus_theory_nests_every_loss_and_focus():
    t = np.array([1.0, 10.0])
    theory = ch05.fixed_focus_theory(t, (0.2, 0.6), C=5)
    assert list(theory) == list(LOSS_NAMES)
    assert all(list(by_alpha) == [0.2, 0.6] for by_alpha in theory.values())
    loss, incentive = theory["lvml"][0.6]
    expected = ch05.fixed_focus_closed_form("lvml", 0.6, t, C=5)
    assert np.array_equal(loss, expected[0]) and np.array_equal(incentive, expected[1])


def test_gap_to_closed_form_is_zero_on_the_closed_form_and_sees_a_scale():
    times = np.geomspace(1.0, 1e3, 20)
    exact = ch05.fixed_focus_closed_form("hard", 0.2, times, C=20)[1]
    assert ch05.gap_to_closed_form("hard", 0.2, times, exact, C=20) < 1e-12
    keep = times > 10
    assert ch05.gap_to_closed_form(
        "hard", 0.2, times, 1.05 * exact, C=20, keep=keep
    ) == pytest.approx(0.05)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="method"):
        ch05.fixed_focus_closed_form("softmax", 0.2, 1.0, C=3)
    with pytest.raises(ValueError, match="alpha"):
        ch05.fixed_focus_closed_form("soft", 1.5, 1.0, C=3)
    with pytest.raises(ValueError, match="C"):
        ch05.fixed_focus_closed_form("soft", 0.5, 1.0, C=1)
    with pytest.raises(ValueError, match="alphas"):
        ch05.fixed_focus_theory([1.0], (), C=3)
    with pytest.raises(ValueError, match="keep"):
        ch05.gap_to_closed_form("soft", 0.2, [1.0, 2.0], [1.0, 1.0], C=3, keep=[0, 1])
    with pytest.raises(ValueError, match="times and incentive"):
        ch05.gap_to_closed_form("soft", 0.2, [1.0, 2.0], [1.0], C=3)
