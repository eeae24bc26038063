//! The manifest: what a generation holds and how it was made.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::AnnIndex;
use crate::embed::ModelInfo;
use crate::walk::SkipCounts;

/// Recorded with every generation; read by status, staleness checks and model checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of the index folder.
    pub format: u32,
    /// Version of the chunk table and tantivy schema.
    pub schema_version: u32,
    /// Version of the chunker that cut the chunks.
    pub chunker_version: u32,
    /// The generation's name.
    pub generation: String,
    /// Seconds since the Unix epoch when the generation was published.
    pub created_unix: u64,
    /// The indexed root (absolute).
    pub root: PathBuf,
    /// The embedding model the vectors came from.
    pub model: ModelInfo,
    /// One record per repository.
    pub repos: Vec<RepoRecord>,
    /// Totals over all repositories.
    pub totals: Totals,
    /// The index was built with an access-control list: queries refuse to run without one
    /// rather than fall back to single-user mode when the list goes missing.
    #[serde(default)]
    pub acl_required: bool,
    /// The ANN index on the vector column (`off`: queries search exactly).
    #[serde(default)]
    pub ann_index: AnnIndex,
    /// Chunks per second the model embedded in the last run that embedded any (for the
    /// time left while chunks wait for vectors).
    #[serde(default)]
    pub embed_rate: f64,
}

impl Manifest {
    /// Ids of the indexed repositories, in manifest order.
    pub fn repo_ids(&self) -> Vec<String> {
        self.repos.iter().map(|r| r.id.clone()).collect()
    }

    /// Checks that the root is absolute and every repository path is a plain relative path
    /// below it (no `..`, `.`, absolute or empty segments), and that no two repositories
    /// share an id; says what is wrong.
    pub fn check_paths(&self) -> Result<(), String> {
        if !self.root.is_absolute() {
            return Err(format!("the root {:?} is not absolute", self.root));
        }
        let mut ids = std::collections::HashSet::new();
        for repo in &self.repos {
            if !repo.path.is_empty() && !is_plain_relative(&repo.path) {
                return Err(format!(
                    "repository {:?} has the path {:?}, which leaves the indexed root",
                    repo.id, repo.path
                ));
            }
            if !ids.insert(repo.id.as_str()) {
                return Err(format!("two repositories have the id {:?}", repo.id));
            }
        }
        Ok(())
    }
}

/// A relative `/`-separated path of ordinary names: not absolute, no empty, `.` or `..`
/// segment, no NUL. What the walker records, and all a manifest or a
/// citation may name.
pub fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

/// What was indexed of one repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoRecord {
    /// Repository id.
    pub id: String,
    /// Path under the root (empty for the root itself).
    pub path: String,
    /// Remote URL, if any.
    pub remote_url: Option<String>,
    /// Branch checked out when indexed.
    pub branch: Option<String>,
    /// Commit indexed; `None` outside git or before the first commit.
    pub commit: Option<String>,
    /// True when tracked files differed from the commit when indexed.
    pub dirty: bool,
    /// True when the folder is a git repository.
    pub is_git: bool,
    /// Files indexed.
    pub files: usize,
    /// Chunks stored.
    pub chunks: usize,
    /// Top-level entries git ignored.
    pub ignored_entries: usize,
}

/// Totals of one generation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Files indexed.
    pub files: usize,
    /// Chunks stored.
    pub chunks: usize,
    /// Vectors computed in this run.
    pub embedded: usize,
    /// Vectors reused from the previous generation.
    pub reused: usize,
    /// Chunks in the lexical lane still waiting for their vectors.
    #[serde(default)]
    pub pending: usize,
    /// Files decoded lossily because they were not valid UTF-8.
    pub lossy_utf8: usize,
    /// Files skipped, by reason.
    pub skipped: SkipCounts,
    /// Bytes of source read.
    pub source_bytes: u64,
}
