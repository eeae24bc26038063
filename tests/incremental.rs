//! Incremental runs: only changed files are chunked, only new embedding inputs are
//! embedded (across branch switches too), nothing-changed runs write nothing, and the index
//! does not grow with the number of runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use codeq::config::Config;
use codeq::embed::FastEmbedder;
use codeq::index::{self, IndexOptions, IndexReport, NoProgress};
use codeq::search::{self, SearchOptions};
use codeq::store::{ChunkFilter, IndexDir};
use common::{copy_tree, fixture};

/// A private copy of the indexed fixture (repositories and index), and the model.
struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
    embedder: FastEmbedder,
}

impl Workspace {
    fn new() -> Workspace {
        let fx = fixture();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        copy_tree(&fx.root, &root);
        let config = Config::load_for_root(&root).unwrap();
        let embedder = FastEmbedder::load(&config.model).unwrap();
        age_tree(&root, 120);
        let mut ws = Workspace {
            _dir: dir,
            root,
            embedder,
        };
        // The copy lives at another root: the first run records it (and embeds nothing).
        let relocated = ws.index(false);
        assert_eq!(
            relocated.changes.vectors_embedded, 0,
            "{:?}",
            relocated.changes
        );
        ws
    }

    fn index_dir(&self) -> PathBuf {
        self.root.join(".codeq")
    }

    fn index(&mut self, rebuild: bool) -> IndexReport {
        let options = IndexOptions {
            root: self.root.clone(),
            index_dir: None,
            rebuild,
            config: Config::load_for_root(&self.root).unwrap(),
            acl_file: None,
        };
        index::run(&options, &mut self.embedder, &NoProgress).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Citations of the top hits for `query` in the current generation.
    fn search(&mut self, query: &str) -> Vec<String> {
        let reader = IndexDir::open(&self.index_dir()).unwrap().reader().unwrap();
        let results = search::search(
            &reader,
            &mut self.embedder,
            query,
            &SearchOptions::default(),
        )
        .unwrap();
        results.hits.iter().map(|h| h.chunk.citation()).collect()
    }

    /// Asserts both lanes hold the same chunks as the manifest says.
    fn assert_consistent(&self) {
        let reader = IndexDir::open(&self.index_dir()).unwrap().reader().unwrap();
        let counts = reader.lane_counts(&ChunkFilter::everything()).unwrap();
        assert_eq!(counts.bm25_docs, counts.vectors);
        assert_eq!(counts.vectors, reader.manifest().totals.chunks);
    }

    fn git(&self, repo: &str, args: &[&str]) {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .current_dir(self.root.join(repo))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sets a file's modification time `seconds` into the past (out of the racy window).
fn age_file(path: &Path, seconds: u64) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Ages every regular file below `dir` (not following symlinks).
fn age_tree(dir: &Path, seconds: u64) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            age_tree(&entry.path(), seconds);
        } else if kind.is_file() {
            age_file(&entry.path(), seconds);
        }
    }
}

#[test]
fn a_run_chunks_only_what_changed_and_removes_what_went() {
    let mut ws = Workspace::new();
    let before = ws.index(false);
    assert!(before.changes.up_to_date, "{:?}", before.changes);
    let total_files = before.totals.files;

    ws.write(
        "payments/src/lib.rs",
        &common::PAYMENTS_LIB.replace(
            "Refunds a payment",
            "Refunds a payment through the zanzibar_gateway",
        ),
    );
    ws.write(
        "search-service/service/spelling.py",
        "def suggest_quokka_spelling(term):\n    return term\n",
    );
    std::fs::remove_file(ws.root.join("notes/todo.md")).unwrap();
    std::fs::rename(
        ws.root.join("payments/plugins/fraud/fraud/scoring.py"),
        ws.root.join("payments/plugins/fraud/fraud/risk.py"),
    )
    .unwrap();

    let report = ws.index(false);
    let c = &report.changes;
    assert!(c.incremental && !c.up_to_date, "{c:?}");
    assert_eq!(
        (c.files_modified, c.files_added, c.files_removed),
        (1, 2, 2),
        "{c:?}"
    );
    assert_eq!(c.files_unchanged, total_files - 3, "{c:?}");
    assert!(
        c.vectors_embedded < c.chunks_written,
        "unchanged chunks of the modified file reuse their vectors: {c:?}"
    );
    assert_eq!(report.totals.files, total_files);
    ws.assert_consistent();

    let hits = ws.search("zanzibar_gateway");
    assert!(hits[0].starts_with("payments:src/lib.rs:"), "{hits:?}");
    let hits = ws.search("suggest_quokka_spelling");
    assert_eq!(hits[0], "search-service:service/spelling.py:1-2");
    let hits = ws.search("score_transaction");
    assert!(
        hits[0].starts_with("payments/plugins/fraud:fraud/risk.py:"),
        "{hits:?}"
    );
    let all = ws.search("rotate the payment gateway keys").join(" ");
    assert!(
        !all.contains("todo.md") && !all.contains("scoring.py"),
        "{all}"
    );
}

#[test]
fn a_run_with_nothing_changed_writes_nothing() {
    let mut ws = Workspace::new();
    let first = ws.index(false);
    let generation = first.generation.clone();
    assert!(first.changes.up_to_date, "{:?}", first.changes);

    // A touched file (same bytes, new time) is hashed, not chunked.
    let lib = ws.root.join("payments/src/lib.rs");
    age_file(&lib, 60);
    let touched = ws.index(false);
    assert!(touched.changes.up_to_date, "{:?}", touched.changes);
    assert_eq!(touched.changes.files_rehashed, 1);
    assert_eq!(touched.generation, generation);

    // A new commit with no file change is news: the indexed commit moves.
    ws.git("payments", &["commit", "--allow-empty", "-m", "empty"]);
    let committed = ws.index(false);
    assert!(!committed.changes.up_to_date);
    assert_eq!(committed.changes.chunks_written, 0);
    assert_ne!(committed.generation, generation);
    ws.assert_consistent();
}

#[test]
fn switching_branches_back_and_forth_reuses_every_vector() {
    let mut ws = Workspace::new();
    ws.git("payments", &["checkout", "-q", "-b", "feature"]);
    ws.write(
        "payments/src/lib.rs",
        &format!(
            "{}\n/// Voids an invoice before it is paid.\npub fn void_invoice(id: u64) -> bool {{ id > 0 }}\n",
            common::PAYMENTS_LIB
        ),
    );
    ws.write(
        "payments/src/ledger.rs",
        "/// Balances the ledger at the end of the day.\npub fn close_day() {}\n",
    );
    ws.git("payments", &["add", "-A"]);
    ws.git("payments", &["commit", "-q", "-m", "feature"]);
    let feature = ws.index(false);
    assert!(
        feature.changes.vectors_embedded > 0,
        "{:?}",
        feature.changes
    );

    ws.git("payments", &["checkout", "-q", "-"]);
    let back = ws.index(false);
    assert_eq!(back.changes.files_modified, 1, "{:?}", back.changes);
    assert_eq!(back.changes.files_removed, 1, "{:?}", back.changes);
    assert_eq!(back.changes.vectors_embedded, 0, "{:?}", back.changes);
    assert_eq!(back.changes.reuse_rate(), 1.0);
    assert!(
        ws.search("close_day")
            .iter()
            .all(|c| !c.contains("ledger.rs"))
    );

    ws.git("payments", &["checkout", "-q", "feature"]);
    let again = ws.index(false);
    assert_eq!(again.changes.vectors_embedded, 0, "{:?}", again.changes);
    assert!(again.changes.chunks_written > 0);
    assert!(ws.search("close_day")[0].starts_with("payments:src/ledger.rs:"));
    ws.assert_consistent();
}

#[test]
fn a_hundred_incremental_runs_stay_within_a_fifth_of_a_fresh_build() {
    let mut ws = Workspace::new();
    let lib = ws.root.join("payments/src/lib.rs");
    for run in 0..100 {
        let text = format!(
            "{}\n/// Revision {run} of the fee schedule.\npub fn fee_schedule_{run}() -> u32 {{ {run} }}\n",
            common::PAYMENTS_LIB
        );
        std::fs::write(&lib, text).unwrap();
        let report = ws.index(false);
        assert_eq!(report.changes.files_modified, 1, "run {run}");
    }
    ws.assert_consistent();
    assert!(ws.search("fee_schedule_99")[0].starts_with("payments:src/lib.rs:"));
    let after_runs = IndexDir::open(&ws.index_dir())
        .unwrap()
        .disk_usage()
        .unwrap();

    std::fs::remove_dir_all(ws.index_dir()).unwrap();
    let fresh_report = ws.index(false);
    assert!(!fresh_report.changes.incremental);
    let fresh = IndexDir::open(&ws.index_dir())
        .unwrap()
        .disk_usage()
        .unwrap();
    println!("after 100 runs: {after_runs:?}\nfresh build: {fresh:?}");
    // The published generation against a fresh build's. Beside it stay the files of the
    // previous generation that it does not share (kept for readers, one generation's worth
    // at most, freed by `codeq gc`) and the bounded cache of evicted vectors.
    assert!(
        after_runs.current_generation as f64 <= 1.2 * fresh.current_generation as f64,
        "after 100 runs {after_runs:?}, a fresh build {fresh:?}"
    );
    assert!(
        after_runs.older_generations <= fresh.current_generation,
        "after 100 runs {after_runs:?}, a fresh build {fresh:?}"
    );
}
