//! The eval history of an index: every `codeq eval` run appends its summary (which
//! generation, model and chunker, each set's headline metrics) to `eval-history.jsonl` in
//! the index folder, so drift across runs and generations is visible (`codeq eval
//! --history`) and a worse generation can be found and rolled back.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EvalReport, Metrics};
use crate::error::{Error, Result};

/// The history file inside an index folder.
pub const HISTORY_FILE: &str = "eval-history.jsonl";

/// The headline metrics of a set (or of all sets) in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Set name, or `overall`.
    pub name: String,
    /// Questions scored.
    pub questions: usize,
    /// File hit@1.
    pub hit_at_1: f64,
    /// File hit@5.
    pub hit_at_5: f64,
    /// MRR@10.
    pub mrr_at_10: f64,
    /// NDCG@10.
    pub ndcg_at_10: f64,
}

impl Summary {
    fn of(name: &str, m: &Metrics) -> Summary {
        Summary {
            name: name.to_string(),
            questions: m.questions,
            hit_at_1: m.hit_at_1,
            hit_at_5: m.hit_at_5,
            mrr_at_10: m.mrr_at_10,
            ndcg_at_10: m.ndcg_at_10,
        }
    }
}

/// One eval run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it ran (Unix seconds).
    pub unix: u64,
    /// The generation evaluated.
    pub generation: String,
    /// Its model id.
    pub model: String,
    /// Its chunker version.
    pub chunker_version: u32,
    /// The principal it ran as (`None`: single-user mode).
    pub principal: Option<String>,
    /// Whether every blocking gate passed.
    pub passed: bool,
    /// Each set, then `overall`.
    pub sets: Vec<Summary>,
}

impl HistoryEntry {
    /// The summary of `report`, run now as `principal` on a generation cut by
    /// `chunker_version`.
    pub fn of(
        report: &EvalReport,
        chunker_version: u32,
        principal: Option<String>,
        passed: bool,
    ) -> HistoryEntry {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut sets: Vec<Summary> = report
            .sets
            .iter()
            .map(|s| Summary::of(&s.name, &s.metrics))
            .collect();
        sets.push(Summary::of("overall", &report.overall));
        HistoryEntry {
            unix,
            generation: report.generation.clone(),
            model: report.model.clone(),
            chunker_version,
            principal,
            passed,
            sets,
        }
    }
}

fn history_path(index_dir: &Path) -> PathBuf {
    index_dir.join(HISTORY_FILE)
}

/// Appends `entry` as one line.
pub fn append(index_dir: &Path, entry: &HistoryEntry) -> Result<()> {
    let path = history_path(index_dir);
    let line = serde_json::to_string(entry).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()))
        .map_err(|e| Error::io(format!("cannot append to {}", path.display()), e))
}

/// The runs recorded for `index_dir`, oldest first, those of `principal` only unless
/// `everyone` (a principal's set names and scores are theirs). A line that does not parse
/// (a run killed mid-write) is skipped.
pub fn read(
    index_dir: &Path,
    principal: Option<&str>,
    everyone: bool,
) -> Result<Vec<HistoryEntry>> {
    let path = history_path(index_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<HistoryEntry>(line).ok())
        .filter(|entry| everyone || entry.principal.as_deref() == principal)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: &str, principal: Option<&str>, hit: f64) -> HistoryEntry {
        HistoryEntry {
            unix: 1,
            generation: generation.into(),
            model: "m".into(),
            chunker_version: 4,
            principal: principal.map(str::to_string),
            passed: true,
            sets: vec![Summary {
                name: "overall".into(),
                questions: 3,
                hit_at_1: hit,
                hit_at_5: hit,
                mrr_at_10: hit,
                ndcg_at_10: hit,
            }],
        }
    }

    #[test]
    fn runs_are_appended_in_order_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), None, true).unwrap().is_empty());
        append(dir.path(), &entry("g000001", None, 0.5)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(HISTORY_FILE))
            .unwrap()
            .write_all(b"{\"unix\": 2, \"generat\n")
            .unwrap();
        append(dir.path(), &entry("g000002", Some("alice"), 0.75)).unwrap();
        let all = read(dir.path(), None, true).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].generation, "g000001");
        assert_eq!(all[1].sets[0].hit_at_1, 0.75);
    }

    #[test]
    fn a_principal_sees_only_their_own_runs() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &entry("g000001", Some("alice"), 0.5)).unwrap();
        append(dir.path(), &entry("g000001", Some("bob"), 0.9)).unwrap();
        let alice = read(dir.path(), Some("alice"), false).unwrap();
        assert_eq!(alice.len(), 1);
        assert_eq!(alice[0].principal.as_deref(), Some("alice"));
        assert_eq!(read(dir.path(), Some("alice"), true).unwrap().len(), 2);
    }
}
