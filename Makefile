# eoembed: two commands to know — `make demo` (main job on the bundled generated sample) and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.eoembed-installed
DEMO_OUT ?= out/demo
# `make demo` ends by serving the dashboard (URL printed; Ctrl-C stops it); DEMO_ARGS=--no-serve stops after the
# results folder and its static report.html. DEMO_PORT picks the port.
DEMO_ARGS ?=
DEMO_PORT ?= 5006

.PHONY: demo test test-slow test-all bench gpu-wheels install clean

install: $(STAMP)

# One pip call installs the whole stack (core + UI + test tools); pins are in pyproject.toml.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing eoembed and its stack into $(VENV) (first time: a few minutes)..."
	@$(BIN)/pip install -q -e '.[ui,dev]' > $(VENV)/pip-install.log 2>&1 || { grep -v 'is ignored: it is neither' $(VENV)/pip-install.log | tail -40; exit 1; }
	@$(BIN)/python -m widgets.assets || echo "offline basemap not fetched: maps work without land/country outlines (retry: $(BIN)/python -m widgets.assets)"
	@# Browser tests drive Debian's Chromium (never `playwright install`); installed when absent (needs root).
	@test -x /usr/bin/chromium || { echo "installing Debian chromium for the browser tests (apt-get)..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) > $(VENV)/apt-chromium.log 2>&1 \
	  || echo "chromium not installed (see $(VENV)/apt-chromium.log): browser tests will be skipped"; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/eoembed demo $(DEMO_OUT) --port $(DEMO_PORT) $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/pytest --nbmake tests notebooks

test-slow: $(STAMP)
	$(BIN)/pytest -m slow tests

test-all: $(STAMP)
	$(BIN)/pytest -m "" --nbmake tests notebooks

# Every benchmark with its defaults (hours; rewrites benchmarks/results/*.json with this machine's numbers). One that
# fails does not stop the others; those needing NeuCo-Bench's source say SKIPPED without it. See benchmarks/README.md.
bench: $(STAMP)
	@failed=""; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
	  if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

# Wheels the GPU device machine lacks (Python 3.12, no network there) for benchmarks/bench_gpu.py, into .whl/
# (ignored by git; about 11 MB). See benchmarks/README.md, "The device check".
GPU_WHEELS := zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 dask==2026.8.0 partd==1.4.2 \
  locket==1.0.0
gpu-wheels: $(STAMP)
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux1_x86_64 -d .whl $(GPU_WHEELS)

clean:
	rm -rf out .pytest_cache
