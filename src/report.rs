//! The documented `--json` shapes (see docs/JSON.md), built once for the command line, the
//! TUI and the MCP server. Every document carries `schema_version`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::acl::{Access, AccessMode};
use crate::answer::{self, Answer};
use crate::error::Result;
use crate::index::IndexConfig;
use crate::index::{self, WorkingTreeChanges};
use crate::search::SearchResults;
use crate::store::{
    DiskUsage, IndexDir, IndexReader, KeptGeneration, Manifest, RepoRecord, Upkeep,
};
use crate::walk;
use crate::working_tree;

/// Version of the `--json` output shapes; bumped when a field changes meaning or goes away.
pub const JSON_SCHEMA_VERSION: u32 = 2;

/// One repository in `codeq status`: what was indexed against the working tree now.
#[derive(Debug, Clone, Serialize)]
pub struct RepoStatus {
    pub id: String,
    pub path: String,
    pub is_git: bool,
    pub remote_url: Option<String>,
    pub branch: Option<String>,
    pub indexed_commit: Option<String>,
    pub head: Option<String>,
    pub stale: bool,
    pub dirty_when_indexed: bool,
    pub dirty_now: bool,
    /// Files whose bytes differ from what was indexed (`codeq index` would re-chunk them);
    /// `None` when not measured or not shown to this principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_since_indexed: Option<WorkingTreeChanges>,
    pub files: usize,
    pub chunks: usize,
    /// The path globs the principal may read, when the grant covers only part of the repo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

impl RepoStatus {
    /// The repository as indexed, compared with its working tree under `root` now.
    pub fn of(repo: &RepoRecord, root: &Path) -> RepoStatus {
        let now = repo.is_git.then(|| walk::git_state(&root.join(&repo.path)));
        let head = now.as_ref().and_then(|g| g.head.clone());
        RepoStatus {
            id: repo.id.clone(),
            path: repo.path.clone(),
            is_git: repo.is_git,
            remote_url: repo.remote_url.clone(),
            branch: repo.branch.clone(),
            indexed_commit: repo.commit.clone(),
            stale: repo.is_git && head != repo.commit,
            head,
            dirty_when_indexed: repo.dirty,
            dirty_now: now.as_ref().is_some_and(|g| g.dirty),
            changed_since_indexed: None,
            files: repo.files,
            chunks: repo.chunks,
            paths: None,
        }
    }

    /// Clears what describes the whole repository (branch, remote, commits, dirty flags)
    /// for a principal who may read only some of its paths.
    fn hide_repository_state(&mut self) {
        self.remote_url = None;
        self.branch = None;
        self.indexed_commit = None;
        self.head = None;
        self.stale = false;
        self.dirty_when_indexed = false;
        self.dirty_now = false;
        self.changed_since_indexed = None;
    }

    /// "current at abc1234567", "STALE: indexed …, HEAD is now …", with dirty state.
    pub fn describe(&self) -> String {
        if self.paths.is_some() {
            return "repository state not shown (you may read only part of it)".into();
        }
        let short = |commit: &Option<String>| {
            commit
                .as_deref()
                .map_or_else(|| "-".to_string(), |c| c[..c.len().min(10)].to_string())
        };
        let state = if !self.is_git {
            "not in git".to_string()
        } else if self.indexed_commit.is_none() && self.head.is_none() {
            "no commits yet".to_string()
        } else if self.stale {
            format!(
                "STALE: indexed {}, HEAD is now {}",
                short(&self.indexed_commit),
                short(&self.head)
            )
        } else {
            format!("current at {}", short(&self.indexed_commit))
        };
        let dirty = if self.dirty_now {
            ", uncommitted changes"
        } else {
            ""
        };
        let changed = match self.changed_since_indexed {
            Some(c) if c.total() > 0 => format!(
                "; changed since indexing: {} modified, {} added, {} removed",
                c.modified, c.added, c.removed
            ),
            _ => String::new(),
        };
        format!("{state}{dirty}{changed}")
    }
}

/// Document counts of the two lanes among what the principal may see.
#[derive(Debug, Clone, Serialize)]
pub struct LaneStatus {
    /// Documents in the tantivy index.
    pub bm25_docs: usize,
    /// Rows with vectors.
    pub vectors: usize,
    /// Chunks whose vectors are still being computed (in the BM25 lane already).
    pub pending: usize,
    /// Share of the visible chunks with vectors.
    pub vector_coverage: f64,
    /// Chunks the visible repositories' records add up to.
    pub chunks: usize,
    /// All three agree.
    pub consistent: bool,
}

/// `codeq status`: the visible repositories and the lanes' agreement.
#[derive(Debug, Clone)]
pub struct Status {
    /// Visible repositories, with counts of only what the principal may read.
    pub repos: Vec<RepoStatus>,
    /// Lane counts.
    pub lanes: LaneStatus,
    /// Index size on disk by part and storage upkeep, measured only for a principal who
    /// sees everything.
    pub storage: Option<(DiskUsage, Upkeep)>,
    /// Kept generations and what each was built with (only for a principal who sees
    /// everything: they describe the whole index).
    pub generations: Vec<KeptGeneration>,
    /// Time left to embed the waiting chunks at the last measured rate (for a principal
    /// who sees everything, while chunks wait).
    pub embedding_eta: Option<Duration>,
    value: serde_json::Value,
}

impl Status {
    /// Compares what is indexed with the working trees (walked with `index_config`, as
    /// `codeq index` would), as `access` may see it. Index-wide totals (skipped files,
    /// size) appear only for a principal who sees everything.
    pub fn build(
        dir: &IndexDir,
        reader: &IndexReader,
        access: &Access,
        index_config: &IndexConfig,
    ) -> Result<Status> {
        let manifest = reader.manifest();
        // Status is where damage should show first: every file is checked, not just sized.
        dir.verify(reader.generation(), true)?;
        let filter = &access.filter();
        let acl_file = match &access.mode() {
            AccessMode::Acl { source, .. } => Some(source.as_path()),
            AccessMode::SingleUser => None,
        };
        let working_tree = index::changes_since_indexed(dir, reader, index_config, acl_file)?;
        let counts = reader.lane_counts(filter)?;
        // Repositories the principal may read only partly are counted from the table, so
        // that no count includes what they may not see.
        let partial_counts = reader.visible_counts(&filter.path_restricted())?;
        let repos: Vec<RepoStatus> = manifest
            .repos
            .iter()
            .filter(|repo| filter.admits_repo(&repo.id))
            .map(|repo| {
                let mut status = RepoStatus::of(repo, &manifest.root);
                status.changed_since_indexed = working_tree
                    .as_ref()
                    .map(|w| w.get(&repo.id).copied().unwrap_or_default());
                if let Some(scope) = filter
                    .scopes()
                    .and_then(|s| s.iter().find(|s| s.repo == repo.id))
                    && let Some(globs) = &scope.paths
                {
                    let (files, chunks) = partial_counts.get(&repo.id).copied().unwrap_or((0, 0));
                    status.files = files;
                    status.chunks = chunks;
                    status.paths = Some(globs.iter().map(|g| g.glob().to_string()).collect());
                    // Whole-repository state moves with files this principal cannot read.
                    status.hide_repository_state();
                }
                status
            })
            .collect();
        let chunks: usize = repos.iter().map(|r| r.chunks).sum();
        let lanes = LaneStatus {
            bm25_docs: counts.bm25_docs,
            vectors: counts.vectors,
            pending: counts.pending,
            vector_coverage: counts.vector_coverage(),
            chunks,
            consistent: counts.bm25_docs == counts.vectors + counts.pending
                && counts.bm25_docs == chunks,
        };
        let mut value = json!({
            "schema_version": JSON_SCHEMA_VERSION,
            "access": access.mode(),
            "index_dir": dir.location(),
            "generation": reader.generation(),
            "created_unix": manifest.created_unix,
            "root": manifest.root,
            "model": manifest.model,
            "chunker_version": manifest.chunker_version,
            "ann_index": manifest.ann_index,
            "repos": repos,
            "lanes": lanes,
        });
        let (storage, generations) = if access.sees_everything() {
            let storage = (dir.disk_usage()?, reader.upkeep()?);
            (Some(storage), dir.rollback_candidates()?)
        } else {
            (None, Vec::new())
        };
        let pending = manifest.totals.pending;
        let embedding_eta = (access.sees_everything() && pending > 0 && manifest.embed_rate > 0.0)
            .then(|| Duration::from_secs_f64(pending as f64 / manifest.embed_rate));
        if let Some(eta) = embedding_eta {
            value["embedding_eta_s"] = json!(eta.as_secs_f64());
        }
        if let Some((disk, upkeep)) = &storage {
            value["skipped"] = json!(manifest.totals.skipped);
            value["size_on_disk_bytes"] = json!(disk.total);
            value["disk"] = json!(disk);
            value["upkeep"] = json!(upkeep);
            value["source_bytes"] = json!(manifest.totals.source_bytes);
            value["generations"] = json!(generations);
        }
        Ok(Status {
            repos,
            lanes,
            storage,
            generations,
            embedding_eta,
            value,
        })
    }

    /// `codeq status --json`.
    pub fn to_json(&self) -> serde_json::Value {
        self.value.clone()
    }
}

/// The indexed commit against the current HEAD of each of `repos` (the repositories of
/// cited chunks) that `access` may read whole; a principal who may read only some paths
/// of a repository learns nothing of its commits, as in `codeq status`.
pub fn index_state<'r>(
    manifest: &Manifest,
    access: &Access,
    repos: impl Iterator<Item = &'r str>,
) -> serde_json::Map<String, serde_json::Value> {
    let partial = access.filter().path_restricted();
    let mut out = serde_json::Map::new();
    for id in repos {
        if out.contains_key(id) || partial.admits_repo(id) {
            continue;
        }
        let Some(repo) = manifest.repos.iter().find(|r| r.id == id && r.is_git) else {
            continue;
        };
        let head = working_tree::git_head(&manifest.root.join(&repo.path));
        out.insert(
            id.to_string(),
            json!({"indexed_commit": repo.commit, "head": head, "stale": head != repo.commit}),
        );
    }
    out
}

/// `codeq search --json`.
pub fn search_json(
    query: &str,
    results: &SearchResults,
    access: &Access,
    manifest: &Manifest,
    trace_id: Option<&str>,
) -> serde_json::Value {
    let hits: Vec<serde_json::Value> = results
        .hits
        .iter()
        .map(|h| {
            let c = &h.chunk;
            json!({
                "citation": c.citation(),
                "repo": c.repo, "path": c.path, "start_line": c.start_line, "end_line": c.end_line,
                "symbol": c.symbol, "kind": c.kind, "language": c.language,
                "signature": c.signature, "doc": c.doc,
                "score": h.score, "fused_score": h.fused_score, "boosts": h.boosts,
                "bm25_rank": h.bm25_rank, "bm25_score": h.bm25_score,
                "vector_rank": h.vector_rank, "vector_distance": h.vector_distance,
                "rerank_score": h.rerank_score,
                "freshness": answer::freshness_of(manifest, c),
                "snippet": snippet(&c.content, 6),
            })
        })
        .collect();
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "trace_id": trace_id,
        "access": access.mode(),
        "query": query,
        "terms": results.terms,
        "analysis": results.analysis,
        "overlaps_removed": results.overlaps_removed,
        "vector_coverage": results.vector_coverage,
        "results": hits,
        "index_state": index_state(manifest, access, results.hits.iter().map(|h| h.chunk.repo.as_str())),
        "timings_ms": {
            "analyze": ms(results.timings.analyze),
            "embed": ms(results.timings.embed), "bm25": ms(results.timings.bm25),
            "vector": ms(results.timings.vector), "fuse": ms(results.timings.fuse),
            "rerank": ms(results.timings.rerank), "total": ms(results.timings.total),
        },
    })
}

/// `codeq ask --json`.
pub fn ask_json(
    access: &Access,
    manifest: &Manifest,
    answer: &Answer,
    trace_id: Option<&str>,
) -> serde_json::Value {
    let state = index_state(
        manifest,
        access,
        answer.citations.iter().map(|c| c.repo.as_str()),
    );
    json!({"schema_version": JSON_SCHEMA_VERSION, "trace_id": trace_id, "access": access.mode(),
           "generation": manifest.generation, "index_state": state, "answer": answer})
}

/// Characters of one snippet line shown; a longer line (minified code, data) is cut.
pub const SNIPPET_LINE_CHARS: usize = 240;

/// The first `lines` lines of a chunk, each cut at [`SNIPPET_LINE_CHARS`] characters, for
/// display: a snippet stays a few hundred bytes whatever the chunk holds.
pub fn snippet(content: &str, lines: usize) -> String {
    content
        .lines()
        .take(lines)
        .map(|line| match line.char_indices().nth(SNIPPET_LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// "alice (ACL)", or "single-user" without a principal.
pub fn principal_label(principal: Option<&str>) -> String {
    principal.map_or("single-user".to_string(), |p| format!("{p} (ACL)"))
}

/// Milliseconds with microsecond precision.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
