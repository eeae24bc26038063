//! Answers a question with verified citations. The default answerer is extractive: it
//! needs no network and says so when the evidence is weak instead of guessing.
//!
//! Every citation is checked against the working tree before it is shown: the file still
//! exists, the cited lines are inside it, and its content still matches the index. A
//! citation whose file changed is marked stale (with its new location when the code only
//! moved); one whose file is gone is dropped with a note.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::chunk::Chunk;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::hash::sha256_hex;
use crate::rerank::Reranker;
use crate::search::{self, Boost, SearchHit, SearchOptions, SearchTimings};
use crate::stage::Stage;
use crate::store::{ChunkFilter, IndexReader, Manifest, code_tokens};
use crate::working_tree;

/// Below this confidence the best citation is not presented as an answer.
pub const CONFIDENCE_THRESHOLD: f32 = 0.35;
/// Files are ranked over this many times as many chunks as the answer cites, so a file
/// whose chunks sit just below the cut still counts its evidence.
pub const FILE_POOL_FACTOR: usize = 3;

/// Limits per query (`[budget]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Milliseconds a question may take end to end; an LLM answer that would not fit is
    /// skipped for the extractive one, and traces flag queries over it.
    pub query_ms: Option<u64>,
    /// The most one LLM answer may cost, in US dollars, at `[llm] usd_per_1k_tokens`: fewer
    /// sources are sent to stay under it, and no request is made when none fits.
    pub max_llm_cost_usd: Option<f64>,
}

/// A verified pointer into the code.
#[derive(Debug, Clone, Serialize)]
pub struct Citation {
    /// `repo:path:start-end`.
    pub citation: String,
    /// Repository id.
    pub repo: String,
    /// Path inside the repository.
    pub path: String,
    /// First cited line (1-based).
    pub start_line: u32,
    /// Last cited line (inclusive).
    pub end_line: u32,
    /// Qualified symbol.
    pub symbol: String,
    /// Chunk kind.
    pub kind: String,
    /// Declaration of the symbol.
    pub signature: String,
    /// First doc line.
    pub doc: String,
    /// Why it matched, in words.
    pub why: String,
    /// 0..1: how strongly the evidence supports this citation.
    pub confidence: f32,
    /// Freshness against the working tree.
    pub freshness: Freshness,
    /// Final retrieval score (fused, then boosted).
    pub score: f64,
    /// Weighted RRF score before boosts.
    pub fused_score: f64,
    /// Adjustments applied after fusion.
    pub boosts: Vec<Boost>,
    /// Rank in the BM25 lane.
    pub bm25_rank: Option<usize>,
    /// Rank in the vector lane.
    pub vector_rank: Option<usize>,
    /// The cross-encoder's score, when the reranker re-scored the chunk.
    pub rerank_score: Option<f32>,
    /// The cited code.
    pub content: String,
}

/// How a citation compares with the file on disk now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Freshness {
    /// The file is unchanged since indexing.
    Current,
    /// The file changed but the cited code is still there, at these lines.
    Moved {
        /// New first line.
        start_line: u32,
        /// New last line.
        end_line: u32,
    },
    /// The file changed and the cited code is no longer in it as indexed.
    Changed,
    /// The file cannot be checked (the root is not on this machine).
    Unverified,
    /// The file is not on disk any more (search results only: answers drop such
    /// citations).
    Missing,
}

impl Freshness {
    /// The state's name, as `--json` spells it.
    pub fn state(&self) -> &'static str {
        match self {
            Freshness::Current => "current",
            Freshness::Moved { .. } => "moved",
            Freshness::Changed => "changed",
            Freshness::Unverified => "unverified",
            Freshness::Missing => "missing",
        }
    }
}

/// A citation removed before display, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DroppedCitation {
    /// `repo:path:start-end` as indexed.
    pub citation: String,
    /// Repository id.
    pub repo: String,
    /// Path inside the repository.
    pub path: String,
    /// The reason.
    pub reason: String,
}

/// Citations of one file, in rank order.
#[derive(Debug, Clone, Serialize)]
pub struct FileGroup {
    /// Repository id.
    pub repo: String,
    /// Path inside the repository.
    pub path: String,
    /// Best confidence among the file's citations.
    pub confidence: f32,
    /// Ranking score over the candidate pool: the best chunk's score plus a share of the
    /// next two.
    pub score: f64,
    /// Indexes into [`Answer::citations`].
    pub citations: Vec<usize>,
}

/// The outcome of `codeq ask`.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The question as asked.
    pub question: String,
    /// False when the evidence is too weak to present an answer.
    pub confident: bool,
    /// One-paragraph summary.
    pub summary: String,
    /// Citations, best first.
    pub citations: Vec<Citation>,
    /// Citations grouped by file, best file first: the file citations.
    pub files: Vec<FileGroup>,
    /// Citations removed by verification.
    pub dropped: Vec<DroppedCitation>,
    /// Share of the visible chunks the vector lane could search (`None`: all of them).
    pub vector_coverage: Option<f64>,
    /// Retrieval timings.
    pub timings: SearchTimings,
    /// Time spent composing and verifying.
    pub answer_time: Duration,
    /// The part of `answer_time` spent checking citations against the files on disk.
    pub verify_time: Duration,
    /// Every fused candidate the answer was chosen from (for traces; not in `--json`).
    #[serde(skip)]
    pub candidates: Vec<SearchHit>,
    /// The LLM's verified answer, or why the extractive answer stands (only with `[llm]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
}

/// A citation taken out of the reply, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedCitation {
    /// The bracketed text as the model wrote it.
    pub cited: String,
    /// Why it failed verification.
    pub reason: String,
}

/// What the optional LLM answerer (`llm`) did for one question: its verified text, or why
/// the extractive answer stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generated {
    /// Model name.
    pub model: String,
    /// Prompt version.
    pub prompt_version: String,
    /// The verified reply, invalid citations removed; `None` when the extractive answer
    /// stands (see `fallback`).
    pub text: Option<String>,
    /// Source numbers the reply validly cites (1-based, into the answer's citations).
    pub cited_sources: Vec<usize>,
    /// Citations removed from the reply.
    pub removed: Vec<RemovedCitation>,
    /// Why the extractive answer stands instead, when it does.
    pub fallback: Option<String>,
    /// Sources whose text looks like instructions to a model (prompt injection).
    pub flagged_sources: Vec<usize>,
    /// Sources sent (flagged ones are withheld).
    pub sources_sent: usize,
    /// Estimated context tokens sent.
    pub context_tokens: usize,
    /// Estimated cost of the request at its most (context plus the longest reply), when
    /// `usd_per_1k_tokens` is set.
    pub estimated_cost_usd: Option<f64>,
    /// Time spent on the endpoint.
    pub latency_ms: f64,
    /// What the endpoint reported of its work, when it answered.
    #[serde(default)]
    pub usage: Option<EndpointUsage>,
}

/// Tokens and timings an OpenAI-compatible endpoint reports with a reply (`usage`; the
/// timings only from servers that send them, as llama.cpp's does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointUsage {
    /// Tokens of the prompt, as the model counted them.
    pub prompt_tokens: Option<u64>,
    /// Tokens of the reply.
    pub completion_tokens: Option<u64>,
    /// Time to read the prompt, which is the time to the first reply token (llama.cpp's
    /// `timings.prompt_ms`).
    pub prompt_ms: Option<f64>,
    /// Reply tokens per second while generating (llama.cpp's `timings.predicted_per_second`).
    pub tokens_per_second: Option<f64>,
}

/// Retrieves, verifies and composes an extractive answer.
pub fn ask(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    reranker: Option<&mut dyn Reranker>,
    question: &str,
    options: &SearchOptions,
) -> Result<Answer> {
    let pool = SearchOptions {
        k: options.k.saturating_mul(FILE_POOL_FACTOR),
        ..options.clone()
    };
    let mut results = search::search(reader, embedder, reranker, question, &pool)?;
    let candidates = std::mem::take(&mut results.candidates);
    let stage = Stage::start("answer");
    let manifest = reader.manifest();
    let terms = results.terms.clone();
    let mut citations = Vec::new();
    let mut dropped = Vec::new();
    if results
        .hits
        .iter()
        .any(|h| !options.filter.admits(&h.chunk.repo, &h.chunk.path))
    {
        // The retrievers filter before ranking; reaching this is a bug, so fail closed
        // without saying what was withheld.
        return Err(Error::Internal(
            "a retrieved chunk fell outside the access filter; the answer was withheld".into(),
        ));
    }
    let ranked_files = rank_files(results.hits);
    let file_scores: HashMap<(String, String), f64> = ranked_files
        .iter()
        .map(|f| (f.key.clone(), f.hits[0].score))
        .collect();
    let mut verify_time = Duration::ZERO;
    for hit in breadth_first(ranked_files, options.k) {
        let verifying = Instant::now();
        let verified = verify(&hit.chunk, repo_root(manifest, &hit.chunk.repo).as_deref());
        verify_time += verifying.elapsed();
        match verified {
            Verified::Keep(freshness) => citations.push(cite(hit, freshness, &terms)),
            Verified::Drop(reason) => dropped.push(DroppedCitation {
                citation: hit.chunk.citation(),
                repo: hit.chunk.repo.clone(),
                path: hit.chunk.path.clone(),
                reason,
            }),
        }
    }
    let files = group_by_file(&citations, &file_scores);
    // The answer leads with the top-ranked file's best citation.
    let lead = files
        .first()
        .and_then(|f| f.citations.first())
        .and_then(|&i| citations.get(i));
    let confident = lead.is_some_and(|c| c.confidence >= CONFIDENCE_THRESHOLD);
    let summary = summarize(lead, confident);
    Ok(Answer {
        question: question.to_string(),
        confident,
        summary,
        citations,
        files,
        dropped,
        vector_coverage: results.vector_coverage,
        timings: results.timings,
        answer_time: stage.finish(),
        verify_time,
        candidates,
        generated: None,
    })
}

/// Most lines [`read_citation`] returns at once.
pub const MAX_CITED_LINES: u32 = 1000;

/// The current text of a cited line range.
#[derive(Debug, Clone, Serialize)]
pub struct CitedLines {
    /// `repo:path:start-end`.
    pub citation: String,
    /// Repository id.
    pub repo: String,
    /// Path inside the repository.
    pub path: String,
    /// First line (1-based).
    pub start_line: u32,
    /// Last line (inclusive).
    pub end_line: u32,
    /// `current` when the file is byte-for-byte as indexed, else `changed`.
    pub freshness: Freshness,
    /// The file changed since indexing: the lines may no longer be what was cited.
    pub stale: bool,
    /// The lines, joined with newlines.
    pub text: String,
}

/// Reads a citation (`repo:path:start-end`, or `repo:path:line`) from the working tree.
/// Only files in the index that `filter` admits can be read, so a citation of a
/// forbidden repository or path fails exactly like one of a file that does not exist.
pub fn read_citation(
    reader: &IndexReader,
    filter: &ChunkFilter,
    citation: &str,
) -> Result<CitedLines> {
    let not_visible = || Error::CitationNotVisible(citation.to_string());
    let lines_error = |detail: String| Error::CitationLines {
        citation: citation.to_string(),
        detail,
    };
    let (location, range) = citation.rsplit_once(':').ok_or_else(not_visible)?;
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
        None => (range.trim().parse::<u32>(), range.trim().parse::<u32>()),
    };
    let (Ok(start), Ok(end)) = (start, end) else {
        return Err(lines_error(format!(
            "{range:?} is not a line range; write START-END"
        )));
    };
    if start == 0 || end < start {
        return Err(lines_error(format!(
            "{range:?} is not a line range: lines count from 1 and START may not be after END"
        )));
    }
    let manifest = reader.manifest();
    let repo = manifest
        .repos
        .iter()
        .filter(|r| filter.admits_repo(&r.id) && location.starts_with(&format!("{}:", r.id)))
        .max_by_key(|r| r.id.len())
        .ok_or_else(not_visible)?;
    let path = &location[repo.id.len() + 1..];
    if !filter.admits(&repo.id, path) {
        return Err(not_visible());
    }
    let indexed = reader.chunks_in_file(&repo.id, path, filter)?;
    let Some(first) = indexed.first() else {
        return Err(not_visible());
    };
    let bytes = working_tree::read(&manifest.root.join(&repo.path), path).map_err(|_| {
        lines_error("the file is not on disk as indexed any more (gone, replaced by a link or a special file, or the index's root is not on this machine); re-run `codeq index`".into())
    })?;
    let freshness = if sha256_hex(&bytes) == first.file_hash {
        Freshness::Current
    } else {
        Freshness::Changed
    };
    let text = String::from_utf8_lossy(&bytes);
    let total = text.lines().count() as u32;
    if end > total {
        return Err(lines_error(format!(
            "lines {start}-{end} are not inside the file, which has {total} lines now"
        )));
    }
    if end - start + 1 > MAX_CITED_LINES {
        return Err(lines_error(format!(
            "ask for at most {MAX_CITED_LINES} lines at once"
        )));
    }
    let lines: Vec<&str> = text
        .lines()
        .skip(start as usize - 1)
        .take((end - start + 1) as usize)
        .collect();
    Ok(CitedLines {
        citation: format!("{}:{path}:{start}-{end}", repo.id),
        repo: repo.id.clone(),
        path: path.to_string(),
        start_line: start,
        end_line: end,
        stale: freshness != Freshness::Current,
        freshness,
        text: lines.join("\n"),
    })
}

/// The folder of repository `repo` on this machine, as the manifest records it.
fn repo_root(manifest: &Manifest, repo: &str) -> Option<PathBuf> {
    manifest
        .repos
        .iter()
        .find(|r| r.id == repo)
        .map(|r| manifest.root.join(&r.path))
}

/// How an indexed chunk compares with its file on disk now.
pub fn freshness_of(manifest: &Manifest, chunk: &Chunk) -> Freshness {
    match verify(chunk, repo_root(manifest, &chunk.repo).as_deref()) {
        Verified::Keep(freshness) => freshness,
        Verified::Drop(_) => Freshness::Missing,
    }
}

enum Verified {
    Keep(Freshness),
    Drop(String),
}

/// Checks a chunk against the file on disk.
fn verify(chunk: &Chunk, repo_root: Option<&Path>) -> Verified {
    let Some(repo_root) = repo_root else {
        return Verified::Keep(Freshness::Unverified);
    };
    if !repo_root.is_dir() {
        return Verified::Keep(Freshness::Unverified);
    }
    let gone = || {
        Verified::Drop(
            "the file no longer exists as indexed (gone, or replaced by a link or a special file); re-run `codeq index`".into(),
        )
    };
    match working_tree::sha256(repo_root, &chunk.path) {
        Ok(hash) if hash == chunk.file_hash => return Verified::Keep(Freshness::Current),
        Ok(_) => {}
        Err(_) => return gone(),
    }
    let Ok(bytes) = working_tree::read(repo_root, &chunk.path) else {
        return gone();
    };
    let text = String::from_utf8_lossy(&bytes);
    match find_lines(&text, &chunk.content) {
        Some((start, end)) => Verified::Keep(Freshness::Moved {
            start_line: start,
            end_line: end,
        }),
        None => Verified::Keep(Freshness::Changed),
    }
}

/// 1-based line range where `needle` (whole lines) now appears in `text`.
fn find_lines(text: &str, needle: &str) -> Option<(u32, u32)> {
    let offset = text.find(needle)?;
    let at_line_start = offset == 0 || text.as_bytes()[offset - 1] == b'\n';
    if !at_line_start {
        return None;
    }
    let start = text[..offset].matches('\n').count() as u32 + 1;
    let end = start + needle.matches('\n').count() as u32;
    Some((start, end))
}

/// Confidence from the two lanes' evidence: semantic similarity, lexical rank, agreement.
fn confidence(hit: &SearchHit) -> f32 {
    let semantic = hit
        .vector_distance
        .map_or(0.0, |d| ((1.0 - d - 0.25) / 0.45).clamp(0.0, 1.0));
    let lexical = hit.bm25_rank.map_or(0.0, |r| 1.0 / (r as f32).sqrt());
    let agreement = if hit.bm25_rank.is_some() && hit.vector_rank.is_some() {
        0.15
    } else {
        0.0
    };
    (0.55 * semantic + 0.3 * lexical + agreement).min(1.0)
}

fn cite(hit: SearchHit, freshness: Freshness, terms: &[String]) -> Citation {
    let confidence = confidence(&hit);
    let why = explain(&hit, terms);
    let chunk = hit.chunk;
    Citation {
        citation: chunk.citation(),
        repo: chunk.repo,
        path: chunk.path,
        start_line: chunk.start_line,
        end_line: chunk.end_line,
        symbol: chunk.symbol,
        kind: chunk.kind,
        signature: chunk.signature,
        doc: chunk.doc,
        why,
        confidence,
        freshness,
        score: hit.score,
        fused_score: hit.fused_score,
        boosts: hit.boosts,
        bm25_rank: hit.bm25_rank,
        vector_rank: hit.vector_rank,
        rerank_score: hit.rerank_score,
        content: chunk.content,
    }
}

/// "symbol matches refund, payment; path matches ledger; semantic similarity 0.71".
fn explain(hit: &SearchHit, terms: &[String]) -> String {
    let chunk = &hit.chunk;
    let matching = |text: &str| -> Vec<String> {
        let tokens: Vec<String> = code_tokens(text).into_iter().map(|(t, _)| t).collect();
        terms
            .iter()
            .filter(|t| tokens.contains(t))
            .cloned()
            .collect()
    };
    let mut reasons = Vec::new();
    for (field, text) in [
        ("symbol", chunk.symbol.as_str()),
        ("path", chunk.path.as_str()),
        ("code", chunk.content.as_str()),
    ] {
        let found = matching(text);
        if !found.is_empty() {
            reasons.push(format!("{field} matches {}", found.join(", ")));
            if field == "symbol" {
                break;
            }
        }
    }
    if let Some(d) = hit.vector_distance {
        reasons.push(format!("semantic similarity {:.2}", 1.0 - d));
    }
    reasons.extend(
        hit.boosts
            .iter()
            .map(|b| format!("{} (x{})", b.reason, b.factor)),
    );
    reasons.join("; ")
}

/// One file's candidate chunks, best first (the first one's score is the file's).
struct FileCandidates {
    key: (String, String),
    hits: Vec<SearchHit>,
}

/// Groups a ranked pool by file, files in the order of their best chunk: search already
/// scored each file's best chunk with the support of its others (`search::files`).
fn rank_files(ranked: Vec<SearchHit>) -> Vec<FileCandidates> {
    let mut files: Vec<FileCandidates> = Vec::new();
    for hit in ranked {
        let key = (hit.chunk.repo.clone(), hit.chunk.path.clone());
        match files.iter_mut().find(|f| f.key == key) {
            Some(file) => file.hits.push(hit),
            None => files.push(FileCandidates {
                key,
                hits: vec![hit],
            }),
        }
    }
    files
}

/// Up to `k` hits taken breadth-first over the ranked files: every file's best chunk before
/// any file's second, so the answer cites as many of the best files as it can. The chosen
/// hits come back best chunk first (ties: file order, then rank in the file).
fn breadth_first(files: Vec<FileCandidates>, k: usize) -> Vec<SearchHit> {
    let mut queues: Vec<_> = files
        .into_iter()
        .map(|f| f.hits.into_iter().enumerate())
        .collect();
    let mut chosen: Vec<(usize, usize, SearchHit)> = Vec::with_capacity(k);
    while chosen.len() < k {
        let before = chosen.len();
        for (file, queue) in queues.iter_mut().enumerate() {
            if chosen.len() == k {
                break;
            }
            if let Some((rank, hit)) = queue.next() {
                chosen.push((file, rank, hit));
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    chosen.sort_by(|a, b| {
        b.2.score
            .total_cmp(&a.2.score)
            .then((a.0, a.1).cmp(&(b.0, b.1)))
    });
    chosen.into_iter().map(|(_, _, hit)| hit).collect()
}

/// Groups citations by file, files ranked by their score over the candidate pool.
fn group_by_file(
    citations: &[Citation],
    file_scores: &HashMap<(String, String), f64>,
) -> Vec<FileGroup> {
    let mut files: Vec<FileGroup> = Vec::new();
    for (i, c) in citations.iter().enumerate() {
        match files
            .iter_mut()
            .find(|f| f.repo == c.repo && f.path == c.path)
        {
            Some(group) => {
                group.citations.push(i);
                group.confidence = group.confidence.max(c.confidence);
            }
            None => files.push(FileGroup {
                repo: c.repo.clone(),
                path: c.path.clone(),
                confidence: c.confidence,
                score: file_scores
                    .get(&(c.repo.clone(), c.path.clone()))
                    .copied()
                    .unwrap_or(c.score),
                citations: vec![i],
            }),
        }
    }
    // Stable: equal scores keep the order of their best citation.
    files.sort_by(|a, b| b.score.total_cmp(&a.score));
    files
}

fn summarize(lead: Option<&Citation>, confident: bool) -> String {
    let Some(best) = lead else {
        return "Nothing in the index matches this question.".into();
    };
    if !confident {
        return format!(
            "No confident answer: the closest match is {} ({}), but the evidence is weak (confidence {:.2}).",
            best.citation, best.symbol, best.confidence
        );
    }
    let doc = if best.doc.is_empty() {
        String::new()
    } else {
        format!(": {}", best.doc)
    };
    format!(
        "Most likely {} `{}` at {}{doc}",
        best.kind, best.symbol, best.citation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_code_is_found_on_whole_lines_only() {
        let text = "a\nfn f() {\n  1\n}\nb\n";
        assert_eq!(find_lines(text, "fn f() {\n  1\n}"), Some((2, 4)));
        assert_eq!(find_lines(text, "n f() {"), None);
        assert_eq!(find_lines(text, "zzz"), None);
    }
}
