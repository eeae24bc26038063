//! A run that fails or is killed mid-write leaves the previous generation fully usable.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use codeq::config::Config;
use codeq::embed::{Embedder, FastEmbedder, ModelInfo};
use codeq::index::{self, IndexOptions, NoProgress};
use codeq::search::{self, SearchOptions};
use codeq::store::{ChunkFilter, IndexDir};
use common::{PAYMENTS_LIB, Workspace, codeq_json, copy_tree, fixture, stderr};

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
        index_dir: Some(index.clone()),
        rebuild: true,
        ..config.index_options(fx.root.clone())
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
        let mut command = Command::new(env!("CARGO_BIN_EXE_codeq"));
        command
            .args(["index", ".", "--rebuild", "--index-dir"])
            .arg(&index)
            .current_dir(&fx.root)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = common::with_default_sigint(&mut command).spawn().unwrap();
        // Wait until the walk is done, then stop the run at once: reading, chunking and
        // embedding every chunk are still ahead of it (the random kill points of the test
        // below cover the later stages).
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let walked = line.contains("files in");
            seen.push(line);
            if walked {
                break;
            }
        }
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        seen.extend(lines.map_while(std::result::Result::ok));
        assert!(
            !status.success(),
            "the run finished before it was killed:\n{}",
            seen.join("\n")
        );
        assert_queryable(&fx.root, &index, "g000001");
    }
}

/// Deterministic pseudo-random numbers (splitmix64), so a failing kill point can be replayed.
struct KillClock(u64);

impl KillClock {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// Checks the published generation: both lanes hold exactly the manifest's chunks and
/// answer queries, and the run's marker is in both lanes when `expect_marker`, in neither
/// otherwise.
fn assert_whole_generation(index: &Path, marker: &str, expect_marker: bool) {
    let reader = IndexDir::open(index).unwrap().reader().unwrap();
    let everything = ChunkFilter::everything();
    let counts = reader.lane_counts(&everything).unwrap();
    assert_eq!(counts.bm25_docs, counts.vectors, "{}", reader.generation());
    assert_eq!(counts.vectors, reader.manifest().totals.chunks);
    let hits = reader
        .bm25(&search::query_terms(marker), &everything, 5)
        .unwrap();
    let in_bm25 = hits.iter().any(|h| h.chunk.content.contains(marker));
    // The vector lane answers too, its hits read from the lexical lane's stored chunks:
    // every stored vector of the marker's file finds its own chunk at distance zero.
    let vectors = reader
        .vectors_of_files(&[("payments".into(), "src/lib.rs".into())])
        .unwrap();
    assert!(!vectors.is_empty(), "src/lib.rs has vectors");
    let mut in_vectors = false;
    for vector in vectors.values() {
        let nearest = reader.nearest(vector, &everything, 1).unwrap();
        let Some((chunk, distance)) = nearest.first() else {
            panic!("the vector lane of {} found nothing", reader.generation());
        };
        assert!(
            *distance < 1e-3,
            "the vector lane of {} did not find a stored vector",
            reader.generation()
        );
        in_vectors |= chunk.content.contains(marker);
    }
    for (lane, found) in [("bm25", in_bm25), ("vector", in_vectors)] {
        assert_eq!(
            found,
            expect_marker,
            "marker {marker} in the {lane} lane of generation {}",
            reader.generation()
        );
    }
}

#[test]
fn fifty_kills_at_random_points_leave_the_old_or_the_new_generation() {
    const KILLS: usize = 50;
    let ws = Workspace::new();
    let index = ws.index_dir();
    let lib = ws.root.join("payments/src/lib.rs");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_codeq"))
            .args(["index", "."])
            .args(extra)
            .current_dir(&ws.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a whole incremental run takes here: kill points are spread over it.
    std::fs::write(&lib, format!("{PAYMENTS_LIB}\npub fn warm_up() {{}}\n")).unwrap();
    let started = std::time::Instant::now();
    assert!(run(&[]).wait().unwrap().success());
    let run_ms = started.elapsed().as_millis() as u64;

    let mut clock = KillClock(0x5eed);
    let (mut published, mut kept) = (0, 0);
    let mut text = PAYMENTS_LIB.to_string();
    for kill in 0..KILLS {
        let marker = format!("kill_marker_{kill}");
        text.push_str(&format!("\n/// Step {kill}.\npub fn {marker}() {{}}\n"));
        std::fs::write(&lib, &text).unwrap();
        // Every fifth run also adds a file, every seventh rebuilds from empty.
        if kill % 5 == 0 {
            ws.write(&format!("notes/step{kill}.md"), &format!("# Step {kill}\n"));
        }
        let before = IndexDir::open(&index).unwrap().current().unwrap();
        let extra: &[&str] = if kill % 7 == 0 { &["--rebuild"] } else { &[] };
        let mut child = run(extra);
        let delay = clock.below(run_ms * 5 / 4);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        let after = IndexDir::open(&index).unwrap().current().unwrap();
        let is_new = after != before;
        if is_new {
            published += 1;
        } else {
            kept += 1;
        }
        // The marker of this step is in the index exactly when the run published; the
        // markers of earlier steps may be in either (their runs may have been killed).
        assert_whole_generation(&index, &marker, is_new);
    }
    println!(
        "{KILLS} kills over a {run_ms} ms run: {kept} kept the old generation, {published} published the new one"
    );
    assert!(kept > 0, "no kill landed before a publish");
    assert!(published > 0, "no run got as far as publishing");

    // A run after all that repairs nothing by hand and matches a build from empty.
    assert!(run(&[]).wait().unwrap().success());
    assert_whole_generation(&index, &format!("kill_marker_{}", KILLS - 1), true);
    let ids = |dir: &Path| -> Vec<String> {
        let reader = IndexDir::open(dir).unwrap().reader().unwrap();
        let mut ids: Vec<String> = reader
            .all_rows()
            .unwrap()
            .into_iter()
            .map(|(c, _, _)| c.chunk_id)
            .collect();
        ids.sort();
        ids
    };
    let after_kills = ids(&index);
    assert!(run(&["--rebuild"]).wait().unwrap().success());
    assert_eq!(
        after_kills,
        ids(&index),
        "incremental and rebuilt indexes differ"
    );
}

#[test]
fn readers_searching_during_indexing_never_fail_nor_see_a_partial_generation() {
    let mut ws = Workspace::new();
    let index = ws.index_dir();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let root = ws.root.clone();
    let searches = std::thread::scope(|scope| {
        let reader_loop = scope.spawn(|| {
            let config = Config::load_for_root(&root).unwrap();
            let mut embedder = FastEmbedder::load(&config.model).unwrap();
            let mut searches = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reader = IndexDir::open(&index).unwrap().reader().unwrap();
                let counts = reader.lane_counts(&ChunkFilter::everything()).unwrap();
                assert_eq!(counts.bm25_docs, counts.vectors);
                assert_eq!(counts.vectors, reader.manifest().totals.chunks);
                let results = search::search(
                    &reader,
                    &mut embedder,
                    None,
                    "refund a payment",
                    &SearchOptions::default(),
                )
                .unwrap();
                assert_eq!(
                    results.hits[0].chunk.citation(),
                    "payments:src/lib.rs:36-42"
                );
                searches += 1;
            }
            searches
        });
        let mut text = PAYMENTS_LIB.to_string();
        for step in 0..12 {
            text.push_str(&format!("\npub fn reader_step_{step}() {{}}\n"));
            ws.write("payments/src/lib.rs", &text);
            ws.index(step % 4 == 3);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader_loop.join().unwrap()
    });
    assert!(searches > 0);
    println!("{searches} searches during 12 runs");
}
