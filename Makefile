# Two entry points (see README.md): `make demo` and `make test`.
# The cargo target dir lives outside the clone so CI and repeated runs reuse the build.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/codeq/target
CODEQ := $(CARGO_TARGET_DIR)/debug/codeq
DEMO_INDEX := $(CURDIR)/.codeq

.PHONY: setup build demo test lint self-eval bench bench-query bench-serve bench-peers bench-remote llm llm-small llm-demo llm-bench

## Install system packages, ONNX Runtime and the embedding model (idempotent).
setup:
	./scripts/setup.sh

build: setup
	cargo build --locked

## Index this repository and ask it a few questions.
demo: build
	$(CODEQ) index . --index-dir $(DEMO_INDEX)
	$(CODEQ) status --index-dir $(DEMO_INDEX)
	$(CODEQ) ask "how is a new index generation published atomically?" --index-dir $(DEMO_INDEX)
	$(CODEQ) search "split oversized functions at statement boundaries" -k 5 --index-dir $(DEMO_INDEX)

## Optional: llama.cpp's server (PyPI xllamacpp) and two small instruct GGUF models from
## PyPI for `[llm]`, sha256-checked (scripts/setup.sh --llm; README "Generated answers").
llm:
	./scripts/setup.sh --llm

## The server and the smallest model only, which the tests use.
llm-small:
	./scripts/setup.sh --llm-small

## A generated answer from the local model on this repository, with verified citations.
llm-demo: build llm
	$(CODEQ) index . --index-dir $(DEMO_INDEX)
	./scripts/with-local-llm.sh $(CODEQ) $(DEMO_INDEX) ask "how are bearer tokens checked by codeq serve?"

## Formatting, lints, the whole test suite and the blocking self-eval.
test: setup llm-small lint
	cargo test --locked
	$(MAKE) self-eval

## Blocking eval on codeq's own source. The source is copied to a fixed folder outside the
## clone (so the question files themselves are not indexed, and the index is reused between
## runs; test fixtures, which are data, are left out), then scored against the committed
## baseline. One folder per default model and index schema: an index built with another
## model refuses to be refreshed without --rebuild, and one written by a newer schema (another
## checkout sharing this cache) is refused outright.
SCHEMA := $(shell sed -n 's/^pub const SCHEMA_VERSION: u32 = \([0-9]*\);.*/\1/p' src/store/mod.rs)
SELF_ROOT := $(CARGO_TARGET_DIR)/self-eval/minilm-qint8-schema$(SCHEMA)/codeq
self-eval: build
	mkdir -p $(SELF_ROOT)
	find $(SELF_ROOT) -mindepth 1 -maxdepth 1 ! -name .codeq -exec rm -rf {} +
	cp -r src grammars scripts tests Cargo.toml Makefile README.md $(SELF_ROOT)/
	rm -rf $(SELF_ROOT)/tests/fixtures
	$(CODEQ) index $(SELF_ROOT)
	$(CODEQ) eval eval-questions/self.toml --index-dir $(SELF_ROOT)/.codeq \
		--baseline eval-questions/baselines/self.json

## Generated answers on the self set, beside the extractive ones: citation precision and
## recall, time to first token, tokens/s, latency (docs/BENCH.md). Not part of `make test`.
llm-bench: self-eval llm
	./scripts/with-local-llm.sh $(CODEQ) $(SELF_ROOT)/.codeq eval eval-questions/self.toml --llm

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

## Indexing benchmark on CORPUS (default: this repository), release build.
CORPUS ?= .
bench: setup
	cargo build --release --locked
	$(CARGO_TARGET_DIR)/release/codeq bench index $(CORPUS)

## Query latency (search, ask; with and without ACL) on CORPUS's index replicated to
## CHUNKS chunks, release build.
CHUNKS ?= 100000
BENCH_INDEX := $(CARGO_TARGET_DIR)/bench-query/source
bench-query: setup
	cargo build --release --locked
	$(CARGO_TARGET_DIR)/release/codeq index $(CORPUS) --index-dir $(BENCH_INDEX)
	$(CARGO_TARGET_DIR)/release/codeq bench query --index-dir $(BENCH_INDEX) --chunks $(CHUNKS)

## A `codeq serve` process under CLIENTS clients x REQUESTS searches each, beside the same
## queries in process, on CORPUS's index replicated to CHUNKS chunks, release build.
CLIENTS ?= 20
REQUESTS ?= 200
bench-serve: setup
	cargo build --release --locked
	$(CARGO_TARGET_DIR)/release/codeq index $(CORPUS) --index-dir $(BENCH_INDEX)
	$(CARGO_TARGET_DIR)/release/codeq bench serve --index-dir $(BENCH_INDEX) --chunks $(CHUNKS) \
		--clients $(CLIENTS) --requests $(REQUESTS)

## codeq beside semble on CORPUS (index time, warm/MCP/cold query latency, size, memory),
## release build; semble is installed into a venv under ~/.cache/codeq/bench-peers from
## sha256-pinned wheels. Not part of `make test`.
bench-peers: setup
	cargo build --release --locked
	./scripts/bench-vs-semble.py $(CORPUS) --codeq $(CARGO_TARGET_DIR)/release/codeq

## The index on local disk beside the same index in a SeaweedFS bucket on loopback (index
## time with 1 and 2 shard workers, bytes stored and fetched, query latency); CORPUS must
## be a folder of git repositories. Release build. Not part of `make test`.
bench-remote: setup
	cargo build --release --locked
	./scripts/bench-remote.py $(CORPUS) --codeq $(CARGO_TARGET_DIR)/release/codeq
