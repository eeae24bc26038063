//! The eval backlog: users' verdicts on citations (`codeq ask --verdict`, `g`/`b` in the
//! TUI), appended to `backlog.jsonl` in the index folder for `codeq eval` triage.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use crate::acl::Access;
use crate::answer::Answer;
use crate::error::{Error, Result};
use crate::store::IndexDir;

/// File name of the backlog inside the index folder.
pub const BACKLOG_FILE: &str = "backlog.jsonl";

/// A user's judgement of a citation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The citation answers the question.
    Good,
    /// It does not.
    Bad,
}

impl std::str::FromStr for Verdict {
    type Err = String;

    fn from_str(raw: &str) -> std::result::Result<Verdict, String> {
        match raw.trim() {
            "good" => Ok(Verdict::Good),
            "bad" => Ok(Verdict::Bad),
            other => Err(format!("{other:?}: the verdict is good or bad")),
        }
    }
}

/// Appends verdicts on citations of `answer` (numbered from 1) given in `generation`;
/// returns the backlog's path. A number past the last citation is an error and records
/// nothing.
pub fn record(
    dir: &IndexDir,
    generation: &str,
    answer: &Answer,
    verdicts: &[(usize, Verdict)],
) -> Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut lines = String::new();
    for (n, verdict) in verdicts {
        let citation = n
            .checked_sub(1)
            .and_then(|i| answer.citations.get(i))
            .ok_or(Error::NoSuchCitation {
                number: *n,
                count: answer.citations.len(),
            })?;
        let line = json!({
            "recorded_unix": now,
            "question": answer.question,
            "generation": generation,
            "citation": citation.citation,
            "repo": citation.repo,
            "path": citation.path,
            "symbol": citation.symbol,
            "verdict": verdict,
        });
        lines.push_str(&format!("{line}\n"));
    }
    let path = dir.path().join(BACKLOG_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(lines.as_bytes()))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(path)
}

/// Backlog verdicts the principal may see: others may have judged citations of
/// repositories this principal cannot read.
pub fn read(dir: &IndexDir, access: &Access) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.path().join(BACKLOG_FILE))
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|item| {
                    access.sees_everything()
                        || match (item["repo"].as_str(), item["path"].as_str()) {
                            (Some(repo), Some(path)) => access.filter.admits(repo, path),
                            _ => false,
                        }
                })
                .collect()
        })
        .unwrap_or_default()
}
