//! The `[index]` section: what the walker reads and how the chunker and the indexer work.

use super::*;

/// Walker and chunker settings (`[index]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Files larger than this many bytes are skipped and counted.
    pub max_file_bytes: u64,
    /// Folder names never descended into (generated or vendored code).
    pub skip_dirs: Vec<String>,
    /// File-name globs that are skipped as generated (lock files, minified bundles).
    pub skip_files: Vec<String>,
    /// Chunks embedded and written per round of the pipeline.
    pub write_batch: usize,
    /// The approximate-nearest-neighbour index built on large vector tables (`off`,
    /// `ivf_pq`, `ivf_hnsw_sq`, `ivf_rq`).
    pub ann: AnnIndex,
    /// Tables with fewer chunks than this keep exact vector search.
    pub ann_min_chunks: usize,
    /// Chunks per IVF partition of an `ivf_hnsw_sq` index: each partition's graph is built
    /// in memory on its own (this bounds the indexer's peak memory), and a query searches
    /// one graph per partition it probes.
    pub ann_partition_chunks: usize,
    /// Vectors of chunks that left the index (changed, deleted, another branch) kept for
    /// reuse; the oldest go first beyond this many (0 keeps none).
    pub embed_cache_vectors: usize,
    /// A run that chunks more files than this publishes the lexical index first and
    /// computes the missing vectors afterwards (queries work meanwhile).
    pub lexical_first_files: usize,
    /// Vectors computed between two publishes while embedding runs behind the lexical
    /// index: what a stopped run can lose, and how often queries gain vectors.
    pub embed_round: usize,
}

impl IndexConfig {
    /// What the walker lists and skips.
    pub fn walk_options(&self) -> walk::WalkOptions {
        walk::WalkOptions {
            max_file_bytes: self.max_file_bytes,
            skip_dirs: self.skip_dirs.clone(),
            skip_files: self.skip_files.clone(),
        }
    }

    /// When the indexer builds an ANN index.
    pub fn ann_policy(&self) -> AnnPolicy {
        AnnPolicy {
            index: self.ann,
            min_rows: self.ann_min_chunks,
            partition_rows: self.ann_partition_chunks,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        IndexConfig {
            max_file_bytes: 1024 * 1024,
            skip_dirs: owned(&[
                "node_modules",
                "target",
                "vendor",
                "third_party",
                "__pycache__",
                "venv",
                ".venv",
                ".tox",
                ".mypy_cache",
                "site-packages",
                INDEX_DIR_NAME,
            ]),
            skip_files: owned(&[
                "Cargo.lock",
                "package-lock.json",
                "yarn.lock",
                "pnpm-lock.yaml",
                "poetry.lock",
                "uv.lock",
                "*.min.js",
                "*.min.css",
                "*.map",
                "*.pyc",
            ]),
            write_batch: 32,
            ann: AnnIndex::IvfHnswSq,
            ann_min_chunks: 20_000,
            ann_partition_chunks: 65_536,
            embed_cache_vectors: 50_000,
            lexical_first_files: 64,
            embed_round: 2048,
        }
    }
}
