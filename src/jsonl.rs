//! JSON-lines logs in the index folder (traces, the eval backlog): appended a record per
//! line, read back line by line, so one damaged line (invalid UTF-8, a torn write, a hand
//! edit) costs that line and never the rest of the log.

use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Appends `lines` (each one JSON document without a newline) to the log at `path`.
pub fn append(path: &Path, lines: &[String]) -> Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Every record of the log at `path` that parses as `T`, in order; lines that are not
/// UTF-8 or not a `T` are skipped. A missing or unreadable log has no records.
pub fn read<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_line_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        append(&path, &["{\"n\":1}".into()]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"n\":\xff2}\nnot json\n")
            .unwrap();
        append(&path, &["{\"n\":3}".into()]).unwrap();
        let read: Vec<serde_json::Value> = read(&path);
        assert_eq!(
            read,
            vec![serde_json::json!({"n":1}), serde_json::json!({"n":3})]
        );
        assert!(super::read::<serde_json::Value>(&dir.path().join("none")).is_empty());
    }
}
