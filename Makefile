# Two commands on a fresh machine:
#   make demo   set everything up, then run the whole pipeline on the built-in demo world
#   make test   set everything up, then run the test suite
#   make serve  after make demo: the text-to-video search page over the demo's labeled pool
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Pinned versions of every dependency: a fresh install resolves in one pass instead of backtracking
# through xmanager's Google Cloud dependencies.
CONSTRAINTS := .ci/constraints.txt
DEMO_DIR ?= runs/demo
SEED ?= 0
PYTEST_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: setup sysdeps bytecode demo test serve clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs only when setup.py changes. uv installs the same pinned set as pip in ~18 s instead of
# ~84 s on an empty cache (docs/speed.md, "`make test`"); pip is the fallback where uv
# cannot be installed or cannot reach the index (uv does not read pip's configuration).
EXTRAS := .[test,launch,serve,tpu]
$(STAMP): setup.py $(CONSTRAINTS) | $(PY)
	$(PY) -m pip install -q -c $(CONSTRAINTS) uv && \
	  $(VENV)/bin/uv pip install -q --python $(PY) -c $(CONSTRAINTS) -e '$(EXTRAS)' || { \
	  echo "[setup] uv failed; installing with pip"; \
	  $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -c $(CONSTRAINTS) -e '$(EXTRAS)'; }
	touch $@

# java (pycocoevalcap's PTB tokenizer and METEOR), WordNet 3.0 (NExT-OE WUPS), and Chromium with
# its driver (the search page's browser test) from Debian.
sysdeps:
	@missing=""; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	[ -f /usr/share/wordnet/data.noun ] || missing="$$missing wordnet-base"; \
	[ -f /usr/share/wordnet/index.sense ] || missing="$$missing wordnet-sense-index"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "[setup] apt-get install$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "[setup] missing system packages. Please run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

setup: sysdeps $(STAMP)

# The project's modules byte-compiled (only changed files are redone): where PYTHONDONTWRITEBYTECODE
# is set, as in many CI images, every Python process would compile them again on import, and the
# tests start hundreds (tests/test_xm_launch.py, test_llm_backends.py, test_launch_gke.py: 106 ->
# 71 CPU-s).
bytecode: setup
	$(PY) -m compileall -q viit_jax data configs launch

demo: bytecode
	$(PY) -m viit_jax.pipeline --config=configs/demo_pipeline.py:seed=$(SEED) --workdir=$(DEMO_DIR)

test: bytecode
	$(PY) -m pytest -q -n 2 --dist=loadfile --no-loadscope-reorder tests $(PYTEST_ARGS)

serve: bytecode
	$(PY) -m viit_jax.serve --dual_encoder=$(DEMO_DIR)/de_viit --corpus=$(DEMO_DIR)/label_viit \
	  --host=$(HOST) --port=$(PORT)

clean:
	rm -rf $(VENV) .jax_cache runs
