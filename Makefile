# Two entry points (see README.md): `make demo` and `make test`.
# The cargo target dir lives outside the clone so CI and repeated runs reuse the build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/codeq/target
CODEQ := $(CARGO_TARGET_DIR)/debug/codeq
DEMO_INDEX := $(CURDIR)/.codeq

.PHONY: setup build demo test lint bench

## Install system packages, ONNX Runtime and the embedding model (idempotent).
setup:
	./scripts/setup.sh

build: setup
	cargo build --locked

## Index this repository and ask it a few questions.
demo: build
	$(CODEQ) index . --index-dir $(DEMO_INDEX)
	$(CODEQ) status --index-dir $(DEMO_INDEX)
	$(CODEQ) search "split oversized functions at statement boundaries" -k 5 --index-dir $(DEMO_INDEX)
	$(CODEQ) search "IndexDir::publish" -k 3 --index-dir $(DEMO_INDEX)

## Formatting, lints and the whole test suite.
test: setup lint
	cargo test --locked

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

## Indexing benchmark on CORPUS (default: this repository), release build.
CORPUS ?= .
bench: setup
	cargo build --release --locked
	$(CARGO_TARGET_DIR)/release/codeq bench $(CORPUS)
