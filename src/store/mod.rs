//! On-disk index: generations of (LanceDB table + tantivy index + manifest), published
//! atomically, with a lock that serialises writers.
//!
//! ```text
//! .codeq/
//!   FORMAT                 marks the folder as a codeq index
//!   CURRENT                name of the published generation
//!   lock                   held by the running `codeq index`
//!   generations/gNNNNNN/   manifest.json, files.json, lance/, tantivy/ (the current one,
//!                          the previous one and a few earlier builds to roll back to)
//!   embed-cache/           vectors of chunks that left the index, by embedding-input hash
//! ```
//! An index on object storage (`s3://BUCKET/PREFIX`, see `remote.rs`) is such a folder too: a
//! mirror on each machine of the generations the bucket publishes.
//! A generation is complete before `CURRENT` names it, so readers never see a partial
//! one and a crash mid-index leaves the previous generation in place. An incremental run
//! starts its generation as a copy of the current one made of hard links (LanceDB and
//! tantivy never modify a file they wrote; they add files and rename new ones into place),
//! then deletes and adds the rows of the files that changed.

mod ann;
mod arrow;
mod cache;
mod files;
mod filter;
mod lexical;
mod manifest;
mod reader;
mod remote;
mod rollback;
mod seal;
mod tokenizer;
mod vectors;
mod writer;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cache::EmbedCache;
pub use files::{FileRecord, FileTable};
pub use filter::{ChunkFilter, PathPattern, RepoScope};
pub use lexical::LexicalHit;
pub use manifest::{Manifest, RepoRecord, Totals};
pub use reader::{IndexReader, LaneCounts};
pub(crate) use remote::unix_now;
pub use remote::{BucketGc, KeptBecause, KeptInBucket, LeasePurpose};
pub use rollback::{KEPT_BUILDS, KeptGeneration, RolledBack};
pub use tokenizer::{MIN_STEM_CHARS, code_tokens, english_stem};
pub use vectors::{AnnIndex, AnnPolicy};
pub use writer::{FinishedGeneration, GenerationWriter};

use crate::chunk::Chunk;
use crate::embed::ModelInfo;
use crate::error::{Error, Result};

/// Path globs matching more paths than this stay regular expressions in the SQL filter.
const MAX_LISTED_PATHS: usize = 2000;
/// Layout version of the index folder; a different one is refused with a rebuild hint.
pub const FORMAT_VERSION: u32 = 1;
/// Version of the chunk table and tantivy schema. 4: vectors in half precision. 5: the
/// chunk table keeps only each chunk's id, repository, path and language beside its
/// vector; text, symbol and lines are stored once, in the lexical lane.
pub const SCHEMA_VERSION: u32 = 5;
/// The oldest schema whose chunk table (and so its vectors) this codeq still reads; from
/// 2 to 3 only the tantivy index changed.
const OLDEST_REUSABLE_SCHEMA: u32 = 2;

const FORMAT_FILE: &str = "FORMAT";
const CURRENT_FILE: &str = "CURRENT";
const LOCK_FILE: &str = "lock";
const GENERATIONS: &str = "generations";
const MANIFEST_FILE: &str = "manifest.json";
const FILES_FILE: &str = "files.json";
/// Held shared by every open reader of a generation; a generation whose file is locked
/// is not deleted.
const READERS_FILE: &str = "readers.lock";
const EMBED_CACHE: &str = "embed-cache";

/// The index folder: generations, the published pointer and the writer lock. For an
/// index on object storage, the local mirror of the bucket, which publishes to it.
#[derive(Debug, Clone)]
pub struct IndexDir {
    path: PathBuf,
    remote: Option<Arc<remote::Remote>>,
    /// On object storage, in the copy a reader keeps: the lease on the generation it
    /// reads, let go with the reader.
    _reading: Option<Arc<remote::Lease>>,
}

/// Held while a writer builds a generation; released on drop (or when the process dies).
#[derive(Debug)]
pub struct IndexLock {
    _file: File,
}

impl IndexDir {
    /// Opens the folder for writing, creating it when absent. A non-empty folder that is
    /// not a codeq index is refused and left untouched. `s3://BUCKET/PREFIX` opens (and
    /// creates) the index there, through this machine's mirror of it.
    pub fn create_or_open(path: &Path) -> Result<IndexDir> {
        if let Some(location) = remote::location_of(path) {
            let remote = remote::Remote::connect(location)?;
            remote.ensure_format(true)?;
            return IndexDir::mirroring(remote);
        }
        if path.exists() {
            let is_ours = path.join(FORMAT_FILE).is_file();
            let is_empty = std::fs::read_dir(path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
                .next()
                .is_none();
            if !is_ours && !is_empty {
                return Err(Error::ForeignIndexDir(path.to_path_buf()));
            }
        }
        std::fs::create_dir_all(path.join(GENERATIONS))
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let dir = IndexDir {
            path: path.to_path_buf(),
            remote: None,
            _reading: None,
        };
        if !path.join(FORMAT_FILE).is_file() {
            write_atomically(&path.join(FORMAT_FILE), format_line().as_bytes())?;
        }
        dir.check_format()?;
        Ok(dir)
    }

    /// Opens an existing index folder for reading; `s3://BUCKET/PREFIX` opens the index
    /// published there, brought into this machine's mirror.
    pub fn open(path: &Path) -> Result<IndexDir> {
        if let Some(location) = remote::location_of(path) {
            let remote = remote::Remote::connect(location)?;
            remote.ensure_format(false)?;
            let dir = IndexDir::mirroring(remote)?;
            return match dir.current()? {
                Some(_) => Ok(dir),
                None => Err(remote::nothing_published(location)),
            };
        }
        if !path.is_dir() {
            return Err(Error::NoIndex(path.to_path_buf()));
        }
        if !path.join(FORMAT_FILE).is_file() {
            return Err(Error::ForeignIndexDir(path.to_path_buf()));
        }
        let dir = IndexDir {
            path: path.to_path_buf(),
            remote: None,
            _reading: None,
        };
        dir.check_format()?;
        Ok(dir)
    }

    /// This machine's mirror of `remote`, brought to the generation the bucket publishes.
    fn mirroring(remote: remote::Remote) -> Result<IndexDir> {
        let local = IndexDir::create_or_open(remote.mirror())?;
        let dir = IndexDir {
            remote: Some(Arc::new(remote)),
            ..local
        };
        dir.refresh()?;
        Ok(dir)
    }

    /// The folder's path (for an index on object storage, its local mirror's).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the index lives, for people: its `s3://` location, or its folder.
    pub fn location(&self) -> String {
        match &self.remote {
            Some(remote) => remote.location().to_string(),
            None => self.path.display().to_string(),
        }
    }

    /// Whether the index lives on object storage (this folder being a mirror of it).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Brings a mirror to the generation its bucket publishes now; true when that changed
    /// the current generation. A local index has nothing to fetch.
    pub fn refresh(&self) -> Result<bool> {
        match &self.remote {
            Some(remote) => remote.pull(self),
            None => Ok(false),
        }
    }

    fn check_format(&self) -> Result<()> {
        let text = std::fs::read_to_string(self.path.join(FORMAT_FILE))
            .map_err(|e| self.read_error(&self.path.join(FORMAT_FILE), e))?;
        let found = parse_format(&text).ok_or_else(|| Error::ForeignIndexDir(self.path.clone()))?;
        if found != FORMAT_VERSION {
            return Err(Error::IndexFormat {
                dir: self.path.clone(),
                found,
                expected: FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// Takes the writer lock without waiting; a held lock is [`Error::IndexLocked`].
    pub fn lock(&self) -> Result<IndexLock> {
        let file = self.lock_file(LOCK_FILE)?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            return Err(Error::IndexLocked(self.path.clone()));
        }
        Ok(IndexLock { _file: file })
    }

    /// Takes the writer lock, waiting for a run that holds it to finish; `waiting` is
    /// called first when it has to wait. Runs on one index are thereby serialized.
    pub fn lock_waiting(&self, waiting: impl FnOnce()) -> Result<IndexLock> {
        let file = self.lock_file(LOCK_FILE)?;
        if flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            return Ok(IndexLock { _file: file });
        }
        waiting();
        if !flock(&file, libc::LOCK_EX) {
            return Err(Error::IndexLocked(self.path.clone()));
        }
        Ok(IndexLock { _file: file })
    }

    /// The lock file `name` of the folder, created when absent.
    fn lock_file(&self, name: &str) -> Result<File> {
        let path = self.path.join(name);
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => self.read_error(&path, e),
                _ => Error::io(format!("cannot open {}", path.display()), e),
            })
    }

    /// Name of the published generation, if any.
    pub fn current(&self) -> Result<Option<String>> {
        match std::fs::read_to_string(self.path.join(CURRENT_FILE)) {
            Ok(text) => {
                let name = text.trim().to_string();
                if !is_generation_name(&name) {
                    return Err(self.corrupt(format!("CURRENT names {name:?}")));
                }
                Ok(Some(name))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.read_error(&self.path.join(CURRENT_FILE), e)),
        }
    }

    /// Loads the manifest of a generation, checking that every place it points at stays
    /// inside the indexed root: a manifest naming a repository at `../elsewhere` or
    /// `/etc` is damaged (or crafted) and is refused before anything reads through it.
    pub fn manifest(&self, generation: &str) -> Result<Manifest> {
        let path = self.generation_path(generation).join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| self.read_error(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| self.corrupt(format!("{}: {e}", path.display())))?;
        manifest
            .check_paths()
            .map_err(|detail| self.corrupt(format!("{}: {detail}", path.display())))?;
        Ok(manifest)
    }

    /// Whether the published index was built under an access-control list, read from the
    /// current generation's manifest whatever its schema. When that manifest (or CURRENT)
    /// cannot be read, the newest generation whose manifest can decides; when a generation
    /// exists but none can be read, the index is damaged and a run without an ACL must say
    /// so explicitly (`--rebuild`, `--drop-acl`): an index never loses its ACL by being
    /// unreadable.
    pub fn acl_requirement(&self) -> Result<AclRequirement> {
        let current = self.current().ok().flatten();
        let mut names = self.generation_names()?;
        names.reverse();
        let candidates: Vec<&String> = current.iter().chain(names.iter()).collect();
        let mut unreadable = (current.is_none() && self.path.join(CURRENT_FILE).exists())
            .then(|| "CURRENT cannot be read".to_string());
        for name in candidates {
            let path = self.generation_path(name).join(MANIFEST_FILE);
            let bytes = match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(self.read_error(&path, e));
                }
                read => read,
            };
            let parsed = bytes.map_err(|e| e.to_string()).and_then(|bytes| {
                serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| e.to_string())
            });
            match parsed {
                Ok(manifest) => {
                    return Ok(match manifest["acl_required"].as_bool() {
                        Some(true) => AclRequirement::Required,
                        _ => AclRequirement::None,
                    });
                }
                Err(e) if path.exists() || Some(name) == current.as_ref() => {
                    unreadable.get_or_insert(format!("{}: {e}", path.display()));
                }
                Err(_) => {}
            }
        }
        Ok(unreadable.map_or(AclRequirement::None, AclRequirement::Unknown))
    }

    /// The file table of a generation; `None` for generations written before codeq kept
    /// one, or when it cannot be read (the next run then re-reads every file).
    pub fn file_table(&self, generation: &str) -> Option<FileTable> {
        let path = self.generation_path(generation).join(FILES_FILE);
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Opens the embedding cache for `model` (a cache of another model is emptied). Needs
    /// the writer lock.
    pub fn embed_cache(&self, _lock: &IndexLock, model: &ModelInfo) -> Result<EmbedCache> {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(EmbedCache::open(&self.path.join(EMBED_CACHE), model, run))
    }

    /// A file of the index that cannot be read: a permission problem is named as one
    /// (rebuilding would be the wrong advice), anything else means the index is damaged.
    fn read_error(&self, path: &Path, err: std::io::Error) -> Error {
        if err.kind() == std::io::ErrorKind::PermissionDenied {
            return Error::IndexPermission {
                path: path.to_path_buf(),
            };
        }
        self.corrupt(format!("{}: {err}", path.display()))
    }

    /// Checks the published generation `generation` against its seal: every file
    /// present, of its size and, with `checksums`, of its content. Damage is
    /// [`Error::CorruptIndex`], a file this user may not read [`Error::IndexPermission`].
    pub fn verify(&self, generation: &str, checksums: bool) -> Result<()> {
        seal::check(&self.generation_path(generation), checksums)
            .map_err(|damage| self.damaged(generation, damage.detail()))
    }

    /// The error for a generation that failed to open or answer: a permission problem
    /// when one of its files cannot be opened by this user, damage otherwise.
    fn damaged(&self, generation: &str, detail: String) -> Error {
        let folder = self.generation_path(generation);
        match seal::first_unreadable(&folder) {
            Some(path) => Error::IndexPermission { path },
            // The storage libraries report a lock or data file they may not open only in
            // their error's text.
            None if detail.contains("Permission denied") || detail.contains("PermissionDenied") => {
                Error::IndexPermission { path: folder }
            }
            None => self.corrupt(detail),
        }
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::CorruptIndex {
            dir: self.path.clone(),
            detail,
        }
    }

    fn generation_path(&self, generation: &str) -> PathBuf {
        self.path.join(GENERATIONS).join(generation)
    }

    fn generation_names(&self) -> Result<Vec<String>> {
        let dir = self.path.join(GENERATIONS);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| is_generation_name(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The current generation's manifest and vectors when it was written with an older
    /// schema that this codeq no longer queries but whose chunk table it reads, so that
    /// rebuilding it embeds nothing again; `None` otherwise.
    pub fn older_schema_vectors(&self) -> Result<Option<(Manifest, VectorSource)>> {
        let Some(generation) = self.current()? else {
            return Ok(None);
        };
        let manifest = self.manifest(&generation)?;
        if !(OLDEST_REUSABLE_SCHEMA..SCHEMA_VERSION).contains(&manifest.schema_version) {
            return Ok(None);
        }
        let lance = self.generation_path(&generation).join("lance");
        let reader = vectors::VectorReader::open(&lance, manifest.ann_index)?;
        // A table that cannot even count its rows has nothing to give.
        reader.count(&ChunkFilter::everything())?;
        Ok(Some((manifest, VectorSource(reader.chunk_table()))))
    }

    /// Starts a new, unpublished generation: empty, or a copy of `base.copy_of`. Vectors
    /// of `base.reuse` may be reused. Needs the writer lock.
    pub fn begin_generation(
        &self,
        _lock: &IndexLock,
        model: &ModelInfo,
        base: GenerationBase<'_>,
    ) -> Result<GenerationWriter> {
        let next = self
            .generation_names()?
            .last()
            .and_then(|n| generation_number(n))
            .map_or(1, |n| n + 1);
        let name = match &self.remote {
            Some(remote) => remote.claim(next)?,
            None => generation_name(next),
        };
        let path = self.generation_path(&name);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| Error::io(format!("cannot clear {}", path.display()), e))?;
        }
        match base.copy_of {
            Some(original) => link_tree(&self.generation_path(original.generation()), &path)?,
            None => std::fs::create_dir_all(&path)
                .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?,
        }
        GenerationWriter::create(name, path, model, base)
    }

    /// Makes a finished generation the current one, atomically, and removes generations
    /// older than the previous one (kept for readers that opened it just before) except
    /// the rollback points ([`KEPT_BUILDS`] earlier complete builds). On object storage
    /// the generation is uploaded and made the bucket's current one first; when another
    /// indexer published meanwhile, nothing is published ([`Error::RemoteConflict`]).
    pub fn publish(&self, _lock: &IndexLock, finished: FinishedGeneration) -> Result<()> {
        let path = self.generation_path(&finished.name);
        let manifest = serde_json::to_vec_pretty(&finished.manifest).map_err(Error::store)?;
        let files = serde_json::to_vec(&finished.files).map_err(Error::store)?;
        write_atomically(&path.join(FILES_FILE), &files)?;
        let previous = self.current().ok().flatten();
        let base = previous.as_ref().map(|name| self.generation_path(name));
        seal::write(&path, base.as_deref())?;
        write_atomically(&path.join(MANIFEST_FILE), &manifest)?;
        sync_tree(&path)?;
        let _pulls_wait = match &self.remote {
            Some(remote) => {
                let sync = remote::sync_lock(self)?;
                remote.push(self, &finished.name)?;
                Some(sync)
            }
            None => None,
        };
        self.set_current(&finished.name)?;
        self.prune(&finished.name, previous.as_deref())
    }

    /// Points CURRENT at `generation`, atomically.
    fn set_current(&self, generation: &str) -> Result<()> {
        write_atomically(
            &self.path.join(CURRENT_FILE),
            format!("{generation}\n").as_bytes(),
        )
    }

    /// Removes every generation but `newest`, `previous` and the rollback points, unless
    /// a reader has it open.
    fn prune(&self, newest: &str, previous: Option<&str>) -> Result<()> {
        let kept = self.rollback_points(newest, previous);
        for name in self.generation_names()? {
            if name != newest && Some(name.as_str()) != previous && !kept.contains(&name) {
                self.remove_unless_read(&name);
            }
        }
        Ok(())
    }

    /// Deletes a generation unless a reader (a TUI, an MCP server, a query in flight)
    /// still has it open; a later publish or `codeq gc` deletes it then. Returns whether
    /// it was deleted.
    fn remove_unless_read(&self, generation: &str) -> bool {
        let path = self.generation_path(generation);
        let in_use = File::open(path.join(READERS_FILE))
            .is_ok_and(|file| !flock(&file, libc::LOCK_EX | libc::LOCK_NB));
        !in_use && std::fs::remove_dir_all(&path).is_ok()
    }

    /// Opens the published generation for queries. A folder with published generations
    /// but no CURRENT is damaged; one without any was never published to.
    pub fn reader(&self) -> Result<IndexReader> {
        let Some(generation) = self.current()? else {
            let published = self
                .generation_names()?
                .iter()
                .any(|name| self.generation_path(name).join(MANIFEST_FILE).exists());
            return Err(match published {
                true => {
                    self.corrupt("CURRENT, which names the published generation, is missing".into())
                }
                false => Error::NoIndex(self.path.clone()),
            });
        };
        match &self.remote {
            // The lease lives in the reader's copy of the folder, as long as the reader.
            Some(remote) => {
                let leased = IndexDir {
                    _reading: Some(Arc::new(
                        remote.lease(&generation, remote::LeasePurpose::Read),
                    )),
                    ..self.clone()
                };
                IndexReader::open(&leased, &generation)
            }
            None => IndexReader::open(self, &generation),
        }
    }

    /// Links the current generation's vector tables into `out` and builds `ann` there from
    /// scratch in place of their vector index: the final publish's index build, alone in a
    /// process (`codeq bench ann-build`). Returns the rows indexed.
    pub fn rebuild_ann_in(&self, out: &Path, ann: AnnPolicy) -> Result<usize> {
        let generation = self
            .current()?
            .ok_or_else(|| Error::NoIndex(self.path.clone()))?;
        let lance = out.join("lance");
        link_tree(&self.generation_path(&generation).join("lance"), &lance)?;
        vectors::rebuild_ann(&lance, ann)
    }

    /// Bytes on disk of the whole index folder (a file linked into two generations
    /// counts once).
    pub fn size_on_disk(&self) -> u64 {
        tree_size(&self.path, &mut HashSet::new())
    }

    /// Bytes on disk by part.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut seen = HashSet::new();
        let current = self.current()?;
        let mut usage = DiskUsage::default();
        if let Some(name) = &current {
            usage.current_generation = tree_size(&self.generation_path(name), &mut seen);
        }
        for name in self.generation_names()? {
            if Some(&name) != current.as_ref() {
                usage.older_generations += tree_size(&self.generation_path(&name), &mut seen);
            }
        }
        usage.embed_cache = tree_size(&self.path.join(EMBED_CACHE), &mut seen);
        usage.total = tree_size(&self.path, &mut seen)
            + usage.current_generation
            + usage.older_generations
            + usage.embed_cache;
        Ok(usage)
    }

    /// Removes every generation but the current one and those a reader still has open,
    /// and, with `cache`, empties the embedding cache. For an index on object storage,
    /// this cleans this machine's mirror; [`IndexDir::collect_bucket_garbage`] cleans the
    /// bucket. Returns the bytes freed. Needs the writer lock.
    pub fn collect_garbage(&self, _lock: &IndexLock, cache: bool) -> Result<u64> {
        let before = self.size_on_disk();
        let current = self.current()?;
        for name in self.generation_names()? {
            if Some(&name) != current.as_ref() {
                self.remove_unless_read(&name);
            }
        }
        let cache_dir = self.path.join(EMBED_CACHE);
        if cache && cache_dir.exists() {
            std::fs::remove_dir_all(&cache_dir)
                .map_err(|e| Error::io(format!("cannot remove {}", cache_dir.display()), e))?;
        }
        Ok(before.saturating_sub(self.size_on_disk()))
    }

    /// For an index on object storage, deletes from the bucket the generations nothing
    /// keeps (neither the current one, the previous one, a rollback point, a live reader's
    /// or writer's lease, nor a recent write) and every object no kept listing references;
    /// `None` for a local index. Needs the writer lock (of this machine: writers elsewhere
    /// are kept by their leases and the grace period).
    pub fn collect_bucket_garbage(&self, _lock: &IndexLock) -> Result<Option<BucketGc>> {
        match &self.remote {
            Some(remote) => remote.collect_garbage().map(Some),
            None => Ok(None),
        }
    }
}

/// Whether runs and queries of an index need an access-control list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRequirement {
    /// Built without one (or nothing was published yet).
    None,
    /// Built under one: nothing may run without it.
    Required,
    /// No manifest can be read to tell (why, in words): treated as required.
    Unknown(String),
}

/// The state of a generation's storage that compaction and merging keep in check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Upkeep {
    /// Versions of the LanceDB table still on disk (older ones are pruned every run).
    pub table_versions: usize,
    /// LanceDB fragments (compacted when small ones pile up).
    pub fragments: usize,
    /// Rows deleted from the table but still in its files until compaction.
    pub deleted_rows: usize,
    /// tantivy segments (merged as they accumulate).
    pub segments: usize,
    /// Documents deleted from tantivy but still in its segments until a merge.
    pub deleted_docs: usize,
}

/// Bytes on disk of an index folder by part; a file linked into several generations
/// counts once, with the current generation first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskUsage {
    /// The published generation.
    pub current_generation: u64,
    /// Files of other generations that the current one does not share: the previous one
    /// (kept for readers) and any left by interrupted runs. `codeq gc` frees them.
    pub older_generations: u64,
    /// The embedding cache of evicted vectors.
    pub embed_cache: u64,
    /// The whole folder.
    pub total: u64,
}

/// What a new generation starts from.
#[derive(Clone, Default)]
pub struct GenerationBase<'a> {
    /// A published generation to copy and change; `None` starts empty.
    pub copy_of: Option<&'a IndexReader>,
    /// Stored vectors that may be reused by embedding-input hash.
    pub reuse: Option<VectorSource>,
}

/// A generation's stored vectors, for a new generation to reuse by embedding-input hash
/// (the hash covers the model, so another model's vectors never match).
#[derive(Clone)]
pub struct VectorSource(lancedb::Table);

/// Files of a generation that are not copied into the next one: written anew at publish,
/// or tantivy's lock files (a lock is per writer, not per index state).
fn is_per_generation(name: &str) -> bool {
    name == FILES_FILE || seal::is_unsealed(name)
}

/// Recreates the folders of `from` in `to` and hard-links every file (copies when the
/// file system refuses links).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)
        .map_err(|e| Error::io(format!("cannot create {}", to.display()), e))?;
    let entries = std::fs::read_dir(from)
        .map_err(|e| Error::io(format!("cannot read {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot read {}", from.display()), e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("cannot read {}", source.display()), e))?;
        if kind.is_dir() {
            link_tree(&source, &target)?;
        } else if kind.is_file() && !is_per_generation(&entry.file_name().to_string_lossy()) {
            std::fs::hard_link(&source, &target)
                .or_else(|_| std::fs::copy(&source, &target).map(|_| ()))
                .map_err(|e| Error::io(format!("cannot copy {}", source.display()), e))?;
        }
    }
    Ok(())
}

/// `flock(2)` on a file we own; true when the lock was taken.
fn flock(file: &File, operation: i32) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is shared with the call.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

fn is_generation_name(name: &str) -> bool {
    name.len() == 7 && name.starts_with('g') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The name of the generation numbered `n`.
fn generation_name(n: u64) -> String {
    format!("g{n:06}")
}

/// The number of the generation `name`.
fn generation_number(name: &str) -> Option<u64> {
    name.strip_prefix('g')?.parse().ok()
}

/// The content of FORMAT.
fn format_line() -> String {
    format!("codeq-index {FORMAT_VERSION}\n")
}

/// The format version a FORMAT file names, if it is one.
fn parse_format(text: &str) -> Option<u32> {
    text.trim().strip_prefix("codeq-index ")?.parse().ok()
}

/// Writes a file so that readers see either the old or the new content, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file =
        File::create(&tmp).map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format!("cannot replace {}", path.display()), e))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// fsyncs every file and folder below `root`, so a published generation survives power loss.
fn sync_tree(root: &Path) -> Result<()> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| Error::io(format!("cannot read {}", root.display()), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else if let Ok(file) = File::open(&path) {
            file.sync_all()
                .map_err(|e| Error::io(format!("cannot sync {}", path.display()), e))?;
        }
    }
    if let Ok(dir) = File::open(root) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn tree_size(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if seen.insert((meta.dev(), meta.ino())) {
            meta.len()
        } else {
            0
        };
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path(), seen)).sum())
        .unwrap_or(0)
}

/// Bytes of LanceDB index pages (B-tree, ANN) kept in memory, shared by every table the
/// process opens. LanceDB's default is 6 GiB per connection, and the indexer opens new
/// connections for every generation it writes.
const LANCE_INDEX_CACHE: usize = 512 * 1024 * 1024;
/// Bytes of LanceDB metadata (manifests, fragment and file metadata) kept in memory.
const LANCE_METADATA_CACHE: usize = 128 * 1024 * 1024;

/// The process's one LanceDB session: bounded caches shared by all connections.
fn session() -> Arc<lancedb::Session> {
    static SESSION: std::sync::OnceLock<Arc<lancedb::Session>> = std::sync::OnceLock::new();
    Arc::clone(SESSION.get_or_init(|| {
        Arc::new(lancedb::Session::new(
            LANCE_INDEX_CACHE,
            LANCE_METADATA_CACHE,
            Arc::new(lancedb::ObjectStoreRegistry::default()),
        ))
    }))
}

/// Opens the LanceDB database in folder `uri` with the process's one session.
async fn connect(uri: &str) -> lancedb::Result<lancedb::Connection> {
    lancedb::connect(uri).session(session()).execute().await
}
