//! Reading the published generation: both lanes under an access filter, chunks by id,
//! counts and languages; storage failures become corrupt-index errors that say what to do.

use super::*;

/// Per-lane document counts: BM25 documents must equal vectors plus chunks waiting for
/// theirs, and a disagreement is shown loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneCounts {
    /// Documents in the tantivy index.
    pub bm25_docs: usize,
    /// Rows with vectors in the LanceDB table.
    pub vectors: usize,
    /// Chunks in the lexical lane whose vectors are not computed yet.
    pub pending: usize,
}

impl LaneCounts {
    /// Share of the chunks the vector lane can find (1 when there are none).
    pub fn vector_coverage(&self) -> f64 {
        let all = self.vectors + self.pending;
        if all == 0 {
            1.0
        } else {
            self.vectors as f64 / all as f64
        }
    }
}

/// Fails when a lane returned a chunk outside the access filter, without saying which: it
/// would mean the lane leaked.
pub(super) fn ensure_admitted<'a>(
    filter: &ChunkFilter,
    mut chunks: impl Iterator<Item = &'a Chunk>,
) -> Result<()> {
    if chunks.any(|c| !filter.admits(&c.repo, &c.path)) {
        return Err(Error::Internal(
            "a retrieved chunk fell outside the access filter; nothing was returned".into(),
        ));
    }
    Ok(())
}

/// A published generation opened for queries.
pub struct IndexReader {
    /// The index folder (to name damage found while answering).
    pub(super) dir: IndexDir,
    pub(super) generation: String,
    pub(super) manifest: Manifest,
    pub(super) vectors: vectors::VectorReader,
    pub(super) lexical: lexical::LexicalReader,
    /// A shared lock on the generation's reader file while this reader lives, so that
    /// publishes and `codeq gc` leave the generation alone (`None` where the index folder
    /// is read-only to us: then nothing protects it).
    pub(super) _in_use: Option<File>,
}

impl IndexReader {
    pub(super) fn open(dir: &IndexDir, generation: &str) -> Result<IndexReader> {
        let path = dir.generation_path(generation);
        let in_use = File::open(path.join(READERS_FILE))
            .or_else(|_| {
                File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path.join(READERS_FILE))
            })
            .ok()
            .filter(|file| flock(file, libc::LOCK_SH));
        let manifest = dir.manifest(generation)?;
        if manifest.schema_version != SCHEMA_VERSION {
            return Err(Error::IndexSchema {
                dir: dir.path.clone(),
                found: manifest.schema_version,
                expected: SCHEMA_VERSION,
            });
        }
        dir.verify(generation, false)?;
        let opened = crate::panic_guard::catch(|| -> Result<_> {
            let vectors = vectors::VectorReader::open(&path.join("lance"), manifest.ann_index)
                .map_err(|e| dir.damaged(generation, format!("vector table: {e}")))?;
            let lexical = lexical::LexicalReader::open(&path.join("tantivy"))
                .map_err(|e| dir.damaged(generation, format!("lexical index: {e}")))?;
            Ok((vectors, lexical))
        });
        let (vectors, lexical) = opened
            .map_err(|panic| dir.damaged(generation, format!("opening it failed: {panic}")))??;
        Ok(IndexReader {
            dir: dir.clone(),
            generation: generation.to_string(),
            manifest,
            vectors,
            lexical,
            _in_use: in_use,
        })
    }

    /// Runs one call into a lane's storage library: a storage error or a panic there (what
    /// a damaged file causes) becomes [`Error::CorruptIndex`], or
    /// [`Error::IndexPermission`] when a file cannot be opened by this user. Other errors
    /// pass as they are.
    pub(super) fn lane<T>(&self, call: impl FnOnce() -> Result<T>) -> Result<T> {
        match crate::panic_guard::catch(call) {
            Ok(Err(Error::Storage(source))) => {
                Err(self.dir.damaged(&self.generation, source.to_string()))
            }
            Ok(outcome) => outcome,
            Err(panic) => Err(self
                .dir
                .damaged(&self.generation, format!("reading it failed: {panic}"))),
        }
    }

    /// The generation's name.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// The generation's stored vectors, for the next one to reuse.
    pub fn vector_source(&self) -> VectorSource {
        VectorSource(self.vectors.chunk_table())
    }

    /// The generation's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// BM25 over code tokens; `terms` are already tokenized query terms.
    pub fn bm25(
        &self,
        terms: &[String],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<LexicalHit>> {
        self.bm25_with_word_forms(terms, &[], filter, limit)
    }

    /// Like [`IndexReader::bm25`], with each of `words` (plain words of a description, not
    /// identifiers) also matching its other forms: "published" finds `publish`.
    pub fn bm25_with_word_forms(
        &self,
        terms: &[String],
        words: &[String],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<LexicalHit>> {
        if filter.is_empty_set() || terms.is_empty() {
            return Ok(Vec::new());
        }
        let hits = self.lane(|| self.lexical.search(terms, words, filter, limit))?;
        ensure_admitted(filter, hits.iter().map(|h| &h.chunk))?;
        Ok(hits)
    }

    /// For each of `words` (lowercased code tokens), how many chunks `filter` admits
    /// mention it in their code, and how many chunks it admits. Only admitted chunks count.
    pub fn mentions(&self, words: &[String], filter: &ChunkFilter) -> Result<(Vec<u64>, u64)> {
        if filter.is_empty_set() || words.is_empty() {
            return Ok((vec![0; words.len()], 0));
        }
        self.lane(|| self.lexical.mentions(words, filter))
    }

    /// Nearest neighbours by cosine distance, with the filter applied before ranking:
    /// through the generation's ANN index if it has one.
    pub fn nearest(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<(Chunk, f32)>> {
        if filter.is_empty_set() {
            return Ok(Vec::new());
        }
        let share = self.admitted_share(filter);
        let nearest = self.lane(|| self.vectors.nearest(vector, filter, limit, share))?;
        let (ids, distances): (Vec<String>, Vec<f32>) = nearest.into_iter().unzip();
        // One chunk per id, in their order, unless the lexical index lacks one.
        let chunks = self.chunks_by_id(&ids, filter)?;
        if chunks.len() != ids.len() {
            return Err(self
                .dir
                .corrupt("the vector table holds a chunk the lexical index does not".into()));
        }
        Ok(chunks.into_iter().zip(distances).collect())
    }

    /// The share of the generation's chunks `filter` admits (1 when unrestricted or not
    /// known: a path-restricted filter that was not prepared for this index). Only the
    /// HNSW search uses it, so without that index it is not computed.
    pub(super) fn admitted_share(&self, filter: &ChunkFilter) -> f64 {
        if filter.is_unrestricted() || self.manifest.ann_index != AnnIndex::IvfHnswSq {
            return 1.0;
        }
        let repo_chunks: HashMap<&str, usize> = self
            .manifest
            .repos
            .iter()
            .map(|r| (r.id.as_str(), r.chunks))
            .collect();
        let total: usize = repo_chunks.values().sum();
        match filter.admitted_chunks(|repo| repo_chunks.get(repo).copied().unwrap_or(0)) {
            Some(admitted) if total > 0 => (admitted as f64 / total as f64).min(1.0),
            _ => 1.0,
        }
    }

    /// Loads chunks by id, in the order of `ids` (ids the index does not hold are left
    /// out), from the chunks the lexical lane stores for every chunk of the generation,
    /// with or without a vector. The ids come from a lane that already applied `filter`, so
    /// the lookup itself does not filter; a chunk outside `filter` fails the call instead,
    /// without saying which: it would mean a lane leaked.
    pub fn chunks_by_id(&self, ids: &[String], filter: &ChunkFilter) -> Result<Vec<Chunk>> {
        if ids.is_empty() || filter.is_empty_set() {
            return Ok(Vec::new());
        }
        let chunks = self.lane(|| self.lexical.chunks_by_id(ids))?;
        ensure_admitted(filter, chunks.iter())?;
        Ok(chunks)
    }

    /// Every chunk of one file, in line order (none when `filter` does not admit it).
    pub fn chunks_in_file(
        &self,
        repo: &str,
        path: &str,
        filter: &ChunkFilter,
    ) -> Result<Vec<Chunk>> {
        if !filter.admits(repo, path) {
            return Ok(Vec::new());
        }
        let mut chunks = self.lane(|| self.lexical.chunks_in_file(repo, path))?;
        chunks.sort_by_key(|c| c.start_line);
        Ok(chunks)
    }

    /// Documents per lane that `filter` admits.
    pub fn lane_counts(&self, filter: &ChunkFilter) -> Result<LaneCounts> {
        if filter.is_empty_set() {
            return Ok(LaneCounts {
                bm25_docs: 0,
                vectors: 0,
                pending: 0,
            });
        }
        Ok(LaneCounts {
            bm25_docs: self.lane(|| self.lexical.count(filter))?,
            vectors: self.lane(|| self.vectors.count(filter))?,
            pending: self.lane(|| self.vectors.pending_count(filter))?,
        })
    }

    /// Up to `limit` chunks waiting for vectors, most useful first, with their
    /// embedding-input hashes.
    pub fn pending_batch(&self, limit: usize) -> Result<Vec<(Chunk, String)>> {
        let waiting = self.lane(|| self.vectors.pending_batch(limit))?;
        self.with_chunks(waiting)
    }

    /// What incremental runs leave behind in this generation, for `codeq status`.
    pub fn upkeep(&self) -> Result<Upkeep> {
        let (table_versions, fragments, deleted_rows) = self.vectors.upkeep()?;
        let (segments, deleted_docs) = self.lexical.upkeep();
        Ok(Upkeep {
            table_versions,
            fragments,
            deleted_rows,
            segments,
            deleted_docs,
        })
    }

    /// The vectors of these files' chunks, by embedding-input hash.
    pub fn vectors_of_files(
        &self,
        files: &[(String, String)],
    ) -> Result<HashMap<String, Vec<f32>>> {
        self.lane(|| self.vectors.vectors_of_files(files))
    }

    /// Every stored row (chunk, embedding-input hash, vector), for tools that copy an index
    /// such as the query benchmark.
    pub fn all_rows(&self) -> Result<Vec<(Chunk, String, Vec<f32>)>> {
        let rows = self.lane(|| self.vectors.all_rows())?;
        let (keyed, vectors): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .map(|(id, hash, vector)| ((id, hash), vector))
            .unzip();
        Ok(self
            .with_chunks(keyed)?
            .into_iter()
            .zip(vectors)
            .map(|((chunk, hash), vector)| (chunk, hash, vector))
            .collect())
    }

    /// Every stored vector with its embedding-input hash (no chunks read).
    pub fn all_vectors(&self) -> Result<Vec<(String, Vec<f32>)>> {
        let rows = self.lane(|| self.vectors.all_rows())?;
        Ok(rows
            .into_iter()
            .map(|(_, hash, vector)| (hash, vector))
            .collect())
    }

    /// Each (chunk id, value) of the vector tables with its chunk, read from the lexical
    /// lane, which stores every chunk of the generation (the vector tables keep only
    /// what their filters read).
    fn with_chunks<T>(&self, keyed: Vec<(String, T)>) -> Result<Vec<(Chunk, T)>> {
        let (ids, values): (Vec<String>, Vec<T>) = keyed.into_iter().unzip();
        let chunks = self.lane(|| self.lexical.chunks_by_id(&ids))?;
        if chunks.len() != ids.len() {
            return Err(Error::storage(format!(
                "{} of {} chunks of the vector table have no lexical document; run `codeq index ROOT` to rebuild the index",
                ids.len() - chunks.len(),
                ids.len()
            )));
        }
        Ok(chunks.into_iter().zip(values).collect())
    }

    /// `filter` made ready for this index: path-restricted repositories of which it admits
    /// no chunk are dropped (nobody learns the name of a repository they can read nothing
    /// of), and each group of path globs gets the list of matching paths, so the vector
    /// lane's pre-filter reads its `path` index instead of matching every row.
    pub fn prepare_filter(&self, filter: &ChunkFilter) -> Result<ChunkFilter> {
        let partial = filter.path_restricted();
        if partial.is_empty_set() {
            return Ok(filter.clone());
        }
        let listed = filter.with_listed_paths(
            &self.lane(|| self.lexical.distinct_paths())?,
            MAX_LISTED_PATHS,
        );
        let counts = self.visible_counts(&listed.path_restricted())?;
        let chunks = counts
            .iter()
            .map(|(repo, (_, chunks))| (repo.clone(), *chunks))
            .collect();
        Ok(listed
            .retain_path_restricted(|repo| counts.contains_key(repo))
            .with_restricted_chunks(chunks))
    }

    /// Languages of the chunks `filter` admits, most chunks first, with their counts.
    pub fn languages(&self, filter: &ChunkFilter) -> Result<Vec<(String, usize)>> {
        if filter.is_empty_set() {
            return Ok(Vec::new());
        }
        let mut counts: Vec<(String, usize)> = self
            .lane(|| self.vectors.language_counts(filter))?
            .into_iter()
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(counts)
    }

    /// Files and chunks per repository that `filter` admits, read from the table (for
    /// principals whose grants cover only some paths of a repository).
    pub fn visible_counts(&self, filter: &ChunkFilter) -> Result<HashMap<String, (usize, usize)>> {
        if filter.is_empty_set() {
            return Ok(HashMap::new());
        }
        self.lane(|| self.vectors.file_and_chunk_counts(filter))
    }
}
