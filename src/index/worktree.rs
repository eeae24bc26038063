//! What changed in the working tree since a generation was indexed: per-repository state
//! (HEAD, branch) and the files whose bytes differ.

use super::*;

/// Files of one repository whose bytes differ from what the published generation indexed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkingTreeChanges {
    /// Indexed files whose bytes changed.
    pub modified: usize,
    /// Files the generation does not hold (new, untracked, renamed to).
    pub added: usize,
    /// Indexed files that are gone or can no longer be read as text.
    pub removed: usize,
}

impl WorkingTreeChanges {
    /// Files changed in any way.
    pub fn total(&self) -> usize {
        self.modified + self.added + self.removed
    }
}

/// Walks the root of `reader`'s generation as `codeq index` would and compares it with
/// the generation's file table, without chunking or writing: the files changed since
/// indexing, by repository id. Files whose stat is unchanged are not read. `None` when the
/// generation has no usable file table (built by another chunker version: the next run
/// re-chunks everything anyway).
pub fn changes_since_indexed(
    dir: &IndexDir,
    reader: &IndexReader,
    config: &IndexConfig,
    acl_file: Option<&Path>,
) -> Result<Option<HashMap<String, WorkingTreeChanges>>> {
    let Some(recorded) = dir
        .file_table(reader.generation())
        .filter(|t| t.chunker_version == CHUNKER_VERSION)
    else {
        return Ok(None);
    };
    let root = &reader.manifest().root;
    let scan = walk::scan(
        root,
        &config.walk_options(),
        &walk_exclusions(root, dir.path(), acl_file),
    )?;
    let plan = Plan::new(&scan, Some(&recorded), None);
    let mut by_repo: HashMap<String, WorkingTreeChanges> = HashMap::new();
    let mut removed: HashSet<(&str, &str)> = plan
        .to_remove
        .iter()
        .map(|(repo, path)| (repo.as_str(), path.as_str()))
        .collect();
    for &i in &plan.to_chunk {
        let entry = &scan.files[i];
        let repo = scan.repos[entry.repo].id.as_str();
        let changes = by_repo.entry(repo.to_string()).or_default();
        if removed.remove(&(repo, entry.rel_path.as_str())) {
            changes.modified += 1;
        } else {
            changes.added += 1;
        }
    }
    for (repo, _) in removed {
        by_repo.entry(repo.to_string()).or_default().removed += 1;
    }
    Ok(Some(by_repo))
}

pub(super) fn repo_states(scan: &Scan) -> Vec<RepoState> {
    scan.repos
        .iter()
        .map(|r| {
            let git = r.git.clone().unwrap_or_default();
            (
                r.id.clone(),
                r.rel_path.clone(),
                git.branch,
                git.head,
                git.dirty,
            )
        })
        .collect()
}

pub(super) fn manifest_states(manifest: &Manifest) -> Vec<RepoState> {
    manifest
        .repos
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.path.clone(),
                r.branch.clone(),
                r.commit.clone(),
                r.dirty,
            )
        })
        .collect()
}
