//! `codeq eval`: runs question sets through exactly the `codeq ask` path, scores the
//! citations, gates blocking sets on thresholds and on a per-question baseline, and
//! compares two indexes side by side.
//!
//! Set files are TOML; `eval-questions/README.md` documents the format.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::acl::{Access, Acl};
use crate::answer::{self, Answer};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::rerank::Reranker;
use crate::search::{self, Lanes, SearchOptions};
use crate::store::{ChunkFilter, IndexReader};

/// Files cited in the top this-many are what citation precision is computed over.
pub const PRECISION_FILES: usize = 5;

/// How a set (or a question) is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// A fall below threshold or against the baseline fails the command.
    Blocking,
    /// Reported, never fails.
    #[default]
    Monitoring,
    /// Collected from real usage, listed for triage.
    Backlog,
}

/// Minimum values a blocking set must reach.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// File hit@1.
    pub hit_at_1: Option<f64>,
    /// File hit@5.
    pub hit_at_5: Option<f64>,
    /// MRR@10.
    pub mrr_at_10: Option<f64>,
    /// NDCG@10.
    pub ndcg_at_10: Option<f64>,
    /// Recall@10.
    pub recall_at_10: Option<f64>,
    /// Symbol hit@5.
    pub symbol_hit_at_5: Option<f64>,
}

/// One question with its expected answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// Stable id, unique within the set.
    pub id: String,
    /// The question as a user would ask it.
    pub question: String,
    /// Files that answer it (`repo:path`), grade 2.
    #[serde(default)]
    pub relevant: Vec<String>,
    /// Files that help (`repo:path`), grade 1.
    #[serde(default)]
    pub secondary: Vec<String>,
    /// Symbols that answer it (`Type::method`, `module.func`; a suffix matches).
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Optional expected line ranges per file (`"repo:path" = [start, end]`).
    #[serde(default)]
    pub lines: BTreeMap<String, [u32; 2]>,
    /// Ask as this principal.
    #[serde(default, rename = "as")]
    pub principal: Option<String>,
    /// Repositories that must never appear in the answer.
    #[serde(default)]
    pub forbidden_repos: Vec<String>,
    /// The answerer should decline to give a confident answer.
    #[serde(default)]
    pub expect_refusal: bool,
    /// Overrides the set's tier for this question.
    #[serde(default)]
    pub tier: Option<Tier>,
}

/// A question set file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionSet {
    /// Set name used in reports and baselines.
    pub name: String,
    /// What the set covers.
    #[serde(default)]
    pub description: String,
    /// Default tier of its questions.
    #[serde(default)]
    pub tier: Tier,
    /// Gates for blocking sets.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// The questions.
    #[serde(default, rename = "question")]
    pub questions: Vec<Question>,
}

impl QuestionSet {
    /// Loads and validates a set file.
    pub fn load(path: &Path) -> Result<QuestionSet> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let config_error = |detail: String| Error::Config {
            path: path.to_path_buf(),
            detail,
        };
        let set: QuestionSet = toml::from_str(&text)
            .map_err(|e| config_error(crate::tomlfile::describe_toml_error(&text, &e)))?;
        let mut seen = std::collections::HashSet::new();
        for q in &set.questions {
            if !seen.insert(q.id.as_str()) {
                return Err(config_error(format!(
                    "question id {:?} appears twice",
                    q.id
                )));
            }
            let expects_files = !q.relevant.is_empty() || !q.secondary.is_empty();
            if !expects_files && !q.expect_refusal && q.forbidden_repos.is_empty() {
                return Err(config_error(format!(
                    "question {:?} expects no file, no refusal and forbids nothing: it cannot fail",
                    q.id
                )));
            }
            for file in q.relevant.iter().chain(&q.secondary) {
                if !file.contains(':') {
                    return Err(config_error(format!(
                        "question {:?}: expected file {file:?} must be written repo:path",
                        q.id
                    )));
                }
            }
        }
        Ok(set)
    }
}

/// Decides which chunks a question's principal may see (the ACL, once configured).
pub trait ScopeResolver {
    /// The filter for `principal` (`None`: the default principal of this run).
    fn filter_for(&self, principal: Option<&str>) -> Result<ChunkFilter>;
}

/// Single-user mode: every question sees everything. A question that asks as a named
/// principal is refused rather than silently run unrestricted.
pub struct Unrestricted;

impl ScopeResolver for Unrestricted {
    fn filter_for(&self, principal: Option<&str>) -> Result<ChunkFilter> {
        match principal {
            None => Ok(ChunkFilter::default()),
            Some(p) => Err(Error::Config {
                path: "question set".into(),
                detail: format!(
                    "a question asks as {p:?} but no access-control list is configured, so it cannot be scoped"
                ),
            }),
        }
    }
}

/// Under an ACL: each question runs as its `as` principal, else as the run's principal.
pub struct AclScope {
    acl: Acl,
    principal: String,
    repos: Vec<String>,
    /// What the run's own principal may read.
    own: Access,
}

impl AclScope {
    /// Scopes questions on an index with repositories `repos`, run by `principal`.
    pub fn new(acl: Acl, principal: String, repos: Vec<String>) -> AclScope {
        let own = acl.access_for(&principal, &repos);
        AclScope {
            acl,
            principal,
            repos,
            own,
        }
    }
}

impl ScopeResolver for AclScope {
    /// A question may ask as someone else only when the run's own principal may read
    /// everything: evaluating access control is an administrator's job, and otherwise a set
    /// file would be a way around `--as`.
    fn filter_for(&self, principal: Option<&str>) -> Result<ChunkFilter> {
        match principal {
            Some(other) if other != self.principal => {
                if !self.own.sees_everything() {
                    return Err(Error::Config {
                        path: "question set".into(),
                        detail: format!(
                            "a question asks as {other:?}, but {:?} may not read every repository and so cannot evaluate as someone else; run the set as a principal granted every repository",
                            self.principal
                        ),
                    });
                }
                Ok(self.acl.access_for(other, &self.repos).filter)
            }
            _ => Ok(self.own.filter.clone()),
        }
    }
}

/// Scores of one question.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuestionResult {
    /// Question id.
    pub id: String,
    /// Effective tier.
    pub tier: Tier,
    /// Files in answer order (deduplicated), at most k.
    pub files: Vec<String>,
    /// 1-based rank of the first expected file.
    pub first_hit: Option<usize>,
    /// NDCG@10 with grades (relevant 2, secondary 1).
    pub ndcg: f64,
    /// Share of expected files in the top 10.
    pub recall: f64,
    /// The question names expected files (ranking metrics apply).
    pub expects_files: bool,
    /// An expected symbol among the top 5 citations (`None`: no symbols expected).
    pub symbol_hit: Option<bool>,
    /// Share of the top cited files that are expected.
    pub precision: Option<f64>,
    /// Citations of forbidden repositories.
    pub leaks: Vec<String>,
    /// The answer declined to be confident.
    pub refused: bool,
    /// Whether a refusal was expected.
    pub expect_refusal: bool,
    /// hit@5 per lane: bm25, vector, hybrid.
    pub lane_hit_at_5: [bool; 3],
    /// 1-based rank of the first expected file per lane (bm25, vector, hybrid).
    #[serde(default)]
    pub lane_first_hit: [Option<usize>; 3],
    /// Wall time of the ask, milliseconds.
    pub latency_ms: f64,
    /// The trace of this question's answer (`codeq trace ID`), when it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl QuestionResult {
    /// True when the question expects files (ranking metrics apply).
    pub fn ranked(&self) -> bool {
        self.expects_files && !self.expect_refusal
    }

    /// An expected file in the top 5.
    pub fn hit_at(&self, k: usize) -> bool {
        self.first_hit.is_some_and(|r| r <= k)
    }
}

/// Aggregates over a group of questions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Questions scored for ranking.
    pub questions: usize,
    /// File hit@1.
    pub hit_at_1: f64,
    /// File hit@5.
    pub hit_at_5: f64,
    /// MRR@10.
    pub mrr_at_10: f64,
    /// NDCG@10.
    pub ndcg_at_10: f64,
    /// Recall@10.
    pub recall_at_10: f64,
    /// Symbol hit@5 over questions that name symbols.
    pub symbol_hit_at_5: Option<f64>,
    /// Citation precision over the top cited files.
    pub citation_precision: f64,
    /// Citations of forbidden repositories (must be 0).
    pub acl_leaks: usize,
    /// Expected refusals honoured.
    pub refusals_honoured: usize,
    /// Expected refusals.
    pub refusals_expected: usize,
    /// Median ask latency, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile ask latency, ms.
    pub latency_p95_ms: f64,
    /// hit@1 with the BM25 lane alone.
    #[serde(default)]
    pub bm25_hit_at_1: f64,
    /// MRR@10 with the BM25 lane alone.
    #[serde(default)]
    pub bm25_mrr_at_10: f64,
    /// hit@1 with the vector lane alone.
    #[serde(default)]
    pub vector_hit_at_1: f64,
    /// MRR@10 with the vector lane alone.
    #[serde(default)]
    pub vector_mrr_at_10: f64,
    /// hit@5 with the BM25 lane alone.
    pub bm25_hit_at_5: f64,
    /// hit@5 with the vector lane alone.
    pub vector_hit_at_5: f64,
    /// hit@5 fused (the ask path).
    pub hybrid_hit_at_5: f64,
}

impl Metrics {
    /// Aggregates question results.
    pub fn of(results: &[&QuestionResult]) -> Metrics {
        let ranked: Vec<&&QuestionResult> = results.iter().filter(|r| r.ranked()).collect();
        let n = ranked.len();
        let mean = |f: &dyn Fn(&QuestionResult) -> f64| {
            if n == 0 {
                0.0
            } else {
                ranked.iter().map(|r| f(r)).sum::<f64>() / n as f64
            }
        };
        let bool_mean = |f: &dyn Fn(&QuestionResult) -> bool| mean(&|r| f64::from(u8::from(f(r))));
        let with_symbols: Vec<bool> = ranked.iter().filter_map(|r| r.symbol_hit).collect();
        let precisions: Vec<f64> = ranked.iter().filter_map(|r| r.precision).collect();
        let mut latencies: Vec<f64> = results.iter().map(|r| r.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let refusals: Vec<&&QuestionResult> = results.iter().filter(|r| r.expect_refusal).collect();
        let reciprocal =
            |rank: Option<usize>| rank.filter(|&k| k <= 10).map_or(0.0, |k| 1.0 / k as f64);
        let lane_hit_at_1 = |lane: usize| bool_mean(&|r| r.lane_first_hit[lane] == Some(1));
        Metrics {
            questions: n,
            hit_at_1: bool_mean(&|r| r.hit_at(1)),
            hit_at_5: bool_mean(&|r| r.hit_at(5)),
            mrr_at_10: mean(&|r| reciprocal(r.first_hit)),
            bm25_hit_at_1: lane_hit_at_1(0),
            bm25_mrr_at_10: mean(&|r| reciprocal(r.lane_first_hit[0])),
            vector_hit_at_1: lane_hit_at_1(1),
            vector_mrr_at_10: mean(&|r| reciprocal(r.lane_first_hit[1])),
            ndcg_at_10: mean(&|r| r.ndcg),
            recall_at_10: mean(&|r| r.recall),
            symbol_hit_at_5: (!with_symbols.is_empty()).then(|| {
                with_symbols.iter().filter(|&&h| h).count() as f64 / with_symbols.len() as f64
            }),
            citation_precision: if precisions.is_empty() {
                0.0
            } else {
                precisions.iter().sum::<f64>() / precisions.len() as f64
            },
            acl_leaks: results.iter().map(|r| r.leaks.len()).sum(),
            refusals_honoured: refusals.iter().filter(|r| r.refused).count(),
            refusals_expected: refusals.len(),
            latency_p50_ms: percentile(&latencies, 0.50),
            latency_p95_ms: percentile(&latencies, 0.95),
            bm25_hit_at_5: bool_mean(&|r| r.lane_hit_at_5[0]),
            vector_hit_at_5: bool_mean(&|r| r.lane_hit_at_5[1]),
            hybrid_hit_at_5: bool_mean(&|r| r.lane_hit_at_5[2]),
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Results of one set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetReport {
    /// Set name.
    pub name: String,
    /// Set tier.
    pub tier: Tier,
    /// Aggregates over the set's blocking and monitoring questions.
    pub metrics: Metrics,
    /// Per question.
    pub questions: Vec<QuestionResult>,
    /// Thresholds the set missed (blocking sets only).
    pub threshold_failures: Vec<String>,
}

/// Results of an eval run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// Index generation evaluated.
    pub generation: String,
    /// Model id of that index.
    pub model: String,
    /// Per set.
    pub sets: Vec<SetReport>,
    /// Over all non-backlog questions.
    pub overall: Metrics,
}

impl EvalReport {
    /// Every question result with its set name.
    pub fn questions(&self) -> impl Iterator<Item = (&str, &QuestionResult)> {
        self.sets
            .iter()
            .flat_map(|s| s.questions.iter().map(move |q| (s.name.as_str(), q)))
    }
}

/// Runs every question of `sets` through the ask path against one index.
/// Called with every answer an eval run produces (the question, the principal it was
/// asked as, the answer and its time); returns the id of a trace it recorded, if any.
pub type AnswerObserver<'a> =
    dyn FnMut(&Question, Option<&str>, &Answer, Duration) -> Option<String> + 'a;

/// Runs every question of `sets` through the ask path, each as its principal.
#[allow(clippy::too_many_arguments)]
pub fn run(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    mut reranker: Option<&mut dyn Reranker>,
    sets: &[QuestionSet],
    scope: &dyn ScopeResolver,
    k: usize,
    observe: &mut AnswerObserver,
) -> Result<EvalReport> {
    let mut reports = Vec::new();
    // One filter per principal, prepared for this index exactly as `codeq ask` prepares it.
    let mut filters: HashMap<Option<String>, ChunkFilter> = HashMap::new();
    for set in sets {
        let mut questions = Vec::new();
        for q in &set.questions {
            let filter = match filters.get(&q.principal) {
                Some(filter) => filter.clone(),
                None => {
                    let filter =
                        reader.prepare_filter(&scope.filter_for(q.principal.as_deref())?)?;
                    filters.insert(q.principal.clone(), filter.clone());
                    filter
                }
            };
            questions.push(run_question(
                reader,
                embedder,
                reranker.as_mut().map(|r| &mut **r as &mut dyn Reranker),
                q,
                set.tier,
                &filter,
                k,
                observe,
            )?);
        }
        let scored: Vec<&QuestionResult> = questions
            .iter()
            .filter(|q| q.tier != Tier::Backlog)
            .collect();
        let metrics = Metrics::of(&scored);
        let threshold_failures = if set.tier == Tier::Blocking {
            missed_thresholds(&set.thresholds, &metrics)
        } else {
            Vec::new()
        };
        reports.push(SetReport {
            name: set.name.clone(),
            tier: set.tier,
            metrics,
            questions,
            threshold_failures,
        });
    }
    let all: Vec<&QuestionResult> = reports
        .iter()
        .flat_map(|s| s.questions.iter())
        .filter(|q| q.tier != Tier::Backlog)
        .collect();
    Ok(EvalReport {
        generation: reader.generation().to_string(),
        model: reader.manifest().model.id.clone(),
        overall: Metrics::of(&all),
        sets: reports,
    })
}

/// Asks one question (with the reranker, when there is one) and runs each lane alone (the
/// lanes' own figures are not reranked).
#[allow(clippy::too_many_arguments)]
fn run_question(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    reranker: Option<&mut dyn Reranker>,
    q: &Question,
    set_tier: Tier,
    filter: &ChunkFilter,
    k: usize,
    observe: &mut AnswerObserver,
) -> Result<QuestionResult> {
    let options = SearchOptions {
        k,
        filter: filter.clone(),
        ..SearchOptions::default()
    };
    let started = Instant::now();
    let answer = answer::ask(reader, embedder, reranker, &q.question, &options)?;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1e3;
    let trace_id = observe(q, q.principal.as_deref(), &answer, elapsed);
    let mut lane_first_hit = [None; 3];
    for (slot, lanes) in [(0, Lanes::Bm25), (1, Lanes::Vector)] {
        let lane_options = SearchOptions {
            lanes,
            ..options.clone()
        };
        let results = search::search(reader, embedder, None, &q.question, &lane_options)?;
        let files = dedup_files(results.hits.iter().map(|h| (&h.chunk.repo, &h.chunk.path)));
        lane_first_hit[slot] = first_hit(&files, &expected_grades(q));
    }
    let mut result = score(q, &answer, k);
    result.tier = q.tier.unwrap_or(set_tier);
    lane_first_hit[2] = result.first_hit;
    result.lane_first_hit = lane_first_hit;
    result.lane_hit_at_5 = lane_first_hit.map(|r| r.is_some_and(|r| r <= 5));
    result.latency_ms = latency_ms;
    result.trace_id = trace_id;
    Ok(result)
}

/// Scores one answer against its question (lanes and latency are filled in by the caller).
pub fn score(q: &Question, answer: &Answer, k: usize) -> QuestionResult {
    let grades = expected_grades(q);
    let mut files: Vec<String> = answer
        .files
        .iter()
        .map(|f| format!("{}:{}", f.repo, f.path))
        .collect();
    files.truncate(k);
    let first_hit = first_hit(&files, &grades);
    let ndcg = ndcg_at(&files, &grades, 10);
    let recall = recall_at(&files, &grades, 10);
    let symbol_hit = (!q.symbols.is_empty()).then(|| {
        answer
            .citations
            .iter()
            .take(5)
            .any(|c| q.symbols.iter().any(|s| symbol_matches(&c.symbol, s)))
    });
    let top: Vec<&String> = files.iter().take(PRECISION_FILES).collect();
    let precision = (!grades.is_empty() && !top.is_empty())
        .then(|| top.iter().filter(|f| grade_of(&grades, f) > 0).count() as f64 / top.len() as f64);
    let leaks = answer
        .citations
        .iter()
        .filter(|c| q.forbidden_repos.contains(&c.repo))
        .map(|c| c.citation.clone())
        .collect();
    QuestionResult {
        id: q.id.clone(),
        tier: q.tier.unwrap_or_default(),
        files,
        first_hit,
        ndcg,
        recall,
        expects_files: !grades.is_empty(),
        symbol_hit,
        precision,
        leaks,
        refused: !answer.confident,
        expect_refusal: q.expect_refusal,
        lane_hit_at_5: [false; 3],
        lane_first_hit: [None; 3],
        latency_ms: 0.0,
        trace_id: None,
    }
}

fn expected_grades(q: &Question) -> HashMap<String, u32> {
    let mut grades: HashMap<String, u32> = q.secondary.iter().map(|f| (f.clone(), 1)).collect();
    grades.extend(q.relevant.iter().map(|f| (f.clone(), 2)));
    grades
}

/// `repo:path` in first-seen order.
fn dedup_files<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for (repo, path) in pairs {
        let file = format!("{repo}:{path}");
        if !files.contains(&file) {
            files.push(file);
        }
    }
    files
}

/// Grade of a ranked `repo:path`; an expected `*:path` matches that path in any repo.
fn grade_of(grades: &HashMap<String, u32>, file: &str) -> u32 {
    if let Some(&g) = grades.get(file) {
        return g;
    }
    let path = file.split_once(':').map_or(file, |(_, p)| p);
    grades.get(&format!("*:{path}")).copied().unwrap_or(0)
}

/// 1-based rank of the first expected file.
pub fn first_hit(ranking: &[String], grades: &HashMap<String, u32>) -> Option<usize> {
    ranking
        .iter()
        .position(|f| grade_of(grades, f) > 0)
        .map(|i| i + 1)
}

/// Graded NDCG@k: gain = grade, discount = log2(rank + 1).
pub fn ndcg_at(ranking: &[String], grades: &HashMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, f)| f64::from(grade_of(grades, f)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = grades.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| f64::from(g) / ((i + 2) as f64).log2())
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

/// Share of expected files found in the top k.
pub fn recall_at(ranking: &[String], grades: &HashMap<String, u32>, k: usize) -> f64 {
    if grades.is_empty() {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|f| grade_of(grades, f) > 0)
        .count();
    found as f64 / grades.len() as f64
}

/// `Invoice::total` matches `total`, `Invoice::total` and a merged `a, Invoice::total`.
pub fn symbol_matches(cited: &str, expected: &str) -> bool {
    cited.split(", ").any(|s| {
        s == expected
            || s.ends_with(&format!("::{expected}"))
            || s.ends_with(&format!(".{expected}"))
    })
}

fn missed_thresholds(t: &Thresholds, m: &Metrics) -> Vec<String> {
    let checks = [
        ("hit@1", t.hit_at_1, Some(m.hit_at_1)),
        ("hit@5", t.hit_at_5, Some(m.hit_at_5)),
        ("MRR@10", t.mrr_at_10, Some(m.mrr_at_10)),
        ("NDCG@10", t.ndcg_at_10, Some(m.ndcg_at_10)),
        ("recall@10", t.recall_at_10, Some(m.recall_at_10)),
        ("symbol hit@5", t.symbol_hit_at_5, m.symbol_hit_at_5),
    ];
    checks
        .iter()
        .filter_map(|(name, min, value)| {
            let min = (*min)?;
            let value = value.unwrap_or(0.0);
            (value + 1e-9 < min)
                .then(|| format!("{name} {value:.3} is below the threshold {min:.3}"))
        })
        .collect()
}

/// Per-question outcomes kept to catch regressions question by question.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version.
    pub schema_version: u32,
    /// `set/id` → outcome.
    pub questions: BTreeMap<String, BaselineEntry>,
    /// Set name → metrics when the baseline was saved.
    pub sets: BTreeMap<String, Metrics>,
}

/// One question's outcome in a baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineEntry {
    /// Expected file in the top 5.
    pub hit_at_5: bool,
    /// Rank of the first expected file.
    pub first_hit: Option<usize>,
    /// hit@5 per lane alone: bm25, vector.
    #[serde(default)]
    pub lane_hit_at_5: [bool; 2],
}

impl Baseline {
    /// The baseline of a report.
    pub fn of(report: &EvalReport) -> Baseline {
        Baseline {
            schema_version: 1,
            questions: report
                .questions()
                .map(|(set, q)| {
                    (
                        format!("{set}/{}", q.id),
                        BaselineEntry {
                            hit_at_5: q.hit_at(5),
                            first_hit: q.first_hit,
                            lane_hit_at_5: [q.lane_hit_at_5[0], q.lane_hit_at_5[1]],
                        },
                    )
                })
                .collect(),
            sets: report
                .sets
                .iter()
                .map(|s| (s.name.clone(), s.metrics.clone()))
                .collect(),
        }
    }
}

/// What changed against a baseline or a second index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Changes {
    /// Blocking questions that were a hit@5 and no longer are (these fail the gate).
    pub regressed: Vec<String>,
    /// Non-blocking questions that lost their hit@5 (reported only).
    pub monitoring_regressed: Vec<String>,
    /// Questions that gained a hit@5.
    pub improved: Vec<String>,
    /// Blocking questions that one lane alone no longer answers in the top 5
    /// (`set/id (vector)`): a dead lane shows here even when the other lane hides it.
    pub lane_regressed: Vec<String>,
}

/// Compares a report with a baseline, question by question.
pub fn compare_with_baseline(report: &EvalReport, baseline: &Baseline) -> Changes {
    let mut changes = Changes::default();
    for (set, q) in report.questions() {
        let key = format!("{set}/{}", q.id);
        let Some(before) = baseline.questions.get(&key) else {
            continue;
        };
        let now = q.hit_at(5);
        if before.hit_at_5 && !now {
            match q.tier {
                Tier::Blocking => changes.regressed.push(key.clone()),
                _ => changes.monitoring_regressed.push(key.clone()),
            }
        } else if !before.hit_at_5 && now {
            changes.improved.push(key.clone());
        }
        if q.tier == Tier::Blocking {
            for (lane, name) in [(0, "bm25"), (1, "vector")] {
                if before.lane_hit_at_5[lane] && !q.lane_hit_at_5[lane] {
                    changes.lane_regressed.push(format!("{key} ({name})"));
                }
            }
        }
    }
    changes
}

/// Compares the same sets run against two indexes (A is the reference).
pub fn compare_reports(a: &EvalReport, b: &EvalReport) -> Changes {
    compare_with_baseline(b, &Baseline::of(a))
}

/// Why the gate fails (empty when it passes): missed thresholds, regressions, ACL leaks.
pub fn gate_failures(report: &EvalReport, changes: Option<&Changes>) -> Vec<String> {
    let mut failures = Vec::new();
    for set in &report.sets {
        for miss in &set.threshold_failures {
            failures.push(format!("{}: {miss}", set.name));
        }
        for q in &set.questions {
            for leak in &q.leaks {
                failures.push(format!("{}/{}: ACL leak: cited {leak}", set.name, q.id));
            }
        }
    }
    if let Some(changes) = changes {
        for key in &changes.regressed {
            failures.push(format!("{key}: was a hit@5 in the baseline, is not now"));
        }
        for key in &changes.lane_regressed {
            failures.push(format!("{key}: this lane lost its hit@5"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grades(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(f, g)| (f.to_string(), *g)).collect()
    }

    fn ranking(files: &[&str]) -> Vec<String> {
        files.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn ranking_metrics_match_hand_computed_values() {
        let g = grades(&[("r:a", 2), ("r:b", 1)]);
        let r = ranking(&["r:x", "r:a", "r:y", "r:b"]);
        assert_eq!(first_hit(&r, &g), Some(2));
        // DCG = 2/log2(3) + 1/log2(5); IDCG = 2/log2(2) + 1/log2(3).
        let dcg = 2.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((ndcg_at(&r, &g, 10) - dcg / idcg).abs() < 1e-12);
        assert!((ndcg_at(&r, &g, 10) - 0.6433).abs() < 1e-4);
        assert_eq!(recall_at(&r, &g, 10), 1.0);
        assert_eq!(recall_at(&r, &g, 3), 0.5);
        assert_eq!(ndcg_at(&ranking(&["r:a", "r:b"]), &g, 10), 1.0);
        assert_eq!(ndcg_at(&ranking(&["r:z"]), &g, 10), 0.0);
        assert_eq!(first_hit(&ranking(&["r:z"]), &g), None);
        let any_repo = grades(&[("*:src/a.rs", 2)]);
        assert_eq!(
            first_hit(&ranking(&["x:b.rs", "y:src/a.rs"]), &any_repo),
            Some(2)
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn symbols_match_by_qualified_suffix() {
        assert!(symbol_matches("Invoice::total", "total"));
        assert!(symbol_matches("Invoice::total", "Invoice::total"));
        assert!(symbol_matches("pkg.mod.Class.run", "Class.run"));
        assert!(symbol_matches("A, Invoice::total", "total"));
        assert!(!symbol_matches("Invoice::subtotal", "total"));
    }

    fn result(id: &str, first_hit: Option<usize>, tier: Tier) -> QuestionResult {
        QuestionResult {
            id: id.into(),
            tier,
            files: Vec::new(),
            first_hit,
            ndcg: 0.0,
            recall: 0.0,
            expects_files: true,
            symbol_hit: None,
            precision: None,
            leaks: Vec::new(),
            refused: false,
            expect_refusal: false,
            lane_hit_at_5: [false; 3],
            lane_first_hit: [None; 3],
            latency_ms: 1.0,
            trace_id: None,
        }
    }

    #[test]
    fn lane_metrics_come_from_each_lane_s_own_first_hit() {
        let mut a = result("a", Some(1), Tier::Blocking);
        a.lane_first_hit = [Some(1), Some(3), Some(1)];
        let mut b = result("b", Some(2), Tier::Blocking);
        b.lane_first_hit = [None, Some(2), Some(2)];
        let m = Metrics::of(&[&a, &b]);
        assert_eq!(m.bm25_hit_at_1, 0.5);
        assert_eq!(m.bm25_mrr_at_10, 0.5);
        assert_eq!(m.vector_hit_at_1, 0.0);
        assert!((m.vector_mrr_at_10 - (1.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
        assert_eq!(m.mrr_at_10, 0.75);
    }

    fn report(questions: Vec<QuestionResult>) -> EvalReport {
        let refs: Vec<&QuestionResult> = questions.iter().collect();
        let metrics = Metrics::of(&refs);
        EvalReport {
            generation: "g000001".into(),
            model: "m".into(),
            sets: vec![SetReport {
                name: "s".into(),
                tier: Tier::Blocking,
                metrics: metrics.clone(),
                questions,
                threshold_failures: Vec::new(),
            }],
            overall: metrics,
        }
    }

    #[test]
    fn mrr_and_hits_aggregate_over_questions() {
        let qs = [
            result("a", Some(1), Tier::Blocking),
            result("b", Some(4), Tier::Blocking),
            result("c", None, Tier::Blocking),
            result("d", Some(12), Tier::Blocking),
        ];
        let refs: Vec<&QuestionResult> = qs.iter().collect();
        let m = Metrics::of(&refs);
        assert_eq!(m.questions, 4);
        assert_eq!(m.hit_at_1, 0.25);
        assert_eq!(m.hit_at_5, 0.5);
        assert!((m.mrr_at_10 - (1.0 + 0.25) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn baseline_diff_fails_only_blocking_regressions() {
        let before = report(vec![
            result("a", Some(1), Tier::Blocking),
            result("b", Some(2), Tier::Monitoring),
            result("c", None, Tier::Blocking),
        ]);
        let after = report(vec![
            result("a", Some(7), Tier::Blocking),
            result("b", None, Tier::Monitoring),
            result("c", Some(3), Tier::Blocking),
        ]);
        let changes = compare_with_baseline(&after, &Baseline::of(&before));
        assert_eq!(changes.regressed, ["s/a"]);
        assert_eq!(changes.monitoring_regressed, ["s/b"]);
        assert_eq!(changes.improved, ["s/c"]);
        let failures = gate_failures(&after, Some(&changes));
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(gate_failures(&before, None).is_empty());
    }

    #[test]
    fn thresholds_and_leaks_fail_the_gate() {
        let mut r = report(vec![result("a", None, Tier::Blocking)]);
        let t = Thresholds {
            hit_at_5: Some(0.5),
            ..Thresholds::default()
        };
        r.sets[0].threshold_failures = missed_thresholds(&t, &r.sets[0].metrics);
        assert_eq!(r.sets[0].threshold_failures.len(), 1);
        r.sets[0].questions[0].leaks.push("secret:x.rs:1-2".into());
        assert_eq!(gate_failures(&r, None).len(), 2);
    }

    #[test]
    fn principals_are_refused_without_an_acl() {
        assert!(Unrestricted.filter_for(None).is_ok());
        let err = Unrestricted
            .filter_for(Some("alice"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no access-control list"), "{err}");
    }

    #[test]
    fn set_files_that_cannot_fail_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "name = \"s\"\n[[question]]\nid = \"q\"\nquestion = \"anything\"\n",
        )
        .unwrap();
        let err = QuestionSet::load(&path).unwrap_err().to_string();
        assert!(err.contains("cannot fail"), "{err}");
        std::fs::write(
            &path,
            "name = \"s\"\n[[question]]\nid = \"q\"\nquestion = \"x\"\nrelevant = [\"nocolon\"]\n",
        )
        .unwrap();
        assert!(
            QuestionSet::load(&path)
                .unwrap_err()
                .to_string()
                .contains("repo:path")
        );
        std::fs::write(
            &path,
            "name = \"s\"\n[[question]]\nid = \"q\"\nquestin = \"x\"\n",
        )
        .unwrap();
        let err = QuestionSet::load(&path).unwrap_err().to_string();
        assert!(err.contains("line ") && err.contains("questin"), "{err}");
    }
}
