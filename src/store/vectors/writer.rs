//! Writing a generation's vector table: rows with and without vectors, file removals,
//! compaction and the ANN index build.

use super::*;

/// Writes a new generation's tables: the chunk table (rows with vectors) and the pending
/// table (rows waiting for theirs); rows are removed by file or by id, and appended.
pub(in crate::store) struct VectorWriter {
    pub(super) table: lancedb::Table,
    pub(super) waiting: lancedb::Table,
    pub(super) previous: Option<lancedb::Table>,
    /// The ANN index the table already has (a copy of a generation that had one).
    pub(super) ann: AnnIndex,
    pub(super) dimension: usize,
    pub(super) rows: Vec<(ChunkKey, String, Vec<f32>)>,
    pub(super) pending_rows: Vec<(ChunkKey, String, u32)>,
}

impl VectorWriter {
    /// Opens the tables in `path`: fresh empty ones, or, when `copied` names the ANN index
    /// of a copied generation, the copies themselves. Vectors of `previous` may be reused.
    pub(in crate::store) fn create(
        path: &Path,
        dimension: usize,
        previous: Option<lancedb::Table>,
        copied: Option<AnnIndex>,
    ) -> Result<VectorWriter> {
        let uri = path.to_string_lossy().into_owned();
        let (table, waiting) = runtime::block_on(async {
            let db = connect(&uri).await?;
            let table = match copied {
                Some(_) => db.open_table(TABLE).execute().await?,
                None => {
                    db.create_empty_table(TABLE, schema(dimension))
                        .execute()
                        .await?
                }
            };
            let waiting = match db.open_table(PENDING).execute().await {
                Ok(waiting) => waiting,
                Err(lancedb::Error::TableNotFound { .. }) => {
                    db.create_empty_table(PENDING, pending_schema())
                        .execute()
                        .await?
                }
                Err(err) => return Err(err),
            };
            Ok((table, waiting))
        })
        .map_err(Error::store)?;
        Ok(VectorWriter {
            table,
            waiting,
            previous,
            ann: copied.unwrap_or_default(),
            dimension,
            rows: Vec::with_capacity(FLUSH_ROWS),
            pending_rows: Vec::new(),
        })
    }

    /// Deletes every row of these files (repository, path), with or without vectors.
    pub(in crate::store) fn remove_files(&mut self, files: &[(String, String)]) -> Result<()> {
        for predicate in file_predicates(files) {
            for table in [&self.table, &self.waiting] {
                runtime::block_on(table.delete(predicate.as_str())).map_err(Error::store)?;
            }
        }
        Ok(())
    }

    /// Deletes these chunks from the pending table (their vectors have been computed).
    pub(in crate::store) fn remove_pending(&mut self, ids: &[String]) -> Result<()> {
        for batch in ids.chunks(1024) {
            let predicate = format!("chunk_id IN ({})", sql_string_list(batch));
            runtime::block_on(self.waiting.delete(predicate.as_str())).map_err(Error::store)?;
        }
        Ok(())
    }

    pub(in crate::store) fn add(
        &mut self,
        chunk: Chunk,
        embed_hash: String,
        vector: Vec<f32>,
    ) -> Result<()> {
        if vector.len() != self.dimension {
            return Err(Error::Embed(format!(
                "the model returned {} dimensions, the index expects {}",
                vector.len(),
                self.dimension
            )));
        }
        self.rows.push((key_of(chunk), embed_hash, vector));
        if self.rows.len() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds a chunk whose vector is still to be computed.
    pub(in crate::store) fn add_pending(
        &mut self,
        chunk: Chunk,
        embed_hash: String,
        priority: u32,
    ) -> Result<()> {
        self.pending_rows
            .push((key_of(chunk), embed_hash, priority));
        if self.pending_rows.len() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            let mut columns = chunk_arrays(rows.iter().map(|(c, h, _)| (c, h.as_str())));
            columns.push(vector_array(rows.iter().map(|(_, _, v)| v), self.dimension));
            append(&self.table, schema(self.dimension), columns)?;
        }
        if !self.pending_rows.is_empty() {
            let rows = std::mem::take(&mut self.pending_rows);
            let mut columns = chunk_arrays(rows.iter().map(|(c, h, _)| (c, h.as_str())));
            columns.push(Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|(_, _, p)| *p),
            )));
            append(&self.waiting, pending_schema(), columns)?;
        }
        Ok(())
    }

    /// Vectors stored in the previous generation under these embedding-input hashes.
    pub(in crate::store) fn previous_vectors(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let Some(previous) = &self.previous else {
            return Ok(HashMap::new());
        };
        if hashes.is_empty() {
            return Ok(HashMap::new());
        }
        let predicate = format!("embed_hash IN ({})", sql_string_list(hashes));
        vectors_where(previous, predicate)
    }

    /// Writes what is buffered and brings the tables' indexes up to date; returns the ANN
    /// index — the copied one (updated with the new rows), else the policy's when the
    /// table reached its size and no chunk waits for its vector (the index is trained on
    /// the whole table), else `Off` — and the number of chunks waiting.
    pub(in crate::store) fn finish(mut self, ann: AnnPolicy) -> Result<(AnnIndex, usize)> {
        self.flush()?;
        let rows = runtime::block_on(self.table.count_rows(None)).map_err(Error::store)?;
        let waiting = runtime::block_on(self.waiting.count_rows(None)).map_err(Error::store)?;
        let kept = if self.ann != AnnIndex::Off {
            self.ann
        } else if rows >= ann.min_rows && waiting == 0 {
            ann.index
        } else {
            AnnIndex::Off
        };
        let vector_index = if self.ann == AnnIndex::Off {
            kept.builder(ann.partition_rows)
        } else {
            None
        };
        maintain(&self.table, &SCALAR_INDEXED, vector_index)?;
        maintain(&self.waiting, &["chunk_id", "repo", "path"], None)?;
        Ok((kept, waiting))
    }
}

/// The chunk columns (key columns, embedding-input hash) of rows, in schema order.
fn chunk_arrays<'r>(rows: impl Iterator<Item = (&'r ChunkKey, &'r str)> + Clone) -> Vec<ArrayRef> {
    let mut columns: Vec<ArrayRef> = (0..KEY_COLUMNS.len())
        .map(|k| {
            Arc::new(StringArray::from_iter_values(
                rows.clone().map(|(key, _)| key[k].as_str()),
            )) as ArrayRef
        })
        .collect();
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.map(|(_, h)| h),
    )));
    columns
}

/// Appends one batch of `columns` to `table`.
pub(super) fn append(
    table: &lancedb::Table,
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<()> {
    let batch = RecordBatch::try_new(schema, columns).map_err(Error::store)?;
    runtime::block_on(table.add(batch).execute()).map_err(Error::store)?;
    Ok(())
}

/// One delete predicate per batch of files, grouped by repository.
pub(super) fn file_predicates(files: &[(String, String)]) -> Vec<String> {
    const PATHS_PER_PREDICATE: usize = 512;
    let mut by_repo: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (repo, path) in files {
        by_repo.entry(repo).or_default().push(path);
    }
    let mut predicates = Vec::new();
    for (repo, paths) in by_repo {
        for batch in paths.chunks(PATHS_PER_PREDICATE) {
            predicates.push(format!(
                "repo = {} AND path IN ({})",
                sql_string_list(&[repo]),
                sql_string_list(batch)
            ));
        }
    }
    predicates
}

/// Upkeep after a run's writes: compacts when small fragments or deleted rows pile up,
/// creates the scalar indexes on `scalar_columns` (and `vector_index`) that are missing,
/// folds new rows into the indexes that already existed, and drops superseded versions.
/// Only the index writer calls it, under the index lock.
pub(in crate::store) fn maintain(
    table: &lancedb::Table,
    scalar_columns: &[&str],
    vector_index: Option<Index>,
) -> Result<()> {
    use lancedb::table::{CompactionOptions, OptimizeAction, OptimizeOptions, optimize::Duration};
    let stats = runtime::block_on(table.stats()).map_err(Error::store)?;
    let rows = stats.num_rows;
    let deleted = stats.num_deleted_rows.unwrap_or(0);
    let fragments = stats.fragment_stats.num_fragments;
    if fragments > rows / FLUSH_ROWS + 1 + SPARE_FRAGMENTS || deleted * 10 > rows.max(1) {
        let options = CompactionOptions {
            target_rows_per_fragment: FLUSH_ROWS,
            ..Default::default()
        };
        runtime::block_on(table.optimize(OptimizeAction::Compact {
            options,
            remap_options: None,
        }))
        .map_err(Error::store)?;
    }
    if rows > 0 {
        let existing: Vec<Vec<String>> = runtime::block_on(table.list_indices())
            .map_err(Error::store)?
            .into_iter()
            .map(|i| i.columns)
            .collect();
        for column in scalar_columns {
            if !existing.iter().any(|c| c == &[column.to_string()]) {
                runtime::block_on(
                    table
                        .create_index(&[*column], Index::BTree(Default::default()))
                        .execute(),
                )
                .map_err(Error::store)?;
            }
        }
        if let Some(index) = vector_index {
            runtime::block_on(table.create_index(&["vector"], index).execute())
                .map_err(Error::store)?;
        }
        if !existing.is_empty() {
            runtime::block_on(table.optimize(OptimizeAction::Index(OptimizeOptions::default())))
                .map_err(Error::store)?;
        }
    }
    runtime::block_on(table.optimize(OptimizeAction::Prune {
        older_than: Some(Duration::zero()),
        delete_unverified: Some(true),
        error_if_tagged_old_versions: None,
    }))
    .map_err(Error::store)?;
    Ok(())
}

/// Replaces the vector index of the chunks table in `lance_dir` (a linked copy of a
/// generation's tables) with a fresh `ann` index; returns the table's rows.
pub(in crate::store) fn rebuild_ann(lance_dir: &Path, ann: AnnPolicy) -> Result<usize> {
    let uri = lance_dir.to_string_lossy().into_owned();
    runtime::block_on(async {
        let db = connect(&uri).await?;
        let table = db.open_table(TABLE).execute().await?;
        for index in table.list_indices().await? {
            if index.columns == ["vector"] {
                table.drop_index(&index.name).await?;
            }
        }
        if let Some(builder) = ann.index.builder(ann.partition_rows) {
            table.create_index(&["vector"], builder).execute().await?;
        }
        table.count_rows(None).await
    })
    .map_err(Error::store)
}
