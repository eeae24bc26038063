//! The eval backlog: users' verdicts on citations (`codeq ask --verdict`, `g`/`b` in the
//! TUI), appended to `backlog.jsonl` in the index folder for `codeq eval` triage.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use crate::acl::Access;
use crate::answer::Answer;
use crate::error::{Error, Result};
use crate::jsonl;
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

/// Appends verdicts on citations of `answer` (numbered from 1) given in `generation` by
/// `principal` (`None`: single-user mode); returns the backlog's path. A number past the
/// last citation is an error and records nothing.
pub fn record(
    dir: &IndexDir,
    generation: &str,
    principal: Option<&str>,
    answer: &Answer,
    verdicts: &[(usize, Verdict)],
) -> Result<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut lines = Vec::new();
    for (n, verdict) in verdicts {
        let citation = n
            .checked_sub(1)
            .and_then(|i| answer.citations.get(i))
            .ok_or(Error::NoSuchCitation {
                number: *n,
                count: answer.citations.len(),
            })?;
        lines.push(
            json!({
                "recorded_unix": now,
                "principal": principal,
                "question": answer.question,
                "generation": generation,
                "citation": citation.citation,
                "repo": citation.repo,
                "path": citation.path,
                "symbol": citation.symbol,
                "verdict": verdict,
            })
            .to_string(),
        );
    }
    let path = dir.path().join(BACKLOG_FILE);
    jsonl::append(&path, &lines)?;
    Ok(path)
}

/// The backlog verdicts `access` may see: only the principal's own (a question quotes what
/// its author could read, so nobody reads another's), and of those only citations the
/// principal may still read. In single-user mode there is one user and every entry is
/// theirs. Entries recorded before verdicts carried their principal belong to nobody.
pub fn read(dir: &IndexDir, access: &Access) -> Vec<serde_json::Value> {
    jsonl::read::<serde_json::Value>(&dir.path().join(BACKLOG_FILE))
        .into_iter()
        .filter(|item| match access.principal() {
            None => true,
            Some(me) => item["principal"].as_str() == Some(me),
        })
        .filter(
            |item| match (item["repo"].as_str(), item["path"].as_str()) {
                (Some(repo), Some(path)) => access.filter().admits(repo, path),
                _ => false,
            },
        )
        .collect()
}
