//! Orchestrates `codeq index`: walk → chunk → embed → store, streaming, into a new
//! generation that is published atomically at the end.
//!
//! Runs are incremental: the walk's stat of each file is compared with the previous
//! generation's file table, files whose stat changed are hashed, and only files whose
//! bytes changed (or that are new) are chunked; the new generation starts as a copy of
//! the previous one with the chunks of changed and deleted files removed. A chunk's vector
//! comes from the previous generation, or from the embedding cache of vectors evicted by
//! earlier runs (another branch, an undone edit), when its embedding input was seen before:
//! only new embedding inputs reach the model.
//!
//! Reading and chunking run on a producer thread while this thread embeds and stores, so
//! the embedder (the slow stage) never waits for the file system.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chunk::{CHUNKER_VERSION, Chunk, ChunkLimits, ChunkMode, Chunker, FileInput};
use crate::embed::{Embedder, ModelInfo};
use crate::error::{Error, Result};
use crate::hash::sha256_parts;
use crate::paths::INDEX_DIR_NAME;
use crate::stage::Stage;
use crate::store::{
    AclRequirement, AnnIndex, AnnPolicy, EmbedCache, FORMAT_VERSION, FileRecord, FileTable,
    GenerationBase, GenerationWriter, IndexDir, IndexReader, Manifest, RepoRecord, SCHEMA_VERSION,
    Totals, VectorSource,
};
use crate::walk::{self, FileEntry, Scan, SkipCounts, SkipReason};

mod backfill;
mod pipeline;
mod plan;
mod settings;
mod shard;
mod watch;
mod worktree;

use backfill::{Embedded, embed_pending};
use pipeline::{
    CHUNKER_STACK_BYTES, FileOutcome, READ_AHEAD, Run, embed_timed, join_path, produce,
};
use plan::Plan;
pub use settings::IndexConfig;
pub use shard::Shard;
pub use watch::watch;
pub use worktree::{WorkingTreeChanges, changes_since_indexed};
use worktree::{manifest_states, repo_states};

/// Chunks whose reusable vectors are looked up at once when none is embedded inline.
const LOOKUP_ROUND: usize = 1024;

/// What to index and where.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The folder to index.
    pub root: PathBuf,
    /// Where the index lives; default `ROOT/.codeq`.
    pub index_dir: Option<PathBuf>,
    /// Start from scratch: required when the embedding model changed.
    pub rebuild: bool,
    /// The `[index]` settings.
    pub settings: IndexConfig,
    /// The configuration has an `[acl]` section (recorded as required, like `acl_file`).
    pub acl_configured: bool,
    /// An access-control file given on the command line (never indexed; recorded as
    /// required, like an `[acl]` section in the configuration).
    pub acl_file: Option<PathBuf>,
    /// Publish without an access-control list although the current index was built under
    /// one: every principal then sees every repository. Without it (or `rebuild`) such a
    /// run is refused, so a forgotten ACL never opens the index up.
    pub drop_acl: bool,
    /// Index only the repositories of this shard and leave the others as the generation
    /// this run builds on has them (one of several indexers of one index).
    pub shard: Option<Shard>,
}

/// Receives progress while indexing; the CLI draws bars, tests ignore it.
pub trait IndexProgress {
    /// A one-line note (a stage starting, a warning).
    fn message(&self, text: &str);
    /// The walk finished: this many files will be read.
    fn scanned(&self, files: usize, repos: usize);
    /// Files read so far, chunks stored so far, vectors computed so far.
    fn advanced(&self, files_done: usize, chunks_stored: usize, embedded: usize);
    /// Embedding behind the lexical index: vectors computed of `total` waiting, at `rate`
    /// chunks per second.
    fn embedding(&self, done: usize, total: usize, rate: f64);
}

/// Ignores progress.
pub struct NoProgress;

impl IndexProgress for NoProgress {
    fn message(&self, _: &str) {}
    fn scanned(&self, _: usize, _: usize) {}
    fn advanced(&self, _: usize, _: usize, _: usize) {}
    fn embedding(&self, _: usize, _: usize, _: f64) {}
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
    /// The published generation (the current one when nothing changed).
    pub generation: String,
    /// Repositories indexed.
    pub repos: usize,
    /// Totals (files, chunks, embedded, reused, skipped…).
    pub totals: Totals,
    /// What this run found changed and what it reused.
    pub changes: Changes,
    /// Time per stage.
    pub times: StageTimes,
}

/// What a run found changed since the previous generation, and what it recomputed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    /// No file, repository state or setting changed: no generation was written.
    pub up_to_date: bool,
    /// The previous generation was copied and changed (false: built from empty).
    pub incremental: bool,
    /// Files whose chunks were kept as they were.
    pub files_unchanged: usize,
    /// Of those, files whose stat changed but whose bytes did not (hashed, not chunked).
    pub files_rehashed: usize,
    /// Files chunked because their bytes changed.
    pub files_modified: usize,
    /// Files chunked because the previous generation did not have them.
    pub files_added: usize,
    /// Files whose chunks were removed: deleted, now ignored, now skipped.
    pub files_removed: usize,
    /// Chunks written in this run.
    pub chunks_written: usize,
    /// Vectors computed by the model in this run.
    pub vectors_embedded: usize,
    /// Vectors of written chunks found in the previous generation or the embedding cache.
    pub vectors_reused: usize,
    /// The run published the lexical index before computing the vectors it lacked.
    pub lexical_first: bool,
    /// Chunks still waiting for vectors when the run ended (0 unless it was cut short).
    pub vectors_pending: usize,
    /// Seconds from the start of the run until the first generation with its changes was
    /// published (queryable).
    pub queryable_after_s: f64,
    /// Files chunked in this run that their grammar could not parse (the definitions that
    /// parsed cleanly became chunks, the rest windows).
    pub unparsed: PathTally,
    /// Registered grammars that could not be used in this run, with the reason (their
    /// files were cut into windows).
    pub grammars_unavailable: Vec<String>,
}

/// A count of paths with the first few as examples.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathTally {
    /// How many.
    pub count: usize,
    /// Up to three of them, relative to the root.
    pub examples: Vec<String>,
}

impl PathTally {
    /// Counts one path.
    pub fn add(&mut self, path: String) {
        self.count += 1;
        if self.examples.len() < 3 {
            self.examples.push(path);
        }
    }
}

impl Changes {
    /// Share of the written chunks whose vectors were reused (1 when none were written).
    pub fn reuse_rate(&self) -> f64 {
        if self.chunks_written == 0 {
            1.0
        } else {
            self.vectors_reused as f64 / self.chunks_written as f64
        }
    }
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

/// Brings the index of `options.root` up to date: publishes a new generation unless
/// nothing changed.
///
/// A shard's run that loses the race to publish on object storage (another worker
/// published first) builds again on the winner's generation, up to [`SHARD_ATTEMPTS`]
/// times; the vectors it computed are kept in the embedding cache as they are computed,
/// so an attempt (or a rerun after the worker was killed) embeds nothing twice.
pub fn run(
    options: &IndexOptions,
    embedder: &mut dyn Embedder,
    progress: &dyn IndexProgress,
) -> Result<IndexReport> {
    let mut attempt = 1;
    loop {
        match run_once(options, embedder, progress) {
            Err(Error::RemoteConflict { published, .. })
                if options.shard.is_some() && attempt < SHARD_ATTEMPTS =>
            {
                progress.message(&format!(
                    "another indexer published {published} first; building on it (attempt {} of {SHARD_ATTEMPTS})",
                    attempt + 1
                ));
                std::thread::sleep(retry_pause(attempt));
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// How many times a shard's run builds and tries to publish before it gives up.
pub const SHARD_ATTEMPTS: u32 = 8;

/// The pause before attempt `attempt + 1`: growing, and spread by the clock's nanoseconds
/// so that workers that lost together do not collide again in step.
fn retry_pause(attempt: u32) -> Duration {
    let spread_ms = unix_nanos().rem_euclid(500_000_000) / 1_000_000;
    Duration::from_millis(200 * u64::from(attempt) + spread_ms as u64)
}

fn run_once(
    options: &IndexOptions,
    embedder: &mut dyn Embedder,
    progress: &dyn IndexProgress,
) -> Result<IndexReport> {
    let started = Instant::now();
    let started_ns = unix_nanos();
    let root = walk::check_root(&options.root)?;
    let index_path = options
        .index_dir
        .clone()
        .unwrap_or_else(|| default_index_dir(&root));
    let dir = IndexDir::create_or_open(&index_path)?;
    let lock = dir.lock_waiting(|| {
        progress.message(&format!(
            "another `codeq index` is writing {}; waiting for it to finish",
            index_path.display()
        ))
    })?;
    // What a run that held the lock published is what this one builds on.
    dir.refresh()?;
    let acl_required = options.acl_configured || options.acl_file.is_some();
    if !acl_required && !options.rebuild && !options.drop_acl {
        match dir.acl_requirement()? {
            AclRequirement::None => {}
            AclRequirement::Required => {
                return Err(Error::AclMissing {
                    config: root.join(crate::paths::CONFIG_FILE),
                });
            }
            AclRequirement::Unknown(why) => {
                return Err(Error::CorruptIndex {
                    dir: index_path.clone(),
                    detail: format!(
                        "{why}; so whether it was built under an access-control list cannot be told: configure the ACL it had, or say --drop-acl"
                    ),
                });
            }
        }
    } else if !acl_required && dir.acl_requirement()? != AclRequirement::None {
        progress.message(
            "building without the access-control list the index had: every principal will see every repository",
        );
    }
    let model = embedder.info().clone();
    let Previous {
        reader: previous,
        vectors: reuse,
    } = previous_generation(&dir, &model, options.rebuild, progress)?;
    let recorded = previous
        .as_ref()
        .and_then(|p| dir.file_table(p.generation()))
        .filter(|t| t.chunker_version == CHUNKER_VERSION);
    if options.shard.is_some() && recorded.is_none() && dir.current()?.is_some() {
        return Err(Error::ShardNeedsWholeRun(if options.rebuild {
            "--rebuild replaces every repository of the index".into()
        } else {
            "the published index was built by another version of codeq's chunker or index".into()
        }));
    }

    progress.message(&format!("walking {}", root.display()));
    // The index folder itself: for an index on object storage, its mirror.
    let exclude = walk_exclusions(&root, dir.path(), options.acl_file.as_deref());
    let stage = Stage::start("walk");
    let mut scan = walk::scan(&root, &options.settings.walk_options(), &exclude)?;
    if let Some(shard) = options.shard {
        scan.retain_repos(|repo| shard.contains(&repo.id));
        progress.message(&format!(
            "shard {shard}: {} repositories of this root",
            scan.repos.len()
        ));
    }
    let walk_time = stage.finish();
    let plan = Plan::new(&scan, recorded.as_ref(), options.shard);
    progress.scanned(plan.to_chunk.len(), scan.repos.len());

    if let (Some(previous), true) = (&previous, plan.changes_nothing()) {
        let manifest = previous.manifest();
        let same_state = manifest.root == scan.root
            && manifest.acl_required == acl_required
            && same_repo_states(&scan, manifest, options.shard)
            // The skip counts a shard's run records are its own shard's.
            && (options.shard.is_some()
                || plan.skipped(&scan).counts == manifest.totals.skipped.counts);
        if same_state && manifest.totals.pending > 0 {
            // An earlier run was stopped while embedding: carry on where it stopped.
            progress.message(&format!(
                "resuming: {} chunks still wait for vectors",
                manifest.totals.pending
            ));
            let mut changes = plan.changes();
            changes.incremental = true;
            changes.lexical_first = true;
            let embedded = embed_pending(&dir, &lock, options, embedder, progress)?;
            return finish_report(
                &dir, index_path, &scan, changes, embedded, started, walk_time,
            );
        }
        if same_state {
            let mut changes = plan.changes();
            changes.up_to_date = true;
            changes.incremental = true;
            return Ok(IndexReport {
                index_dir: index_path,
                generation: previous.generation().to_string(),
                repos: scan.repos.len(),
                totals: Totals {
                    embedded: 0,
                    reused: 0,
                    ..manifest.totals.clone()
                },
                changes,
                times: StageTimes {
                    walk: walk_time,
                    total: started.elapsed(),
                    ..StageTimes::default()
                },
            });
        }
    }

    let copy_of = previous.as_ref().filter(|_| recorded.is_some());
    let mut cache = dir.embed_cache(&lock, &model)?;
    if let Some(copied) = copy_of {
        cache.keep(copied.vectors_of_files(&plan.to_remove)?);
    }
    let mut writer = dir.begin_generation(&lock, &model, GenerationBase { copy_of, reuse })?;
    writer.remove_files(&plan.to_remove)?;
    let chunker = Chunker::new(ChunkLimits::default());
    let mut run = Run::new(&model, options.settings.write_batch, &mut cache);
    // A shard publishes once, whole: lexical-first rounds would each race the other
    // workers to publish. Its fresh vectors go to the cache as they are computed.
    run.defer_embedding =
        options.shard.is_none() && plan.to_chunk.len() > options.settings.lexical_first_files;
    run.cache_fresh_vectors = options.shard.is_some();
    let producer_time = std::thread::scope(|scope| -> Result<Duration> {
        let (sender, receiver) = mpsc::sync_channel::<FileOutcome>(READ_AHEAD);
        let producer = std::thread::Builder::new()
            .name("codeq-chunker".into())
            .stack_size(CHUNKER_STACK_BYTES)
            .spawn_scoped(scope, || produce(&scan, &plan.to_chunk, &chunker, sender))
            .map_err(|e| Error::io("cannot start the file reader thread", e))?;
        for outcome in receiver {
            run.accept(outcome, &scan, &mut writer, embedder)?;
            progress.advanced(run.files_done, writer.rows(), run.changes.vectors_embedded);
        }
        run.flush(&mut writer, embedder)?;
        producer
            .join()
            .map_err(|_| Error::WorkerStopped("the file reader thread"))
    })?;

    let publish_stage = Stage::start("publish");
    let generation = writer.name().to_string();
    let mut changes = plan.changes();
    changes.incremental = copy_of.is_some();
    changes.chunks_written = run.changes.chunks_written;
    changes.vectors_embedded = run.changes.vectors_embedded;
    changes.vectors_reused = run.changes.vectors_reused;
    changes.lexical_first = run.defer_embedding;
    changes.unparsed = std::mem::take(&mut run.changes.unparsed);
    changes.grammars_unavailable = chunker
        .unavailable()
        .iter()
        .map(|p| format!("{}: {}", p.language, p.detail))
        .collect();
    let (embed_time, store_time) = (run.embed_time, run.store_time);
    let mut skipped = plan.skipped(&scan);
    skipped.merge(run.skipped);
    let mut files = plan.kept;
    files.extend(run.written);
    files.sort_by(|a, b| (&a.repo, &a.path).cmp(&(&b.repo, &b.path)));
    let carried = match (options.shard, &previous) {
        (Some(shard), Some(previous)) => previous
            .manifest()
            .repos
            .iter()
            .filter(|repo| !shard.contains(&repo.id))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let mut manifest = new_manifest(
        &scan,
        &carried,
        &generation,
        &model,
        &files,
        skipped,
        &changes,
    );
    manifest.acl_required = acl_required;
    manifest.embed_rate = match run.embed_time.is_zero() {
        true => previous.as_ref().map_or(0.0, |p| p.manifest().embed_rate),
        false => run.changes.vectors_embedded as f64 / run.embed_time.as_secs_f64(),
    };
    let table = FileTable {
        chunker_version: CHUNKER_VERSION,
        started_ns,
        files,
    };
    let finished = writer.finish(manifest, table, options.settings.ann_policy())?;
    cache.finish(options.settings.embed_cache_vectors);
    dir.publish(&lock, finished)?;
    drop(previous);
    changes.queryable_after_s = started.elapsed().as_secs_f64();
    if dir.reader()?.manifest().totals.pending > 0 {
        progress.message(&format!(
            "queryable now ({:.1}s); computing the vectors of {} chunks, most useful first",
            changes.queryable_after_s,
            dir.reader()?.manifest().totals.pending
        ));
        let embedded = embed_pending(&dir, &lock, options, embedder, progress)?;
        return finish_report(
            &dir, index_path, &scan, changes, embedded, started, walk_time,
        );
    }
    let totals = dir.reader()?.manifest().totals.clone();
    let times = StageTimes {
        walk: walk_time,
        read_chunk: producer_time,
        embed: embed_time,
        store: store_time,
        publish: publish_stage.finish(),
        total: started.elapsed(),
    };
    Ok(IndexReport {
        index_dir: index_path,
        generation,
        repos: scan.repos.len(),
        totals,
        changes,
        times,
    })
}

fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What a build starts from.
#[derive(Default)]
struct Previous {
    /// The published generation, when this codeq reads it.
    reader: Option<IndexReader>,
    /// Stored vectors the build may reuse: the published generation's, or those of an
    /// index written with an older schema.
    vectors: Option<VectorSource>,
}

/// The published generation and the vectors a build may reuse, after checking their model.
fn previous_generation(
    dir: &IndexDir,
    model: &ModelInfo,
    rebuild: bool,
    progress: &dyn IndexProgress,
) -> Result<Previous> {
    if rebuild {
        return Ok(Previous::default());
    }
    let reader = match dir
        .current()
        .and_then(|g| g.map(|_| dir.reader()).transpose())
    {
        Ok(reader) => reader,
        // Building over an index of a newer codeq would silently downgrade it.
        Err(
            err @ Error::IndexSchema {
                found, expected, ..
            },
        ) if found > expected => {
            return Err(err);
        }
        // An index of an older codeq cannot be queried, but its vectors may still spare
        // the fresh build its embedding (none when they cannot be read either).
        Err(Error::IndexSchema {
            found, expected, ..
        }) => {
            let vectors = match dir.older_schema_vectors() {
                Ok(Some((manifest, source))) => {
                    ensure_same_model(&manifest.model, model)?;
                    Some(source)
                }
                Ok(None) | Err(_) => None,
            };
            let reusing = if vectors.is_some() {
                ", reusing the vectors it holds"
            } else {
                ""
            };
            progress.message(&format!(
                "the index was written with schema {found}; building a fresh one with schema \
                 {expected}{reusing}"
            ));
            return Ok(Previous {
                reader: None,
                vectors,
            });
        }
        // Another user's index is not damaged, and rebuilding it would be the wrong cure.
        Err(err @ Error::IndexPermission { .. }) => return Err(err),
        Err(err) => {
            progress.message(&format!(
                "the current index cannot be read ({err}); building a fresh one"
            ));
            return Ok(Previous::default());
        }
    };
    if let Some(previous) = &reader {
        ensure_same_model(&previous.manifest().model, model)?;
        // A generation is built on only after every file it holds proved intact: one
        // garbled file would otherwise be copied forward into every later generation.
        match dir.verify(previous.generation(), true) {
            Ok(()) => {}
            Err(Error::CorruptIndex { detail, .. }) => {
                progress.message(&format!(
                    "the current generation is damaged ({detail}); building a fresh one"
                ));
                return Ok(Previous::default());
            }
            Err(err) => return Err(err),
        }
    }
    Ok(Previous {
        vectors: reader.as_ref().map(IndexReader::vector_source),
        reader,
    })
}

/// Refuses to build over an index of another model (vectors are never mixed).
fn ensure_same_model(built_with: &ModelInfo, model: &ModelInfo) -> Result<()> {
    if built_with.compatible_with(model) {
        return Ok(());
    }
    Err(built_with.refusal(model))
}

/// What the walk leaves out besides the configured ignores: the index itself, the
/// configuration file and the ACL file (never indexed, so never reported as changes).
fn walk_exclusions(root: &Path, index_path: &Path, acl_file: Option<&Path>) -> Vec<PathBuf> {
    let mut exclude = vec![
        index_path.to_path_buf(),
        root.join(crate::paths::CONFIG_FILE),
    ];
    exclude.extend(acl_file.map(Path::to_path_buf));
    exclude
}

/// The state of each repository that a generation records (id, path, branch, commit,
/// dirty): when it differs, a new generation is published even if no file changed.
type RepoState = (String, String, Option<String>, Option<String>, bool);

/// The report of a run that ended by computing pending vectors.
fn finish_report(
    dir: &IndexDir,
    index_dir: PathBuf,
    scan: &Scan,
    mut changes: Changes,
    embedded: Embedded,
    started: Instant,
    walk: Duration,
) -> Result<IndexReport> {
    let reader = dir.reader()?;
    let manifest = reader.manifest();
    changes.vectors_embedded += embedded.vectors;
    changes.vectors_pending = manifest.totals.pending;
    let mut totals = manifest.totals.clone();
    totals.embedded = changes.vectors_embedded;
    totals.reused = changes.vectors_reused;
    Ok(IndexReport {
        index_dir,
        generation: reader.generation().to_string(),
        repos: scan.repos.len(),
        totals,
        changes,
        times: StageTimes {
            walk,
            embed: embedded.time,
            total: started.elapsed(),
            ..StageTimes::default()
        },
    })
}

/// The manifest of a generation holding `files`.
/// True when the scanned repositories are at the branch, commit and state the manifest
/// records; with a shard, only its repositories of the manifest count.
fn same_repo_states(scan: &Scan, manifest: &Manifest, shard: Option<Shard>) -> bool {
    let mut scanned = repo_states(scan);
    let mut recorded = manifest_states(manifest);
    if let Some(shard) = shard {
        recorded.retain(|state| shard.contains(&state.0));
        scanned.sort();
        recorded.sort();
    }
    scanned == recorded
}

/// The manifest of a new generation: the scanned repositories, then `carried` (records of
/// repositories outside this run's shard, unchanged).
fn new_manifest(
    scan: &Scan,
    carried: &[RepoRecord],
    generation: &str,
    model: &ModelInfo,
    files: &[FileRecord],
    skipped: SkipCounts,
    changes: &Changes,
) -> Manifest {
    let mut per_repo: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut totals = Totals {
        skipped,
        embedded: changes.vectors_embedded,
        reused: changes.vectors_reused,
        ..Totals::default()
    };
    for file in files {
        let counts = per_repo.entry(file.repo.as_str()).or_default();
        counts.0 += 1;
        counts.1 += file.chunks;
        totals.files += 1;
        totals.chunks += file.chunks;
        totals.source_bytes += file.stamp.size;
        totals.lossy_utf8 += usize::from(file.lossy);
    }
    let repos = scan
        .repos
        .iter()
        .map(|repo| {
            let git = repo.git.clone().unwrap_or_default();
            let (files, chunks) = per_repo.get(repo.id.as_str()).copied().unwrap_or_default();
            RepoRecord {
                id: repo.id.clone(),
                path: repo.rel_path.clone(),
                remote_url: git.remote_url,
                branch: git.branch,
                commit: git.head,
                dirty: git.dirty,
                is_git: repo.git.is_some(),
                files,
                chunks,
                ignored_entries: git.ignored_entries,
            }
        })
        .chain(carried.iter().cloned())
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
        model: model.clone(),
        repos,
        totals,
        acl_required: false,
        ann_index: AnnIndex::Off,
        embed_rate: 0.0,
    }
}
