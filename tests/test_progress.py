"""Progress bars of long runs (course_lib.progress): switched by COURSE_PROGRESS, off on the
website and in nbval, and never changing what a trainer computes."""

import copy
import dataclasses
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from course_lib import engine, mosaic_training, progress, training
from course_lib.focus import MLPClassifier, MLPFocus
from course_lib.mosaic import make_linear_mosaics
from course_lib.topic import TopicAttention, make_topic_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(monkeypatch):
    """Set (or, with None, remove) COURSE_PROGRESS for one test."""

    def set_to(value):
        if value is None:
            monkeypatch.delenv(progress.ENV_VAR, raising=False)
        else:
            monkeypatch.setenv(progress.ENV_VAR, value)

    return set_to


@pytest.mark.parametrize("value", ["0", "off", "OFF", " off "])
def test_off_via_the_environment(env, value):
    env(value)
    assert progress.progress_mode() == "off"
    with progress.progress_bar(10, desc="run") as bar:
        assert bar.disable


@pytest.mark.parametrize("value", [None, "", "1", "on", "On"])
def test_on_by_default_and_when_asked(env, value):
    env(value)
    assert progress.progress_mode() == "on"
    with progress.progress_bar(10, desc="run") as bar:
        assert not bar.disable
        bar.update(10)


def test_text_mode_is_a_plain_text_bar(env):
    from tqdm.std import tqdm as text_bar

    env("text")
    with progress.progress_bar(4, desc="run") as bar:
        assert type(bar) is text_bar and not bar.disable
        bar.update(4)


def test_enabled_overrides_the_environment(env):
    env("off")
    with progress.progress_bar(3, desc="run", enabled=True) as bar:
        assert not bar.disable
        bar.update(3)
    env("on")
    with progress.progress_bar(3, desc="run", enabled=False) as bar:
        assert bar.disable


@pytest.mark.parametrize("value", ["yes please", "2", "of"])
def test_a_bad_value_is_an_error_naming_the_variable(env, value):
    env(value)
    with pytest.raises(ValueError, match="COURSE_PROGRESS") as error:
        progress.progress_bar(10, desc="run")
    assert repr(value) in str(error.value)  # the value given is quoted
    with pytest.raises(ValueError, match="COURSE_PROGRESS"):  # also through a trainer
        corpus = make_topic_corpus(n_background=20, m=3, n_sentences=10)
        model = TopicAttention(corpus.vocab_size, corpus.n_topics)
        training.train_full_batch(model, *corpus.train, 2)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="total"):
        progress.progress_bar(-1, desc="run")
    with pytest.raises(TypeError, match="desc"):
        progress.progress_bar(3, desc=None)
    with pytest.raises(TypeError, match="enabled"):
        progress.progress_bar(3, desc="run", enabled="yes")
    with pytest.raises(ValueError, match="delay"):
        progress.progress_bar(3, desc="run", delay=-1.0)


def test_the_bar_reports_its_total_the_final_count_and_the_loss(capsys):
    with progress.progress_bar(7, desc="demo run", enabled=True, delay=0) as bar:
        shown = capsys.readouterr().err  # drawn at once when there is no delay
        for _ in range(7):
            bar.update()
        progress.show_loss(bar, torch.tensor([0.25, 0.75]), every=0)  # a batch of runs: mean
        final = str(bar)
    assert "demo run" in shown and "0/7" in shown
    assert bar.n == 7 and bar.total == 7
    assert "7/7" in final and "loss=0.5" in final
    assert bar.postfix == "loss=0.5"


def test_a_short_run_shows_nothing_before_the_delay(capsys):
    with progress.progress_bar(5, desc="short", enabled=True, delay=60) as bar:
        bar.update(5)
        progress.show_loss(bar, _fails)  # not read before the bar appears
    assert capsys.readouterr().err == ""


def _fails():
    raise AssertionError("the loss was read")


def test_show_loss_reads_nothing_when_off_and_at_most_once_per_interval(env):
    env("off")
    with progress.progress_bar(5, desc="run") as bar:
        progress.show_loss(bar, _fails)  # disabled: never read
    reads = []

    def loss():
        reads.append(1)
        return 1.5

    with progress.progress_bar(5, desc="run", enabled=True, delay=0) as bar:
        for _ in range(5):
            bar.update()
            progress.show_loss(bar, loss, every=3600)
    assert len(reads) == 1 and bar.postfix == "loss=1.5"


def test_an_interrupted_run_keeps_its_count_and_an_early_stop_closes_as_finished(env):
    env("on")
    with pytest.raises(KeyboardInterrupt):
        with progress.progress_bar(10, desc="run", delay=0) as bar:
            bar.update(4)
            raise KeyboardInterrupt
    assert (bar.n, bar.total) == (4, 10)


# ------------------------------------------------------------ trainers: bitwise the same results


@pytest.fixture
def bars(monkeypatch):
    """The bars the trainers make, drawn from the first step and showing the loss at every
    step: the most a bar does to a run."""
    made = []

    def progress_bar(*args, **kwargs):
        made.append(progress.progress_bar(*args, **kwargs))
        return made[-1]

    def show_loss(bar, loss):
        progress.show_loss(bar, loss, every=0)

    monkeypatch.setattr(progress, "DELAY", 0.0)
    for module in (engine, mosaic_training):  # engine: every trainer's loop; mosaic: train_mosaic
        monkeypatch.setattr(module, "progress_bar", progress_bar)
        monkeypatch.setattr(module, "show_loss", show_loss)
    return made


def _train_topic(early_stop: bool):
    corpus = make_topic_corpus(n_background=30, m=4, n_sentences=60, seed=0)
    models = [TopicAttention(corpus.vocab_size, corpus.n_topics, seed=s) for s in (0, 1)]
    tokens, labels = corpus.train
    stop = (lambda step, history: step >= 20) if early_stop else None
    models, history = training.train_full_batch(
        models,
        tokens,
        labels,
        40,
        0.5,
        topic_mask=corpus.topic_mask(tokens),
        topic_word_ids=corpus.topic_word_ids,
        record_every=5,
        on_record=stop,
    )
    return [m.state_dict() for m in models], history


def _assert_same(a, b):
    """Every tensor of ``a`` equals ``b``'s bit for bit (dataclasses, tuples, dicts walked)."""
    if dataclasses.is_dataclass(a):
        a, b = vars(a), vars(b)
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("early_stop", [False, True])
def test_train_full_batch_gives_the_same_bits_with_progress_on(env, bars, capsys, early_stop):
    env("off")
    off = _train_topic(early_stop)
    assert capsys.readouterr().err == "" and bars[0].n == 0  # a disabled bar counts nothing
    env("on")
    on = _train_topic(early_stop)
    bar = bars[1]
    assert "train_full_batch" in capsys.readouterr().err  # the bar was drawn
    assert bar.postfix.startswith("loss=")  # with the loss
    # an early stop ends the bar as a finished run (its total becomes the steps taken)
    assert (bar.n, bar.total) == ((20, 20) if early_stop else (40, 40))
    _assert_same(off, on)
    assert on[1].steps[-1] == (20 if early_stop else 40)
    states, history = on
    assert not torch.equal(states[0]["keys.weight"], states[1]["keys.weight"])  # two runs


def _train_mosaics():
    data = make_linear_mosaics(70, n_classes=3, m=4, seed=0)  # 3 batches, the last of 6
    focus_models, classifiers = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        focus_models.append(MLPFocus(4, 8))
        classifiers.append(MLPClassifier(4, 3, 8))
    _, _, history = mosaic_training.train_hybrid_runs(
        focus_models,
        classifiers,
        data,
        ["soft", "hybrid"],
        epochs=3,
        lr=0.1,
        switch_step=4,
        batch_size=32,
    )
    states = [m.state_dict() for m in focus_models + classifiers]
    return copy.deepcopy(states), history


def test_a_mosaic_trainer_gives_the_same_bits_with_progress_on(env, bars, capsys):
    env("off")
    off = _train_mosaics()
    assert capsys.readouterr().err == "" and bars[0].n == 0
    env("on")
    on = _train_mosaics()
    bar = bars[1]
    assert "2 mosaic runs" in capsys.readouterr().err
    assert (bar.n, bar.total) == (9, 9)  # 3 epochs of 3 batches: one bar over the steps
    assert bar.postfix.startswith("loss=")
    _assert_same(off, on)
    assert on[1].switch_step.tolist() == [-1, 4]


# ------------------------------------------------------------- the website and nbval: no bars


def test_the_website_build_turns_progress_off(monkeypatch):
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        import course_site
    finally:
        sys.path.remove(str(ROOT / "_ext"))

    class App:
        def connect(self, *args, **kwargs):
            pass

    monkeypatch.setenv(progress.ENV_VAR, "on")  # even when the caller's shell has it on
    course_site.setup(App())
    assert os.environ[progress.ENV_VAR] == "off"
    assert progress.progress_mode() == "off"


def test_make_notebooks_runs_nbval_with_progress_off():
    recipe = re.search(r"^notebooks:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None
    assert "COURSE_PROGRESS=off" in recipe.group(1) and "--nbval" in recipe.group(1)


def _run_notebook(value):
    """A two-cell notebook whose one run lasts past the delay and the bar's refresh interval,
    executed by nbclient as the book build and nbval execute the chapters; returns the outputs
    of its run."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import time\nfrom course_lib import progress"),
        nbformat.v4.new_code_cell(
            "with progress.progress_bar(6, desc='kernel run', delay=0.1) as bar:\n"
            "    for _ in range(6):\n"
            "        time.sleep(0.2)\n"
            "        bar.update()\n"
            "print('done')"
        ),
    ]
    environment = {k: v for k, v in os.environ.items() if k != progress.ENV_VAR}
    if value is not None:
        environment[progress.ENV_VAR] = value
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(environment)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb.cells[1].outputs


@pytest.mark.slow
def test_in_a_kernel_the_bar_is_a_widget_and_off_leaves_no_output():
    on = _run_notebook(None)
    widgets = [o for o in on if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, f"no widget among the outputs: {on}"
    assert "kernel run" in widgets[0]["data"]["text/plain"]  # the plain-text fallback
    off = _run_notebook("off")
    assert [o.get("text") for o in off] == ["done\n"]  # nothing but the cell's own print
