# Everything runs from the virtual environment in .venv, created and filled on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
LAUNCH_ARGS ?=
TARGET ?= localhost:50051

.PHONY: install serve defaults test test-tools lint typecheck unit bench loadtest soak examples proto proto-release clean-models lock k8s-sync

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[cpu,train,dev]'
	touch $(STAMP)

install: $(STAMP)

## Serve the repository at once, and build every missing default model beside it; each is
## served as soon as it is published (ARGS go to the server, LAUNCH_ARGS to the launcher, e.g.
## LAUNCH_ARGS=--no-builder; Ctrl-C stops both).
serve: $(STAMP)
	$(PY) -m service.launch $(LAUNCH_ARGS) -- --model-control poll $(ARGS)

## Only build every default model that is missing (what `serve` runs beside the server).
defaults: $(STAMP)
	$(PY) -m export defaults

## What the tests and the bench start besides Python: real redis-server processes, and promtool
## to check and unit-test deploy/prometheus (Debian's redis-server and prometheus packages),
## and buf (npm's @bufbuild/buf, pinned, into build/tools/) to lint proto/ and hold it to its
## last release (tests/unit/test_proto_api.py).
BUF_VERSION := 1.75.0
BUF := build/tools/node_modules/.bin/buf
test-tools:
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)
	$(BUF) --version 2>/dev/null | grep -qx '$(BUF_VERSION)' || \
		npm install --silent --no-save --no-fund --no-audit --prefix build/tools @bufbuild/buf@$(BUF_VERSION)

## Lint, type-check and run the whole test suite (what CI runs).
test: $(STAMP) test-tools lint typecheck
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

## mypy --strict over the files pyproject.toml lists.
typecheck: $(STAMP)
	$(PY) -m mypy

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

## Every `python -m service.client` example of README.md against a running server (TARGET=HOST:PORT,
## default localhost:50051), each printed with its answer; exit 1 if one fails. Not in CI.
examples: $(STAMP)
	$(PY) -m bench.examples --target $(TARGET)

## Delete every generated model version: all of models/ except its README.md and .gitignore
## (the next `make serve` or `make defaults` trains the default models again).
clean-models:
	find models -mindepth 1 -maxdepth 1 ! -name README.md ! -name .gitignore -exec rm -rf -- {} +

## At each release: proto/released.json, the buf image of the API that every later change to
## proto/ is checked against (no field or name reused, nothing renamed, retyped or removed
## unless `reserved`; tests/unit/test_proto_api.py). Commit it with the release.
proto-release: $(STAMP) test-tools
	$(BUF) build proto --exclude-source-info -o build/released.json
	$(PY) -m json.tool --indent 1 build/released.json proto/released.json

## Regenerate the gRPC stubs after editing proto/ (tests fail while they are stale).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. proto/embedding/v1/embedding.proto
