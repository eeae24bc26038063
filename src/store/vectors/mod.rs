//! The vector lane: the LanceDB chunk table (each chunk's id, repository, path and
//! language with its vector; the rest of a chunk is the lexical lane's) and cosine
//! search with the filter applied before ranking: exact on small tables (over vectors held
//! in memory), through an approximate-nearest-neighbour (ANN) index past a configurable
//! size.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

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

mod reader;
mod resident;
mod writer;

use super::connect;
pub(super) use reader::VectorReader;
use resident::{MAX_RESIDENT_ROWS, ResidentVectors};
use writer::file_predicates;
pub(super) use writer::{VectorWriter, maintain, rebuild_ann};

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
/// What the tables keep of a chunk, in schema order: its id and what the access
/// pre-filter, the language counts and file removals read. The rest of a chunk (text,
/// symbol, lines, hashes) is stored once, in the lexical lane's documents, which every
/// chunk of a generation has, with or without a vector.
const KEY_COLUMNS: [&str; 4] = ["chunk_id", "repo", "path", "language"];

/// A chunk's [`KEY_COLUMNS`], taken out of it.
type ChunkKey = [String; 4];

fn key_of(chunk: Chunk) -> ChunkKey {
    [chunk.chunk_id, chunk.repo, chunk.path, chunk.language]
}

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

/// Fields of a chunk as stored: its key columns and its embedding-input hash.
fn chunk_fields() -> Vec<Field> {
    let mut fields: Vec<Field> = KEY_COLUMNS
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8, false))
        .collect();
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
