//! `codeq bench`: indexing throughput, time per stage, peak memory and index size on a
//! corpus; and warm query latency of `search` and `ask` on a large index, with and without
//! access-control filtering.
//!
//! `incremental` measures re-indexing (issue 5); `embed` the model's throughput and
//! `coverage` the time to the first answer and to full vector coverage (issue 9); `serve`
//! a `codeq serve` process under concurrent clients against the same queries in process.
//!
//! Budgets (issue 3): warm p50 ≤ 20 ms without a reranker at ≥ 100k chunks, and the ACL
//! filter costs under 10%. Numbers belong in the closing notes, never in tests.

mod coverage;
mod embed;
mod incremental;
mod serve;

pub use coverage::{CoverageBench, coverage_bench};
pub use embed::{EmbedFigures, embed_bench};
pub use incremental::{IncrementalBench, IncrementalBenchOptions, incremental_bench};
pub use serve::{ServeBench, ServeLoad, serve_bench};

use std::collections::HashSet;
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
use crate::store::{
    AnnIndex, AnnPolicy, ChunkFilter, FileTable, GenerationBase, IndexDir, IndexReader, Manifest,
    RepoRecord,
};

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
        index_dir: Some(index_dir.to_path_buf()),
        rebuild: true,
        ..config.index_options(root.to_path_buf())
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

/// Resident memory of process `pid` now (`VmRSS`), bytes; `None` once it has exited.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// One ANN index build over an index's vectors (`codeq bench ann-build`).
#[derive(Debug, Clone, Serialize)]
pub struct AnnBuildBench {
    /// The index built.
    pub index: AnnIndex,
    /// Rows per IVF partition it was asked for.
    pub partition_rows: usize,
    /// Rows it indexes.
    pub rows: usize,
    /// Seconds the build took.
    pub build_s: f64,
    /// Resident memory before the build (runtime, caches, the source opened), bytes.
    pub rss_before_bytes: u64,
    /// Peak resident memory of the process, bytes: the build's own cost is the rise
    /// above `rss_before_bytes`.
    pub peak_rss_bytes: u64,
}

/// Builds `index` from scratch over the vectors of `source`'s current generation, linked
/// into `out` (deleted first), as the indexer's final publish does, and measures the
/// build's time and memory alone in this process.
pub fn ann_build_bench(source: &IndexDir, out: &Path, ann: AnnPolicy) -> Result<AnnBuildBench> {
    if out.exists() {
        std::fs::remove_dir_all(out)
            .map_err(|e| Error::io(format!("cannot clear {}", out.display()), e))?;
    }
    let rss_before_bytes = rss_bytes(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    let rows = source.rebuild_ann_in(out, ann)?;
    Ok(AnnBuildBench {
        index: ann.index,
        partition_rows: ann.partition_rows,
        rows,
        build_s: started.elapsed().as_secs_f64(),
        rss_before_bytes,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Reaps child `pid`: (exited successfully, its peak resident memory in bytes).
pub(crate) fn wait_with_rusage(pid: u32) -> (bool, u64) {
    let mut status = 0;
    // SAFETY: wait4 on our own child; it writes only into the zeroed struct and status.
    let (rc, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::wait4(pid as i32, &mut status, 0, &mut usage);
        (rc, usage)
    };
    let success = rc > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (success, (usage.ru_maxrss as u64) * 1024)
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
    /// Median over queries and rounds of this scenario's `search` time against the first
    /// scenario's for the same query, minus one (0.08: 8% slower).
    pub search_overhead_p50: f64,
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

/// Copies the rows of `corpus` (real chunks with their real vectors) into copies of each
/// repository until the benchmark index at `out_dir` holds at least `target_chunks`, then
/// times `search` and `ask` with no filter, an ACL granting half the copies, and an ACL
/// granting source folders only. The benchmark index gets an ANN index as `ann` says.
pub fn query_bench(
    corpus: &Corpus,
    out_dir: &Path,
    target_chunks: usize,
    rounds: usize,
    ann: AnnPolicy,
    embedder: &mut dyn Embedder,
) -> Result<QueryBench> {
    let build_started = Instant::now();
    let reader = corpus.replicate(out_dir, target_chunks, ann)?;
    let build = build_started.elapsed();
    let queries = sample_queries(&corpus.rows);
    let repos: Vec<String> = reader.manifest().repo_ids();
    let half: Vec<String> = repos.iter().step_by(2).cloned().collect();
    let grants = [
        ("no ACL (single-user)", None),
        ("ACL: half the repositories", Some(repo_grant(&half))),
        (
            "ACL: source folders only (path globs)",
            Some(
                "[[acl.grant]]\nrepos = [\"*\"]\npaths = [\"**/src/**\"]\nread = [\"bench\"]\n"
                    .into(),
            ),
        ),
    ];
    let mut filters = Vec::new();
    for (name, acl_text) in grants {
        let filter = match acl_text {
            None => ChunkFilter::everything(),
            Some(text) => bench_filter(&reader, &text)?,
        };
        filters.push((name, filter));
    }
    let scenarios = time_scenarios(&reader, embedder, &queries, filters, rounds)?;
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

/// An ACL granting the benchmark principal these repositories.
fn repo_grant(repos: &[String]) -> String {
    let quoted: Vec<String> = repos.iter().map(|v| format!("{v:?}")).collect();
    format!(
        "[[acl.grant]]\nrepos = [{}]\nread = [\"bench\"]\n",
        quoted.join(", ")
    )
}

/// The prepared filter of principal `bench` under the ACL `text`.
fn bench_filter(reader: &IndexReader, text: &str) -> Result<ChunkFilter> {
    let acl =
        Acl::parse_section(text, Path::new("benchmark ACL")).map_err(|detail| Error::Config {
            path: "benchmark ACL".into(),
            detail,
        })?;
    let repos = reader.manifest().repo_ids();
    reader.prepare_filter(&acl.filter_for("bench", &repos))
}

/// A stored row: chunk, embedding-input hash, vector.
type Row = (Chunk, String, Vec<f32>);

/// Per-dimension standard deviation of the noise added to replicated vectors: a copy keeps
/// a cosine similarity of about 0.93 with its original (384 dimensions), so copies are
/// near neighbours, not ties, and an ANN index faces a realistic neighbourhood.
const COPY_NOISE: f32 = 0.02;

/// Real rows (chunks and their vectors) of one or more indexes, the seed of a benchmark
/// index.
pub struct Corpus {
    rows: Vec<Row>,
    manifest: Manifest,
}

impl Corpus {
    /// Every row of `sources` (at least one), with a manifest listing all their repositories.
    pub fn of(sources: &[&IndexReader]) -> Result<Corpus> {
        let Some(first) = sources.first() else {
            return Err(Error::Bench("no source index given".into()));
        };
        let mut manifest = first.manifest().clone();
        manifest.repos.clear();
        let mut rows = Vec::new();
        for source in sources {
            if source.manifest().model.dimension != manifest.model.dimension {
                return Err(Error::Bench(format!(
                    "{} holds {}-dimensional vectors, {} holds {}",
                    source.generation(),
                    source.manifest().model.dimension,
                    first.generation(),
                    manifest.model.dimension
                )));
            }
            for repo in &source.manifest().repos {
                if !manifest.repos.iter().any(|r| r.id == repo.id) {
                    manifest.repos.push(repo.clone());
                }
            }
            rows.extend(source.all_rows()?);
        }
        if rows.is_empty() {
            return Err(Error::Bench(
                "the source index is empty: index a corpus first".into(),
            ));
        }
        Ok(Corpus { rows, manifest })
    }

    /// The embedding inputs of `n` chunks spread evenly over the corpus (all when fewer).
    pub fn embedding_texts(&self, n: usize) -> Vec<String> {
        let step = (self.rows.len() / n.max(1)).max(1);
        self.rows
            .iter()
            .step_by(step)
            .take(n)
            .map(|(chunk, _, _)| chunk.embedding_text())
            .collect()
    }

    /// Chunks in the corpus.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the corpus has no chunks (never true for a corpus [`Corpus::of`] returned).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the rows replicated into repository copies `c0000/…`, `c0001/…` until the
    /// index at `out_dir` holds at least `target_chunks`, builds its ANN index as `ann`
    /// says, and opens it. Copy 0 keeps the real vectors; later copies get
    /// [`COPY_NOISE`].
    pub fn replicate(
        &self,
        out_dir: &Path,
        target_chunks: usize,
        ann: AnnPolicy,
    ) -> Result<IndexReader> {
        if out_dir.exists() {
            std::fs::remove_dir_all(out_dir)
                .map_err(|e| Error::io(format!("cannot clear {}", out_dir.display()), e))?;
        }
        let copies = target_chunks.div_ceil(self.rows.len()).max(1);
        let dir = IndexDir::create_or_open(out_dir)?;
        let lock = dir.lock()?;
        let mut writer =
            dir.begin_generation(&lock, &self.manifest.model, GenerationBase::default())?;
        let mut noise = Noise::new(1);
        for copy in 0..copies {
            for (chunk, hash, vector) in &self.rows {
                let mut chunk = chunk.clone();
                chunk.chunk_id = sha256_parts(&[chunk.chunk_id.as_bytes(), &copy.to_le_bytes()]);
                chunk.repo = copy_id(copy, &chunk.repo);
                let vector = if copy == 0 {
                    vector.clone()
                } else {
                    noise.perturb(vector, COPY_NOISE)
                };
                writer.add(chunk, hash.clone(), vector)?;
            }
        }
        let mut manifest = self.manifest.clone();
        manifest.generation = writer.name().to_string();
        manifest.repos = (0..copies)
            .flat_map(|copy| {
                self.manifest.repos.iter().map(move |r| RepoRecord {
                    id: copy_id(copy, &r.id),
                    ..r.clone()
                })
            })
            .collect();
        manifest.totals.chunks = self.rows.len() * copies;
        manifest.totals.files *= copies;
        // No file table: an index run on this folder would rebuild it from scratch.
        let finished = writer.finish(manifest, FileTable::default(), ann)?;
        dir.publish(&lock, finished)?;
        dir.reader()
    }
}

/// Name of a repository's `copy`-th replica.
fn copy_id(copy: usize, repo: &str) -> String {
    format!("c{copy:04}/{repo}")
}

/// Deterministic Gaussian noise (splitmix64 + Box–Muller): benchmark corpora are the same
/// on every run without a random-number crate.
struct Noise {
    state: u64,
}

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise { state: seed }
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// `vector` plus Gaussian noise of standard deviation `sigma` per dimension,
    /// re-normalised to unit length.
    fn perturb(&mut self, vector: &[f32], sigma: f32) -> Vec<f32> {
        let mut out: Vec<f32> = vector
            .iter()
            .map(|x| {
                let gaussian = (-2.0 * self.uniform().ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * self.uniform()).cos();
                x + sigma * gaussian as f32
            })
            .collect();
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            out.iter_mut().for_each(|x| *x /= norm);
        }
        out
    }
}

/// Latency and recall of one ANN index kind under one access scenario.
#[derive(Debug, Clone, Serialize)]
pub struct AnnScenario {
    /// What the principal may read.
    pub scenario: String,
    /// Chunks the filter admits.
    pub visible_chunks: usize,
    /// Vector-lane query p50, milliseconds.
    pub p50_ms: f64,
    /// Vector-lane query p95, milliseconds.
    pub p95_ms: f64,
    /// Mean share of the exact top k that the index returned in its top k.
    pub recall_at_k: f64,
    /// Results outside the filter (must be 0: the filter is a pre-filter).
    pub outside_filter: usize,
}

/// Figures of one ANN index kind.
#[derive(Debug, Clone, Serialize)]
pub struct AnnFigures {
    /// The index (`off`: exact search, the ground truth).
    pub index: AnnIndex,
    /// Time to write the table and build all its indexes.
    pub build: Duration,
    /// Index folder size on disk, bytes.
    pub index_bytes: u64,
    /// Per access scenario.
    pub scenarios: Vec<AnnScenario>,
}

/// Figures of the vector-search benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct VectorBench {
    /// Chunks in the benchmark table.
    pub chunks: usize,
    /// Repositories in it.
    pub repos: usize,
    /// Query vectors per scenario.
    pub queries: usize,
    /// Results per query (recall is measured at this depth).
    pub k: usize,
    /// Exact search first, then each ANN index.
    pub indexes: Vec<AnnFigures>,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: u64,
}

/// Results per query: the exact top k of each scenario, by chunk id.
type TopIds = Vec<Vec<String>>;

/// Builds the corpus replicated to `target_chunks` once with exact search and once per ANN
/// index in `indexes`, and measures each: vector-lane latency and recall@k against exact
/// search, with no filter, with an ACL granting half the repository copies, and with one
/// granting a single copy (a narrow pre-filter, where an index that filtered after ranking
/// would come back short). Query vectors are corpus vectors with fresh noise.
pub fn vector_bench(
    corpus: &Corpus,
    out_dir: &Path,
    target_chunks: usize,
    indexes: &[AnnIndex],
    partition_rows: usize,
    (queries, k): (usize, usize),
) -> Result<VectorBench> {
    let mut noise = Noise::new(2);
    let step = (corpus.rows.len() / queries.max(1)).max(1);
    let query_vectors: Vec<Vec<f32>> = corpus
        .rows
        .iter()
        .step_by(step)
        .take(queries.max(1))
        .map(|(_, _, v)| noise.perturb(v, COPY_NOISE))
        .collect();
    let kinds = std::iter::once(AnnIndex::Off)
        .chain(indexes.iter().copied().filter(|k| *k != AnnIndex::Off));
    let mut truth: Vec<TopIds> = Vec::new();
    let mut figures = Vec::new();
    let mut chunks = 0;
    let mut repos = 0;
    for index in kinds {
        let started = Instant::now();
        let reader = corpus.replicate(
            out_dir,
            target_chunks,
            AnnPolicy {
                index,
                min_rows: 0,
                partition_rows,
            },
        )?;
        let build = started.elapsed();
        let repo_ids = reader.manifest().repo_ids();
        chunks = reader.manifest().totals.chunks;
        repos = repo_ids.len();
        let one_copy: Vec<String> = repo_ids
            .iter()
            .filter(|r| r.starts_with(&copy_id(0, "")))
            .cloned()
            .collect();
        let half: Vec<String> = repo_ids.iter().step_by(2).cloned().collect();
        let scenarios = [
            ("no ACL (single-user)", &repo_ids),
            ("ACL: half the repositories", &half),
            ("ACL: one repository copy", &one_copy),
        ];
        let mut measured = Vec::new();
        for (i, (name, granted)) in scenarios.into_iter().enumerate() {
            let filter = if granted.len() == repo_ids.len() {
                ChunkFilter::everything()
            } else {
                bench_filter(&reader, &repo_grant(granted))?
            };
            let visible: HashSet<&String> = granted.iter().collect();
            for vector in &query_vectors {
                reader.nearest(vector, &filter, k)?;
            }
            let mut times = Vec::new();
            let mut tops: TopIds = Vec::new();
            let mut outside_filter = 0;
            for vector in &query_vectors {
                let started = Instant::now();
                let hits = reader.nearest(vector, &filter, k)?;
                times.push(ms(started.elapsed()));
                outside_filter += hits
                    .iter()
                    .filter(|(c, _)| !visible.contains(&c.repo))
                    .count();
                tops.push(hits.into_iter().map(|(c, _)| c.chunk_id).collect());
            }
            if index == AnnIndex::Off {
                truth.push(tops.clone());
            }
            times.sort_by(f64::total_cmp);
            measured.push(AnnScenario {
                scenario: name.to_string(),
                visible_chunks: reader.lane_counts(&filter)?.vectors,
                p50_ms: percentile(&times, 0.5),
                p95_ms: percentile(&times, 0.95),
                recall_at_k: recall(&tops, &truth[i]),
                outside_filter,
            });
        }
        figures.push(AnnFigures {
            index,
            build,
            index_bytes: IndexDir::open(out_dir)?.size_on_disk(),
            scenarios: measured,
        });
    }
    Ok(VectorBench {
        chunks,
        repos,
        queries: query_vectors.len(),
        k,
        indexes: figures,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Mean over queries of |found ∩ exact| / |exact| (1 when exact search found nothing).
fn recall(found: &TopIds, exact: &TopIds) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let per_query = found.iter().zip(exact).map(|(f, e)| {
        if e.is_empty() {
            1.0
        } else {
            e.iter().filter(|id| f.contains(id)).count() as f64 / e.len() as f64
        }
    });
    per_query.sum::<f64>() / exact.len() as f64
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

/// The samples of one scenario, in the order taken.
#[derive(Default)]
struct ScenarioSamples {
    search_ms: Vec<f64>,
    ask_ms: Vec<f64>,
    stages: [Vec<f64>; 4],
}

/// Times `search` and `ask` under each `(name, filter)` scenario. The scenarios take turns
/// query by query, so a drift in the machine's speed (this one shares its cores) falls on
/// all of them alike; each scenario's overhead is the median, over the same query and
/// round, of its time against the first scenario's.
fn time_scenarios(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    queries: &[String],
    scenarios: Vec<(&str, ChunkFilter)>,
    rounds: usize,
) -> Result<Vec<ScenarioLatency>> {
    let (names, options): (Vec<&str>, Vec<SearchOptions>) = scenarios
        .into_iter()
        .map(|(name, filter)| {
            let options = SearchOptions {
                k: 10,
                filter,
                ..SearchOptions::default()
            };
            (name, options)
        })
        .unzip();
    // Warm-up: caches, lazily opened files, per-filter statistics.
    for options in &options {
        for q in queries {
            search::search(reader, embedder, None, q, options)?;
        }
    }
    let mut samples: Vec<ScenarioSamples> = options.iter().map(|_| Default::default()).collect();
    for _ in 0..rounds.max(1) {
        for q in queries {
            for (options, taken) in options.iter().zip(&mut samples) {
                let started = Instant::now();
                let results = search::search(reader, embedder, None, q, options)?;
                taken.search_ms.push(ms(started.elapsed()));
                let SearchTimings {
                    embed,
                    bm25,
                    vector,
                    fuse,
                    ..
                } = results.timings;
                for (slot, d) in taken.stages.iter_mut().zip([embed, bm25, vector, fuse]) {
                    slot.push(ms(d));
                }
                let started = Instant::now();
                answer::ask(reader, embedder, None, q, options)?;
                taken.ask_ms.push(ms(started.elapsed()));
            }
        }
    }
    let baseline = samples[0].search_ms.clone();
    let mut out = Vec::new();
    for ((name, options), mut taken) in names.into_iter().zip(&options).zip(samples) {
        let mut ratios: Vec<f64> = taken
            .search_ms
            .iter()
            .zip(&baseline)
            .map(|(t, b)| t / b.max(1e-9))
            .collect();
        for list in [&mut taken.search_ms, &mut taken.ask_ms, &mut ratios]
            .into_iter()
            .chain(taken.stages.iter_mut())
        {
            list.sort_by(f64::total_cmp);
        }
        out.push(ScenarioLatency {
            scenario: name.to_string(),
            visible_chunks: reader.lane_counts(&options.filter)?.vectors,
            search_p50_ms: percentile(&taken.search_ms, 0.5),
            search_p95_ms: percentile(&taken.search_ms, 0.95),
            ask_p50_ms: percentile(&taken.ask_ms, 0.5),
            ask_p95_ms: percentile(&taken.ask_ms, 0.95),
            search_overhead_p50: percentile(&ratios, 0.5) - 1.0,
            stage_p50_ms: taken.stages.map(|s| percentile(&s, 0.5)),
        });
    }
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
