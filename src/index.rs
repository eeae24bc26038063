//! Orchestrates `codeq index`: walk → chunk → embed → store, streaming, into a new
//! generation that is published atomically at the end.
//!
//! Reading and chunking run on a producer thread while this thread embeds and stores, so
//! the embedder (the slow stage) never waits for the file system.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chunk::{CHUNKER_VERSION, Chunk, ChunkLimits, Chunker, FileInput};
use crate::config::{Config, INDEX_DIR_NAME};
use crate::embed::{Embedder, ModelInfo};
use crate::error::{Error, Result};
use crate::hash::sha256_parts;
use crate::store::{
    AnnIndex, FORMAT_VERSION, GenerationWriter, IndexDir, IndexReader, Manifest, RepoRecord,
    SCHEMA_VERSION, Totals,
};
use crate::walk::{self, Scan, SkipCounts, SkipReason};

/// Files read ahead of the embedder.
const READ_AHEAD: usize = 256;

/// What to index and where.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The folder to index.
    pub root: PathBuf,
    /// Where the index lives; default `ROOT/.codeq`.
    pub index_dir: Option<PathBuf>,
    /// Start from scratch: required when the embedding model changed.
    pub rebuild: bool,
    /// Effective configuration.
    pub config: Config,
    /// An access-control file given on the command line (never indexed; recorded as
    /// required, like an `[acl]` section in the configuration).
    pub acl_file: Option<PathBuf>,
}

/// Receives progress while indexing; the CLI draws bars, tests ignore it.
pub trait IndexProgress {
    /// A one-line note (a stage starting, a warning).
    fn message(&self, text: &str);
    /// The walk finished: this many files will be read.
    fn scanned(&self, files: usize, repos: usize);
    /// Files read so far, chunks stored so far, vectors computed so far.
    fn advanced(&self, files_done: usize, chunks_stored: usize, embedded: usize);
}

/// Ignores progress.
pub struct NoProgress;

impl IndexProgress for NoProgress {
    fn message(&self, _: &str) {}
    fn scanned(&self, _: usize, _: usize) {}
    fn advanced(&self, _: usize, _: usize, _: usize) {}
}

/// Wall time per stage. Reading+chunking overlaps with embedding and storing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    /// Walking the tree and reading git state.
    pub walk: Duration,
    /// Reading and chunking files (producer thread).
    pub read_chunk: Duration,
    /// Inside the embedding model.
    pub embed: Duration,
    /// Looking up reusable vectors and writing both lanes.
    pub store: Duration,
    /// Flushing, building scalar indexes and publishing.
    pub publish: Duration,
    /// The whole run.
    pub total: Duration,
}

/// What one `codeq index` run did.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    /// The index folder.
    pub index_dir: PathBuf,
    /// The published generation.
    pub generation: String,
    /// Repositories indexed.
    pub repos: usize,
    /// Totals (files, chunks, embedded, reused, skipped…).
    pub totals: Totals,
    /// Time per stage.
    pub times: StageTimes,
}

impl IndexReport {
    /// Chunks per second over the whole run.
    pub fn chunks_per_second(&self) -> f64 {
        rate(self.totals.chunks, self.times.total)
    }

    /// Chunks embedded per second of model time: the embedder's own throughput.
    pub fn embed_rate(&self) -> f64 {
        rate(self.totals.embedded, self.times.embed)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// The default index folder of a root.
pub fn default_index_dir(root: &Path) -> PathBuf {
    root.join(INDEX_DIR_NAME)
}

/// Builds a new generation of the index of `options.root` and publishes it.
pub fn run(
    options: &IndexOptions,
    embedder: &mut dyn Embedder,
    progress: &dyn IndexProgress,
) -> Result<IndexReport> {
    let started = Instant::now();
    let root = walk::check_root(&options.root)?;
    let index_path = options
        .index_dir
        .clone()
        .unwrap_or_else(|| default_index_dir(&root));
    let dir = IndexDir::create_or_open(&index_path)?;
    let lock = dir.lock()?;
    let model = embedder.info().clone();
    let previous = previous_generation(&dir, &model, options.rebuild, progress)?;

    progress.message(&format!("walking {}", root.display()));
    let mut exclude = vec![index_path.clone(), root.join(crate::config::CONFIG_FILE)];
    exclude.extend(options.acl_file.clone());
    let scan = walk::scan(&root, &options.config.index, &exclude)?;
    let walk_time = started.elapsed();
    progress.scanned(scan.files.len(), scan.repos.len());

    let mut writer = dir.begin_generation(&lock, &model, previous.as_ref())?;
    let chunker = Chunker::new(ChunkLimits::default())?;
    let mut run = Run::new(&scan, &model, options.config.index.write_batch);
    let producer_time = std::thread::scope(|scope| -> Result<Duration> {
        let (sender, receiver) = mpsc::sync_channel::<FileOutcome>(READ_AHEAD);
        let producer = scope.spawn(|| produce(&scan, &chunker, sender));
        for outcome in receiver {
            run.accept(outcome, &mut writer, embedder)?;
            progress.advanced(run.files_done, writer.rows(), run.totals.embedded);
        }
        run.flush(&mut writer, embedder)?;
        producer
            .join()
            .map_err(|_| Error::Store("the file reader thread panicked".into()))
    })?;

    let publish_started = Instant::now();
    let generation = writer.name().to_string();
    let mut manifest = run.manifest(&scan, &generation);
    manifest.acl_required = options.config.acl().is_some() || options.acl_file.is_some();
    let totals = manifest.totals.clone();
    let finished = writer.finish(manifest, options.config.index.ann_policy())?;
    dir.publish(&lock, finished)?;
    let times = StageTimes {
        walk: walk_time,
        read_chunk: producer_time,
        embed: run.embed_time,
        store: run.store_time,
        publish: publish_started.elapsed(),
        total: started.elapsed(),
    };
    Ok(IndexReport {
        index_dir: index_path,
        generation,
        repos: scan.repos.len(),
        totals,
        times,
    })
}

/// The published generation whose vectors may be reused, after checking its model.
fn previous_generation(
    dir: &IndexDir,
    model: &ModelInfo,
    rebuild: bool,
    progress: &dyn IndexProgress,
) -> Result<Option<IndexReader>> {
    if rebuild {
        return Ok(None);
    }
    let reader = match dir
        .current()
        .and_then(|g| g.map(|_| dir.reader()).transpose())
    {
        Ok(reader) => reader,
        Err(err) => {
            progress.message(&format!(
                "the current index cannot be read ({err}); building a fresh one"
            ));
            return Ok(None);
        }
    };
    if let Some(previous) = &reader {
        let built_with = &previous.manifest().model;
        if !built_with.compatible_with(model) {
            return Err(Error::ModelMismatch {
                index_model: built_with.id.clone(),
                index_dim: built_with.dimension,
                loaded_model: model.id.clone(),
                loaded_dim: model.dimension,
            });
        }
    }
    Ok(reader)
}

/// What the producer sends per file.
enum FileOutcome {
    Chunked {
        repo: usize,
        chunks: Vec<Chunk>,
        bytes: u64,
        lossy: bool,
    },
    Skipped {
        reason: SkipReason,
        path: String,
    },
}

/// Reads and chunks every listed file, in order; returns the time it spent.
fn produce(scan: &Scan, chunker: &Chunker, sender: mpsc::SyncSender<FileOutcome>) -> Duration {
    let started = Instant::now();
    let mut waiting = Duration::ZERO;
    for entry in &scan.files {
        let repo = &scan.repos[entry.repo];
        let outcome = match walk::read_text(entry) {
            Ok(file) => {
                let commit = repo
                    .git
                    .as_ref()
                    .and_then(|g| g.head.as_deref())
                    .unwrap_or_default();
                let chunks = chunker.chunk(FileInput {
                    repo: &repo.id,
                    path: &entry.rel_path,
                    commit,
                    file_hash: &file.hash,
                    text: &file.text,
                });
                FileOutcome::Chunked {
                    repo: entry.repo,
                    chunks,
                    bytes: entry.size,
                    lossy: file.lossy,
                }
            }
            Err(reason) => FileOutcome::Skipped {
                reason,
                path: join_path(&repo.rel_path, &entry.rel_path),
            },
        };
        let send_started = Instant::now();
        if sender.send(outcome).is_err() {
            break;
        }
        waiting += send_started.elapsed();
    }
    started.elapsed().saturating_sub(waiting)
}

fn join_path(repo_path: &str, rel: &str) -> String {
    if repo_path.is_empty() {
        rel.to_string()
    } else {
        format!("{repo_path}/{rel}")
    }
}

/// Accumulated state of one run on the consumer side.
struct Run<'a> {
    model: &'a ModelInfo,
    /// Chunks embedded and written per round.
    batch_size: usize,
    pending: Vec<Chunk>,
    files_per_repo: Vec<usize>,
    chunks_per_repo: Vec<usize>,
    totals: Totals,
    files_done: usize,
    embed_time: Duration,
    store_time: Duration,
}

impl<'a> Run<'a> {
    fn new(scan: &Scan, model: &'a ModelInfo, batch_size: usize) -> Run<'a> {
        Run {
            model,
            batch_size,
            pending: Vec::with_capacity(batch_size * 2),
            files_per_repo: vec![0; scan.repos.len()],
            chunks_per_repo: vec![0; scan.repos.len()],
            totals: Totals {
                skipped: scan.skipped.clone(),
                ..Totals::default()
            },
            files_done: 0,
            embed_time: Duration::ZERO,
            store_time: Duration::ZERO,
        }
    }

    fn accept(
        &mut self,
        outcome: FileOutcome,
        writer: &mut GenerationWriter,
        embedder: &mut dyn Embedder,
    ) -> Result<()> {
        self.files_done += 1;
        match outcome {
            FileOutcome::Chunked {
                repo,
                chunks,
                bytes,
                lossy,
            } => {
                self.files_per_repo[repo] += 1;
                self.chunks_per_repo[repo] += chunks.len();
                self.totals.files += 1;
                self.totals.source_bytes += bytes;
                self.totals.lossy_utf8 += usize::from(lossy);
                self.pending.extend(chunks);
                if self.pending.len() >= self.batch_size {
                    self.flush(writer, embedder)?;
                }
            }
            FileOutcome::Skipped { reason, path } => {
                let mut one = SkipCounts::default();
                one.add(reason, path);
                self.totals.skipped.merge(one);
            }
        }
        Ok(())
    }

    /// Embeds (or reuses vectors for) the pending chunks and stores them.
    fn flush(&mut self, writer: &mut GenerationWriter, embedder: &mut dyn Embedder) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.pending);
        let texts: Vec<String> = chunks.iter().map(Chunk::embedding_text).collect();
        let hashes: Vec<String> = texts
            .iter()
            .map(|t| {
                sha256_parts(&[
                    self.model.id.as_bytes(),
                    self.model.file_sha256.as_bytes(),
                    t.as_bytes(),
                ])
            })
            .collect();
        let store_started = Instant::now();
        let mut reused = writer.reusable_vectors(&hashes)?;
        let mut store_time = store_started.elapsed();

        let missing: Vec<usize> = (0..chunks.len())
            .filter(|&i| !reused.contains_key(&hashes[i]))
            .collect();
        let missing_texts: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
        let embed_started = Instant::now();
        let fresh = embedder.embed(&missing_texts)?;
        self.embed_time += embed_started.elapsed();
        if fresh.len() != missing.len() {
            return Err(Error::Embed(format!(
                "asked for {} vectors, got {}",
                missing.len(),
                fresh.len()
            )));
        }
        self.totals.embedded += fresh.len();
        self.totals.reused += chunks.len() - fresh.len();
        for (&i, vector) in missing.iter().zip(fresh) {
            reused.insert(hashes[i].clone(), vector);
        }

        let write_started = Instant::now();
        for (chunk, hash) in chunks.into_iter().zip(hashes) {
            let vector = reused
                .get(&hash)
                .cloned()
                .ok_or_else(|| Error::Embed("a chunk has no vector".into()))?;
            self.totals.chunks += 1;
            writer.add(chunk, hash, vector)?;
        }
        store_time += write_started.elapsed();
        self.store_time += store_time;
        Ok(())
    }

    fn manifest(&self, scan: &Scan, generation: &str) -> Manifest {
        let repos = scan
            .repos
            .iter()
            .enumerate()
            .map(|(i, repo)| {
                let git = repo.git.clone().unwrap_or_default();
                RepoRecord {
                    id: repo.id.clone(),
                    path: repo.rel_path.clone(),
                    remote_url: git.remote_url,
                    branch: git.branch,
                    commit: git.head,
                    dirty: git.dirty,
                    is_git: repo.git.is_some(),
                    files: self.files_per_repo[i],
                    chunks: self.chunks_per_repo[i],
                    ignored_entries: git.ignored_entries,
                }
            })
            .collect();
        Manifest {
            format: FORMAT_VERSION,
            schema_version: SCHEMA_VERSION,
            chunker_version: CHUNKER_VERSION,
            generation: generation.to_string(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            root: scan.root.clone(),
            model: self.model.clone(),
            repos,
            totals: self.totals.clone(),
            acl_required: false,
            ann_index: AnnIndex::Off,
        }
    }
}
