//! A run that fails or is killed mid-write leaves the previous generation fully usable.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use codeq::config::Config;
use codeq::embed::{Embedder, FastEmbedder, ModelInfo};
use codeq::index::{self, IndexOptions, NoProgress};
use codeq::store::IndexDir;
use common::{codeq_json, copy_tree, fixture, stderr};

/// The real model, failing on its `fail_on`-th call: a disk-full or OOM stand-in.
struct FailingEmbedder {
    inner: FastEmbedder,
    calls: usize,
    fail_on: usize,
}

impl Embedder for FailingEmbedder {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn embed(&mut self, texts: &[String]) -> codeq::Result<Vec<Vec<f32>>> {
        self.calls += 1;
        if self.calls == self.fail_on {
            return Err(codeq::Error::Embed("injected failure".into()));
        }
        self.inner.embed(texts)
    }
}

fn assert_queryable(root: &Path, index: &Path, generation: &str) {
    let arg = index.to_str().unwrap();
    let (out, status) = codeq_json(root, &["status", "--index-dir", arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status["generation"], generation);
    assert_eq!(status["lanes"]["consistent"], true, "{status}");
    let (out, results) = codeq_json(root, &["search", "refund_payment", "--index-dir", arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        results["results"][0]["citation"],
        "payments:src/lib.rs:36-42"
    );
}

fn generation_dirs(index: &Path) -> usize {
    std::fs::read_dir(index.join("generations"))
        .unwrap()
        .count()
}

#[test]
fn a_run_failing_mid_write_keeps_the_previous_generation() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = scratch.path().join("index");
    copy_tree(&fx.index_dir, &index);
    let config = Config::load_for_root(&fx.root).unwrap();
    let options = IndexOptions {
        root: fx.root.clone(),
        index_dir: Some(index.clone()),
        rebuild: true,
        config: config.clone(),
        acl_file: None,
    };
    let mut failing = FailingEmbedder {
        inner: FastEmbedder::load(&config.model).unwrap(),
        calls: 0,
        fail_on: 2,
    };
    let err = index::run(&options, &mut failing, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(
        failing.calls, 2,
        "the run must have stored a batch before failing"
    );
    assert_queryable(&fx.root, &index, "g000001");

    // The next good run publishes and removes the abandoned generation.
    let mut embedder = failing.inner;
    index::run(&options, &mut embedder, &NoProgress).unwrap();
    assert_queryable(&fx.root, &index, "g000003");
    assert_eq!(generation_dirs(&index), 2);
    let dir = IndexDir::open(&index).unwrap();
    assert_eq!(dir.current().unwrap().as_deref(), Some("g000003"));
}

#[test]
fn killing_the_indexer_mid_run_keeps_the_previous_generation() {
    let fx = fixture();
    for signal in [libc::SIGKILL, libc::SIGINT] {
        let scratch = tempfile::tempdir().unwrap();
        let index = scratch.path().join("index");
        copy_tree(&fx.index_dir, &index);
        // Without its embedding cache the rebuild has to embed every chunk again.
        std::fs::remove_dir_all(index.join("embed-cache")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_codeq"))
            .args(["index", ".", "--rebuild", "--index-dir"])
            .arg(&index)
            .current_dir(&fx.root)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the walk is done and embedding (seconds of work) has begun.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("files in") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert!(!status.success(), "the run finished before it was killed");
        assert_queryable(&fx.root, &index, "g000001");
    }
}
