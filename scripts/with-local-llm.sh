#!/usr/bin/env bash
# Runs one codeq command with `[llm]` pointing at a local model, offline (`make llm-demo`,
# `make llm-bench`). Starts llama.cpp's server (scripts/llm-server.py, installed by
# `scripts/setup.sh --llm`) on 127.0.0.1, points `[llm]` at it through a user configuration
# of its own (your own ~/.config/codeq is not touched), runs `CODEQ_BIN ARGS… --index-dir
# INDEX_DIR`, and stops the server, whatever happens.
# Usage: scripts/with-local-llm.sh CODEQ_BIN INDEX_DIR ARGS…
# LLM_MODEL (a GGUF file; default Qwen2.5-Coder-0.5B-Instruct) and LLM_PORT (8089) override.
set -euo pipefail

CODEQ=$1
INDEX_DIR=$2
shift 2
CODEQ_HOME=${CODEQ_HOME:-$HOME/.cache/codeq}
MODEL=${LLM_MODEL:-$CODEQ_HOME/models/qwen2.5-coder-0.5b-instruct-q4km/model.gguf}
PORT=${LLM_PORT:-8089}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "with-local-llm: starting llama.cpp's server on 127.0.0.1:$PORT with $(basename "$(dirname "$MODEL")")" >&2
"$CODEQ_HOME/llm/venv/bin/python" "$ROOT/scripts/llm-server.py" --model "$MODEL" --port "$PORT" \
  > "$work/server.out" 2> "$work/server.log" &
server=$!
for _ in $(seq 1 120); do
  grep -q '^listening' "$work/server.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; echo "with-local-llm: the server did not start" >&2; exit 1; }
  sleep 0.5
done
grep -q '^listening' "$work/server.out" || { echo "with-local-llm: the server did not start within 60 s" >&2; exit 1; }

# A small model on 2 cores reads about 100 prompt tokens per second: keep the context short
# and the timeout generous.
mkdir -p "$work/config/codeq"
cat > "$work/config/codeq/config.toml" <<TOML
[llm]
base_url = "http://127.0.0.1:$PORT/v1"
model = "$(basename "$(dirname "$MODEL")")"
timeout_ms = 120000
max_context_tokens = 1500
max_answer_tokens = 300
TOML
XDG_CONFIG_HOME=$work/config "$CODEQ" "$@" --index-dir "$INDEX_DIR"
