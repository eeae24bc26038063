//! The embedding cache: vectors of chunks that left the index — their file changed or
//! went away, or a branch switch replaced it — keyed by the embedding-input hash (which
//! covers the model id, the model file's hash and the text). The current generation's
//! table holds every live vector; this holds the recently evicted ones, so switching a
//! branch back, or undoing an edit, re-embeds nothing. The oldest evictions go first once
//! it holds more than its configured number of vectors.
//!
//! Only the writer (under the index lock) opens it; queries never read it. A run killed
//! mid-write loses at most the vectors it had not written, never the index. It is only a
//! cache: when it cannot be opened or read (damaged files), it is emptied with a warning
//! and the run goes on without it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lancedb::arrow::arrow_array::cast::AsArray;
use lancedb::arrow::arrow_array::types::UInt64Type;
use lancedb::arrow::arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema, SchemaRef};
use lancedb::query::{QueryBase, Select};

use super::arrow::{vector_array, vector_field};
use super::filter::sql_string_list;
use super::vectors::{collect, maintain, vectors_where};
use crate::embed::ModelInfo;
use crate::error::{Error, Result};
use crate::runtime;

const TABLE: &str = "evicted";
/// Names the model the cached vectors came from; another model starts an empty cache.
const MODEL_FILE: &str = "model";
/// Hashes per lookup query.
const LOOKUP_BATCH: usize = 1024;

/// Evicted vectors by embedding-input hash, on disk; without a table once it failed.
pub struct EmbedCache {
    path: PathBuf,
    table: Option<CacheTable>,
}

/// The cache's LanceDB table.
struct CacheTable {
    table: lancedb::Table,
    schema: SchemaRef,
    dimension: usize,
    /// Orders evictions: later runs evict with larger numbers.
    run: u64,
    changed: bool,
}

impl EmbedCache {
    /// Opens (or creates) the cache in `path` for `model`; a cache of another model is
    /// discarded, since none of its vectors could ever be looked up again. `run` orders
    /// this run's evictions after earlier ones (a clock reading).
    pub(super) fn open(path: &Path, model: &ModelInfo, run: u64) -> EmbedCache {
        let mut cache = EmbedCache {
            path: path.to_path_buf(),
            table: None,
        };
        let opened = crate::panic_guard::catch(|| CacheTable::open(path, model, run));
        match opened {
            Ok(Ok(table)) => cache.table = Some(table),
            Ok(Err(e)) => cache.discard(&e.to_string()),
            Err(panic) => cache.discard(&panic),
        }
        if cache.table.is_none() {
            // An emptied cache starts anew at once, so this run's evictions are kept.
            if let Ok(Ok(table)) = crate::panic_guard::catch(|| CacheTable::open(path, model, run))
            {
                cache.table = Some(table);
            }
        }
        cache
    }

    /// The cached vectors among `hashes` (none once the cache failed).
    pub fn lookup(&mut self, hashes: &[String]) -> HashMap<String, Vec<f32>> {
        self.guarded(|table| table.lookup(hashes))
            .unwrap_or_default()
    }

    /// Keeps the vectors of chunks leaving the index (embedding-input hash, vector).
    pub fn keep(&mut self, evicted: HashMap<String, Vec<f32>>) {
        self.guarded(|table| table.keep(evicted));
    }

    /// Drops the oldest evictions beyond `capacity` vectors, keeps the hash index current
    /// and removes superseded table versions (a run that kept nothing leaves it as it was).
    pub fn finish(mut self, capacity: usize) {
        self.guarded(|table| table.finish(capacity));
    }

    /// Runs `call` on the table; a failure (error or panic in the storage library) empties
    /// the cache and leaves this run without one.
    fn guarded<T>(&mut self, call: impl FnOnce(&mut CacheTable) -> Result<T>) -> Option<T> {
        let table = self.table.as_mut()?;
        match crate::panic_guard::catch(|| call(table)) {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.discard(&e.to_string());
                None
            }
            Err(panic) => {
                self.discard(&panic);
                None
            }
        }
    }

    fn discard(&mut self, why: &str) {
        self.table = None;
        tracing::warn!(
            "the embedding cache in {} cannot be used ({why}); it was emptied, and vectors it held will be computed again",
            self.path.display()
        );
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl CacheTable {
    fn open(path: &Path, model: &ModelInfo, run: u64) -> Result<CacheTable> {
        // The storage of the vectors is part of the marker: a cache written with another
        // element type (single precision, before half) is started anew.
        let marker = format!(
            "{}\n{}\n{}\n{:?}\n",
            model.id,
            model.file_sha256,
            model.dimension,
            vector_field(model.dimension).data_type()
        );
        let marker_path = path.join(MODEL_FILE);
        let same_model = std::fs::read_to_string(&marker_path).is_ok_and(|m| m == marker);
        if !same_model && path.exists() {
            std::fs::remove_dir_all(path)
                .map_err(|e| Error::io(format!("cannot clear {}", path.display()), e))?;
        }
        std::fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let schema = schema(model.dimension);
        let uri = path.to_string_lossy().into_owned();
        let table = runtime::block_on(async {
            let db = super::connect(&uri).await?;
            match db.open_table(TABLE).execute().await {
                Ok(table) => Ok(table),
                Err(lancedb::Error::TableNotFound { .. }) => {
                    db.create_empty_table(TABLE, schema.clone()).execute().await
                }
                Err(err) => Err(err),
            }
        })
        .map_err(Error::store)?;
        if !same_model {
            super::write_atomically(&marker_path, marker.as_bytes())?;
        }
        Ok(CacheTable {
            table,
            schema,
            dimension: model.dimension,
            run,
            changed: false,
        })
    }

    fn lookup(&self, hashes: &[String]) -> Result<HashMap<String, Vec<f32>>> {
        let mut found: HashMap<String, Vec<f32>> = HashMap::new();
        for batch in hashes.chunks(LOOKUP_BATCH) {
            let predicate = format!("embed_hash IN ({})", sql_string_list(batch));
            found.extend(vectors_where(&self.table, predicate)?);
        }
        Ok(found)
    }

    fn keep(&mut self, evicted: HashMap<String, Vec<f32>>) -> Result<()> {
        if evicted.is_empty() {
            return Ok(());
        }
        let known = self.lookup(&evicted.keys().cloned().collect::<Vec<_>>())?;
        let fresh: Vec<(&String, &Vec<f32>)> = evicted
            .iter()
            .filter(|(h, _)| !known.contains_key(*h))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(fresh.iter().map(|(h, _)| h))),
            vector_array(fresh.iter().map(|(_, v)| *v), self.dimension),
            Arc::new(UInt64Array::from(vec![self.run; fresh.len()])),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(Error::store)?;
        runtime::block_on(self.table.add(batch).execute()).map_err(Error::store)?;
        self.changed = true;
        Ok(())
    }

    fn finish(&mut self, capacity: usize) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        self.trim(capacity)?;
        maintain(&self.table, &["embed_hash"], None)
    }

    fn trim(&mut self, capacity: usize) -> Result<()> {
        let query = self.table.query().select(Select::columns(&["run"]));
        let mut runs: Vec<u64> = Vec::new();
        for batch in &collect(&query)? {
            let column = batch
                .column_by_name("run")
                .ok_or_else(|| Error::storage("the cache has no run column"))?;
            runs.extend(column.as_primitive::<UInt64Type>().values().iter().copied());
        }
        if runs.len() <= capacity {
            return Ok(());
        }
        runs.sort_unstable_by(|a, b| b.cmp(a));
        // Whole runs go: the newest run that does not fit, and all older ones.
        let cutoff = runs[capacity];
        runtime::block_on(self.table.delete(&format!("run <= {cutoff}"))).map_err(Error::store)?;
        Ok(())
    }
}

fn schema(dimension: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("embed_hash", DataType::Utf8, false),
        vector_field(dimension),
        Field::new("run", DataType::UInt64, false),
    ]))
}
