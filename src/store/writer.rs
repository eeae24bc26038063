//! Writing a new generation: chunks into both lanes, the file table and the manifest,
//! sealed and synced before it can be published.

use super::*;

/// Builds one generation: rows go to LanceDB in batches and to tantivy as they come.
pub struct GenerationWriter {
    pub(super) name: String,
    pub(super) vectors: vectors::VectorWriter,
    pub(super) lexical: lexical::LexicalWriter,
    pub(super) rows: usize,
}

/// A generation whose data is written, waiting for its manifest and publication.
pub struct FinishedGeneration {
    pub(super) name: String,
    /// The manifest to publish with it.
    pub manifest: Manifest,
    pub(super) files: FileTable,
}

impl GenerationWriter {
    pub(super) fn create(
        name: String,
        path: PathBuf,
        model: &ModelInfo,
        base: GenerationBase<'_>,
    ) -> Result<GenerationWriter> {
        let vectors = vectors::VectorWriter::create(
            &path.join("lance"),
            model.dimension,
            base.reuse.map(|source| source.0),
            base.copy_of.map(|p| p.manifest.ann_index),
        )?;
        let lexical =
            lexical::LexicalWriter::create(&path.join("tantivy"), base.copy_of.is_some())?;
        Ok(GenerationWriter {
            name,
            vectors,
            lexical,
            rows: 0,
        })
    }

    /// Name of the generation being written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Looks up vectors already computed for these embedding-input hashes (previous generation).
    pub fn reusable_vectors(&self, embed_hashes: &[String]) -> Result<HashMap<String, Vec<f32>>> {
        self.vectors.previous_vectors(embed_hashes)
    }

    /// Removes every chunk of these files (repository, path) from both lanes. Call it
    /// before adding the files' new chunks.
    pub fn remove_files(&mut self, files: &[(String, String)]) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        self.lexical.remove_files(files)?;
        self.vectors.remove_files(files)
    }

    /// Adds one chunk with its vector to both lanes.
    pub fn add(&mut self, chunk: Chunk, embed_hash: String, vector: Vec<f32>) -> Result<()> {
        self.lexical.add(&chunk)?;
        self.vectors.add(chunk, embed_hash, vector)?;
        self.rows += 1;
        Ok(())
    }

    /// Adds one chunk to the lexical lane now and to the pending table, where it waits
    /// for its vector (lexical-first indexing); `priority` orders the waiting (lowest first).
    pub fn add_pending(&mut self, chunk: Chunk, embed_hash: String, priority: u32) -> Result<()> {
        self.lexical.add(&chunk)?;
        self.vectors.add_pending(chunk, embed_hash, priority)?;
        self.rows += 1;
        Ok(())
    }

    /// Takes chunks out of the pending table; call it before adding them back, with
    /// their vectors, through [`GenerationWriter::add_vector`].
    pub fn remove_pending(&mut self, ids: &[String]) -> Result<()> {
        self.vectors.remove_pending(ids)
    }

    /// Gives a chunk already in the lexical lane its vector.
    pub fn add_vector(&mut self, chunk: Chunk, embed_hash: String, vector: Vec<f32>) -> Result<()> {
        self.vectors.add(chunk, embed_hash, vector)
    }

    /// Rows added so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Flushes both lanes and brings the vector table's indexes up to date (an ANN index
    /// when `ann` asks for one at this size and no chunk waits for its vector), recording
    /// the index and the waiting chunks in the manifest; the generation is then complete
    /// but not yet published.
    pub fn finish(
        self,
        mut manifest: Manifest,
        files: FileTable,
        ann: AnnPolicy,
    ) -> Result<FinishedGeneration> {
        self.lexical.finish()?;
        (manifest.ann_index, manifest.totals.pending) = self.vectors.finish(ann)?;
        Ok(FinishedGeneration {
            name: self.name,
            manifest,
            files,
        })
    }
}
