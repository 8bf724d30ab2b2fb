"""Helper library for the course *How Attention Learns*.

Each module names the chapter that introduces it.  The theory is layered; a module imports only
from the layers below it:

* ``law`` (chapter 7): one logit against ``n`` logits at zero: ``a(theta)``, ``1 / (1 - a)``,
  ``Psi_n`` and its inverse, the lemma, and the rule for what kind of value (float, array,
  tensor) comes back.  It imports nothing of the course but ``_validate``.
* ``conservation`` (chapter 7): the two papers' corollaries of the lemma.
* ``identity`` (chapter 2) and ``flow`` (chapters 5 and 6): each chapter's theory, on top of
  ``law`` and ``conservation``; they train nothing and read no files.

Data and models (``topic``, ``sst``, ``data``, ``mosaic``, ``focus``, ``losses``), training
(``engine``, the one training loop, whose runs ``training``, ``mosaic_training`` and
``flow_descent`` build, and which returns one ``engine.History``; ``max_margin`` and
``later_models`` with their papers' own optimisers), measurements (``metrics``), figures
(``plotting``, ``widgets``), one module of recipes per chapter (``chapters.chNN``) and the
exercises' checks and reference solutions (``checks``, ``checks.solutions``) sit above the
theory.  ARCHITECTURE.md, at the root of the repository, lists the
layers, what each module holds and imports, and where a new chapter's code goes.
"""

__version__ = "0.1.0"
