//! The file table: every file a generation holds chunks of, with the stat it had and the
//! hash of its bytes. The next `codeq index` compares the working tree with it and
//! re-reads only files whose stat changed, re-chunks only those whose bytes changed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::walk::FileStamp;

/// One indexed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Repository id.
    pub repo: String,
    /// Path relative to the repository.
    pub path: String,
    /// What the file system said when it was read.
    pub stamp: FileStamp,
    /// sha256 of the bytes that were chunked.
    pub file_hash: String,
    /// Chunks stored for it.
    pub chunks: usize,
    /// It was not valid UTF-8 and was decoded lossily.
    pub lossy: bool,
}

/// The files of one generation, and when the run that recorded them started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileTable {
    /// Version of the chunker that cut the chunks; another version re-chunks everything.
    pub chunker_version: u32,
    /// Nanoseconds since the Unix epoch when the recording run started.
    pub started_ns: i64,
    /// One record per file with chunks.
    pub files: Vec<FileRecord>,
}

/// A file modified this close to (or after) the start of the run that read it may have
/// changed again within the same timestamp granularity: its stat is not trusted.
const RACY_WINDOW_NS: i64 = 2_000_000_000;

impl FileTable {
    /// Records keyed by (repository, path).
    pub fn by_key(&self) -> HashMap<(&str, &str), &FileRecord> {
        self.files
            .iter()
            .map(|r| ((r.repo.as_str(), r.path.as_str()), r))
            .collect()
    }

    /// True when `now` proves the file unchanged since `record` was taken.
    pub fn trusts(&self, record: &FileRecord, now: FileStamp) -> bool {
        record.stamp == now && now.mtime_ns < self.started_ns - RACY_WINDOW_NS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mtime_ns: i64) -> FileRecord {
        FileRecord {
            repo: "r".into(),
            path: "a.rs".into(),
            stamp: FileStamp {
                size: 10,
                mtime_ns,
                inode: 7,
            },
            file_hash: "h".into(),
            chunks: 1,
            lossy: false,
        }
    }

    #[test]
    fn a_stat_is_trusted_only_when_equal_and_older_than_the_run() {
        let table = FileTable {
            chunker_version: 1,
            started_ns: 100_000_000_000,
            files: vec![record(1_000)],
        };
        let old = record(1_000);
        assert!(table.trusts(&old, old.stamp));
        let touched = FileStamp {
            mtime_ns: 2_000,
            ..old.stamp
        };
        assert!(!table.trusts(&old, touched));
        let replaced = FileStamp {
            inode: 8,
            ..old.stamp
        };
        assert!(!table.trusts(&old, replaced));
        let racy = record(99_500_000_000);
        assert!(
            !table.trusts(&racy, racy.stamp),
            "modified within the racy window of the run that read it"
        );
    }
}
