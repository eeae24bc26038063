//! Query traces: every search and ask (command line, TUI, MCP) is recorded with an id, so
//! "why did it cite this?" has an answer later (`codeq trace ID | --last`).
//!
//! Traces are appended as JSON lines to `traces.jsonl` in the index folder, rotated at
//! [`ROTATE_BYTES`] (one older file is kept). A trace holds only what its principal was
//! shown; a principal reads only their own traces, unless they may read everything.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::acl::Access;
use crate::answer::{Answer, DroppedCitation};
use crate::error::{Error, Result};
use crate::jsonl;
use crate::report::ms;
use crate::search::{Boost, QueryScope, SearchHit, SearchResults, SearchTimings};
use crate::store::{IndexDir, IndexReader};

/// File name of the current trace log inside the index folder.
pub const TRACE_FILE: &str = "traces.jsonl";
/// The log is rotated to `traces.1.jsonl` past this size.
pub const ROTATE_BYTES: u64 = 8 * 1024 * 1024;

/// One candidate as ranked: each lane's rank and score, the fused score and the boosts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedHit {
    /// `repo:path:start-end` as indexed.
    pub citation: String,
    /// Repository id.
    pub repo: String,
    /// Path inside the repository.
    pub path: String,
    /// Qualified symbol.
    pub symbol: String,
    /// Rank in the BM25 lane.
    pub bm25_rank: Option<usize>,
    /// BM25 score.
    pub bm25_score: Option<f32>,
    /// Rank in the vector lane.
    pub vector_rank: Option<usize>,
    /// Cosine distance.
    pub vector_distance: Option<f32>,
    /// Weighted RRF score.
    pub fused_score: f64,
    /// Adjustments after fusion.
    pub boosts: Vec<TracedBoost>,
    /// Final score.
    pub score: f64,
    /// The cross-encoder's score, when the reranker re-scored it.
    #[serde(default)]
    pub rerank_score: Option<f32>,
    /// Whether it made the results (search) or was cited (ask); the others were cut by
    /// overlap with a better chunk, by `k`, or by the answer's file ranking.
    #[serde(default)]
    pub kept: bool,
}

/// A boost as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedBoost {
    /// What triggered it.
    pub reason: String,
    /// Factor applied.
    pub factor: f64,
}

/// A citation shown to the principal, or dropped before display.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedCitation {
    /// `repo:path:start-end`.
    pub citation: String,
    /// Repository id.
    pub repo: String,
    /// Path inside the repository.
    pub path: String,
    /// Confidence shown.
    pub confidence: f32,
    /// `current`, `moved`, `changed` or `unverified`.
    pub freshness: String,
    /// Why it matched, in words.
    pub why: String,
}

/// One recorded query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trace {
    /// The id results carry.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub recorded_unix_ms: u64,
    /// `search`, `ask`, `tui` or `mcp`.
    pub surface: String,
    /// Who asked (`None`: single-user mode); only they can read the trace.
    pub principal: Option<String>,
    /// For eval questions asked `as` another principal: that principal (the trace
    /// belongs to whoever ran the eval, whose question text it holds).
    #[serde(default)]
    pub asked_as: Option<String>,
    /// The generation that answered.
    pub generation: String,
    /// Embedding model id.
    pub model: String,
    /// The query as typed.
    pub query: String,
    /// Results asked for.
    pub k: usize,
    /// Repository restriction.
    pub repos: Vec<String>,
    /// Language restriction.
    pub language: Option<String>,
    /// Milliseconds per stage.
    pub timings_ms: StageMillis,
    /// The ranked candidates (the fused pool, best first).
    pub candidates: Vec<TracedHit>,
    /// Citations shown (ask only).
    pub citations: Vec<TracedCitation>,
    /// Citations dropped by verification, and why.
    pub dropped: Vec<DroppedCitation>,
    /// Entries removed when the trace was read because the reader may no longer see
    /// them (the ACL changed since).
    #[serde(default)]
    pub withheld: usize,
    /// The query took longer than `[budget] query_ms`.
    #[serde(default)]
    pub over_budget: bool,
    /// What the LLM answerer did (model, prompt version, removed citations, fallback,
    /// flagged sources); its reply text is not kept.
    #[serde(default)]
    pub generated: Option<TracedGeneration>,
    /// Whether the answer was confident (ask only).
    pub confident: Option<bool>,
}

/// The LLM answerer's part of a trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedGeneration {
    /// Model name.
    pub model: String,
    /// Prompt version.
    pub prompt_version: String,
    /// Source numbers validly cited.
    pub cited_sources: Vec<usize>,
    /// Citations removed from the reply, and why.
    pub removed: Vec<crate::answer::RemovedCitation>,
    /// Why the extractive answer stood, when it did.
    pub fallback: Option<String>,
    /// Sources that read as instructions to a model.
    pub flagged_sources: Vec<usize>,
    /// Milliseconds on the endpoint.
    pub latency_ms: f64,
}

/// Time per stage, milliseconds. (No reranker exists yet, so there is no rerank stage.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageMillis {
    /// Query analysis.
    #[serde(default)]
    pub analyze: f64,
    /// Embedding the query.
    pub embed: f64,
    /// BM25 lane.
    pub bm25: f64,
    /// Vector lane.
    pub vector: f64,
    /// Fusion and ranking.
    pub fuse: f64,
    /// The cross-encoder reranker, when on.
    #[serde(default)]
    pub rerank: f64,
    /// Checking citations against the files on disk (part of `answer`).
    #[serde(default)]
    pub verify: f64,
    /// Verification and composition of the answer.
    pub answer: f64,
    /// The LLM answerer, when configured.
    #[serde(default)]
    pub llm: f64,
    /// End to end.
    pub total: f64,
}

/// What a surface knows about a query when it records it.
pub(crate) struct TraceInput<'a> {
    /// Where the query came from.
    pub surface: Surface,
    /// Whose query it is.
    pub owner: Owner<'a>,
    /// The generation that answered.
    pub reader: &'a IndexReader,
    /// The query.
    pub query: &'a str,
    /// Its restriction.
    pub scope: &'a QueryScope,
    /// End-to-end time.
    pub total: Duration,
}

/// A new id for a trace recorded at `now` (Unix ms): time, process and a per-process
/// counter, in hex.
fn new_id(now: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{now:x}-{:x}-{n:x}", std::process::id())
}

impl Trace {
    fn new(
        input: &TraceInput,
        timings: &SearchTimings,
        answer: Duration,
        verify: Duration,
    ) -> Trace {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Trace {
            id: new_id(now),
            recorded_unix_ms: now,
            surface: input.surface.as_str().to_string(),
            principal: input.owner.principal.map(str::to_string),
            asked_as: input.owner.asked_as.map(str::to_string),
            generation: input.reader.generation().to_string(),
            model: input.reader.manifest().model.id.clone(),
            query: input.query.to_string(),
            k: input.scope.k,
            repos: input.scope.repos.clone(),
            language: input.scope.language.clone(),
            timings_ms: StageMillis {
                analyze: ms(timings.analyze),
                embed: ms(timings.embed),
                bm25: ms(timings.bm25),
                vector: ms(timings.vector),
                fuse: ms(timings.fuse),
                rerank: ms(timings.rerank),
                verify: ms(verify),
                answer: ms(answer),
                llm: 0.0,
                total: ms(input.total),
            },
            candidates: Vec::new(),
            citations: Vec::new(),
            dropped: Vec::new(),
            confident: None,
            withheld: 0,
            over_budget: false,
            generated: None,
        }
    }

    /// The trace of a search.
    fn of_search(input: &TraceInput, results: &SearchResults) -> Trace {
        let mut trace = Trace::new(input, &results.timings, Duration::ZERO, Duration::ZERO);
        let kept: Vec<&str> = results
            .hits
            .iter()
            .map(|h| h.chunk.chunk_id.as_str())
            .collect();
        trace.candidates = results
            .candidates
            .iter()
            .map(|h| traced_hit(h, kept.contains(&h.chunk.chunk_id.as_str())))
            .collect();
        trace
    }

    /// The trace of an answer.
    fn of_answer(input: &TraceInput, answer: &Answer) -> Trace {
        let mut trace = Trace::new(
            input,
            &answer.timings,
            answer.answer_time,
            answer.verify_time,
        );
        trace.timings_ms.llm = answer.generated.as_ref().map_or(0.0, |g| g.latency_ms);
        let cited: Vec<String> = answer
            .citations
            .iter()
            .map(|c| c.citation.clone())
            .collect();
        trace.candidates = answer
            .candidates
            .iter()
            .map(|h| {
                let c = &h.chunk;
                let citation = c.citation();
                traced_hit(h, cited.contains(&citation))
            })
            .collect();
        trace.citations = answer
            .citations
            .iter()
            .map(|c| TracedCitation {
                citation: c.citation.clone(),
                repo: c.repo.clone(),
                path: c.path.clone(),
                confidence: c.confidence,
                freshness: c.freshness.state().to_string(),
                why: c.why.clone(),
            })
            .collect();
        trace.dropped = answer.dropped.clone();
        trace.confident = Some(answer.confident);
        trace.generated = answer.generated.as_ref().map(|g| TracedGeneration {
            model: g.model.clone(),
            prompt_version: g.prompt_version.clone(),
            cited_sources: g.cited_sources.clone(),
            removed: g.removed.clone(),
            fallback: g.fallback.clone(),
            flagged_sources: g.flagged_sources.clone(),
            latency_ms: g.latency_ms,
        });
        trace
    }

    /// Removes candidates and citations `access` may not read now, counting them.
    fn redact(mut self, access: &Access) -> Trace {
        let filter = &access.filter();
        let before =
            self.candidates.len() + self.citations.len() + self.dropped.len() + self.repos.len();
        // A repository restriction names repositories: keep only those still visible.
        self.repos.retain(|r| filter.admits_repo(r));
        self.candidates.retain(|h| filter.admits(&h.repo, &h.path));
        self.citations.retain(|c| filter.admits(&c.repo, &c.path));
        self.dropped.retain(|d| filter.admits(&d.repo, &d.path));
        let after =
            self.candidates.len() + self.citations.len() + self.dropped.len() + self.repos.len();
        self.withheld += before - after;
        if self.withheld > 0
            && let Some(g) = &mut self.generated
        {
            // The model's own words may quote what is withheld now.
            g.removed.clear();
            g.fallback = g.fallback.as_ref().map(|_| "withheld".to_string());
            g.cited_sources.clear();
            g.flagged_sources.clear();
        }
        self
    }

    /// Whether `access` may read this trace: only the principal who asked. Nobody audits
    /// others' traces through codeq: "reads everything" is judged against the repositories
    /// indexed now, so a principal could qualify after a repository left the index and then
    /// read what others were shown from it. In single-user mode there is one user.
    pub fn visible_to(&self, access: &Access) -> bool {
        match access.principal() {
            None => true,
            Some(principal) => self.principal.as_deref() == Some(principal),
        }
    }
}

fn traced_boosts(boosts: &[Boost]) -> Vec<TracedBoost> {
    boosts
        .iter()
        .map(|b| TracedBoost {
            reason: b.reason.to_string(),
            factor: b.factor,
        })
        .collect()
}

fn traced_hit(hit: &SearchHit, kept: bool) -> TracedHit {
    let c = &hit.chunk;
    TracedHit {
        citation: c.citation(),
        repo: c.repo.clone(),
        path: c.path.clone(),
        symbol: c.symbol.clone(),
        bm25_rank: hit.bm25_rank,
        bm25_score: hit.bm25_score,
        vector_rank: hit.vector_rank,
        vector_distance: hit.vector_distance,
        fused_score: hit.fused_score,
        boosts: traced_boosts(&hit.boosts),
        score: hit.score,
        rerank_score: hit.rerank_score,
        kept,
    }
}

/// A query's trace id, or why its trace could not be written (the query still counts).
pub type TraceId = std::result::Result<String, Error>;

/// Which surface a query came through; traces record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `codeq search`.
    Search,
    /// `codeq ask`.
    Ask,
    /// The terminal UI.
    Tui,
    /// The MCP server.
    Mcp,
    /// `codeq serve`'s HTTP API (its MCP endpoint records `Mcp`).
    Serve,
    /// `codeq eval`.
    Eval,
}

impl Surface {
    /// The name traces record.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Search => "search",
            Surface::Ask => "ask",
            Surface::Tui => "tui",
            Surface::Mcp => "mcp",
            Surface::Serve => "serve",
            Surface::Eval => "eval",
        }
    }
}

/// Who a recorded query belongs to: its owner (`None`: single-user mode), who alone may
/// read the trace, and, for eval questions asked as another principal, that principal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub principal: Option<&'a str>,
    pub asked_as: Option<&'a str>,
}

/// Records the trace of a search in the index folder.
pub(crate) fn record_search(
    dir: &IndexDir,
    input: &TraceInput,
    results: &SearchResults,
) -> TraceId {
    record(dir, &Trace::of_search(input, results))
}

/// Records the trace of an answer; `over_budget` flags a query past `[budget] query_ms`.
pub(crate) fn record_answer(
    dir: &IndexDir,
    input: &TraceInput,
    answer: &Answer,
    over_budget: bool,
) -> TraceId {
    let mut trace = Trace::of_answer(input, answer);
    trace.over_budget = over_budget;
    record(dir, &trace)
}

fn trace_path(dir: &IndexDir) -> PathBuf {
    dir.path().join(TRACE_FILE)
}

fn rotated_path(dir: &IndexDir) -> PathBuf {
    dir.path().join("traces.1.jsonl")
}

/// Appends `trace` to the index's trace log (rotating it when large) and returns its id.
/// A log that cannot be written (a read-only index folder, say) costs the trace, not the
/// query: the caller gets the error to mention once.
fn record(dir: &IndexDir, trace: &Trace) -> TraceId {
    tracing::debug!(id = %trace.id, surface = %trace.surface, total_ms = trace.timings_ms.total, "trace");
    let path = trace_path(dir);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        std::fs::rename(&path, rotated_path(dir))
            .map_err(|e| Error::io(format!("cannot rotate {}", path.display()), e))?;
    }
    let line = serde_json::to_string(trace)
        .map_err(|e| Error::Internal(format!("cannot encode a trace: {e}")))?;
    jsonl::append(&path, &[line])?;
    Ok(trace.id.clone())
}

/// The trace with `id` (or the latest when `id` is `None`) that `access` may read; a trace
/// of another principal is reported exactly like a missing one. A damaged line of the log
/// hides only itself.
pub fn find(dir: &IndexDir, id: Option<&str>, access: &Access) -> Result<Trace> {
    let mut latest = None;
    for path in [rotated_path(dir), trace_path(dir)] {
        for trace in jsonl::read::<Trace>(&path) {
            if !trace.visible_to(access) {
                continue;
            }
            match id {
                Some(id) if trace.id == id => return Ok(trace.redact(access)),
                Some(_) => {}
                None => latest = Some(trace),
            }
        }
    }
    match (latest, id) {
        (Some(trace), None) => Ok(trace.redact(access)),
        (_, Some(id)) => Err(Error::TraceNotFound(id.to_string())),
        (None, None) => Err(Error::NoTraceYet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn trace(id: &str, principal: Option<&str>) -> Trace {
        Trace {
            id: id.into(),
            recorded_unix_ms: 0,
            surface: "search".into(),
            principal: principal.map(str::to_string),
            asked_as: None,
            generation: "g000001".into(),
            model: "m".into(),
            query: "q".into(),
            k: 10,
            repos: Vec::new(),
            language: None,
            timings_ms: StageMillis::default(),
            candidates: Vec::new(),
            citations: Vec::new(),
            dropped: Vec::new(),
            confident: None,
            withheld: 0,
            over_budget: false,
            generated: None,
        }
    }

    #[test]
    fn the_log_rotates_and_both_files_are_searched() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = IndexDir::create_or_open(&scratch.path().join("index")).unwrap();
        let everyone = Access::single_user();
        record(&dir, &trace("old", None)).unwrap();
        let padding = "x".repeat(ROTATE_BYTES as usize);
        std::fs::OpenOptions::new()
            .append(true)
            .open(trace_path(&dir))
            .and_then(|mut f| writeln!(f, "{padding}"))
            .unwrap();
        record(&dir, &trace("new", None)).unwrap();
        assert!(rotated_path(&dir).is_file());
        assert!(std::fs::metadata(trace_path(&dir)).unwrap().len() < 10_000);
        assert_eq!(find(&dir, Some("old"), &everyone).unwrap().id, "old");
        assert_eq!(find(&dir, None, &everyone).unwrap().id, "new");
        assert!(matches!(
            find(&dir, Some("gone"), &everyone),
            Err(Error::TraceNotFound(_))
        ));
    }

    #[test]
    fn one_invalid_byte_hides_only_its_own_line() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = IndexDir::create_or_open(&scratch.path().join("index")).unwrap();
        let everyone = Access::single_user();
        record(&dir, &trace("before", None)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(trace_path(&dir))
            .and_then(|mut f| f.write_all(b"{\"id\": \"\xff\"}\n"))
            .unwrap();
        record(&dir, &trace("after", None)).unwrap();
        assert_eq!(find(&dir, Some("before"), &everyone).unwrap().id, "before");
        assert_eq!(find(&dir, None, &everyone).unwrap().id, "after");
    }

    #[test]
    fn no_trace_at_all_says_so_in_words() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = IndexDir::create_or_open(&scratch.path().join("index")).unwrap();
        let err = find(&dir, None, &Access::single_user()).unwrap_err();
        assert!(matches!(err, Error::NoTraceYet), "{err}");
        assert!(!err.to_string().contains("the last one"), "{err}");
    }
}
