#!/usr/bin/env bash
# Writes the small index that tests/compat.rs reads, with the codeq binary given as $1, into
# tests/fixtures/index-schema<N>/ (N: the schema that binary writes). Run it when the index
# schema changes, commit the new folder, and point FIXTURE_SCHEMA in tests/compat.rs at it.
set -euo pipefail
codeq=${1:?usage: scripts/compat-index.sh PATH/TO/codeq}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
cat > "$work/root/ledger.rs" <<'RS'
/// Reverses a settled payment and returns the refunded amount.
pub fn refund_payment(balance: i64, amount: i64) -> i64 {
    balance - amount
}
RS
cat > "$work/root/shapes.py" <<'PY'
def rectangle_area(width, height):
    """Area of a rectangle."""
    return width * height
PY
"$codeq" index "$work/root" --index-dir "$work/index" >/dev/null
schema=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["schema_version"])' \
    "$work/index/generations/$(cat "$work/index/CURRENT")/manifest.json")
out="$(dirname "$0")/../tests/fixtures/index-schema$schema"
rm -rf "$out"
mkdir -p "$out"
cp "$work/index/FORMAT" "$work/index/CURRENT" "$out/"
cp -r "$work/index/generations" "$out/"
# Lock files are made on open; the embedding cache is not part of a generation.
find "$out" -name '*.lock' -delete
echo "wrote $out (schema $schema)"
