//! The vector lane: the LanceDB chunk table (all chunk fields plus the vector) and cosine
//! search with the filter applied before ranking: exact on small tables, through an
//! approximate-nearest-neighbour (ANN) index past a configurable size.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::scanner::RowAddrTreeMap;
use lancedb::DistanceType;
use lancedb::arrow::arrow_array::{
    ArrayRef, Float32Array, RecordBatch, StringArray, UInt32Array, cast::AsArray,
    types::Float32Type, types::UInt32Type, types::UInt64Type,
};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema, SchemaRef};
use lancedb::index::Index;
use lancedb::index::vector::{IvfHnswSqIndexBuilder, IvfPqIndexBuilder, IvfRqIndexBuilder};
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use serde::{Deserialize, Serialize};

use super::ChunkFilter;
use super::ann::{self, AdmittedRows, AnnParams};
use super::arrow::{primitive_column, string_column, vector_array, vector_field, vectors_of};
use super::filter::{PerFilterCache, sql_string_list};
use crate::chunk::Chunk;
use crate::error::{Error, Result};
use crate::runtime;

const TABLE: &str = "chunks";
/// Chunks waiting for their vectors (lexical-first indexing).
const PENDING: &str = "pending";
/// Rows buffered before one LanceDB append (each append is a new table version and a new
/// fragment): also the fragment size compaction aims for.
const FLUSH_ROWS: usize = 16384;
/// Fragments beyond the table's row count / [`FLUSH_ROWS`] tolerated before compaction:
/// each incremental run adds a small one.
const SPARE_FRAGMENTS: usize = 8;
/// Columns with a scalar (B-tree) index: id lookups, embedding reuse, and the access
/// pre-filter on repo and path, which then reads an index instead of every row.
const SCALAR_INDEXED: [&str; 4] = ["chunk_id", "embed_hash", "repo", "path"];
/// Text columns of the table, in schema order, as stored from a [`Chunk`].
const TEXT_COLUMNS: [&str; 12] = [
    "chunk_id",
    "repo",
    "path",
    "language",
    "kind",
    "symbol",
    "signature",
    "doc",
    "content",
    "content_hash",
    "file_hash",
    "commit",
];

/// The approximate-nearest-neighbour index built on the vector column of a large table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnIndex {
    /// None: every query compares the query vector with every admitted row.
    #[default]
    Off,
    /// IVF partitions with product-quantised vectors; candidates are re-ranked on the
    /// exact vectors.
    IvfPq,
    /// IVF partitions, each an HNSW graph over scalar-quantised (int8) vectors.
    IvfHnswSq,
    /// IVF partitions with RaBitQ (1-bit) quantised vectors; candidates are re-ranked on
    /// the exact vectors.
    IvfRq,
}

impl AnnIndex {
    /// Every index kind, `Off` first (the benchmark's ground truth).
    pub const ALL: [AnnIndex; 4] = [
        AnnIndex::Off,
        AnnIndex::IvfPq,
        AnnIndex::IvfHnswSq,
        AnnIndex::IvfRq,
    ];

    /// The name used in `codeq.toml` and the manifest.
    pub fn name(self) -> &'static str {
        match self {
            AnnIndex::Off => "off",
            AnnIndex::IvfPq => "ivf_pq",
            AnnIndex::IvfHnswSq => "ivf_hnsw_sq",
            AnnIndex::IvfRq => "ivf_rq",
        }
    }

    /// The LanceDB index to build, trained for cosine distance; an HNSW index gets one
    /// IVF partition per `partition_rows` rows.
    fn builder(self, partition_rows: usize) -> Option<Index> {
        let partition_rows = u32::try_from(partition_rows.max(1)).unwrap_or(u32::MAX);
        let cosine = DistanceType::Cosine;
        match self {
            AnnIndex::Off => None,
            AnnIndex::IvfPq => Some(Index::IvfPq(
                IvfPqIndexBuilder::default().distance_type(cosine),
            )),
            AnnIndex::IvfHnswSq => Some(Index::IvfHnswSq(
                IvfHnswSqIndexBuilder::default()
                    .distance_type(cosine)
                    .target_partition_size(partition_rows),
            )),
            AnnIndex::IvfRq => Some(Index::IvfRq(
                IvfRqIndexBuilder::default().distance_type(cosine),
            )),
        }
    }
}

impl std::fmt::Display for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AnnIndex {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<AnnIndex, String> {
        AnnIndex::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = AnnIndex::ALL.iter().map(|k| k.name()).collect();
                format!("unknown ANN index {name:?}; one of {}", names.join(", "))
            })
    }
}

/// When a generation gets an ANN index: which kind, from how many rows on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnPolicy {
    /// The index to build.
    pub index: AnnIndex,
    /// Tables with fewer rows keep exact search (fast enough, and exact).
    pub min_rows: usize,
    /// Rows per IVF partition of an HNSW index. Each partition's graph is built in memory
    /// on its own, so this bounds the memory of the build; a query searches the graphs of
    /// the partitions it probes.
    pub partition_rows: usize,
}

impl AnnPolicy {
    /// Exact search at every size.
    pub const EXACT: AnnPolicy = AnnPolicy {
        index: AnnIndex::Off,
        min_rows: usize::MAX,
        partition_rows: usize::MAX,
    };
}

/// Rows re-ranked on exact vectors at least (all index kinds quantise): 4 per result at
/// the benchmark's 10 results, one per result at the search lane's 50 candidates.
const REFINE_ROWS: usize = 40;
/// Smallest HNSW search list (`ef`) of an unfiltered query. Measured recall@10 at 1M
/// chunks (`codeq bench vectors`): LanceDB's default (1.5 × the result count) 0.872, 100:
/// 0.908, 300: 0.947, 300 with re-ranking on exact vectors: 0.988 at 7.8 ms p50.
///
/// Under an access filter it is scaled by the share of the table the filter admits
/// (never below twice the result count): LanceDB's filtered HNSW search still walks and
/// scores the rows the filter excludes and stops only once `ef` admitted rows are found,
/// so an unscaled `ef` under a filter admitting half the rows explores about twice the
/// graph an unfiltered query does. Scaled, it explores about the same neighbourhood.
const HNSW_MIN_EF: usize = 300;

fn schema(dimension: usize) -> SchemaRef {
    let mut fields = chunk_fields();
    fields.push(vector_field(dimension));
    Arc::new(Schema::new(fields))
}

/// Fields of a chunk as stored: text columns, lines, embedding-input hash.
fn chunk_fields() -> Vec<Field> {
    let mut fields: Vec<Field> = TEXT_COLUMNS
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8, false))
        .collect();
    fields.push(Field::new("start_line", DataType::UInt32, false));
    fields.push(Field::new("end_line", DataType::UInt32, false));
    fields.push(Field::new("embed_hash", DataType::Utf8, false));
    fields
}

/// The pending table: chunks in the lexical index whose vectors are not computed yet,
/// with their embedding-input hash and [`crate::search::embedding_priority`].
fn pending_schema() -> SchemaRef {
    let mut fields = chunk_fields();
    fields.push(Field::new("priority", DataType::UInt32, false));
    Arc::new(Schema::new(fields))
}

/// Columns returned for chunks (everything but the vector).
fn chunk_columns() -> Vec<String> {
    TEXT_COLUMNS
        .iter()
        .chain(["start_line", "end_line"].iter())
        .map(|s| s.to_string())
        .collect()
}

fn text_of(chunk: &Chunk, column: &str) -> String {
    match column {
        "chunk_id" => chunk.chunk_id.clone(),
        "repo" => chunk.repo.clone(),
        "path" => chunk.path.clone(),
        "language" => chunk.language.clone(),
        "kind" => chunk.kind.clone(),
        "symbol" => chunk.symbol.clone(),
        "signature" => chunk.signature.clone(),
        "doc" => chunk.doc.clone(),
        "content" => chunk.content.clone(),
        "content_hash" => chunk.content_hash.clone(),
        "file_hash" => chunk.file_hash.clone(),
        _ => chunk.commit.clone(),
    }
}

/// Writes a new generation's tables: the chunk table (rows with vectors) and the pending
/// table (rows waiting for theirs); rows are removed by file or by id, and appended.
pub(super) struct VectorWriter {
    table: lancedb::Table,
    waiting: lancedb::Table,
    previous: Option<lancedb::Table>,
    /// The ANN index the table already has (a copy of a generation that had one).
    ann: AnnIndex,
    dimension: usize,
    rows: Vec<(Chunk, String, Vec<f32>)>,
    pending_rows: Vec<(Chunk, String, u32)>,
}

impl VectorWriter {
    /// Opens the tables in `path`: fresh empty ones, or, when `copied` names the ANN index
    /// of a copied generation, the copies themselves. Vectors of `previous` may be reused.
    pub(super) fn create(
        path: &Path,
        dimension: usize,
        previous: Option<lancedb::Table>,
        copied: Option<AnnIndex>,
    ) -> Result<VectorWriter> {
        let uri = path.to_string_lossy().into_owned();
        let (table, waiting) = runtime::block_on(async {
            let db = super::connect(&uri).await?;
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
    pub(super) fn remove_files(&mut self, files: &[(String, String)]) -> Result<()> {
        for predicate in file_predicates(files) {
            for table in [&self.table, &self.waiting] {
                runtime::block_on(table.delete(predicate.as_str())).map_err(Error::store)?;
            }
        }
        Ok(())
    }

    /// Deletes these chunks from the pending table (their vectors have been computed).
    pub(super) fn remove_pending(&mut self, ids: &[String]) -> Result<()> {
        for batch in ids.chunks(1024) {
            let predicate = format!("chunk_id IN ({})", sql_string_list(batch));
            runtime::block_on(self.waiting.delete(predicate.as_str())).map_err(Error::store)?;
        }
        Ok(())
    }

    pub(super) fn add(&mut self, chunk: Chunk, embed_hash: String, vector: Vec<f32>) -> Result<()> {
        if vector.len() != self.dimension {
            return Err(Error::Embed(format!(
                "the model returned {} dimensions, the index expects {}",
                vector.len(),
                self.dimension
            )));
        }
        self.rows.push((chunk, embed_hash, vector));
        if self.rows.len() >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds a chunk whose vector is still to be computed.
    pub(super) fn add_pending(
        &mut self,
        chunk: Chunk,
        embed_hash: String,
        priority: u32,
    ) -> Result<()> {
        self.pending_rows.push((chunk, embed_hash, priority));
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
    pub(super) fn previous_vectors(&self, hashes: &[String]) -> Result<HashMap<String, Vec<f32>>> {
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
    pub(super) fn finish(mut self, ann: AnnPolicy) -> Result<(AnnIndex, usize)> {
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

/// The chunk columns (text, lines, embedding-input hash) of rows, in schema order.
fn chunk_arrays<'r>(rows: impl Iterator<Item = (&'r Chunk, &'r str)> + Clone) -> Vec<ArrayRef> {
    let mut columns: Vec<ArrayRef> = TEXT_COLUMNS
        .iter()
        .map(|col| {
            Arc::new(StringArray::from_iter_values(
                rows.clone().map(|(c, _)| text_of(c, col)),
            )) as ArrayRef
        })
        .collect();
    columns.push(Arc::new(UInt32Array::from_iter_values(
        rows.clone().map(|(c, _)| c.start_line),
    )));
    columns.push(Arc::new(UInt32Array::from_iter_values(
        rows.clone().map(|(c, _)| c.end_line),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.map(|(_, h)| h),
    )));
    columns
}

/// Appends one batch of `columns` to `table`.
fn append(table: &lancedb::Table, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<()> {
    let batch = RecordBatch::try_new(schema, columns).map_err(Error::store)?;
    runtime::block_on(table.add(batch).execute()).map_err(Error::store)?;
    Ok(())
}

/// One delete predicate per batch of files, grouped by repository.
fn file_predicates(files: &[(String, String)]) -> Vec<String> {
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
pub(super) fn maintain(
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
pub(super) fn rebuild_ann(lance_dir: &Path, ann: AnnPolicy) -> Result<usize> {
    let uri = lance_dir.to_string_lossy().into_owned();
    runtime::block_on(async {
        let db = super::connect(&uri).await?;
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

/// Reads one generation's tables.
pub(super) struct VectorReader {
    table: lancedb::Table,
    /// Chunks waiting for vectors; absent in generations written before codeq had it.
    waiting: Option<lancedb::Table>,
    ann: AnnIndex,
    /// The rows each filter admits, by (table version, filter cache key): computed once,
    /// so a vector query under an access filter does not evaluate it again (see
    /// [`VectorReader::nearest`]).
    masks: PerFilterCache<(u64, String), Arc<AdmittedRows>>,
    /// By table version: its IVF-HNSW-SQ index when that covers every row
    /// ([`ann::covering_index`]).
    covering: PerFilterCache<u64, Option<Arc<ann::CoveringIndex>>>,
}

/// How [`VectorReader::scan_nearest`] searches.
struct ScanParams {
    /// Results wanted.
    limit: usize,
    /// HNSW search list.
    ef: usize,
    /// Candidates per result re-ranked on the exact vectors (ANN indexes).
    refine_factor: u32,
    /// The admitted rows, with an ANN index under a restricting filter.
    mask: Option<Arc<AdmittedRows>>,
    /// The filter as SQL, for exact search.
    sql: Option<String>,
}

impl VectorReader {
    /// Opens the tables of a generation whose manifest records `ann` as its ANN index.
    pub(super) fn open(path: &Path, ann: AnnIndex) -> Result<VectorReader> {
        if !path.is_dir() {
            return Err(Error::storage(format!("{} is missing", path.display())));
        }
        let uri = path.to_string_lossy().into_owned();
        let (table, waiting) = runtime::block_on(async {
            let db = super::connect(&uri).await?;
            let table = db.open_table(TABLE).execute().await?;
            let waiting = match db.open_table(PENDING).execute().await {
                Ok(waiting) => Some(waiting),
                Err(lancedb::Error::TableNotFound { .. }) => None,
                Err(err) => return Err(err),
            };
            Ok((table, waiting))
        })
        .map_err(Error::store)?;
        Ok(VectorReader {
            table,
            waiting,
            ann,
            masks: PerFilterCache::default(),
            covering: PerFilterCache::default(),
        })
    }

    /// The chunk table (rows with vectors).
    pub(super) fn chunk_table(&self) -> lancedb::Table {
        self.table.clone()
    }

    /// Rows with vectors that `filter` admits.
    pub(super) fn count(&self, filter: &ChunkFilter) -> Result<usize> {
        runtime::block_on(self.table.count_rows(filter.to_sql())).map_err(Error::store)
    }

    /// Rows waiting for vectors that `filter` admits.
    pub(super) fn pending_count(&self, filter: &ChunkFilter) -> Result<usize> {
        match &self.waiting {
            None => Ok(0),
            Some(waiting) => {
                runtime::block_on(waiting.count_rows(filter.to_sql())).map_err(Error::store)
            }
        }
    }

    /// Up to `limit` chunks waiting for vectors, most useful first (by priority, then id),
    /// with their embedding-input hashes.
    pub(super) fn pending_batch(&self, limit: usize) -> Result<Vec<(Chunk, String)>> {
        let Some(waiting) = &self.waiting else {
            return Ok(Vec::new());
        };
        let query = waiting
            .query()
            .select(Select::columns(&["chunk_id", "priority"]));
        let mut order: Vec<(u32, String)> = Vec::new();
        for batch in &collect(&query)? {
            let ids = string_column(batch, "chunk_id")?;
            let priorities = primitive_column::<UInt32Type>(batch, "priority")?;
            for i in 0..batch.num_rows() {
                order.push((priorities.value(i), ids.value(i).to_string()));
            }
        }
        order.sort_unstable();
        order.truncate(limit);
        let ids: Vec<String> = order.into_iter().map(|(_, id)| id).collect();
        let mut columns = chunk_columns();
        columns.push("embed_hash".to_string());
        let mut rows: HashMap<String, (Chunk, String)> = HashMap::new();
        for batch in ids.chunks(1024) {
            let query = waiting
                .query()
                .only_if(format!("chunk_id IN ({})", sql_string_list(batch)))
                .select(Select::columns(&columns));
            for found in &collect(&query)? {
                let hashes = string_column(found, "embed_hash")?;
                for (i, chunk) in chunks_from_batch(found)?.into_iter().enumerate() {
                    rows.insert(chunk.chunk_id.clone(), (chunk, hashes.value(i).to_string()));
                }
            }
        }
        Ok(ids.iter().filter_map(|id| rows.remove(id)).collect())
    }

    /// The chunk table and, when there is one, the pending table.
    fn tables(&self) -> impl Iterator<Item = &lancedb::Table> {
        std::iter::once(&self.table).chain(self.waiting.as_ref())
    }

    /// Chunks per language among the rows `filter` admits (with or without vectors).
    pub(super) fn language_counts(&self, filter: &ChunkFilter) -> Result<HashMap<String, usize>> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for table in self.tables() {
            let query = admitted(table.query().select(Select::columns(&["language"])), filter);
            for batch in &collect(&query)? {
                let languages = string_column(batch, "language")?;
                for i in 0..batch.num_rows() {
                    *counts.entry(languages.value(i).to_string()).or_default() += 1;
                }
            }
        }
        Ok(counts)
    }

    /// (distinct files, chunks) per repository among the rows `filter` admits (with or
    /// without vectors).
    pub(super) fn file_and_chunk_counts(
        &self,
        filter: &ChunkFilter,
    ) -> Result<HashMap<String, (usize, usize)>> {
        let mut per_repo: HashMap<String, (HashSet<String>, usize)> = HashMap::new();
        for table in self.tables() {
            let query = admitted(
                table.query().select(Select::columns(&["repo", "path"])),
                filter,
            );
            for batch in &collect(&query)? {
                let repos = string_column(batch, "repo")?;
                let paths = string_column(batch, "path")?;
                for i in 0..batch.num_rows() {
                    let (files, chunks) = per_repo.entry(repos.value(i).to_string()).or_default();
                    files.insert(paths.value(i).to_string());
                    *chunks += 1;
                }
            }
        }
        Ok(per_repo
            .into_iter()
            .map(|(repo, (files, chunks))| (repo, (files.len(), chunks)))
            .collect())
    }

    /// The ids of the `limit` admitted chunks nearest to `vector` (cosine distance,
    /// ascending), through the ANN index when the table has one; `admitted_share` is the
    /// part of the table `filter` admits (see [`HNSW_MIN_EF`]).
    ///
    /// The filter stays a pre-filter with an ANN index too: forbidden rows are never
    /// candidates, and probing goes on into further partitions until enough admitted rows
    /// are found. With an ANN index it is given to Lance as the set of admitted row ids,
    /// computed once per filter and table version ([`VectorReader::admitted_rows`]),
    /// instead of a `where` clause that every query would evaluate again over the scalar
    /// indexes; exact search keeps the `where` clause. An IVF-HNSW-SQ index covering the
    /// whole table is searched partition by partition ([`ann::nearest`]), which also
    /// remembers the admitted nodes of each partition.
    pub(super) fn nearest(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
        admitted_share: f64,
    ) -> Result<Vec<(String, f32)>> {
        let refine_factor = REFINE_ROWS.div_ceil(limit.max(1));
        let ef = hnsw_ef(limit, refine_factor, admitted_share);
        let dataset = self.dataset()?;
        runtime::block_on(async {
            // Exact search takes the filter as SQL: the scalar indexes on repo and path
            // then narrow the scan itself, where a mask would only drop rows after
            // reading them (12.9 against 108 ms p50 for one repository of 80, 100k rows).
            let (mask, sql) = match self.ann {
                _ if filter.is_unrestricted() => (None, None),
                AnnIndex::Off => (None, filter.to_sql()),
                _ => (
                    Some(
                        self.admitted_rows(&dataset, filter)
                            .await
                            .map_err(Error::store)?,
                    ),
                    None,
                ),
            };
            if mask.as_ref().is_some_and(|m| m.rows() == 0) {
                return Ok(Vec::new());
            }
            if self.ann == AnnIndex::IvfHnswSq
                && let Some(covering) = self.covering_index(&dataset).await?
                && (mask.is_some() || !covering.has_deleted_rows)
            {
                let params = AnnParams {
                    limit,
                    ef,
                    refine_factor,
                };
                return ann::nearest(
                    &dataset,
                    covering.index.as_ref(),
                    vector,
                    &params,
                    mask.as_ref(),
                )
                .await;
            }
            let scan = ScanParams {
                limit,
                ef,
                refine_factor: refine_factor as u32,
                mask,
                sql,
            };
            let batches = self
                .scan_nearest(&dataset, vector, scan)
                .await
                .map_err(Error::store)?;
            let mut out = Vec::new();
            for batch in &batches {
                let ids = string_column(batch, "chunk_id")?;
                let distances = primitive_column::<Float32Type>(batch, "_distance")?;
                for (id, distance) in ids.iter().zip(distances.values().iter().copied()) {
                    let id = id.ok_or_else(|| Error::storage("a vector row has no chunk id"))?;
                    out.push((id.to_string(), distance));
                }
            }
            out.sort_by(|a, b| a.1.total_cmp(&b.1));
            Ok(out)
        })
    }

    /// [`VectorReader::nearest`] through Lance's scanner: exact search, the ANN indexes
    /// other than IVF-HNSW-SQ, tables whose index does not cover every row (after an
    /// incremental run), and unfiltered queries on a table with deleted rows.
    async fn scan_nearest(
        &self,
        dataset: &Dataset,
        vector: &[f32],
        params: ScanParams,
    ) -> lance::Result<Vec<RecordBatch>> {
        // Only the ids: the caller reads the chunks from the lexical lane's doc store, since
        // taking every column of the hits here cost 7 of 15 ms p50 at 100k chunks.
        let columns = ["chunk_id", "_distance"];
        let rows = dataset.count_rows(None).await?;
        let mut scan = dataset.scan();
        scan.nearest(
            "vector",
            &Float32Array::from(vector.to_vec()),
            params.limit.min(rows).max(1),
        )?
        .limit(Some(params.limit as i64), None)?
        .distance_metric(DistanceType::Cosine.into())
        .prefilter(true)
        .project(&columns)?;
        match self.ann {
            AnnIndex::Off => {}
            AnnIndex::IvfHnswSq => {
                scan.ef(params.ef).refine(params.refine_factor);
            }
            AnnIndex::IvfPq | AnnIndex::IvfRq => {
                scan.refine(params.refine_factor);
            }
        }
        if let Some(sql) = params.sql {
            scan.filter(&sql)?;
        }
        if let Some(admitted) = params.mask {
            scan.with_row_id_prefilter(admitted.mask());
            if self.ann == AnnIndex::IvfHnswSq {
                // As in `ann::nearest`: ACORN under a filter.
                scan.approx_mode(lancedb::ApproxMode::Fast.into());
            }
        }
        scan.try_into_stream().await?.try_collect().await
    }

    /// [`ann::covering_index`] of `dataset`, found once per table version.
    async fn covering_index(&self, dataset: &Dataset) -> Result<Option<Arc<ann::CoveringIndex>>> {
        let version = dataset.version().version;
        if let Some(found) = self.covering.get(&version) {
            return Ok(found);
        }
        let found = ann::covering_index(dataset)
            .await
            .map_err(Error::store)?
            .map(Arc::new);
        self.covering.insert(version, found.clone());
        Ok(found)
    }

    /// The chunk table's current Lance dataset.
    fn dataset(&self) -> Result<Arc<Dataset>> {
        let wrapper = self
            .table
            .dataset()
            .ok_or_else(|| Error::Internal("the chunk table is not a local Lance table".into()))?;
        runtime::block_on(wrapper.get()).map_err(Error::store)
    }

    /// The rows of `dataset` that a restricting `filter` admits, as a row-id mask: read
    /// from the cache, or computed by one scan of the row ids under the filter's SQL (built
    /// only then: with listed paths it runs to thousands of them) and cached for this table
    /// version (a new version, from a writer, gets its own).
    async fn admitted_rows(
        &self,
        dataset: &Dataset,
        filter: &ChunkFilter,
    ) -> lance::Result<Arc<AdmittedRows>> {
        let key = (dataset.version().version, filter.cache_key());
        if let Some(found) = self.masks.get(&key) {
            return Ok(found);
        }
        let sql = filter
            .to_sql()
            .ok_or_else(|| lance::Error::invalid_input("an unrestricted filter has no mask"))?;
        let mut scan = dataset.scan();
        scan.filter(&sql)?.with_row_id().empty_project()?;
        let batches: Vec<RecordBatch> = scan.try_into_stream().await?.try_collect().await?;
        let mut ids = RowAddrTreeMap::new();
        let mut rows = 0;
        for batch in &batches {
            let column = batch
                .column_by_name("_rowid")
                .ok_or_else(|| lance::Error::invalid_input("_rowid column missing"))?
                .as_primitive::<UInt64Type>();
            ids.extend(column.values().iter().copied());
            rows += column.len();
        }
        let mask = Arc::new(AdmittedRows::new(ids, rows));
        self.masks.insert(key, Arc::clone(&mask));
        Ok(mask)
    }

    /// (table versions, fragments, rows deleted but still on disk).
    pub(super) fn upkeep(&self) -> Result<(usize, usize, usize)> {
        let versions = runtime::block_on(self.table.list_versions())
            .map_err(Error::store)?
            .len();
        let stats = runtime::block_on(self.table.stats()).map_err(Error::store)?;
        Ok((
            versions,
            stats.fragment_stats.num_fragments,
            stats.num_deleted_rows.unwrap_or(0),
        ))
    }

    /// Vectors of these files' rows (repository, path), by embedding-input hash.
    pub(super) fn vectors_of_files(
        &self,
        files: &[(String, String)],
    ) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::new();
        for predicate in file_predicates(files) {
            out.extend(vectors_where(&self.table, predicate)?);
        }
        Ok(out)
    }

    /// Every row: chunk, embedding-input hash and vector.
    pub(super) fn all_rows(&self) -> Result<Vec<(Chunk, String, Vec<f32>)>> {
        let mut columns = chunk_columns();
        columns.extend(["embed_hash".to_string(), "vector".to_string()]);
        let query = self.table.query().select(Select::columns(&columns));
        let mut out = Vec::new();
        for batch in &collect(&query)? {
            let hashes = string_column(batch, "embed_hash")?;
            let rows = chunks_from_batch(batch)?
                .into_iter()
                .zip(vectors_of(batch)?);
            for (i, (chunk, vector)) in rows.enumerate() {
                out.push((chunk, hashes.value(i).to_string(), vector));
            }
        }
        Ok(out)
    }

    pub(super) fn chunks_in_file(
        &self,
        repo: &str,
        path: &str,
        filter: &ChunkFilter,
    ) -> Result<Vec<Chunk>> {
        let predicate = format!(
            "repo = {} AND path = {}",
            sql_string_list(&[repo]),
            sql_string_list(&[path])
        );
        let mut chunks = Vec::new();
        for table in self.tables() {
            chunks.extend(self.chunks_where(table, predicate.clone(), filter)?);
        }
        Ok(chunks)
    }

    fn chunks_where(
        &self,
        table: &lancedb::Table,
        predicate: String,
        filter: &ChunkFilter,
    ) -> Result<Vec<Chunk>> {
        let predicate = match filter.to_sql() {
            Some(sql) => format!("({predicate}) AND ({sql})"),
            None => predicate,
        };
        let query = table
            .query()
            .only_if(predicate)
            .select(Select::columns(&chunk_columns()));
        let mut out = Vec::new();
        for batch in &collect(&query)? {
            out.extend(chunks_from_batch(batch)?);
        }
        Ok(out)
    }
}

/// The HNSW search list for `limit` results, each re-ranked among `refine_factor`
/// candidates, under a filter admitting `admitted_share` of the table (see
/// [`HNSW_MIN_EF`]); never shorter than the candidates fetched or twice the results.
fn hnsw_ef(limit: usize, refine_factor: usize, admitted_share: f64) -> usize {
    let scaled = (HNSW_MIN_EF as f64 * admitted_share.clamp(0.0, 1.0)).ceil() as usize;
    scaled.max(2 * limit).max(limit * refine_factor)
}

/// `query` restricted to the rows `filter` admits (a pre-filter: applied before ranking).
fn admitted<Q: QueryBase>(query: Q, filter: &ChunkFilter) -> Q {
    match filter.to_sql() {
        Some(sql) => query.only_if(sql),
        None => query,
    }
}

/// The vectors of the rows matching `predicate`, by embedding-input hash.
pub(super) fn vectors_where(
    table: &lancedb::Table,
    predicate: String,
) -> Result<HashMap<String, Vec<f32>>> {
    let query = table
        .query()
        .only_if(predicate)
        .select(Select::columns(&["embed_hash", "vector"]));
    let mut out = HashMap::new();
    for batch in &collect(&query)? {
        let hashes = string_column(batch, "embed_hash")?;
        for (i, vector) in vectors_of(batch)?.into_iter().enumerate() {
            out.insert(hashes.value(i).to_string(), vector);
        }
    }
    Ok(out)
}

/// Runs a query to completion on the storage runtime.
pub(super) fn collect(query: &(impl ExecutableQuery + Sync)) -> Result<Vec<RecordBatch>> {
    runtime::block_on(async { query.execute().await?.try_collect().await }).map_err(Error::store)
}

fn chunks_from_batch(batch: &RecordBatch) -> Result<Vec<Chunk>> {
    let text: Vec<&StringArray> = TEXT_COLUMNS
        .iter()
        .map(|name| string_column(batch, name))
        .collect::<Result<_>>()?;
    let start = primitive_column::<UInt32Type>(batch, "start_line")?;
    let end = primitive_column::<UInt32Type>(batch, "end_line")?;
    Ok((0..batch.num_rows())
        .map(|i| {
            let t = |k: usize| text[k].value(i).to_string();
            Chunk {
                chunk_id: t(0),
                repo: t(1),
                path: t(2),
                language: t(3),
                kind: t(4),
                symbol: t(5),
                signature: t(6),
                doc: t(7),
                content: t(8),
                content_hash: t(9),
                file_hash: t(10),
                commit: t(11),
                start_line: start.value(i),
                end_line: end.value(i),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hnsw_search_list_shrinks_with_the_admitted_share_within_its_floors() {
        assert_eq!(hnsw_ef(50, 1, 1.0), HNSW_MIN_EF);
        assert_eq!(hnsw_ef(50, 1, 0.5), 150);
        assert_eq!(
            hnsw_ef(50, 1, 0.1),
            100,
            "never below twice the result count"
        );
        assert_eq!(
            hnsw_ef(10, 4, 0.01),
            40,
            "nor below the candidates re-ranked"
        );
        assert_eq!(hnsw_ef(200, 1, 1.0), 400);
        assert_eq!(hnsw_ef(50, 1, 7.0), HNSW_MIN_EF, "a share is at most 1");
    }
}
