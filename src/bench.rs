//! `codeq bench`: indexing throughput, time per stage, peak memory and index size on a corpus.

use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::index::{self, IndexOptions, IndexReport, NoProgress};

/// Figures of one indexing benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct IndexBench {
    /// The run's own report (counts and stage times).
    pub report: IndexReport,
    /// Files listed per second by the walk.
    pub files_per_second_walked: f64,
    /// Chunks produced per second of reading+chunking time.
    pub chunks_per_second_parsed: f64,
    /// Chunks per second inside the embedding model.
    pub chunks_per_second_embedded: f64,
    /// Chunks per second over the whole run.
    pub chunks_per_second_end_to_end: f64,
    /// End-to-end throughput as a share of the embedder's own throughput.
    pub end_to_end_vs_embedder: f64,
    /// Peak resident memory of this process, bytes.
    pub peak_rss_bytes: u64,
    /// Index size on disk, bytes.
    pub index_bytes: u64,
}

/// Indexes `root` from scratch into `index_dir` and measures the run.
pub fn index_bench(
    root: &Path,
    index_dir: &Path,
    config: &Config,
    embedder: &mut dyn Embedder,
) -> Result<IndexBench> {
    if index_dir.exists() {
        std::fs::remove_dir_all(index_dir)
            .map_err(|e| Error::io(format!("cannot clear {}", index_dir.display()), e))?;
    }
    let options = IndexOptions {
        root: root.to_path_buf(),
        index_dir: Some(index_dir.to_path_buf()),
        rebuild: true,
        config: config.clone(),
    };
    let report = index::run(&options, embedder, &NoProgress)?;
    let per_second = |n: usize, d: std::time::Duration| {
        let s = d.as_secs_f64();
        if s > 0.0 { n as f64 / s } else { 0.0 }
    };
    let files = report.totals.files + report.totals.skipped.total();
    let embed_rate = report.embed_rate();
    let end_to_end = report.chunks_per_second();
    Ok(IndexBench {
        files_per_second_walked: per_second(files, report.times.walk),
        chunks_per_second_parsed: per_second(report.totals.chunks, report.times.read_chunk),
        chunks_per_second_embedded: embed_rate,
        chunks_per_second_end_to_end: end_to_end,
        end_to_end_vs_embedder: if embed_rate > 0.0 {
            end_to_end / embed_rate
        } else {
            0.0
        },
        peak_rss_bytes: peak_rss_bytes(),
        index_bytes: crate::store::IndexDir::open(index_dir)?.size_on_disk(),
        report,
    })
}

/// Peak resident set size of this process so far.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0;
        }
        usage
    };
    (usage.ru_maxrss as u64) * 1024
}
