"""Exercise checks (ARENA style): ``check_x(student_fn)`` compares a student's function with the
course's reference on fixed and random cases, tests edge cases, and prints a targeted hint.

A check never raises: it prints what happened and returns ``True`` (passed) or ``False`` (not yet
implemented, or wrong), so an exercise notebook always runs top to bottom.  One module per
chapter; everything is re-exported here so notebooks call ``checks.check_...``.  The reference
solutions that no chapter uses are in ``checks.solutions`` (``checks.solutions.<name>``).
"""

from . import solutions
from ._core import CheckFailed, run_check, yours_or_reference
from .ch01 import check_attention_forward, check_label_sentences, check_mlp_jacobian
from .ch02 import (
    check_score_gradient,
    check_score_per_norm_sq,
    check_sen_drift,
    check_sigmoid_invariant,
)
from .ch03 import (
    check_early_score_law,
    check_early_score_with_context,
    check_lift_embeddings,
    check_most_attended_word,
)
from .ch04 import (
    check_alpha_gradient,
    check_hard_attention_loss,
    check_incentive_crossover,
    check_lvml_loss,
    check_soft_attention_loss,
    compare_prediction,
)
from .ch05 import (
    check_fixed_focus_hard_margin,
    check_likelihood_flow_rhs,
    check_reduced_soft_loss,
    check_time_to_half,
)
from .ch06 import check_fresh_momentum_lag, check_shortcut_table, check_train_hybrid
from .ch07 import (
    check_soft_orbit_constant,
    check_temperature_law_constant,
    check_topic_invariant,
)
from .ch08 import check_log_space_gradient, check_svm_two_constraints

__all__ = [
    # the checks machinery
    "CheckFailed",
    "run_check",
    "yours_or_reference",
    # the reference solutions no chapter uses (checks.solutions.<name>)
    "solutions",
    # chapter 1
    "check_attention_forward",
    "check_label_sentences",
    "check_mlp_jacobian",
    # chapter 2
    "check_score_gradient",
    "check_score_per_norm_sq",
    "check_sigmoid_invariant",
    "check_sen_drift",
    # chapter 3
    "check_lift_embeddings",
    "check_early_score_with_context",
    "check_most_attended_word",
    "check_early_score_law",
    # chapter 4
    "check_soft_attention_loss",
    "check_hard_attention_loss",
    "check_lvml_loss",
    "check_alpha_gradient",
    "check_incentive_crossover",
    "compare_prediction",
    # chapter 5
    "check_reduced_soft_loss",
    "check_fixed_focus_hard_margin",
    "check_likelihood_flow_rhs",
    "check_time_to_half",
    # chapter 6
    "check_train_hybrid",
    "check_fresh_momentum_lag",
    "check_shortcut_table",
    # chapter 7
    "check_temperature_law_constant",
    "check_soft_orbit_constant",
    "check_topic_invariant",
    # chapter 8
    "check_log_space_gradient",
    "check_svm_two_constraints",
]
