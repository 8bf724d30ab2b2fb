"""Chapter 3 (real text): its settings' two kinds, the padding's share of the attention, and the
early scores its exercise notebook compares with the early-score law.

* :class:`RealTextSettings`: the sizes, step sizes, step counts and snapshot schedules of the
  chapter's runs (section "Settings"), one instance per course mode;
* :class:`RealTextBounds`: the pass/fail bounds its assertions use, one instance per mode;
* :func:`pad_share`: the mean attention on the padding of unmasked sentences (section "Without
  the mask");
* :func:`early_fc_scores`: every word's score after the first steps of the official Attn-FC,
  trained as its reduction (exercise 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import check_int, check_positive
from ..sst import Batch
from ..topic import TopicAttention, reduce_fixed_classifier
from ..training import train_full_batch

__all__ = ["OFFICIAL_LR", "RealTextSettings", "RealTextBounds", "pad_share", "early_fc_scores"]

OFFICIAL_LR = 0.1  # the official code's learning rate


@dataclass(frozen=True)
class RealTextSettings:
    """Sizes, step sizes, step counts and snapshot schedules of chapter 3's experiments."""

    fc_embed_dim: int  # Attn-FC's d_e (official code: 200), trained through its reduction
    fc_step_factor: float  # Attn-FC's step over the official one
    tc_embed_dim: int  # Attn-TC's d_e (official code: 100)
    tc_step_factor: float  # Attn-TC steps this many times the official one
    patience: int | None  # stop after this many steps without a better dev loss
    fc_steps: int  # most steps of Attn-FC on SST-2
    tc_steps: int  # most steps of Attn-TC on SST-2
    unmasked_steps: int  # steps of the unmasked run, at the official step size
    sst5_fc_steps: int  # most steps of Attn-FC on SST-5
    sst5_tc_steps: int  # most steps of Attn-TC on SST-5
    snapshot_every: int  # steps between two snapshots of scores and losses...
    dense_until: int  # ...except up to this step,
    dense_every: int  # where a snapshot is taken every this many steps
    unmasked_snapshot_every: int  # steps between two snapshots of the unmasked run
    sst5_snapshot_every: int  # steps between two snapshots on SST-5
    short_run: bool  # True where the runs stop before early stopping would (quick mode)

    @property
    def fc_lr(self) -> float:
        """Attn-FC's learning rate."""
        return OFFICIAL_LR * self.fc_step_factor

    @property
    def tc_lr(self) -> float:
        """Attn-TC's learning rate."""
        return OFFICIAL_LR * self.tc_step_factor

    @property
    def unmasked_lr(self) -> float:
        """The unmasked run's learning rate: the official one."""
        return OFFICIAL_LR


@dataclass(frozen=True)
class RealTextBounds:
    """The pass/fail bounds of chapter 3's assertions, apart from its sizes."""

    best_leads_at: int  # a step where 'best' still gets more attention than 'powerful'
    fc_floor: float  # test accuracy Attn-FC must beat on SST-2
    tc_floor: float  # test accuracy Attn-TC must beat on SST-2
    sst5_fc_floor: float  # test accuracy Attn-FC must beat on SST-5
    sst5_tc_floor: float  # test accuracy Attn-TC must beat on SST-5
    identity_median_gap: float  # bound on the median relative gap to the curve
    identity_p90_gap: float  # 90th percentile of that gap must be below


def pad_share(scores: torch.Tensor, batch: Batch) -> float:
    """Mean over ``batch``'s sentences of the attention on their padding when nothing is masked
    (chapter 3, "Without the mask"): the attention is the softmax of ``scores`` ``(vocab,)`` over
    each padded sentence ``batch.tokens`` ``(n, L)``, and the padding is where ``batch.mask``
    ``(n, L)`` is False.

    >>> from course_lib.sst import build_vocabulary, pad_batch
    >>> data = [(["good"], 1), (["bad", "film"], 0)]
    >>> batch = pad_batch(data, build_vocabulary(data))
    >>> round(pad_share(torch.zeros(4), batch), 4)  # uniform: half a pad in one sentence of 2
    0.25
    """
    if not isinstance(batch, Batch):
        raise TypeError(f"batch must be an sst.Batch, got {type(batch).__name__}")
    if not isinstance(scores, torch.Tensor) or scores.dim() != 1:
        raise ValueError("scores must be a 1-d tensor of every word's score, (vocab,)")
    if batch.tokens.numel() and int(batch.tokens.max()) >= len(scores):
        raise ValueError(f"scores has {len(scores)} entries, fewer than the batch's word ids")
    weights = torch.softmax(scores[batch.tokens], dim=1)  # (n, L)
    return float((weights * (~batch.mask)).sum(1).mean())


def early_fc_scores(
    vocab_size: int, batch: Batch, *, steps: int = 10, lr: float = OFFICIAL_LR
) -> torch.Tensor:
    """``(vocab_size,)`` float64 on the CPU: every word's score after ``steps`` full-batch
    gradient steps of size ``lr`` of the official Attn-FC (``d_e = 200``, two classes, seed 0),
    trained as its reduction (``topic.reduce_fixed_classifier``) on the padded ``batch``
    (exercise 3: the scores the early-score law predicts)."""
    check_int(vocab_size, "vocab_size", minimum=1)
    if not isinstance(batch, Batch):
        raise TypeError(f"batch must be an sst.Batch, got {type(batch).__name__}")
    check_int(steps, "steps", minimum=1)
    lr = check_positive(lr, "lr")
    model = reduce_fixed_classifier(TopicAttention(vocab_size, 2, embed_dim=200))
    train_full_batch(
        model, batch.tokens, batch.labels, steps=steps, lr=lr, mask=batch.mask, record_every=steps
    )
    return model.scores().detach().cpu().double()
