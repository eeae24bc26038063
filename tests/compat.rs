//! An index written by an earlier build of codeq, checked in under `tests/fixtures/`, still
//! answers with this build, or is refused with the message that says what to do. When the
//! index schema changes, `scripts/compat-index.sh` writes the fixture of the new schema.

mod common;

use std::path::{Path, PathBuf};

use codeq::store::SCHEMA_VERSION;
use common::{codeq, copy_tree, stderr, stdout};

/// The schema of the checked-in index.
const FIXTURE_SCHEMA: u32 = 5;
/// Older schemas whose indexes are checked in too: 3 has single-precision vectors, 3 and
/// 4 keep every chunk field (text included) in the chunk table.
const OLDER_SCHEMAS: [u32; 2] = [3, 4];

/// A writable copy of the checked-in index of `schema` (opening one writes lock files).
fn schema_copy(scratch: &Path, schema: u32) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/index-schema{schema}"));
    let copy = scratch.join("index");
    copy_tree(&fixture, &copy);
    copy
}

/// A writable copy of the checked-in index of [`FIXTURE_SCHEMA`].
fn fixture_copy(scratch: &Path) -> PathBuf {
    schema_copy(scratch, FIXTURE_SCHEMA)
}

fn search(scratch: &Path, index: &Path, query: &str) -> std::process::Output {
    codeq(
        scratch,
        &[
            "search",
            query,
            "--json",
            "--index-dir",
            index.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_checked_in_index_answers_or_is_refused_with_what_to_do() {
    let scratch = tempfile::tempdir().unwrap();
    let index = fixture_copy(scratch.path());
    let out = search(scratch.path(), &index, "refund_payment");
    if SCHEMA_VERSION == FIXTURE_SCHEMA {
        assert!(out.status.success(), "{}", stderr(&out));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let first = &value["results"][0];
        assert_eq!(first["path"], "ledger.rs", "{value}");
        assert_eq!(first["symbol"], "refund_payment", "{value}");
        // Both lanes read the old files: tantivy's and LanceDB's.
        assert!(first["bm25_rank"].is_number(), "{value}");
        assert!(first["vector_rank"].is_number(), "{value}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("to rebuild it"),
            "schema {SCHEMA_VERSION} reading a schema-{FIXTURE_SCHEMA} index: {}",
            stderr(&out)
        );
    }
}

#[test]
fn an_index_of_another_schema_is_refused_naming_the_fix() {
    for (found, advice) in [
        (SCHEMA_VERSION - 1, "run `codeq index ROOT` to rebuild it"),
        (SCHEMA_VERSION + 1, "use the newer codeq that wrote it"),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let index = fixture_copy(scratch.path());
        let current = std::fs::read_to_string(index.join("CURRENT")).unwrap();
        let manifest = index
            .join("generations")
            .join(current.trim())
            .join("manifest.json");
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        value["schema_version"] = found.into();
        std::fs::write(&manifest, value.to_string()).unwrap();
        let out = search(scratch.path(), &index, "refund_payment");
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("schema {found}")), "{err}");
        assert!(err.contains(advice), "{err}");
    }
}

/// The sources `scripts/compat-index.sh` indexes, written under `root`.
fn fixture_sources(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("ledger.rs"),
        "/// Reverses a settled payment and returns the refunded amount.\n\
         pub fn refund_payment(balance: i64, amount: i64) -> i64 {\n    balance - amount\n}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("shapes.py"),
        "def rectangle_area(width, height):\n    \"\"\"Area of a rectangle.\"\"\"\n    return width * height\n",
    )
    .unwrap();
}

/// An index of an older schema is refused by queries and rebuilt by `codeq index` from its
/// own vectors: nothing is embedded again, and both lanes answer afterwards.
#[test]
fn an_index_of_an_older_schema_is_rebuilt_from_its_own_vectors() {
    for schema in OLDER_SCHEMAS {
        let scratch = tempfile::tempdir().unwrap();
        let index = schema_copy(scratch.path(), schema);
        let root = scratch.path().join("root");
        fixture_sources(&root);
        let refused = search(scratch.path(), &index, "refund_payment");
        assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
        let out = codeq(
            scratch.path(),
            &[
                "index",
                root.to_str().unwrap(),
                "--index-dir",
                index.to_str().unwrap(),
                "--json",
            ],
        );
        assert!(out.status.success(), "schema {schema}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let totals = &report["index"]["totals"];
        assert_eq!(totals["embedded"], 0, "schema {schema}: {totals}");
        assert_eq!(
            totals["reused"], totals["chunks"],
            "schema {schema}: {totals}"
        );
        let out = search(scratch.path(), &index, "refund_payment");
        assert!(out.status.success(), "schema {schema}: {}", stderr(&out));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let first = &value["results"][0];
        assert_eq!(
            first["symbol"], "refund_payment",
            "schema {schema}: {value}"
        );
        assert!(first["vector_rank"].is_number(), "schema {schema}: {value}");
    }
}
