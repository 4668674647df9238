# Everything runs from the virtual environment in .venv, created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install serve defaults test test-tools lint typecheck unit bench loadtest soak proto clean-models lock k8s-sync

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[cpu,train,dev]'
	touch $(STAMP)

install: $(STAMP)

## Build every default model that is missing, then serve the repository (ARGS go to the server).
serve: defaults
	$(PY) -m service $(ARGS)

defaults: $(STAMP)
	$(PY) -m export defaults

## What the tests and the bench start besides Python: real redis-server processes, and promtool
## to check and unit-test deploy/prometheus (Debian's redis-server and prometheus packages).
test-tools:
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)

## Lint, type-check and run the whole test suite (what CI runs).
test: $(STAMP) test-tools
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

unit: $(STAMP) test-tools
	$(PY) -m pytest tests/unit

bench: $(STAMP) test-tools
	$(PY) -m bench $(ARGS)

## Locust over gRPC against a server of its own on models/ (or ARGS="--target HOST:PORT"), with
## a report in pictures and an SLO gate: build/loadtest/<timestamp>/summary.md (docs/loadtest.md).
loadtest: $(STAMP)
	$(PY) -m bench.loadtest $(ARGS)

## A bounded mixed load (default 10 minutes, ARGS="--minutes 3 --models-dir DIR") against a
## server of its own: RSS, descriptors, threads and p99 every 10 s into build/soak/<time>/
## (CSV, PNG, summary); exit 1 on RSS growth > 10 % or p99 drift > 20 % after warm-up. Not in CI.
soak: $(STAMP)
	$(PY) -m bench.soak $(ARGS)

## The serving images' hashed locks, from pyproject.toml: core + `cpu`, core + `gpu`, and the
## build backend, and the load-test image's from deploy/requirements-loadtest.in
## (`make lock ARGS=--upgrade` moves every pin to the newest allowed).
LOCK := CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes \
	--no-emit-index-url --no-emit-find-links --strip-extras $(ARGS)
lock: $(STAMP)
	$(LOCK) --extra cpu -o deploy/requirements-serve.txt pyproject.toml
	$(LOCK) --extra gpu -o deploy/requirements-serve-gpu.txt pyproject.toml
	$(LOCK) --only-build-deps --build-deps-for wheel --allow-unsafe \
		-o deploy/requirements-build.txt pyproject.toml
	$(LOCK) -o deploy/requirements-loadtest.txt deploy/requirements-loadtest.in

## Copy or generate the files kustomize reads (k8s/monitoring/) from their sources in deploy/.
k8s-sync: $(STAMP)
	$(PY) k8s/sync.py

## Regenerate the gRPC stubs after editing proto/ (tests fail while they are stale).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. proto/embedding/v1/embedding.proto
