//! The plan of a run: which files the walk found unchanged, which to chunk and which to
//! remove, against the previous generation's file table.

use super::*;

/// What the walk found compared with the previous generation's file table.
pub(super) struct Plan {
    /// Records of files whose bytes are unchanged (with their current stat).
    pub(super) kept: Vec<FileRecord>,
    /// Indexes into `scan.files` of the files to chunk.
    pub(super) to_chunk: Vec<usize>,
    /// Files whose chunks the new generation must not keep (repository, path).
    pub(super) to_remove: Vec<(String, String)>,
    /// Files skipped when read for their hash (binary, unreadable).
    pub(super) read_skips: SkipCounts,
    pub(super) rehashed: usize,
    pub(super) modified: usize,
    pub(super) added: usize,
}

impl Plan {
    /// Compares the scan with `recorded`: a file whose stat the table trusts is kept
    /// unread; any other recorded file is hashed and kept when its bytes are the same. A
    /// recorded file the scan lacks is removed, unless it belongs to a repository outside
    /// `shard`: another indexer's, kept as it is.
    pub(super) fn new(scan: &Scan, recorded: Option<&FileTable>, shard: Option<Shard>) -> Plan {
        let mut plan = Plan {
            kept: Vec::new(),
            to_chunk: Vec::new(),
            to_remove: Vec::new(),
            read_skips: SkipCounts::default(),
            rehashed: 0,
            modified: 0,
            added: 0,
        };
        let Some(table) = recorded else {
            plan.to_chunk = (0..scan.files.len()).collect();
            plan.added = scan.files.len();
            return plan;
        };
        let mut records = table.by_key();
        for (i, entry) in scan.files.iter().enumerate() {
            let repo = &scan.repos[entry.repo];
            let Some(record) = records.remove(&(repo.id.as_str(), entry.rel_path.as_str())) else {
                // Read now so that a file skipped on every run (binary) is not news.
                match walk::read_text(entry) {
                    Ok(_) => {
                        plan.to_chunk.push(i);
                        plan.added += 1;
                    }
                    Err(reason) => plan
                        .read_skips
                        .add(reason, join_path(&repo.rel_path, &entry.rel_path)),
                }
                continue;
            };
            if table.trusts(record, entry.stamp) {
                plan.kept.push(record.clone());
                continue;
            }
            match walk::read_text(entry) {
                Ok(file) if file.hash == record.file_hash => {
                    plan.rehashed += 1;
                    plan.kept.push(FileRecord {
                        stamp: entry.stamp,
                        ..record.clone()
                    });
                }
                Ok(_) => {
                    plan.to_chunk.push(i);
                    plan.to_remove
                        .push((repo.id.clone(), entry.rel_path.clone()));
                    plan.modified += 1;
                }
                Err(reason) => {
                    plan.read_skips
                        .add(reason, join_path(&repo.rel_path, &entry.rel_path));
                    plan.to_remove
                        .push((repo.id.clone(), entry.rel_path.clone()));
                }
            }
        }
        for ((repo, path), record) in records {
            if shard.is_some_and(|shard| !shard.contains(repo)) {
                plan.kept.push(record.clone());
            } else {
                plan.to_remove.push((repo.to_string(), path.to_string()));
            }
        }
        plan
    }

    /// True when no file has to be chunked or removed.
    pub(super) fn changes_nothing(&self) -> bool {
        self.to_chunk.is_empty() && self.to_remove.is_empty()
    }

    /// Files skipped by the walk and by the hashing reads.
    pub(super) fn skipped(&self, scan: &Scan) -> SkipCounts {
        let mut skipped = scan.skipped.clone();
        skipped.merge(self.read_skips.clone());
        skipped
    }

    pub(super) fn changes(&self) -> Changes {
        Changes {
            files_unchanged: self.kept.len(),
            files_rehashed: self.rehashed,
            files_modified: self.modified,
            files_added: self.added,
            files_removed: self.to_remove.len() - self.modified,
            ..Changes::default()
        }
    }
}
