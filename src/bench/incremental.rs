//! `codeq bench incremental`: what re-indexing costs on a large index — after a one-file
//! change, with no change at all — and how many vectors the embedding cache saves on a
//! branch switch (issue 5; targets: ≤ 1 s and ≤ 2 s wall at ≥ 100k chunks).
//!
//! The corpus is copies of real source trees, each copy its own git repository, so the
//! index reaches the wanted size from a few real projects. Vectors computed earlier for
//! the same texts by the same model (the `--seed` indexes) are put into the embedding
//! cache first, so the initial build does not spend hours in the model; the timed runs are
//! the real `codeq index` binary, end to end, model loading included.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::eval::percentile;
use crate::store::IndexDir;

/// Timed runs per measurement.
const RUNS: usize = 3;
/// Files changed on the benchmark branch.
const BRANCH_FILES: usize = 50;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct IncrementalBenchOptions {
    /// Source trees copied into the corpus.
    pub trees: Vec<PathBuf>,
    /// Copies of each tree.
    pub copies: usize,
    /// Indexes whose vectors seed the embedding cache.
    pub seeds: Vec<PathBuf>,
    /// Working folder (corpus and index); reused when it already holds the corpus.
    pub work: PathBuf,
}

/// One timed `codeq index` run.
#[derive(Debug, Clone, Serialize)]
pub struct TimedRun {
    /// Wall time of the process, seconds.
    pub wall_s: f64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: u64,
    /// The run's `changes` (files and vectors).
    pub changes: serde_json::Value,
}

/// The benchmark's figures.
#[derive(Debug, Clone, Serialize)]
pub struct IncrementalBench {
    /// Chunks in the index.
    pub chunks: u64,
    /// Files indexed.
    pub files: u64,
    /// Repositories (tree copies).
    pub repos: usize,
    /// The initial build.
    pub initial: TimedRun,
    /// Re-indexing with nothing changed.
    pub no_change: Vec<TimedRun>,
    /// Re-indexing after one file changed.
    pub one_file: Vec<TimedRun>,
    /// Re-indexing after checking out a branch that changes [`BRANCH_FILES`] files.
    pub branch_switch: TimedRun,
    /// Re-indexing after checking the original branch out again.
    pub switch_back: TimedRun,
    /// Median wall time of `no_change`, seconds.
    pub no_change_p50_s: f64,
    /// Median wall time of `one_file`, seconds.
    pub one_file_p50_s: f64,
    /// Share of the written chunks' vectors found without the model after switching back.
    pub switch_back_cache_hit_rate: f64,
    /// The same on the first switch (new content on the branch must be embedded).
    pub branch_switch_cache_hit_rate: f64,
}

/// Builds the corpus (once), indexes it, and times the incremental runs.
pub fn incremental_bench(
    options: &IncrementalBenchOptions,
    model: &crate::embed::ModelInfo,
) -> Result<IncrementalBench> {
    let tree = options.work.join("tree");
    let repos = build_corpus(&tree, &options.trees, options.copies)?;
    let index_dir = tree.join(crate::paths::INDEX_DIR_NAME);
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir)
            .map_err(|e| Error::io(format!("cannot clear {}", index_dir.display()), e))?;
    }
    seed_cache(&index_dir, &options.seeds, model)?;
    let initial = timed_index(&tree)?;

    let mut no_change = Vec::new();
    for _ in 0..RUNS {
        no_change.push(timed_index(&tree)?);
    }
    let first_repo = &repos[0];
    let sources = source_files(first_repo);
    let mut one_file = Vec::new();
    for (run, file) in sources.iter().take(RUNS).enumerate() {
        append_function(file, &format!("bench_edit_{run}"))?;
        one_file.push(timed_index(&tree)?);
    }
    git(first_repo, &["checkout", "-q", "--", "."])?;
    timed_index(&tree)?;

    git(first_repo, &["checkout", "-q", "-b", "codeq-bench-branch"])?;
    for (i, file) in sources.iter().take(BRANCH_FILES).enumerate() {
        append_function(file, &format!("bench_branch_{i}"))?;
    }
    git(first_repo, &["commit", "-q", "-a", "-m", "bench branch"])?;
    let branch_switch = timed_index(&tree)?;
    git(first_repo, &["checkout", "-q", "-"])?;
    let switch_back = timed_index(&tree)?;
    git(first_repo, &["branch", "-q", "-D", "codeq-bench-branch"])?;

    let manifest = IndexDir::open(&index_dir)?.reader()?.manifest().clone();
    let median = |runs: &[TimedRun]| {
        let mut walls: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
        walls.sort_by(f64::total_cmp);
        percentile(&walls, 50.0)
    };
    Ok(IncrementalBench {
        chunks: manifest.totals.chunks as u64,
        files: manifest.totals.files as u64,
        repos: repos.len(),
        no_change_p50_s: median(&no_change),
        one_file_p50_s: median(&one_file),
        switch_back_cache_hit_rate: hit_rate(&switch_back),
        branch_switch_cache_hit_rate: hit_rate(&branch_switch),
        initial,
        no_change,
        one_file,
        branch_switch,
        switch_back,
    })
}

fn hit_rate(run: &TimedRun) -> f64 {
    let written = run.changes["chunks_written"].as_f64().unwrap_or(0.0);
    let reused = run.changes["vectors_reused"].as_f64().unwrap_or(0.0);
    if written > 0.0 { reused / written } else { 1.0 }
}

/// Copies each tree `copies` times into `tree/cNN-NAME/` and makes each copy a git
/// repository with one commit; an existing copy is reset to that commit instead.
fn build_corpus(tree: &Path, trees: &[PathBuf], copies: usize) -> Result<Vec<PathBuf>> {
    let mut repos = Vec::new();
    for copy in 0..copies {
        for source in trees {
            let name = source
                .file_name()
                .map_or_else(|| "tree".into(), |n| n.to_string_lossy().into_owned());
            let repo = tree.join(format!("c{copy:02}-{name}"));
            if repo.join(".git").is_dir() {
                git(&repo, &["checkout", "-q", "-f", "main"])?;
                git(&repo, &["clean", "-q", "-fd"])?;
            } else {
                copy_source(source, &repo)?;
                git(&repo, &["init", "-q", "-b", "main"])?;
                git(&repo, &["add", "-A"])?;
                git(&repo, &["commit", "-q", "-m", "corpus"])?;
            }
            repos.push(repo);
        }
    }
    Ok(repos)
}

/// Copies a source tree without its `.git` and `.codeq` folders.
fn copy_source(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)
        .map_err(|e| Error::io(format!("cannot create {}", to.display()), e))?;
    let entries = std::fs::read_dir(from)
        .map_err(|e| Error::io(format!("cannot read {}", from.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == ".git" || name == crate::paths::INDEX_DIR_NAME {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            copy_source(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target)
                .map_err(|e| Error::io(format!("cannot copy {}", source.display()), e))?;
        }
    }
    Ok(())
}

/// Puts the vectors of `seeds` into the embedding cache of the index at `index_dir`.
fn seed_cache(index_dir: &Path, seeds: &[PathBuf], model: &crate::embed::ModelInfo) -> Result<()> {
    let dir = IndexDir::create_or_open(index_dir)?;
    let lock = dir.lock()?;
    let mut cache = dir.embed_cache(&lock, model)?;
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    for seed in seeds {
        let reader = IndexDir::open(seed)?.reader()?;
        if !reader.manifest().model.compatible_with(model) {
            return Err(Error::Bench(format!(
                "{} was built with another model; its vectors cannot seed this one",
                seed.display()
            )));
        }
        for (hash, vector) in reader.all_vectors()? {
            vectors.insert(hash, vector);
        }
    }
    let seeded = vectors.len();
    cache.keep(vectors);
    cache.finish(seeded.max(1));
    Ok(())
}

/// Runs this binary's `codeq index .` in `root` and measures it.
fn timed_index(root: &Path) -> Result<TimedRun> {
    use std::io::Read;
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the codeq binary", e))?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["index", ".", "--json"])
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("cannot run codeq index", e))?;
    let mut stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout)
            .map_err(|e| Error::io("cannot read codeq index output", e))?;
    }
    let (success, peak_rss_bytes) = super::wait_with_rusage(child.id());
    let wall = started.elapsed();
    let errors = errors.join().unwrap_or_default();
    if !success {
        return Err(Error::Bench(format!("codeq index failed: {errors}")));
    }
    let report: serde_json::Value = serde_json::from_slice(&stdout).map_err(Error::store)?;
    Ok(TimedRun {
        wall_s: wall.as_secs_f64(),
        peak_rss_bytes,
        changes: report["index"]["changes"].clone(),
    })
}

/// Rust and Python files of a repository, in path order.
fn source_files(repo: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ignore::WalkBuilder::new(repo)
        .build()
        .flatten()
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs" || e == "py"))
        .collect();
    files.sort();
    files
}

/// Appends a small function named `name` to a Rust or Python file.
fn append_function(file: &Path, name: &str) -> Result<()> {
    let mut text = std::fs::read_to_string(file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    if file.extension().is_some_and(|e| e == "py") {
        text.push_str(&format!("\n\ndef {name}():\n    return 1\n"));
    } else {
        text.push_str(&format!(
            "\n/// Benchmark edit.\npub fn {name}() -> u32 {{ 1 }}\n"
        ));
    }
    std::fs::write(file, text).map_err(|e| Error::io(format!("cannot write {}", file.display()), e))
}

fn git(repo: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=codeq bench",
            "-c",
            "user.email=bench@codeq.invalid",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .map_err(|e| Error::io("cannot run git", e))?;
    if !out.status.success() {
        return Err(Error::Bench(format!(
            "git {} in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}
