//! The streaming part of a run: a producer thread reads and chunks files while the
//! caller's thread looks up reusable vectors, embeds what is new and stores the chunks.

use super::*;

/// Files read ahead of the embedder.
pub(super) const READ_AHEAD: usize = 256;

/// Stack of the thread that parses files: tree-sitter and the grammars' external scanners
/// are C code that recurses with the input's nesting, so it gets room beyond the default
/// 2 MiB (the chunker's own walk is bounded by [`crate::chunk::MAX_DEFINITION_DEPTH`]).
pub(super) const CHUNKER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// What the producer sends per file.
pub(super) enum FileOutcome {
    Chunked {
        entry: usize,
        chunks: Vec<Chunk>,
        hash: String,
        lossy: bool,
        /// Its grammar could not parse most of it: windows, around any intact definitions.
        unparsed: bool,
    },
    Skipped {
        reason: SkipReason,
        path: String,
    },
}

/// Reads and chunks the listed files, in order; returns the time it spent.
pub(super) fn produce(
    scan: &Scan,
    listed: &[usize],
    chunker: &Chunker,
    sender: mpsc::SyncSender<FileOutcome>,
) -> Duration {
    let stage = Stage::start("chunk");
    let mut waiting = Duration::ZERO;
    for &i in listed {
        let entry = &scan.files[i];
        let repo = &scan.repos[entry.repo];
        let outcome = match walk::read_text(entry) {
            Ok(file) => {
                let commit = repo
                    .git
                    .as_ref()
                    .and_then(|g| g.head.as_deref())
                    .unwrap_or_default();
                let input = FileInput {
                    repo: &repo.id,
                    path: &entry.rel_path,
                    commit,
                    file_hash: &file.hash,
                    text: &file.text,
                };
                // One file that trips the chunker is skipped and counted; it never stops
                // the run for the whole tree.
                match crate::panic_guard::catch(|| chunker.chunk_file(input)) {
                    Ok(chunked) => FileOutcome::Chunked {
                        entry: i,
                        unparsed: matches!(
                            chunked.mode,
                            ChunkMode::IntactDefinitions | ChunkMode::WindowsAfterParseFailure
                        ),
                        chunks: chunked.chunks,
                        hash: file.hash,
                        lossy: file.lossy,
                    },
                    Err(message) => {
                        tracing::warn!(path = %entry.rel_path, %message, "chunker failed");
                        FileOutcome::Skipped {
                            reason: SkipReason::Unchunkable,
                            path: join_path(&repo.rel_path, &entry.rel_path),
                        }
                    }
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
    stage.finish().saturating_sub(waiting)
}

pub(super) fn join_path(repo_path: &str, rel: &str) -> String {
    if repo_path.is_empty() {
        rel.to_string()
    } else {
        format!("{repo_path}/{rel}")
    }
}

/// Accumulated state of one run on the consumer side.
pub(super) struct Run<'a> {
    pub(super) model: &'a ModelInfo,
    pub(super) cache: &'a mut EmbedCache,
    /// Chunks embedded and written per round.
    pub(super) batch_size: usize,
    /// Chunks without a reusable vector go to the pending table instead of the model.
    pub(super) defer_embedding: bool,
    /// Fresh vectors also go to the embedding cache at once, so that a run which never
    /// publishes (killed, or beaten to it by another shard's indexer) loses none of them.
    pub(super) cache_fresh_vectors: bool,
    pub(super) pending: Vec<Chunk>,
    /// Records of the files chunked in this run.
    pub(super) written: Vec<FileRecord>,
    pub(super) skipped: SkipCounts,
    pub(super) changes: Changes,
    pub(super) files_done: usize,
    pub(super) embed_time: Duration,
    pub(super) store_time: Duration,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        model: &'a ModelInfo,
        batch_size: usize,
        cache: &'a mut EmbedCache,
    ) -> Run<'a> {
        Run {
            model,
            cache,
            batch_size,
            defer_embedding: false,
            cache_fresh_vectors: false,
            pending: Vec::with_capacity(batch_size * 2),
            written: Vec::new(),
            skipped: SkipCounts::default(),
            changes: Changes::default(),
            files_done: 0,
            embed_time: Duration::ZERO,
            store_time: Duration::ZERO,
        }
    }

    pub(super) fn accept(
        &mut self,
        outcome: FileOutcome,
        scan: &Scan,
        writer: &mut GenerationWriter,
        embedder: &mut dyn Embedder,
    ) -> Result<()> {
        self.files_done += 1;
        match outcome {
            FileOutcome::Chunked {
                entry,
                chunks,
                hash,
                lossy,
                unparsed,
            } => {
                let entry: &FileEntry = &scan.files[entry];
                if unparsed {
                    let path = join_path(&scan.repos[entry.repo].rel_path, &entry.rel_path);
                    self.changes.unparsed.add(path);
                }
                self.written.push(FileRecord {
                    repo: scan.repos[entry.repo].id.clone(),
                    path: entry.rel_path.clone(),
                    stamp: entry.stamp,
                    file_hash: hash,
                    chunks: chunks.len(),
                    lossy,
                });
                self.pending.extend(chunks);
                // Without the model in the loop, bigger rounds make fewer vector lookups.
                let round = match self.defer_embedding {
                    true => LOOKUP_ROUND,
                    false => self.batch_size,
                };
                if self.pending.len() >= round {
                    self.flush(writer, embedder)?;
                }
            }
            FileOutcome::Skipped { reason, path } => self.skipped.add(reason, path),
        }
        Ok(())
    }

    /// Embeds (or reuses vectors for) the pending chunks and stores them.
    pub(super) fn flush(
        &mut self,
        writer: &mut GenerationWriter,
        embedder: &mut dyn Embedder,
    ) -> Result<()> {
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
        let stage = Stage::start("store");
        let mut vectors = writer.reusable_vectors(&hashes)?;
        let evicted_before: Vec<String> = hashes
            .iter()
            .filter(|h| !vectors.contains_key(*h))
            .cloned()
            .collect();
        vectors.extend(self.cache.lookup(&evicted_before));
        let mut store_time = stage.finish();

        let missing: Vec<usize> = (0..chunks.len())
            .filter(|&i| !vectors.contains_key(&hashes[i]))
            .collect();
        if self.defer_embedding {
            let stage = Stage::start("store");
            self.changes.vectors_reused += chunks.len() - missing.len();
            for (chunk, hash) in chunks.into_iter().zip(hashes) {
                self.changes.chunks_written += 1;
                match vectors.remove(&hash) {
                    Some(vector) => writer.add(chunk, hash, vector)?,
                    None => {
                        let priority = crate::search::embedding_priority(&chunk);
                        writer.add_pending(chunk, hash, priority)?;
                    }
                }
            }
            self.store_time += store_time + stage.finish();
            return Ok(());
        }
        let missing_texts: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
        let fresh = embed_timed(embedder, &missing_texts, &mut self.embed_time)?;
        self.changes.vectors_embedded += fresh.len();
        self.changes.vectors_reused += chunks.len() - fresh.len();
        let stage = Stage::start("store");
        let fresh: HashMap<String, Vec<f32>> = missing
            .iter()
            .map(|&i| hashes[i].clone())
            .zip(fresh)
            .collect();
        if self.cache_fresh_vectors {
            self.cache.keep(fresh.clone());
        }
        vectors.extend(fresh);
        for (chunk, hash) in chunks.into_iter().zip(hashes) {
            let vector = vectors
                .get(&hash)
                .cloned()
                .ok_or_else(|| Error::Embed("a chunk has no vector".into()))?;
            self.changes.chunks_written += 1;
            writer.add(chunk, hash, vector)?;
        }
        store_time += stage.finish();
        self.store_time += store_time;
        Ok(())
    }
}

/// Embeds `texts`, adding the model's time to `time`; a model that returns another
/// number of vectors than it was given texts is an error.
pub(super) fn embed_timed(
    embedder: &mut dyn Embedder,
    texts: &[String],
    time: &mut Duration,
) -> Result<Vec<Vec<f32>>> {
    let stage = Stage::start("embed");
    let vectors = embedder.embed(texts)?;
    *time += stage.finish();
    if vectors.len() != texts.len() {
        return Err(Error::Embed(format!(
            "asked for {} vectors, got {}",
            texts.len(),
            vectors.len()
        )));
    }
    Ok(vectors)
}
