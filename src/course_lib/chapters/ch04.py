"""Chapter 4's recipes ("Three ways to attend"): the settings, the builders of its stacked runs,
the measurements of its sections and the closed forms its fixed-focus section compares with.

The notebook ``chapters/04_three_ways_to_attend.ipynb`` keeps the story (the calls of the
engines, the figures, the assertions); what it repeats or what would hide the story is here:

* ``Settings``: the chapter's sizes, one instance per mode;
* ``load_images``, ``IMAGE_SHAPES``: the images of the image mosaics (digits or CIFAR-10);
* ``runs_for``, ``evaluate_runs``: one run per (seed, loss) for ``train_mosaic_runs``, and
  their evaluations grouped by loss; ``digit_runs``: the digit-mosaic runs of the shortcut
  section (full mode) and of exercise 4.6, built, trained and evaluated with them;
* ``first_time``, ``attention_profile``: measurements of the linear and image runs;
* ``fixed_focus_curves``, ``nested_by_loss``: the fixed-focus histories as per-(loss, alpha)
  curves;
* ``lvml_limit``, ``lvml_derivative_limit``, ``closed_form_incentive``,
  ``incentive_predictions``, ``rising_points``, ``rising_error``, ``hard_share``: chapter 5's
  closed forms on the fixed-focus runs' time axis;
* ``default_init_classifier``: the official fixed-focus scripts' classifier;
* ``flat_gradient``, ``relative_errors``: the REINFORCE section's gradient estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from .. import flow
from .._validate import check_fraction, check_int, check_positive
from ..data.cifar10 import load_cifar10
from ..focus import LinearClassifier, MLPClassifier, MLPFocus
from ..law import LOSS_NAMES
from ..metrics import evaluate_mosaics
from ..mosaic import load_digit_images, make_image_mosaics
from ..mosaic_training import train_mosaic_runs

__all__ = [
    "IMAGE_SHAPES",
    "Settings",
    "load_images",
    "runs_for",
    "evaluate_runs",
    "digit_runs",
    "first_time",
    "attention_profile",
    "fixed_focus_curves",
    "nested_by_loss",
    "lvml_limit",
    "lvml_derivative_limit",
    "closed_form_incentive",
    "incentive_predictions",
    "rising_points",
    "rising_error",
    "default_init_classifier",
    "hard_share",
    "flat_gradient",
    "relative_errors",
]

IMAGE_SHAPES = {"digits": (8, 8), "cifar10": (3, 32, 32)}  # the shape of one segment


@dataclass(frozen=True)
class Settings:
    """Chapter 4's sizes, one instance per course mode, built by keyword in the notebook.

    Every field is a positive number except ``images``, "digits" (scikit-learn's, offline) or
    "cifar10" (downloaded once).

    >>> s = Settings(linear_classes=10, linear_m=10, linear_train=1000, linear_epochs=100,
    ...     linear_lr=0.2, seeds=3, images="digits", image_m=5, image_train=2000,
    ...     image_test=1000, image_epochs=40, image_lr=0.05, shortcut_train=2000,
    ...     shortcut_epochs=40, fixed_classes=10, fixed_m=5, fixed_train=500, fixed_epochs=200,
    ...     fixed_lr=0.5, batch_size=250, official_train=5000, official_epochs=40)
    >>> s.images, s.fixed_lr
    ('digits', 0.5)
    """

    linear_classes: int  # C of the linear mosaics (segments live in R^{C+1})
    linear_m: int  # segments per linear mosaic
    linear_train: int  # training mosaics, linear setting
    linear_epochs: int  # epochs of joint training, linear setting
    linear_lr: float  # SGD learning rate (momentum 0.9), linear setting
    seeds: int  # seeds per loss
    images: str  # "digits" (scikit-learn, offline) or "cifar10" (downloaded once)
    image_m: int  # segments per image mosaic
    image_train: int  # training image mosaics
    image_test: int  # test image mosaics
    image_epochs: int  # epochs, image mosaics
    image_lr: float  # SGD learning rate, image mosaics (the official 0.05)
    shortcut_train: int  # training digit mosaics for the shortcut section
    shortcut_epochs: int  # epochs for the shortcut section
    fixed_classes: int  # C of the fixed-focus experiment
    fixed_m: int  # segments per mosaic, fixed-focus experiment
    fixed_train: int  # training mosaics, fixed-focus experiment
    fixed_epochs: int  # epochs with the focus frozen
    fixed_lr: float  # one SGD learning rate for all three losses
    batch_size: int  # minibatch size (the official 256)
    official_train: int  # mosaics of the official fixed-focus protocol (theirs: 5000)
    official_epochs: int  # its epochs (theirs: 100)

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "images":
                if value not in IMAGE_SHAPES:
                    raise ValueError(f"images must be one of {sorted(IMAGE_SHAPES)}, got {value!r}")
            elif field.type == "int":
                check_int(value, field.name, minimum=1)
            else:
                check_positive(value, field.name)


def load_images(kind: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and classes of chapter 4's image mosaics ("Attention as latent selection").

    ``kind`` "digits": scikit-learn's 8 x 8 digits, (n, 64) in [0, 1] (``load_digit_images``);
    "cifar10": CIFAR-10, (n, 3, 32, 32) scaled to [-1, 1] as the official code does (downloaded
    once).  ``split`` is "train" or "test"; returns (images, classes (n,) int64).

    >>> images, classes = load_images("digits", "test")
    >>> images.shape[1:], classes.dtype
    (torch.Size([64]), torch.int64)
    """
    if kind not in IMAGE_SHAPES:
        raise ValueError(f"kind must be one of {sorted(IMAGE_SHAPES)}, got {kind!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if kind == "digits":
        return load_digit_images(split)
    images, classes = load_cifar10(split)
    return 2 * images - 1, classes  # official: [-1, 1]


def runs_for(
    make_focus: Callable, make_classifier: Callable, seeds: int, device=None
) -> tuple[list, list, list]:
    """One (focus, classifier, loss) per seed and loss for ``train_mosaic_runs`` (chapter 4).

    For each seed in ``range(seeds)`` and each loss of ``LOSS_NAMES`` in turn, the torch seed
    is set to the seed, then ``make_focus()`` and ``make_classifier()`` build the two models
    (moved to ``device`` if given), so the three losses of a seed start from the same models.
    Returns (focus models, classifiers, loss names), each of length 3 x seeds.

    >>> from course_lib.focus import LinearClassifier, LinearFocus
    >>> runs = runs_for(lambda: LinearFocus(3), lambda: LinearClassifier(3, 2), seeds=2)
    >>> focus, classifiers, names = runs
    >>> len(focus), names[:4]
    (6, ['soft', 'hard', 'lvml', 'soft'])
    """
    for value, name in ((make_focus, "make_focus"), (make_classifier, "make_classifier")):
        if not callable(value) or isinstance(value, torch.nn.Module):
            raise TypeError(
                f"{name} must be a function that builds a new model (e.g. a lambda), "
                f"got {type(value).__name__}"
            )
    seeds = check_int(seeds, "seeds", minimum=1)
    focus_models, classifiers, names = [], [], []
    for seed in range(seeds):
        for name in LOSS_NAMES:
            torch.manual_seed(seed)
            focus, classifier = make_focus(), make_classifier()
            if device is not None:
                focus, classifier = focus.to(device), classifier.to(device)
            focus_models.append(focus)
            classifiers.append(classifier)
            names.append(name)
    return focus_models, classifiers, names


def evaluate_runs(focus_models, classifiers, names, data, device=None) -> dict:
    """``evaluate_mosaics`` for every run, grouped by loss: {loss: [one evaluation per seed]}
    (chapter 4's metrics tables; the losses in ``LOSS_NAMES`` order, those that occur).

    ``data`` is a ``Mosaics``, moved to ``device`` if given.

    >>> from course_lib.focus import LinearClassifier, LinearFocus
    >>> from course_lib.mosaic import make_linear_mosaics
    >>> runs = runs_for(lambda: LinearFocus(4), lambda: LinearClassifier(4, 3), 1)
    >>> results = evaluate_runs(*runs, make_linear_mosaics(20, 3, 5))
    >>> {name: len(v) for name, v in results.items()}
    {'soft': 1, 'hard': 1, 'lvml': 1}
    """
    names = list(names)
    if not len(focus_models) == len(classifiers) == len(names):
        raise ValueError(
            "focus_models, classifiers and names must have one entry per run, got "
            f"{len(focus_models)}, {len(classifiers)} and {len(names)}"
        )
    unknown = sorted(set(names) - set(LOSS_NAMES))
    if unknown:
        raise ValueError(f"names must be losses of {LOSS_NAMES}, got {unknown}")
    if device is not None:
        data = data.to(device)
    results = {name: [] for name in LOSS_NAMES if name in names}
    for focus, classifier, name in zip(focus_models, classifiers, names):
        results[name].append(evaluate_mosaics(focus, classifier, data))
    return results


def digit_runs(
    n_train: int,
    epochs: int,
    seeds: int,
    batch_size: int,
    lr: float = 0.05,
    n_test: int = 1000,
    device=None,
) -> tuple[dict, object]:
    """The digit-mosaic runs of chapter 4 (the shortcut section in full mode; exercise 4.6).

    Mosaics of m = 5 of scikit-learn's digits, foreground digits 0, 1, 2 (training mosaics from
    the training images with seed 0, test mosaics from the test images with seed 1); for each
    seed and loss an ``MLPFocus(64, 32)`` and an ``MLPClassifier(64, 3, 32)`` (``runs_for``),
    all trained as one computation by ``train_mosaic_runs`` (minibatch SGD, momentum 0.9).

    Parameters
    ----------
    n_train, n_test : training and test mosaics
    epochs, batch_size, lr : the SGD settings
    seeds : seeds per loss
    device : where the runs train (None: where the models are built, the CPU)

    Returns
    -------
    (results, test): ``evaluate_runs``'s {loss: [one evaluation per seed]}, and the test
    ``Mosaics`` (on the CPU).
    """
    n_train = check_int(n_train, "n_train", minimum=1)
    n_test = check_int(n_test, "n_test", minimum=1)
    train = make_image_mosaics(*load_digit_images("train"), [0, 1, 2], 5, n_train, seed=0)
    test = make_image_mosaics(*load_digit_images("test"), [0, 1, 2], 5, n_test, seed=1)
    runs = runs_for(lambda: MLPFocus(64, 32), lambda: MLPClassifier(64, 3, 32), seeds, device)
    train_mosaic_runs(
        runs[0],
        runs[1],
        train if device is None else train.to(device),
        runs[2],
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )
    return evaluate_runs(*runs, test, device), test


def first_time(values, times, level: float = 0.5) -> float:
    """Linearly interpolated first time at which ``values`` reach ``level`` (chapter 4, the
    linear runs against chapter 5's ODE).  ``values`` and ``times``: 1-D, the same length.

    >>> first_time(np.array([0.1, 0.3, 0.7, 0.9]), np.array([0.0, 1.0, 2.0, 3.0]))
    1.5
    """
    values, times = np.asarray(values, dtype=float), np.asarray(times, dtype=float)
    if values.ndim != 1 or values.shape != times.shape:
        raise ValueError(
            f"values and times must be 1-D of one length, got {values.shape} and {times.shape}"
        )
    reached = values >= level
    if not reached.any():
        raise ValueError(f"values never reach level {level}")
    k = int(np.argmax(reached))
    if k == 0:
        return float(times[0])
    return float(np.interp(level, values[k - 1 : k + 1], times[k - 1 : k + 1]))


def attention_profile(evaluation) -> tuple[float, float, float]:
    """Fractions of the test mosaics with a_z below 0.2, between 0.2 and 0.8, above 0.8
    (chapter 4, "the signature of each loss").  ``evaluation``: a ``MosaicEvaluation`` (or
    anything with an ``a_z`` tensor of shape (n,)).

    >>> from types import SimpleNamespace
    >>> attention_profile(SimpleNamespace(a_z=torch.tensor([0.1, 0.5, 0.9, 0.95])))
    (0.25, 0.25, 0.5)
    """
    a_z = getattr(evaluation, "a_z", None)
    if not isinstance(a_z, torch.Tensor) or a_z.dim() != 1:
        raise TypeError("evaluation must have an a_z tensor of shape (n,)")
    a_z = a_z.cpu()
    return (
        (a_z < 0.2).double().mean().item(),
        ((a_z >= 0.2) & (a_z <= 0.8)).double().mean().item(),
        (a_z > 0.8).double().mean().item(),
    )


def fixed_focus_curves(history, names: Sequence[str], alphas: Sequence[float]) -> dict:
    """{(loss, alpha): (L, incentive)} of ``train_fixed_focus``'s history (chapter 4's fixed-focus
    experiment): row r of ``history.loss`` and ``history.incentive`` as numpy arrays, keyed by
    the r-th loss name and focus quality ``alpha`` of the runs."""
    names, alphas = list(names), list(alphas)
    runs = history.loss.shape[0]
    if len(names) != runs or len(alphas) != runs:
        raise ValueError(
            f"names and alphas must have one entry per run ({runs}), "
            f"got {len(names)} and {len(alphas)}"
        )
    return {
        (n, a): (history.loss[r].cpu().numpy(), history.incentive[r].cpu().numpy())
        for r, (n, a) in enumerate(zip(names, alphas))
    }


def nested_by_loss(curves: Mapping, part: int) -> dict:
    """{loss: {alpha: curves[loss, alpha][part]}}, the nesting chapter 4's fixed-focus figures
    take; ``part`` 0 is L, 1 the incentive.

    >>> nested_by_loss({("soft", 0.2): ("L", "d"), ("hard", 0.2): ("L2", "d2")}, 1)
    {'soft': {0.2: 'd'}, 'hard': {0.2: 'd2'}}
    """
    part = check_int(part, "part", minimum=0, maximum=1)
    nested = {}
    for (name, alpha), values in curves.items():
        nested.setdefault(name, {})[alpha] = values[part]
    return nested


def _check_alpha_and_classes(a, C) -> tuple[float, int]:
    a = check_positive(a, "a")
    if a > 1:
        raise ValueError(f"a must be <= 1, got {a}")
    return a, check_int(C, "C", minimum=2)


def lvml_limit(a: float, C: int) -> float:
    """L(a) - L(a + 0.01) of LVML's late-time limit loss -log(a + (1 - a)/C) (chapter 4's
    fixed-focus experiment; the limit is chapter 5's reduced loss at a large margin).

    >>> round(lvml_limit(0.2, 10), 5)
    0.03164
    """
    a, C = _check_alpha_and_classes(a, C)
    return math.log((a + 0.01 + (0.99 - a) / C) / (a + (1 - a) / C))


def lvml_derivative_limit(a: float, C: int) -> float:
    """0.01 x (-dL/da) of the same limit, 0.01 (C - 1)/(C a + 1 - a): the first-order
    approximation of ``lvml_limit``, larger than it (chapter 4's footnote).

    >>> round(lvml_derivative_limit(0.2, 10), 5)
    0.03214
    """
    a, C = _check_alpha_and_classes(a, C)
    return 0.01 * (C - 1) / (C * a + 1 - a)


def closed_form_incentive(name: str, a: float, t, *, C: int, margin_alpha=None):
    """L(a) - L(a + 0.01) of chapter 5's reduced model at flow time ``t`` (chapter 4, "the
    closed form, on the rising part"); at a = 1 it is 0.01 x (-dL/da), the formula just
    outside the simplex.  ``t``: a number or an array of times; returns the same kind.

    ``margin_alpha``, if given, replaces ``a`` in the margin law (a deliberately wrong
    prediction).
    """
    a, C = _check_alpha_and_classes(a, C)
    mu = flow.fixed_focus_margin(name, a if margin_alpha is None else margin_alpha, t, C=C)
    if a < 1:
        return flow.reduced_loss(name, a, mu, C=C) - flow.reduced_loss(name, a + 0.01, mu, C=C)
    return 0.01 * flow.focus_incentive(name, a, mu, C=C)


def incentive_predictions(
    steps,
    *,
    lr: float,
    alphas: Sequence[float],
    C: int,
    lag: float | None = None,
    momentum: float = 0.9,
    time_scale: float = 1.0,
    margin_alpha=None,
) -> dict:
    """The closed-form incentive at each recorded step count, per (loss, alpha) (chapter 4).

    Parameters
    ----------
    steps : array (k,), the SGD steps at which the runs were recorded
    lr, momentum : the runs' learning rate and momentum (``flow.sgd_flow_time``)
    alphas : the focus qualities a
    C : the number of classes
    lag : steps momentum needs to build up, subtracted first; by default chapter 5's
        momentum / (1 - momentum), 9 steps at momentum 0.9; 0 for no lag
    time_scale : multiplies the flow time (a deliberately wrong time axis if not 1)
    margin_alpha : if given, replaces a in the margin law (see ``closed_form_incentive``)

    Returns
    -------
    dict {(loss, a): array (k,)}, the losses in ``LOSS_NAMES`` order.
    """
    time_scale = check_positive(time_scale, "time_scale")
    flow_time = flow.sgd_flow_time(steps, lr=lr, momentum=momentum, lag=lag) * time_scale
    return {
        (n, a): closed_form_incentive(n, a, flow_time, C=C, margin_alpha=margin_alpha)
        for n in LOSS_NAMES
        for a in alphas
    }


def rising_points(predicted: Mapping, epochs, first_epoch: int = 6, below: float = 0.95) -> dict:
    """The points compared with the closed form (chapter 4): {key: boolean mask (k,)}, true at
    the recorded ``epochs`` from ``first_epoch`` on, before the prediction's peak and where it
    is below ``below`` times its largest value (its rising part).

    >>> rising_points({"x": np.array([1.0, 2.0, 3.0, 4.0, 3.0])}, np.arange(5), first_epoch=1)
    {'x': array([False,  True,  True, False, False])}
    """
    epochs = np.asarray(epochs)
    below = check_fraction(below, "below")
    masks = {}
    for key, p in predicted.items():
        p = np.asarray(p)
        if p.shape != epochs.shape:
            raise ValueError(f"predicted[{key!r}] has shape {p.shape}, epochs {epochs.shape}")
        masks[key] = (epochs >= first_epoch) & (np.arange(len(epochs)) < np.argmax(p))
        masks[key] &= p < below * p.max()
    return masks


def rising_error(measured: Mapping, predicted: Mapping, rising: Mapping) -> dict:
    """Largest |measured / predicted - 1| over each loss's compared points (chapter 4): the
    three mappings are keyed by (loss, alpha); returns {loss: error}, 0 for a loss with no
    point compared.

    >>> key = ("soft", 0.2)
    >>> errors = rising_error({key: np.array([1.1, 2.0])}, {key: np.array([1.0, 1.0])},
    ...     {key: np.array([True, False])})
    >>> round(float(errors["soft"]), 6)
    0.1
    """
    if not set(predicted) <= set(measured) or set(rising) != set(predicted):
        raise ValueError("measured, predicted and rising must have the same (loss, alpha) keys")
    errors = {}
    for key, p in predicted.items():
        mask = rising[key]
        error = np.abs(np.asarray(measured[key])[mask] / np.asarray(p)[mask] - 1).max(initial=0.0)
        errors[key[0]] = max(errors.get(key[0], 0.0), error)
    return errors


def default_init_classifier(n_classes: int = 20, seed: int = 12, device=None) -> LinearClassifier:
    """``LinearClassifier(n_classes + 1, n_classes)`` with PyTorch's default initialisation
    drawn after ``torch.manual_seed(seed)``: the same draws as the official fixed-focus scripts'
    ``nn.Linear(21, 20)`` (chapter 4, "the official protocol").  Sets the global torch seed.

    >>> default_init_classifier().net.weight.shape
    torch.Size([20, 21])
    """
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    classifier = LinearClassifier(n_classes + 1, n_classes)
    torch.manual_seed(seed)
    classifier.net.reset_parameters()
    return classifier if device is None else classifier.to(device)


def hard_share(a: float, t, *, C: int):
    """Hard attention's closed-form L(a) - L(a + 0.01) at flow time ``t``, over its plateau
    0.01 log C (chapter 4, "how long hard attention's plateau takes"; chapter 5's margin).

    >>> 0 < hard_share(0.2, 200.0, C=20) < 1
    True
    """
    a, C = _check_alpha_and_classes(a, C)
    if a >= 1:
        raise ValueError(f"a must be < 1, got {a}")
    mu = flow.fixed_focus_margin("hard", a, t, C=C)
    diff = flow.reduced_loss("hard", a, mu, C=C) - flow.reduced_loss("hard", a + 0.01, mu, C=C)
    return diff / (0.01 * math.log(C))


def flat_gradient(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The gradient of a scalar ``loss`` with respect to ``params``, flattened and concatenated
    in their order (chapter 4's REINFORCE and EM sections): shape (sum of their sizes,).

    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> flat_gradient((w**2).sum(), [w])
    tensor([2., 4.])
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss must be a scalar tensor")
    params = list(params)
    if not params:
        raise ValueError("params must hold at least one tensor")
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.flatten() for g in grads])


def relative_errors(estimates: torch.Tensor, exact: torch.Tensor, n_focus: int) -> dict:
    """Relative mean squared error and squared bias of gradient estimates (chapter 4, REINFORCE):
    ``estimates`` (R, P), R independent estimates of the gradient ``exact`` (P,), whose first
    ``n_focus`` entries are the focus's.  Returns {"focus": (mse, bias2), "classifier": (...)},
    E|g_hat - g|^2 / |g|^2 and |mean g_hat - g|^2 / |g|^2 of each part.

    >>> estimates = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    >>> errors = relative_errors(estimates, torch.tensor([2.0, 2.0]), n_focus=1)
    >>> errors["focus"], errors["classifier"]
    ((0.25, 0.0), (1.0, 0.0))
    """
    if estimates.dim() != 2 or exact.shape != estimates.shape[1:]:
        raise ValueError(
            f"estimates must be (R, P) and exact (P,), got {tuple(estimates.shape)} and "
            f"{tuple(exact.shape)}"
        )
    n_focus = check_int(n_focus, "n_focus", minimum=1, maximum=exact.numel() - 1)
    stats = {}
    for part, cut in (("focus", slice(None, n_focus)), ("classifier", slice(n_focus, None))):
        est, g = estimates[:, cut], exact[cut]
        norm2 = g.pow(2).sum()
        mse = (est - g).pow(2).sum(1).mean() / norm2
        bias2 = (est.mean(0) - g).pow(2).sum() / norm2
        stats[part] = (mse.item(), bias2.item())
    return stats
