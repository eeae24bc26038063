//! Bad input gets one clear error line, a non-zero exit code, and loses nothing.

mod common;

use std::path::Path;

use codeq::store::{IndexDir, SCHEMA_VERSION};
use common::{codeq, codeq_json, copy_tree, fixture, stderr};

/// A private copy of the fixture index, so a test may damage it.
fn index_copy(dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("index");
    copy_tree(&fixture().index_dir, &copy);
    copy
}

fn current_generation(index: &Path) -> String {
    std::fs::read_to_string(index.join("CURRENT")).unwrap()
}

fn assert_fails_with(out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(out));
    let err = stderr(out);
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_root_or_a_file_as_root_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let out = codeq(scratch.path(), &["index", "no-such-folder"]);
    assert_fails_with(&out, &["no-such-folder does not exist"]);
    std::fs::write(scratch.path().join("file.rs"), "fn main() {}").unwrap();
    let out = codeq(scratch.path(), &["index", "file.rs"]);
    assert_fails_with(&out, &["is a file, not a folder"]);
    assert!(!scratch.path().join(".codeq").exists());
}

#[test]
fn a_foreign_index_folder_is_left_untouched() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let foreign = scratch.path().join("not-an-index");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep me").unwrap();
    let out = codeq(
        &fx.root,
        &["index", ".", "--index-dir", foreign.to_str().unwrap()],
    );
    assert_fails_with(&out, &["is not a codeq index"]);
    let entries: Vec<_> = std::fs::read_dir(&foreign).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let out = codeq(
        &fx.root,
        &["status", "--index-dir", foreign.to_str().unwrap()],
    );
    assert_fails_with(&out, &["is not a codeq index"]);
}

#[test]
fn a_damaged_index_says_how_to_rebuild_and_a_rebuild_repairs_it() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let arg = index.to_str().unwrap();

    let manifest = index.join("generations/g000001/manifest.json");
    let good = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, "{ not json").unwrap();
    let out = codeq(&fx.root, &["status", "--index-dir", arg]);
    assert_fails_with(&out, &["is damaged", "--rebuild"]);
    std::fs::write(&manifest, good).unwrap();

    std::fs::write(index.join("CURRENT"), "g999999\n").unwrap();
    let out = codeq(&fx.root, &["search", "invoice", "--index-dir", arg]);
    assert_fails_with(&out, &["is damaged", "--rebuild"]);

    std::fs::write(index.join("CURRENT"), "../../etc\n").unwrap();
    let out = codeq(&fx.root, &["status", "--index-dir", arg]);
    assert_fails_with(&out, &["is damaged"]);

    let out = codeq(&fx.root, &["index", ".", "--index-dir", arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = codeq(&fx.root, &["status", "--index-dir", arg]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Rewrites the schema version in the current generation's manifest, as another codeq
/// would have written it; returns the version it replaced.
fn set_schema_version(index: &Path, version: u64) -> u64 {
    let generation = current_generation(index);
    let path = index
        .join("generations")
        .join(generation.trim())
        .join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let replaced = manifest["schema_version"].as_u64().unwrap();
    manifest["schema_version"] = version.into();
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    replaced
}

/// An index whose manifest names an older schema is refused by queries, which name the
/// command that rebuilds it; that rebuild embeds nothing again. (tests/compat.rs rebuilds
/// a real index of the previous schema, written by that codeq.)
#[test]
fn an_index_of_an_older_schema_is_rebuilt_from_its_own_vectors() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let arg = index.to_str().unwrap();
    let generation = current_generation(&index);
    let older = SCHEMA_VERSION - 1;
    assert_eq!(
        set_schema_version(&index, older.into()),
        u64::from(SCHEMA_VERSION),
        "the test's premise"
    );

    let out = codeq(&fx.root, &["search", "invoice", "--index-dir", arg]);
    assert_fails_with(
        &out,
        &[
            &format!("written with schema {older}"),
            "`codeq index ROOT`",
        ],
    );
    let (out, report) = codeq_json(&fx.root, &["index", ".", "--index-dir", arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let totals = &report["index"]["totals"];
    assert!(totals["chunks"].as_u64().unwrap() > 0, "{totals}");
    assert_eq!(totals["embedded"], 0, "{totals}");
    assert_eq!(totals["reused"], totals["chunks"], "{totals}");
    assert_ne!(current_generation(&index), generation);
    let out = codeq(&fx.root, &["search", "invoice", "--index-dir", arg]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// An index of a newer schema than this codeq writes is refused by queries and by
/// `codeq index` alike: building over it would downgrade it.
#[test]
fn an_index_of_a_newer_schema_is_left_alone() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let arg = index.to_str().unwrap();
    let generation = current_generation(&index);
    set_schema_version(&index, 99);
    for command in [["search", "invoice"], ["index", "."]] {
        let out = codeq(&fx.root, &[command[0], command[1], "--index-dir", arg]);
        assert_fails_with(&out, &["written with schema 99", "newer codeq"]);
    }
    assert_eq!(current_generation(&index), generation);
}

#[test]
fn no_index_anywhere_is_a_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let out = codeq(scratch.path(), &["search", "anything"]);
    assert_fails_with(&out, &["no codeq index found", "codeq index ROOT"]);
}

#[test]
fn missing_model_files_or_runtime_fail_before_anything_is_written() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let arg = index.to_str().unwrap();
    let before = current_generation(&index);

    let empty_model = scratch.path().join("empty-model");
    std::fs::create_dir(&empty_model).unwrap();
    let out = codeq(
        &fx.root,
        &[
            "index",
            ".",
            "--index-dir",
            arg,
            "--model-dir",
            empty_model.to_str().unwrap(),
        ],
    );
    assert_fails_with(&out, &["model.onnx is missing", "scripts/setup.sh"]);
    assert_eq!(current_generation(&index), before);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(["search", "invoice", "--index-dir", arg])
        .env("CODEQ_ORT_LIB", scratch.path().join("libonnxruntime.so"))
        .current_dir(&fx.root)
        .output()
        .unwrap();
    assert_fails_with(&out, &["ONNX Runtime not usable", "scripts/setup.sh"]);
}

/// A model folder with the same files as the default model under another id.
fn other_model(dir: &Path) -> std::path::PathBuf {
    let default = codeq::embed::resolve_model_dir(&codeq::embed::ModelConfig::default());
    let other = dir.join("other-model");
    std::fs::create_dir(&other).unwrap();
    for name in [
        "model.onnx",
        "tokenizer.json",
        "config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        std::os::unix::fs::symlink(default.join(name), other.join(name)).unwrap();
    }
    std::fs::write(other.join("model_id"), "acme/other-model").unwrap();
    other
}

#[test]
fn a_different_model_is_refused_until_rebuild() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let arg = index.to_str().unwrap();
    let other = other_model(scratch.path());
    let model_arg = other.to_str().unwrap();
    let before = current_generation(&index);

    let out = codeq(
        &fx.root,
        &[
            "search",
            "invoice",
            "--index-dir",
            arg,
            "--model-dir",
            model_arg,
        ],
    );
    assert_fails_with(
        &out,
        &["built with model sentence-transformers", "acme/other-model"],
    );

    let out = codeq(
        &fx.root,
        &["index", ".", "--index-dir", arg, "--model-dir", model_arg],
    );
    assert_fails_with(&out, &["acme/other-model", "--rebuild"]);
    assert_eq!(current_generation(&index), before);

    let out = codeq(
        &fx.root,
        &[
            "index",
            ".",
            "--index-dir",
            arg,
            "--model-dir",
            model_arg,
            "--rebuild",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let reader = IndexDir::open(&index).unwrap().reader().unwrap();
    assert_eq!(reader.manifest().model.id, "acme/other-model");
    assert_eq!(reader.manifest().totals.reused, 0);
}

/// The same model cutting chunks at another token limit makes other vectors too. The
/// refusal says which setting differs, not "model X is loaded" for the index's own model X.
#[test]
fn another_token_limit_is_refused_and_named() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let before = current_generation(&index);
    let built_with = IndexDir::open(&index).unwrap().reader().unwrap();
    let limit = built_with.manifest().model.max_length;
    drop(built_with);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(["index", ".", "--index-dir", index.to_str().unwrap()])
        .current_dir(&fx.root)
        .env("CODEQ_MODEL_MAX_LENGTH", (limit / 2).to_string())
        .output()
        .unwrap();
    assert_fails_with(
        &out,
        &[
            &format!("{limit} tokens per chunk"),
            &format!("cuts chunks at {} tokens", limit / 2),
            &format!("model.max_length = {limit}"),
            "--rebuild",
        ],
    );
    assert_eq!(current_generation(&index), before);
}

#[test]
fn a_second_indexer_waits_for_the_first_and_says_so() {
    use std::io::{BufRead, BufReader};
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = index_copy(scratch.path());
    let dir = IndexDir::open(&index).unwrap();
    let lock = dir.lock().unwrap();
    let mut waiting = std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(["index", ".", "--index-dir", index.to_str().unwrap()])
        .current_dir(&fx.root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(waiting.stderr.take().unwrap()).lines();
    let notice = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("another `codeq index` is writing"))
        .expect("a notice that the run waits");
    assert!(notice.contains("waiting for it to finish"), "{notice}");
    // Queries keep working while the lock is held.
    let out = codeq(
        &fx.root,
        &["status", "--index-dir", index.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        waiting.try_wait().unwrap(),
        None,
        "it must wait for the lock"
    );
    drop(lock);
    assert!(waiting.wait().unwrap().success());
}

#[test]
fn an_invalid_config_names_the_line() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("a.rs"), "fn a() {}\n").unwrap();
    std::fs::write(
        scratch.path().join("codeq.toml"),
        "[index]\nmax_file_bytes = \"huge\"\n",
    )
    .unwrap();
    let out = codeq(scratch.path(), &["index", "."]);
    assert_fails_with(&out, &["invalid configuration", "codeq.toml", "line 2"]);
    assert!(!scratch.path().join(".codeq").exists());
}
