//! `codeq bench coverage`: on a large tree indexed from empty, how soon the first query
//! answers (BM25 is published before the vectors), how fast the vectors follow, and the
//! indexer's peak memory (issue 9: first answer within 60 s, embedding at least twice
//! 16 chunks/s, peak RSS under 1 GiB).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::IndexDir;

/// How often the benchmark tries its query while the index is being built.
const POLL: Duration = Duration::from_millis(250);
/// How often, once the query answers, it reads the vector coverage and the indexer's
/// memory.
const SAMPLE: Duration = Duration::from_secs(10);
/// How often a sample is also printed (to stderr), so that a stopped run leaves figures.
const PRINT: Duration = Duration::from_secs(60);

/// The index and the indexer at one moment of the build.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageSample {
    /// Seconds since `codeq index` started.
    pub at_s: f64,
    /// Chunks with vectors in the published generation.
    pub vectors: u64,
    /// Chunks in the published generation.
    pub chunks: u64,
    /// Resident memory of the indexer then, bytes.
    pub rss_bytes: u64,
}

/// The figures of one build.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageBench {
    /// Seconds from the start of `codeq index` until `codeq search` first answered.
    pub first_answer_s: f64,
    /// Seconds until the indexer published the lexical index (its own report).
    pub queryable_after_s: f64,
    /// Seconds until every chunk had its vector (the whole run).
    pub full_coverage_s: f64,
    /// Files and chunks indexed.
    pub files: u64,
    /// Chunks indexed.
    pub chunks: u64,
    /// Vectors the model computed.
    pub vectors_embedded: u64,
    /// Vectors per second of model time.
    pub model_chunks_per_second: f64,
    /// Vectors per second from the lexical publish to full coverage (rounds, publishes and
    /// all).
    pub embedding_chunks_per_second: f64,
    /// Peak resident memory of the indexer, bytes.
    pub peak_rss_bytes: u64,
    /// Coverage and memory every [`SAMPLE`] from the first answer on.
    pub samples: Vec<CoverageSample>,
}

/// Indexes `root` from empty into `index_dir` with this binary, querying `query` until it
/// answers.
pub fn coverage_bench(root: &Path, index_dir: &Path, query: &str) -> Result<CoverageBench> {
    if index_dir.exists() {
        std::fs::remove_dir_all(index_dir)
            .map_err(|e| Error::io(format!("cannot clear {}", index_dir.display()), e))?;
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the codeq binary", e))?;
    let dir_arg: PathBuf = index_dir.to_path_buf();
    let started = Instant::now();
    let mut child = Command::new(&exe)
        .arg("index")
        .arg(root)
        .arg("--index-dir")
        .arg(&dir_arg)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("cannot run codeq index", e))?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut tail = Vec::new();
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::result::Result::ok)
            {
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
        }
        tail.join("\n")
    });
    let mut stdout = child.stdout.take();
    let output = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_end(&mut text);
        }
        text
    });
    let mut first_answer = None;
    let mut samples: Vec<CoverageSample> = Vec::new();
    let mut printed: Option<Instant> = None;
    while !output.is_finished() {
        if first_answer.is_none() {
            std::thread::sleep(POLL);
            let answered = Command::new(&exe)
                .args(["search", query, "-k", "1", "--index-dir"])
                .arg(&dir_arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if answered {
                first_answer = Some(started.elapsed());
                eprintln!("first answer after {:.1}s", started.elapsed().as_secs_f64());
            }
            continue;
        }
        std::thread::sleep(SAMPLE);
        let Some(sample) = sample(index_dir, child.id(), started) else {
            continue;
        };
        if printed.is_none_or(|at| at.elapsed() >= PRINT) {
            printed = Some(Instant::now());
            eprintln!(
                "{:.0}s: {} of {} vectors ({:.1}%), indexer RSS {:.0} MiB",
                sample.at_s,
                sample.vectors,
                sample.chunks,
                100.0 * sample.vectors as f64 / sample.chunks.max(1) as f64,
                sample.rss_bytes as f64 / (1024.0 * 1024.0)
            );
        }
        samples.push(sample);
    }
    let (success, peak_rss_bytes) = super::wait_with_rusage(child.id());
    let full_coverage = started.elapsed();
    let stdout = output.join().unwrap_or_default();
    let errors = errors.join().unwrap_or_default();
    if !success {
        return Err(Error::Bench(format!("codeq index failed: {errors}")));
    }
    let report: serde_json::Value = serde_json::from_slice(&stdout).map_err(Error::store)?;
    let index = &report["index"];
    let changes = &index["changes"];
    let embedded = changes["vectors_embedded"].as_u64().unwrap_or(0);
    let queryable_after = changes["queryable_after_s"].as_f64().unwrap_or(0.0);
    let model_secs = index["times"]["embed"]["secs"].as_f64().unwrap_or(0.0)
        + index["times"]["embed"]["nanos"].as_f64().unwrap_or(0.0) / 1e9;
    let per_second = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    Ok(CoverageBench {
        first_answer_s: first_answer.unwrap_or(full_coverage).as_secs_f64(),
        queryable_after_s: queryable_after,
        full_coverage_s: full_coverage.as_secs_f64(),
        files: index["totals"]["files"].as_u64().unwrap_or(0),
        chunks: index["totals"]["chunks"].as_u64().unwrap_or(0),
        vectors_embedded: embedded,
        model_chunks_per_second: per_second(embedded, model_secs),
        embedding_chunks_per_second: per_second(
            embedded,
            full_coverage.as_secs_f64() - queryable_after,
        ),
        peak_rss_bytes,
        samples,
    })
}

/// The published generation's coverage and the indexer's resident memory now; `None`
/// while nothing is published or the indexer has exited.
fn sample(index_dir: &Path, pid: u32, started: Instant) -> Option<CoverageSample> {
    let dir = IndexDir::open(index_dir).ok()?;
    let generation = dir.current().ok()??;
    let totals = dir.manifest(&generation).ok()?.totals;
    Some(CoverageSample {
        at_s: started.elapsed().as_secs_f64(),
        vectors: totals.chunks.saturating_sub(totals.pending) as u64,
        chunks: totals.chunks as u64,
        rss_bytes: super::rss_bytes(pid)?,
    })
}
