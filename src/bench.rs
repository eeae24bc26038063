//! `codeq bench`: indexing throughput, time per stage, peak memory and index size on a
//! corpus; and warm query latency of `search` and `ask` on a large index, with and without
//! access-control filtering.
//!
//! Budgets (issue 3): warm p50 ≤ 20 ms without a reranker at ≥ 100k chunks, and the ACL
//! filter costs under 10%. Numbers belong in the closing notes, never in tests.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::acl::Acl;
use crate::answer;
use crate::chunk::Chunk;
use crate::config::Config;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::eval::percentile;
use crate::hash::sha256_parts;
use crate::index::{self, IndexOptions, IndexReport, NoProgress};
use crate::search::{self, SearchOptions, SearchTimings};
use crate::store::{ChunkFilter, IndexDir, IndexReader, Manifest, RepoRecord};

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
        acl_file: None,
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

/// Latency of one access scenario, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioLatency {
    /// What the principal may read.
    pub scenario: String,
    /// Chunks the filter admits.
    pub visible_chunks: usize,
    /// `search` p50 / p95.
    pub search_p50_ms: f64,
    /// `search` p95.
    pub search_p95_ms: f64,
    /// `ask` p50 (search, verification, composition).
    pub ask_p50_ms: f64,
    /// `ask` p95.
    pub ask_p95_ms: f64,
    /// Median per stage of `search`: embed, bm25, vector, fuse.
    pub stage_p50_ms: [f64; 4],
}

/// Figures of one query-latency benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct QueryBench {
    /// Chunks in the benchmark index.
    pub chunks: usize,
    /// Repositories in it (copies of the source index's repositories).
    pub repos: usize,
    /// Queries per scenario and round.
    pub queries: usize,
    /// Timed rounds (after one warm-up round).
    pub rounds: usize,
    /// Time to write the benchmark index.
    pub build: Duration,
    /// Per scenario.
    pub scenarios: Vec<ScenarioLatency>,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: u64,
}

/// Copies the rows of `source` (real chunks with their real vectors) into `copies` of each
/// repository until the benchmark index at `out_dir` holds at least `target_chunks`, then
/// times `search` and `ask` with no filter, an ACL granting half the copies, and an ACL
/// granting source folders only.
pub fn query_bench(
    source: &IndexReader,
    out_dir: &Path,
    target_chunks: usize,
    rounds: usize,
    embedder: &mut dyn Embedder,
) -> Result<QueryBench> {
    let build_started = Instant::now();
    let rows = source.all_rows()?;
    let reader = replicate(source, &rows, out_dir, target_chunks)?;
    let build = build_started.elapsed();
    let queries = sample_queries(&rows);
    let repos: Vec<String> = reader.manifest().repo_ids();
    let half: Vec<String> = repos.iter().step_by(2).cloned().collect();
    let grants = [
        ("no ACL (single-user)", None),
        (
            "ACL: half the repositories",
            Some(format!(
                "[[acl.grant]]\nrepos = {}\nread = [\"bench\"]\n",
                toml_list(&half)
            )),
        ),
        (
            "ACL: source folders only (path globs)",
            Some(
                "[[acl.grant]]\nrepos = [\"*\"]\npaths = [\"**/src/**\"]\nread = [\"bench\"]\n"
                    .into(),
            ),
        ),
    ];
    let mut scenarios = Vec::new();
    for (name, acl_text) in grants {
        let filter = match acl_text {
            None => ChunkFilter::everything(),
            Some(text) => {
                let acl =
                    Acl::parse_section(&text, Path::new("benchmark ACL")).map_err(|detail| {
                        Error::Config {
                            path: "benchmark ACL".into(),
                            detail,
                        }
                    })?;
                reader.prepare_filter(&acl.access_for("bench", &repos).filter)?
            }
        };
        scenarios.push(time_scenario(
            &reader, embedder, &queries, name, filter, rounds,
        )?);
    }
    Ok(QueryBench {
        chunks: reader.manifest().totals.chunks,
        repos: repos.len(),
        queries: queries.len(),
        rounds,
        build,
        scenarios,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

fn toml_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A stored row: chunk, embedding-input hash, vector.
type Row = (Chunk, String, Vec<f32>);

/// Writes `rows` (all of `source`) replicated into a new index and opens it.
fn replicate(
    source: &IndexReader,
    rows: &[Row],
    out_dir: &Path,
    target_chunks: usize,
) -> Result<IndexReader> {
    if rows.is_empty() {
        return Err(Error::Store(
            "the source index is empty: index a corpus first".into(),
        ));
    }
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)
            .map_err(|e| Error::io(format!("cannot clear {}", out_dir.display()), e))?;
    }
    let copies = target_chunks.div_ceil(rows.len()).max(1);
    let dir = IndexDir::create_or_open(out_dir)?;
    let lock = dir.lock()?;
    let model = source.manifest().model.clone();
    let mut writer = dir.begin_generation(&lock, &model, None)?;
    let copy_id = |copy: usize, repo: &str| format!("c{copy:04}/{repo}");
    for copy in 0..copies {
        for (chunk, hash, vector) in rows {
            let mut chunk = chunk.clone();
            chunk.chunk_id = sha256_parts(&[chunk.chunk_id.as_bytes(), &copy.to_le_bytes()]);
            chunk.repo = copy_id(copy, &chunk.repo);
            writer.add(chunk, hash.clone(), vector.clone())?;
        }
    }
    let original: &Manifest = source.manifest();
    let mut manifest = original.clone();
    manifest.generation = writer.name().to_string();
    manifest.repos = (0..copies)
        .flat_map(|copy| {
            original.repos.iter().map(move |r| RepoRecord {
                id: copy_id(copy, &r.id),
                ..r.clone()
            })
        })
        .collect();
    manifest.totals.chunks = rows.len() * copies;
    manifest.totals.files *= copies;
    let finished = writer.finish(manifest)?;
    dir.publish(&lock, finished)?;
    dir.reader()
}

/// Identifier queries (symbols of definitions) and descriptions (first doc lines), spread
/// evenly over the source index.
fn sample_queries(rows: &[Row]) -> Vec<String> {
    let pick = |candidates: Vec<String>| -> Vec<String> {
        let step = (candidates.len() / 40).max(1);
        candidates.into_iter().step_by(step).take(40).collect()
    };
    let symbols = pick(
        rows.iter()
            .filter(|(c, _, _)| !c.symbol.is_empty() && c.kind != "window")
            .map(|(c, _, _)| c.symbol.clone())
            .collect(),
    );
    let docs = pick(
        rows.iter()
            .filter(|(c, _, _)| c.doc.split_whitespace().count() >= 4)
            .map(|(c, _, _)| c.doc.clone())
            .collect(),
    );
    symbols.into_iter().chain(docs).collect()
}

fn time_scenario(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    queries: &[String],
    name: &str,
    filter: ChunkFilter,
    rounds: usize,
) -> Result<ScenarioLatency> {
    let visible_chunks = reader.lane_counts(&filter)?.vectors;
    let options = SearchOptions {
        k: 10,
        filter,
        ..SearchOptions::default()
    };
    // Warm-up: caches, lazily opened files, per-filter statistics.
    for q in queries {
        search::search(reader, embedder, q, &options)?;
    }
    let mut search_ms = Vec::new();
    let mut ask_ms = Vec::new();
    let mut stages: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds.max(1) {
        for q in queries {
            let started = Instant::now();
            let results = search::search(reader, embedder, q, &options)?;
            search_ms.push(ms(started.elapsed()));
            let SearchTimings {
                embed,
                bm25,
                vector,
                fuse,
            } = results.timings;
            for (slot, d) in stages.iter_mut().zip([embed, bm25, vector, fuse]) {
                slot.push(ms(d));
            }
            let started = Instant::now();
            answer::ask(reader, embedder, q, &options)?;
            ask_ms.push(ms(started.elapsed()));
        }
    }
    for list in [&mut search_ms, &mut ask_ms]
        .into_iter()
        .chain(stages.iter_mut())
    {
        list.sort_by(f64::total_cmp);
    }
    Ok(ScenarioLatency {
        scenario: name.to_string(),
        visible_chunks,
        search_p50_ms: percentile(&search_ms, 0.5),
        search_p95_ms: percentile(&search_ms, 0.95),
        ask_p50_ms: percentile(&ask_ms, 0.5),
        ask_p95_ms: percentile(&ask_ms, 0.95),
        stage_p50_ms: stages.map(|s| percentile(&s, 0.5)),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
