//! An index on object storage (`--index-dir s3://BUCKET/PREFIX`, `az://CONTAINER/PREFIX` or
//! `gs://BUCKET/PREFIX`; see `provider.rs`): the bucket
//! holds the published generations, and each machine keeps a mirror of the generation it
//! reads or builds on, an ordinary index folder in `$CODEQ_HOME/remote/<hash>/`.
//!
//! ```text
//! PREFIX/FORMAT                             "codeq-index 1", written once
//! PREFIX/CURRENT                            the published generation: the one key ever
//!                                           replaced, and only by compare-and-swap
//! PREFIX/generations/gNNNNNN/CLAIM          written first, if absent: claims the name
//! PREFIX/generations/gNNNNNN/files/REL      the files this generation was the first to have
//! PREFIX/generations/gNNNNNN/listing.json   its seal, its manifest and the key of every
//!                                           file (an unchanged one keeps the key of the
//!                                           generation that first uploaded it)
//! PREFIX/generations/gNNNNNN/DELETING       `codeq gc` is deleting it: no rollback to it
//! PREFIX/leases/gNNNNNN-PURPOSE-HOST-….json a process reads (or writes) that generation
//!                                           until `expires_unix`: `codeq gc` keeps it
//! ```
//! A reader pulls the generation CURRENT names into its mirror: files its previous
//! generation has unchanged are linked, the others downloaded and checked against the
//! seal, and the mirror is then queried as a local index. A writer builds and seals a
//! generation in its mirror as for a local index, uploads the files that changed and the
//! listing, then replaces CURRENT only if it still names the generation the build
//! started from: of two writers, the later one is told to run again, and nobody's
//! generation is half-published. Both lanes (LanceDB and tantivy files) travel under the
//! one pointer, so a reader never mixes generations.
//!
//! Every process that opens a generation, and every writer for the generation it claimed,
//! holds a **lease** on it in the bucket, renewed in the background and deleted when let
//! go; `codeq gc` keeps leased generations, recent ones and the rollback points, and
//! deletes every other object below `generations/` that no kept listing references.
//!
//! Credentials and the endpoint come from each platform's standard variables only
//! (`AWS_*`, `AZURE_*`, `GOOGLE_*`); they are never printed or stored (a client's builder,
//! whose debug output holds the secret, is never formatted).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult,
    UpdateVersion,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::manifest::is_plain_relative;
use super::seal::{self, SEAL_FILE, Seal, SealedFile};
use super::{
    CURRENT_FILE, FORMAT_FILE, GENERATIONS, IndexDir, KEPT_BUILDS, MANIFEST_FILE, Manifest, flock,
    format_line, generation_name, generation_number, is_generation_name, parse_format, sync_tree,
    write_atomically,
};
use crate::error::{Error, Result};
use crate::runtime::block_on;

mod gc;
mod lease;
mod listing;
mod provider;

pub use gc::{BucketGc, KeptBecause, KeptInBucket};
pub(in crate::store) use lease::Lease;
pub use lease::LeasePurpose;
use lease::hostname;
use listing::Listing;
pub(super) use provider::location_of;
use provider::{Provider, parse_location};

const LISTING_FILE: &str = "listing.json";
const CLAIM_FILE: &str = "CLAIM";
/// Marks a generation `codeq gc` is deleting (see [`Remote::hold_for_rollback`]).
const DELETING_FILE: &str = "DELETING";
/// Layout version of `listing.json`.
const LISTING_FORMAT: u32 = 1;
/// Serializes pulls into one mirror, and a pull with a publish.
const SYNC_LOCK: &str = "sync.lock";
/// Files uploaded or downloaded at once.
const TRANSFERS: usize = 8;
/// Names tried past the newest one when other runs have claimed them.
const MAX_CLAIMS: u64 = 100;

/// The error for a location where no generation was ever published.
pub(super) fn nothing_published(location: &str) -> Error {
    remote_error(
        location,
        format!(
            "no codeq index is published here: run `codeq index ROOT --index-dir {location}` first"
        ),
    )
}

/// The bucket's CURRENT as this process last read or wrote it.
#[derive(Debug, Clone)]
struct Pointer {
    generation: String,
    /// What the compare-and-swap matches: the ETag (S3, Azure) or the object's version
    /// (Google Cloud Storage's generation number).
    version: UpdateVersion,
}

/// An index in a bucket, and where this machine mirrors it.
pub(super) struct Remote {
    location: String,
    provider: Provider,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    mirror: PathBuf,
    /// What a publish from this process replaces: the generation its build started from.
    pointer: Mutex<Option<Pointer>>,
    /// The listing this process last read or wrote: a listing never changes once written,
    /// and the next publish builds on it.
    last_listing: Mutex<Option<Arc<Listing>>>,
    /// The read lease on the generation this process last pulled or published.
    serving: Mutex<Option<Lease>>,
    /// The write lease on the generation this process claimed and has not published yet.
    claimed: Mutex<Option<Lease>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Sets up the client for `location` (`s3://`, `az://` or `gs://BUCKET/PREFIX`) from
    /// its platform's standard variables. Nothing is requested yet.
    pub(super) fn connect(location: &str) -> Result<Remote> {
        let (provider, bucket, prefix) = parse_location(location)?;
        let connected = provider
            .connect(bucket)
            .map_err(|detail| remote_error(location, detail))?;
        let id = crate::hash::sha256_parts(&[
            connected.service.as_bytes(),
            bucket.as_bytes(),
            prefix.as_bytes(),
        ]);
        Ok(Remote {
            location: location.trim_end_matches('/').to_string(),
            provider,
            store: connected.store,
            prefix: Key::from(prefix),
            mirror: crate::paths::codeq_home().join("remote").join(&id[..16]),
            pointer: Mutex::new(None),
            last_listing: Mutex::new(None),
            serving: Mutex::new(None),
            claimed: Mutex::new(None),
        })
    }

    /// `s3://BUCKET/PREFIX` (or `az://`, `gs://`).
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    /// This machine's mirror folder of the index.
    pub(super) fn mirror(&self) -> &Path {
        &self.mirror
    }

    /// Checks the index's FORMAT; with `create`, writes it when the prefix holds nothing
    /// yet (objects that are not an index are refused and left untouched).
    pub(super) fn ensure_format(&self, create: bool) -> Result<()> {
        let key = self.key(FORMAT_FILE);
        let found = match self.get(&key)? {
            Some((bytes, _)) => bytes,
            None if !create => return Err(nothing_published(&self.location)),
            None => {
                let listed = block_on(self.store.list(Some(&self.prefix)).next());
                if let Some(object) = listed {
                    object.map_err(|e| self.failed(&e))?;
                    // Another indexer may have started this index since the first read
                    // (shard workers starting together): then its FORMAT is there now.
                    match self.get(&key)? {
                        Some((bytes, _)) => bytes,
                        None => {
                            return Err(self.error(
                                "holds objects that are not a codeq index: choose an empty prefix (nothing was changed)",
                            ));
                        }
                    }
                } else {
                    match self.put(&key, format_line().into_bytes(), PutMode::Create) {
                        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                        Err(e) => return Err(self.failed(&e)),
                    }
                    self.get(&key)?.map(|(bytes, _)| bytes).unwrap_or_default()
                }
            }
        };
        let foreign = || {
            self.error("holds a FORMAT that is not a codeq index's: choose another prefix (nothing was changed)")
        };
        let text = String::from_utf8(found).map_err(|_| foreign())?;
        match parse_format(&text).ok_or_else(foreign)? {
            found if found == super::FORMAT_VERSION => Ok(()),
            found => Err(Error::IndexFormat {
                dir: PathBuf::from(&self.location),
                found,
                expected: super::FORMAT_VERSION,
            }),
        }
    }

    /// Brings `mirror` to the generation the bucket's CURRENT names: files of the
    /// mirror's current generation with the same seal entry are linked, the others
    /// downloaded and checked. True when the mirror's current generation changed.
    /// Older generations go as after a publish, unless a writer on this machine runs.
    pub(super) fn pull(&self, mirror: &IndexDir) -> Result<bool> {
        let _sync = sync_lock(mirror)?;
        let pointer = self.read_pointer()?;
        let local = mirror.current()?;
        if let Some(p) = &pointer {
            // Before anything is fetched, so that gc leaves what is being downloaded.
            self.serve(&p.generation);
        }
        let changed = match &pointer {
            Some(p) if local.as_deref() != Some(p.generation.as_str()) => {
                self.install(mirror, &p.generation, local.as_deref())?;
                true
            }
            _ => false,
        };
        // Only once the mirror holds it: a publish replaces what the mirror builds on.
        *self.pointer.lock().unwrap_or_else(PoisonError::into_inner) = pointer;
        Ok(changed)
    }

    /// Makes `generation` the mirror's current one, recreating it unless the mirror has
    /// it as sealed (its own publish), then removes older ones as a publish does.
    fn install(&self, mirror: &IndexDir, generation: &str, local: Option<&str>) -> Result<()> {
        let listing = self.listing(generation)?;
        let folder = mirror.generation_path(generation);
        let complete = folder.join(MANIFEST_FILE).is_file()
            && seal::read(&folder).ok().flatten().as_ref() == Some(&listing.seal);
        if !complete {
            self.materialize(mirror, &listing, local)?;
        }
        mirror.set_current(generation)?;
        match mirror.lock() {
            Ok(_writer) => mirror.prune(generation, local),
            // A writer on this machine builds a generation that must not go.
            Err(_) => Ok(()),
        }
    }

    /// Claims the name of a new generation in the bucket: the first free one from `next`
    /// on, and past the published one.
    pub(super) fn claim(&self, next: u64) -> Result<String> {
        let published = self
            .pointer()
            .and_then(|p| generation_number(&p.generation))
            .map_or(1, |n| n + 1);
        let first = next.max(published);
        let claim = serde_json::json!({
            "host": hostname(),
            "pid": std::process::id(),
            "started_unix": unix_now(),
        });
        let body = serde_json::to_vec(&claim).map_err(Error::store)?;
        for name in (first..first + MAX_CLAIMS).map(generation_name) {
            let key = self.key(&format!("{GENERATIONS}/{name}/{CLAIM_FILE}"));
            match self.put(&key, body.clone(), PutMode::Create) {
                Ok(_) => {
                    // Kept from gc while this process builds and uploads it, however long.
                    let lease = self.lease(&name, LeasePurpose::Write);
                    *self.claimed.lock().unwrap_or_else(PoisonError::into_inner) = Some(lease);
                    return Ok(name);
                }
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(self.failed(&e)),
            }
        }
        Err(self.error(format!(
            "the generation names {} to {} are all claimed by other runs: wait for them to finish",
            generation_name(first),
            generation_name(first + MAX_CLAIMS - 1)
        )))
    }

    /// Publishes the sealed generation `generation` of `mirror`: uploads the files the
    /// generation this process started from does not have alike, then the listing, then
    /// makes it the bucket's CURRENT if CURRENT still names that generation.
    pub(super) fn push(&self, mirror: &IndexDir, generation: &str) -> Result<()> {
        let folder = mirror.generation_path(generation);
        let sealed = seal::read(&folder)
            .map_err(|damage| mirror.damaged(generation, damage.detail()))?
            .ok_or_else(|| {
                Error::Internal("a generation was pushed before it was sealed".into())
            })?;
        let base = match self.pointer() {
            Some(pointer) => Some(self.listing(&pointer.generation)?),
            None => None,
        };
        let mut keys = BTreeMap::new();
        let mut uploads = Vec::new();
        for (rel, entry) in &sealed.files {
            let kept = base
                .as_ref()
                .filter(|base| base.seal.files.get(rel) == Some(entry))
                .and_then(|base| base.keys.get(rel));
            let key = match kept {
                Some(key) => key.clone(),
                None => {
                    let key = format!("{GENERATIONS}/{generation}/files/{rel}");
                    uploads.push((folder.join(rel), self.key(&key)));
                    key
                }
            };
            keys.insert(rel.clone(), key);
        }
        let uploaded = uploads.len();
        block_on(
            futures::stream::iter(uploads)
                .map(|(file, key)| self.upload(file, key))
                .buffer_unordered(TRANSFERS)
                .try_collect::<Vec<()>>(),
        )?;
        let manifest_path = folder.join(MANIFEST_FILE);
        let manifest = std::fs::read(&manifest_path)
            .map_err(|e| Error::io(format!("cannot read {}", manifest_path.display()), e))
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(Error::store))?;
        let listing = Arc::new(Listing {
            format: LISTING_FORMAT,
            generation: generation.to_string(),
            dirs: seal::folders_below(&folder)
                .map_err(|e| Error::io(format!("cannot list {}", folder.display()), e))?,
            seal: sealed,
            keys,
            manifest,
        });
        let body = serde_json::to_vec(&*listing).map_err(Error::store)?;
        self.put(&self.listing_key(generation), body, PutMode::Create)
            .map_err(|e| self.failed(&e))?;
        self.remember(Arc::clone(&listing));
        tracing::info!(
            generation,
            uploaded,
            files = listing.seal.files.len(),
            "uploaded a generation"
        );
        self.swap_current(generation)?;
        self.serve(generation);
        *self.claimed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    /// Every generation published to the bucket (one with a listing: a claim without one
    /// was never published), oldest first, with its manifest.
    pub(super) fn published_generations(&self) -> Result<Vec<(String, Manifest)>> {
        let below = self.key(GENERATIONS);
        let listed =
            block_on(self.store.list_with_delimiter(Some(&below))).map_err(|e| self.failed(&e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|folder| folder.filename().map(str::to_string))
            .filter(|name| is_generation_name(name))
            .collect();
        names.sort();
        let mut published = Vec::new();
        for name in names {
            let Some(listing) = self.read_listing(&name)? else {
                continue;
            };
            let manifest = serde_json::from_value(listing.manifest)
                .map_err(|e| self.damaged(format!("{name}/{LISTING_FILE}: its manifest: {e}")))?;
            published.push((name, manifest));
        }
        Ok(published)
    }

    /// Recreates the published `generation` in `mirror` beside its current one, which
    /// stays current (a rollback then republishes it).
    pub(super) fn fetch_generation(&self, mirror: &IndexDir, generation: &str) -> Result<()> {
        let _sync = sync_lock(mirror)?;
        let listing = self.listing(generation)?;
        let local = mirror.current()?;
        self.materialize(mirror, &listing, local.as_deref())
    }

    /// Leases `generation` for a rollback to it, then checks that the bucket still has it
    /// and that no `codeq gc` is deleting it. gc marks what it will delete before its last
    /// reading of the leases, and a rollback leases before it looks for the mark: one of
    /// the two always sees the other, so gc never deletes the generation a rollback swaps
    /// CURRENT to.
    pub(in crate::store) fn hold_for_rollback(&self, generation: &str) -> Result<Lease> {
        let lease = self.lease(generation, LeasePurpose::Read);
        if self.get(&self.deleting_key(generation))?.is_some() {
            return Err(Error::Rollback(format!(
                "`codeq gc` is deleting {generation} from {} right now; choose a generation it keeps (`codeq status` lists them)",
                self.location
            )));
        }
        let Some(listing) = self.read_listing(generation)? else {
            return Err(Error::Rollback(format!(
                "{generation} is no longer in {} (`codeq gc` collected it there); choose a generation the bucket still has, or rebuild",
                self.location
            )));
        };
        // The fetch and the republish that follow read it from here.
        self.remember(Arc::new(listing));
        Ok(lease)
    }

    /// Makes `generation`, held by [`Remote::hold_for_rollback`], the bucket's CURRENT
    /// again, if no other run published since this process read CURRENT, and if the bucket
    /// has it as this machine keeps it (`codeq gc` may have collected it, and a later writer
    /// reused its name).
    pub(in crate::store) fn republish(&self, generation: &str, held: Lease) -> Result<()> {
        let listing = self.listing(generation)?;
        let local = self.mirror.join(GENERATIONS).join(generation);
        if seal::read(&local).ok().flatten().as_ref() != Some(&listing.seal) {
            return Err(Error::Rollback(format!(
                "the {generation} in {} is not the one this machine keeps (it was collected and its name used again); choose another generation",
                self.location
            )));
        }
        self.swap_current(generation)?;
        *self.serving.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
        Ok(())
    }

    /// Holds the read lease of `generation` as this process's served one (unless it
    /// already does), letting the previous one go.
    fn serve(&self, generation: &str) {
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        if serving.as_ref().map(Lease::generation) != Some(generation) {
            *serving = Some(self.lease(generation, LeasePurpose::Read));
        }
    }

    /// Replaces CURRENT by `generation` if it still is what this process read or wrote
    /// (created if there was none).
    fn swap_current(&self, generation: &str) -> Result<()> {
        let mode = match self.pointer() {
            Some(Pointer { version, .. }) => PutMode::Update(version),
            None => PutMode::Create,
        };
        let body = format!("{generation}\n").into_bytes();
        match self.put(&self.key(CURRENT_FILE), body, mode) {
            Ok(result) => {
                *self.pointer.lock().unwrap_or_else(PoisonError::into_inner) = Some(Pointer {
                    generation: generation.to_string(),
                    version: UpdateVersion {
                        e_tag: result.e_tag,
                        version: result.version,
                    },
                });
                Ok(())
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Err(Error::RemoteConflict {
                location: self.location.clone(),
                published: self
                    .read_pointer()?
                    .map_or_else(|| "another generation".into(), |p| p.generation),
                mine: generation.to_string(),
            }),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// Recreates `listing`'s generation in `mirror`, in a folder that listings of
    /// generations ignore until it is complete.
    fn materialize(&self, mirror: &IndexDir, listing: &Listing, base: Option<&str>) -> Result<()> {
        let name = &listing.generation;
        let part = mirror.generation_path(&format!("{name}.part"));
        let io =
            |what: &str, path: &Path, e| Error::io(format!("cannot {what} {}", path.display()), e);
        if part.exists() {
            std::fs::remove_dir_all(&part).map_err(|e| io("clear", &part, e))?;
        }
        for dir in std::iter::once(&String::new()).chain(&listing.dirs) {
            let path = part.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| io("create", &path, e))?;
        }
        let base = base.map(|b| mirror.generation_path(b));
        let base_seal = base
            .as_deref()
            .and_then(|b| seal::read(b).ok().flatten())
            .unwrap_or_default();
        let mut downloads = Vec::new();
        for (rel, entry) in &listing.seal.files {
            let target = part.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
            }
            let linked = base_seal.files.get(rel) == Some(entry)
                && base
                    .as_deref()
                    .is_some_and(|b| std::fs::hard_link(b.join(rel), &target).is_ok());
            if !linked {
                downloads.push((self.key(&listing.keys[rel]), target, *entry));
            }
        }
        block_on(
            futures::stream::iter(downloads)
                .map(|(key, target, entry)| self.download(key, target, entry))
                .buffer_unordered(TRANSFERS)
                .try_collect::<Vec<()>>(),
        )?;
        let seal = serde_json::to_vec(&listing.seal).map_err(Error::store)?;
        write_atomically(&part.join(SEAL_FILE), &seal)?;
        let manifest = serde_json::to_vec_pretty(&listing.manifest).map_err(Error::store)?;
        write_atomically(&part.join(MANIFEST_FILE), &manifest)?;
        sync_tree(&part)?;
        let folder = mirror.generation_path(name);
        if folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| io("replace", &folder, e))?;
        }
        std::fs::rename(&part, &folder).map_err(|e| io("create", &folder, e))
    }

    /// Downloads one sealed file to `target`, refused unless it has the size and
    /// checksum sealed; it gets the sealed modification time, so that opening the
    /// generation finds it as written without reading it again.
    async fn download(&self, key: Key, target: PathBuf, entry: SealedFile) -> Result<()> {
        let mut tmp = target.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write_error = |e| Error::io(format!("cannot write {}", tmp.display()), e);
        let object = self.store.get(&key).await.map_err(|e| self.failed(&e))?;
        let mut file = tokio::fs::File::create(&tmp).await.map_err(write_error)?;
        let mut stream = object.into_stream();
        let mut crc = crc32fast::Hasher::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.failed(&e))?;
            crc.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(write_error)?;
        }
        if bytes != entry.bytes || crc.finalize() != entry.crc32 {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(self.damaged(format!(
                "{key} does not have the size and checksum its generation sealed"
            )));
        }
        file.sync_all().await.map_err(write_error)?;
        let sealed_time = UNIX_EPOCH + Duration::from_nanos(entry.mtime_ns.max(0) as u64);
        file.into_std()
            .await
            .set_modified(sealed_time)
            .map_err(write_error)?;
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(|e| Error::io(format!("cannot create {}", target.display()), e))
    }

    /// Uploads one file (in parts when it is large).
    async fn upload(&self, file: PathBuf, key: Key) -> Result<()> {
        let mut source = tokio::fs::File::open(&file)
            .await
            .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
        let mut sink = BufWriter::new(Arc::clone(&self.store), key);
        let copied = match tokio::io::copy(&mut source, &mut sink).await {
            Ok(_) => sink.shutdown().await,
            Err(e) => Err(e),
        };
        let Err(e) = copied else {
            return Ok(());
        };
        let _ = sink.abort().await;
        Err(
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<object_store::Error>())
            {
                Some(inner) => self.failed(inner),
                None => Error::io(format!("cannot upload {}", file.display()), e),
            },
        )
    }

    /// The listing of `generation`, checked; read from the bucket unless it is the one
    /// this process last read or wrote.
    fn listing(&self, generation: &str) -> Result<Arc<Listing>> {
        let last = self
            .last_listing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(listing) = last.as_ref().filter(|l| l.generation == generation) {
            return Ok(Arc::clone(listing));
        }
        drop(last);
        let listing = self
            .read_listing(generation)?
            .ok_or_else(|| self.damaged(format!("{generation} has no {LISTING_FILE}")))?;
        let listing = Arc::new(listing);
        self.remember(Arc::clone(&listing));
        Ok(listing)
    }

    /// The listing of `generation` read from the bucket and checked; `None` when it has
    /// none (never published, or collected).
    fn read_listing(&self, generation: &str) -> Result<Option<Listing>> {
        let key = self.listing_key(generation);
        let Some((bytes, _)) = self.get(&key)? else {
            return Ok(None);
        };
        let listing: Listing =
            serde_json::from_slice(&bytes).map_err(|e| self.damaged(format!("{key}: {e}")))?;
        listing
            .check(generation)
            .map_err(|why| self.damaged(format!("{key}: {why}")))?;
        Ok(Some(listing))
    }

    fn remember(&self, listing: Arc<Listing>) {
        *self
            .last_listing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(listing);
    }

    /// The bucket's CURRENT now; `None` when nothing was published.
    fn read_pointer(&self) -> Result<Option<Pointer>> {
        let Some((bytes, version)) = self.get(&self.key(CURRENT_FILE))? else {
            return Ok(None);
        };
        let generation = String::from_utf8_lossy(&bytes).trim().to_string();
        if !is_generation_name(&generation) {
            return Err(self.damaged(format!("CURRENT names {generation:?}")));
        }
        Ok(Some(Pointer {
            generation,
            version,
        }))
    }

    fn pointer(&self) -> Option<Pointer> {
        self.pointer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An object's bytes and version; `None` when it does not exist.
    fn get(&self, key: &Key) -> Result<Option<(Vec<u8>, UpdateVersion)>> {
        let fetched = block_on(async {
            let object = self.store.get(key).await?;
            let version = UpdateVersion {
                e_tag: object.meta.e_tag.clone(),
                version: object.meta.version.clone(),
            };
            Ok((object.bytes().await?.to_vec(), version))
        });
        match fetched {
            Ok(found) => Ok(Some(found)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed(&e)),
        }
    }

    fn put(&self, key: &Key, bytes: Vec<u8>, mode: PutMode) -> object_store::Result<PutResult> {
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        block_on(self.store.put_opts(key, PutPayload::from(bytes), options))
    }

    /// The key of `rel` (`/`-separated) below the prefix.
    fn key(&self, rel: &str) -> Key {
        rel.split('/').fold(self.prefix.clone(), Key::join)
    }

    fn listing_key(&self, generation: &str) -> Key {
        self.key(&format!("{GENERATIONS}/{generation}/{LISTING_FILE}"))
    }

    /// The mark `codeq gc` puts on a generation it is about to delete.
    fn deleting_key(&self, generation: &str) -> Key {
        self.key(&format!("{GENERATIONS}/{generation}/{DELETING_FILE}"))
    }

    /// A failed request, said for people: denied access names the variables to check,
    /// a request that never got an answer the endpoint.
    fn failed(&self, err: &object_store::Error) -> Error {
        use object_store::Error as E;
        let detail = match err {
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                format!("access denied ({err}): {}", self.provider.credential_hint())
            }
            E::Generic { .. } => format!(
                "{err}; {} and that the object store is reachable",
                self.provider.endpoint_hint()
            ),
            _ => err.to_string(),
        };
        self.error(detail)
    }

    fn error(&self, detail: impl Into<String>) -> Error {
        remote_error(&self.location, detail)
    }

    fn damaged(&self, detail: String) -> Error {
        Error::CorruptIndex {
            dir: PathBuf::from(&self.location),
            detail,
        }
    }
}

/// The clock, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Held while a mirror is brought up to date or published from: one process at a time.
pub(super) fn sync_lock(mirror: &IndexDir) -> Result<File> {
    let file = mirror.lock_file(SYNC_LOCK)?;
    if !flock(&file, libc::LOCK_EX) {
        return Err(Error::io(
            format!("cannot lock {}", mirror.path.join(SYNC_LOCK).display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

fn remote_error(location: &str, detail: impl Into<String>) -> Error {
    Error::Remote {
        location: location.to_string(),
        detail: detail.into(),
    }
}
