# How Attention Learns: `make lab` opens the course in JupyterLab, `make book` builds and opens the
# website, `make test` runs every test.
# Both create .venv and install requirements.txt + course_lib (editable) on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COURSE_MODE ?= quick
export COURSE_MODE
# One torch thread unless the caller says otherwise, as in .ci/run: the course's per-step work is
# small, and on a 2-core machine that is busy PyTorch's default thread count is many times slower.
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS
# Playwright (the browser tests) drives Debian's /usr/bin/chromium and never downloads a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# jupyter-cache keys on cell sources only: it cannot see COURSE_MODE or edits to course_lib.
# The cache is therefore dropped whenever the mode or the library's source changes.
CACHE_STAMP = $(COURSE_MODE)-$(shell cat src/course_lib/*.py src/course_lib/*/*.py 2>/dev/null | sha1sum | cut -c1-16)

.PHONY: lab book build-book test unit quick lint notebooks browser colab preflight bench full clean venv

# What `make test` needs from the system, checked before anything else runs: Chromium (the
# browser tests), npm (the website's MathJax), git, python3's venv module, and Python 3.13 (the
# Colab simulation; COURSE_COLAB_PYTHON=/path/to/python3.13 picks one). As root (or with
# password-less sudo) the missing Debian/Ubuntu packages are installed; otherwise make stops at
# once with one line saying what to install.
COLAB_PYTHON ?= $(or $(COURSE_COLAB_PYTHON),$(firstword $(wildcard /root/.pyenv/versions/3.13*/bin/python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13)))
export COURSE_COLAB_PYTHON := $(COLAB_PYTHON)

preflight:
	@missing=""; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  command -v git >/dev/null || missing="$$missing git"; \
	  $(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	  colab="$(COLAB_PYTHON)"; \
	  if [ -z "$$colab" ]; then missing="$$missing python3.13 python3.13-venv"; fi; \
	  if [ -n "$$missing" ]; then \
	    sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo -n"; \
	    if command -v apt-get >/dev/null && $$sudo true 2>/dev/null && $$sudo apt-get update -qq \
	       && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null 2>&1; then \
	      echo "make test: installed$$missing"; \
	    else \
	      echo "make test needs:$$missing (Debian/Ubuntu: sudo apt-get install$$missing; Python 3.13 elsewhere: pyenv install 3.13, or COURSE_COLAB_PYTHON=/path/to/python3.13)"; \
	      exit 1; \
	    fi; \
	  fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The website serves MathJax itself instead of loading it from a CDN (it works offline): npm
# installs the version package-lock.json pins, copied where _config.yml's mathjax_path expects it.
SITE_ASSETS := _site_assets/_static/mathjax/tex-mml-chtml.js

$(SITE_ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund
	rm -rf _site_assets && mkdir -p _site_assets/_static
	cp -R node_modules/mathjax/es5 _site_assets/_static/mathjax

build-book: venv $(SITE_ASSETS)
	@mkdir -p _build
	@if [ "$$(cat _build/.cache_stamp 2>/dev/null)" != "$(CACHE_STAMP)" ]; then \
	  echo "mode or course_lib changed: clearing the execution cache"; \
	  rm -rf _build/.jupyter_cache _build/html _build/jupyter_execute; \
	  echo "$(CACHE_STAMP)" > _build/.cache_stamp; fi
	@# Without MPLBACKEND the kernels draw inline; with it (CI exports Agg) the website has no figures.
	@# A failed page stops the build at once (_config.yml: nb_execution_raise_on_error) and
	@# scripts/check_build.py names it in one line; a failed build leaves no website and drops Sphinx's
	@# environment (the next build reads every page again; pages that succeeded come from the
	@# execution cache). Old execution reports are removed first, so none is published stale.
	@# _ext/course_site.py re-executes pages whose last execution failed (tests/test_book_build.py).
	rm -rf _build/html/reports
	env -u MPLBACKEND $(BIN)/jupyter-book build . -W -n --keep-going 2>&1 | tee _build/build_log.txt; \
	  status=$${PIPESTATUS[0]}; \
	  $(BIN)/python scripts/check_build.py _build --log _build/build_log.txt || status=1; \
	  if [ $$status -ne 0 ]; then rm -rf _build/html; rm -f _build/.doctrees/environment.pickle; \
	    echo "make book: the build FAILED (the page above; full log in _build/build_log.txt); the next build reads every page again"; fi; \
	  test $$status -eq 0
	@echo
	@echo "The website is in $(CURDIR)/_build/html/index.html"

# JupyterLab on the course, with jupyterlab-myst (requirements.txt). The student works in
# my_exercises/ (git-ignored): each exercise notebook is copied there unless a copy already exists,
# so a student's work is never overwritten, autosave never touches a tracked notebook and
# `git pull` keeps working. nbval, the book build and the tests read exercises/, not this folder.
lab: venv
	@mkdir -p my_exercises
	@for nb in exercises/*.ipynb; do \
	  copy="my_exercises/$$(basename "$$nb")"; \
	  if [ ! -e "$$copy" ]; then cp "$$nb" "$$copy" && echo "copied $$nb to $$copy"; fi; \
	done
	$(BIN)/jupyter lab

book: build-book
	@($(BIN)/python -m webbrowser -t "file://$(CURDIR)/_build/html/index.html" >/dev/null 2>&1 &) || true

# Test markers (pyproject.toml): `browser` and `colab` run only when selected with -m, so a plain
# `pytest tests` is the unit suite; `slow` marks the unit tests that take seconds each (three book
# builds, a wheel build, the benchmarks, exercise 6.2's check). `make quick` is the edit-test loop,
# `make unit` all unit tests, `make test` everything.
unit: venv
	$(BIN)/python -m pytest tests -q

quick: venv
	$(BIN)/python -m pytest tests -q -m "not slow and not browser and not colab"

# COURSE_PROGRESS=off: no progress bars in nbval's runs (the website's build sets it in
# _ext/course_site.py).
notebooks: venv
	COURSE_PROGRESS=off $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider chapters exercises

# The built website in headless Chromium, offline (tests/browser; screenshots in _build/screenshots).
browser: venv
	COURSE_BROWSER_REQUIRED=1 $(BIN)/python -m pytest tests/browser -m browser -q -p no:cacheprovider

# ruff (configured in pyproject.toml): the library, the tests, the benchmarks, the scripts and the
# website's extension at 100 columns, the notebooks' code cells at 88.
lint: venv
	$(BIN)/ruff check src tests benchmarks scripts _ext
	$(BIN)/ruff format --check src tests benchmarks scripts _ext
	$(BIN)/ruff check --line-length 88 chapters exercises

# Colab, simulated (tests/colab): Colab's Python and versions in a virtual environment built once
# (5.2 GB, ~/.cache/how-attention-learns/colab-runtime, reused while colab-constraints.txt holds), every notebook alone with its own install cell, pip freeze unchanged, and its math
# rendered outside the website. Results in _build/colab/.
colab: venv $(SITE_ASSETS)
	$(BIN)/python -m pytest tests/colab -m colab -q -p no:cacheprovider

test: preflight venv lint
	$(MAKE) unit
	$(MAKE) notebooks
	$(MAKE) build-book
	$(MAKE) browser
	$(MAKE) colab

bench: venv
	$(BIN)/python benchmarks/run.py

# Full mode, the papers' sizes (benchmarks/full_mode.py): every notebook, or those matching
# NOTEBOOKS='chapters/03_*', executed with COURSE_MODE=full into _build/full/ (the website's
# quick-mode build is untouched); times, memory and measured values go to
# benchmarks/results/full_mode.{md,json}. FULL_FLAGS=--no-downloads uses the offline datasets
# instead of CIFAR-10 and HateXplain. Not part of `make test`: hours on a 2-core CPU.
NOTEBOOKS ?=
FULL_FLAGS ?=
full: venv
	$(BIN)/python benchmarks/full_mode.py $(FULL_FLAGS) $(NOTEBOOKS)

clean:
	rm -rf _build .pytest_cache
