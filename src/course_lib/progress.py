"""Progress bars for the course's long training runs (tqdm), chapters 1 to 8.

Every trainer of the library that can run for more than a few seconds draws one bar, made by
:func:`progress_bar`: tqdm's notebook widget in Jupyter and on Colab (``tqdm.auto``), a line of
text in a terminal, with the step, the loss (:func:`show_loss`) and an estimate of the time left.
A bar appears only once its run has lasted ``DELAY`` seconds, so short runs show nothing, and it
is removed when its run ends.

The environment variable ``COURSE_PROGRESS`` switches the bars:

* unset, ``""``, ``"1"`` or ``"on"``: bars on (the default; a widget in a notebook);
* ``"text"``: bars on, always as text (a front end that does not render widgets);
* ``"0"`` or ``"off"``: no bars.  The website's build (``_ext/course_site.py``) and ``make
  notebooks`` (nbval) set it, so no page and no test run shows progress output.

Any other value is an error naming the variable.  A bar never changes what a run computes: it
counts steps, and reads a loss at most once a second (:func:`show_loss`), so a CUDA run is
synchronised at most once a second for it.
"""

from __future__ import annotations

import os

from ._validate import check_int, check_positive

__all__ = ["ENV_VAR", "DELAY", "progress_mode", "progress_bar", "show_loss"]

ENV_VAR = "COURSE_PROGRESS"
DELAY = 2.0  # seconds a run lasts before its bar appears
_MODES = {"": "on", "1": "on", "on": "on", "text": "text", "0": "off", "off": "off"}


def progress_mode() -> str:
    """``"on"``, ``"text"`` or ``"off"``, from the environment variable ``COURSE_PROGRESS``.

    >>> import os
    >>> os.environ["COURSE_PROGRESS"] = "off"
    >>> progress_mode()
    'off'
    >>> del os.environ["COURSE_PROGRESS"]
    """
    value = os.environ.get(ENV_VAR, "")
    mode = _MODES.get(value.strip().lower())
    if mode is None:
        raise ValueError(
            f"the environment variable {ENV_VAR} must be one of 'on' (or '1', the default), "
            f"'text' or 'off' (or '0'), got {value!r}"
        )
    return mode


def progress_bar(
    total: int,
    *,
    desc: str,
    unit: str = "step",
    enabled: bool | None = None,
    delay: float | None = None,
):
    """A tqdm bar for a run of ``total`` steps; use it as a context manager and call
    ``bar.update()`` after each step.

    Parameters
    ----------
    total : the number of steps the run will take (the bar's 100 %).
    desc : what runs, shown at the bar's left (e.g. ``"train_full_batch"``).
    unit : what a step is called (``"step"``, ``"epoch"``).
    enabled : True or False to force the bar on or off; None (the default) follows
        ``COURSE_PROGRESS`` (:func:`progress_mode`).
    delay : seconds before the bar appears (runs that end sooner show nothing); None: ``DELAY``.

    Returns
    -------
    A ``tqdm`` bar: the notebook widget inside a Jupyter kernel, text on stderr elsewhere (or
    with ``COURSE_PROGRESS=text``), disabled when progress is off.  It is removed when closed;
    one that stops before ``total`` (an interrupted run) stays, marked as failed.

    >>> with progress_bar(3, desc="demo", enabled=True, delay=60) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> bar.n, bar.total
    (3, 3)
    """
    check_int(total, "total", minimum=0)
    if not isinstance(desc, str):
        raise TypeError(f"desc must be a str, got {type(desc).__name__}")
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True, False or None, got {enabled!r}")
    delay = DELAY if delay is None else check_positive(delay, "delay", allow_zero=True)
    mode = progress_mode()  # checked even when ``enabled`` is given: a bad value is an error
    if enabled is None:
        enabled = mode != "off"
    if enabled and mode != "text":
        from tqdm.auto import tqdm  # the widget inside a Jupyter kernel, text elsewhere
    else:
        from tqdm.std import tqdm
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        delay=delay,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def show_loss(bar, loss, *, every: float = 1.0) -> None:
    """Show ``loss`` in ``bar``'s postfix, at most once every ``every`` seconds, and not before
    the bar appears.

    ``loss`` is a number, a tensor (its mean is shown: the mean over a batch of runs) or a
    function returning one; a tensor is read, and a function called, only when the loss is
    shown, so a loop on a GPU is synchronised at most once every ``every`` seconds for it.
    Nothing is read when the bar is disabled.
    """
    if bar.disable:
        return
    now = bar._time()
    shown = getattr(bar, "_course_loss_shown", None)
    if now < bar.start_t + bar.delay or (shown is not None and now - shown < every):
        return
    value = loss() if callable(loss) else loss
    if hasattr(value, "detach"):
        value = value.detach().float().mean()
    bar.set_postfix(loss=f"{float(value):.4g}", refresh=False)
    bar._course_loss_shown = now
