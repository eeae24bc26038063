//! `codeq eval`: runs question sets through exactly the path `codeq ask` takes, scores the
//! citations, gates blocking sets on thresholds and on a per-question baseline, and
//! compares two indexes side by side; every run's summary goes to the index's history
//! ([`history`]).
//!
//! Set files are TOML; `eval-questions/README.md` documents the format.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::answer::Answer;
use crate::error::{Error, Result};
use crate::search::{Lanes, QueryScope};
use crate::session::Session;
use crate::trace::Surface;

mod gate;
mod generated;
pub mod history;
mod metrics;
pub mod remote;

use gate::missed_thresholds;
pub use gate::{
    Baseline, BaselineEntry, Changes, compare_reports, compare_with_baseline, gate_failures,
};
pub use generated::{GeneratedMetrics, GeneratedResult, GeneratedView};
use metrics::grade_of;
pub use metrics::{Metrics, first_hit, ndcg_at, percentile, recall_at, symbol_matches};

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
    /// How the generated answer cited, when `[llm]` wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<GeneratedResult>,
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

/// Runs every question of `sets` as a user would ask it through `session` (the LLM stage
/// included when `[llm]` is configured), each as its `as` principal (see
/// [`Session::as_other`]) or as the session's, with `k` citations; every answer is traced.
pub fn run(session: &Session, sets: &[QuestionSet], k: usize) -> Result<EvalReport> {
    let mut askers: HashMap<Option<String>, Session> = HashMap::new();
    report_of(
        sets,
        session.generation().to_string(),
        session.manifest().model.id.clone(),
        |set, q| {
            let asker = match askers.get(&q.principal) {
                Some(asker) => asker,
                None => {
                    let asker = match &q.principal {
                        Some(other) => session.as_other(other)?,
                        None => session.clone(),
                    };
                    askers.entry(q.principal.clone()).or_insert(asker)
                }
            };
            run_question(asker, q, set.tier, k)
        },
    )
}

/// The report of `sets` on `generation` built with `model`, each question's result from
/// `result_of`, with the per-set gates applied.
fn report_of(
    sets: &[QuestionSet],
    generation: String,
    model: String,
    mut result_of: impl FnMut(&QuestionSet, &Question) -> Result<QuestionResult>,
) -> Result<EvalReport> {
    let mut reports = Vec::new();
    for set in sets {
        let questions = set
            .questions
            .iter()
            .map(|q| result_of(set, q))
            .collect::<Result<Vec<_>>>()?;
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
        generation,
        model,
        overall: Metrics::of(&all),
        sets: reports,
    })
}

/// Asks one question as `asker` (reranked, with the LLM stage when configured) and runs
/// each lane alone (the lanes' own figures are not reranked).
fn run_question(asker: &Session, q: &Question, set_tier: Tier, k: usize) -> Result<QuestionResult> {
    let scope = QueryScope {
        k,
        ..QueryScope::default()
    };
    let started = Instant::now();
    let asked = asker.ask(Surface::Eval, &q.question, &scope)?;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut lane_first_hit = [None; 3];
    for (slot, lanes) in [(0, Lanes::Bm25), (1, Lanes::Vector)] {
        let results = asker.lane_search(&q.question, &scope, lanes)?;
        let files = dedup_files(results.hits.iter().map(|h| (&h.chunk.repo, &h.chunk.path)));
        lane_first_hit[slot] = first_hit(&files, &expected_grades(q));
    }
    let mut result = score(q, &AnswerView::of(&asked.value), k);
    result.tier = q.tier.unwrap_or(set_tier);
    lane_first_hit[2] = result.first_hit;
    result.lane_first_hit = lane_first_hit;
    result.lane_hit_at_5 = lane_first_hit.map(|r| r.is_some_and(|r| r <= 5));
    result.latency_ms = latency_ms;
    result.trace_id = asked.trace.ok();
    Ok(result)
}

/// What scoring reads of an answer: its files in order, its citations and whether it was
/// confident. Built from an [`Answer`] in process, or from the `answer` of `codeq ask
/// --json` (a server's reply).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerView {
    /// `repo:path` of each cited file, best first.
    pub files: Vec<String>,
    /// (repository, symbol, citation) of each citation, best first.
    pub citations: Vec<(String, String, String)>,
    /// False when the answer declined to be confident.
    pub confident: bool,
    /// The generated answer, when `[llm]` wrote one.
    pub generated: Option<GeneratedView>,
}

impl AnswerView {
    /// The view of an answer computed in process.
    pub fn of(answer: &Answer) -> AnswerView {
        AnswerView {
            files: answer
                .files
                .iter()
                .map(|f| format!("{}:{}", f.repo, f.path))
                .collect(),
            citations: answer
                .citations
                .iter()
                .map(|c| (c.repo.clone(), c.symbol.clone(), c.citation.clone()))
                .collect(),
            confident: answer.confident,
            generated: answer.generated.clone().map(|g| {
                GeneratedView::new(g, |n| {
                    answer
                        .citations
                        .get(n.checked_sub(1)?)
                        .map(|c| format!("{}:{}", c.repo, c.path))
                })
            }),
        }
    }

    /// The view of the `answer` object of an ask document (`codeq ask --json`).
    pub fn from_json(answer: &serde_json::Value) -> std::result::Result<AnswerView, String> {
        let text = |v: &serde_json::Value, key: &str| {
            v[key]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("an answer's {key} is missing"))
        };
        let list = |key: &str| {
            answer[key]
                .as_array()
                .ok_or_else(|| format!("the answer has no {key} list"))
        };
        Ok(AnswerView {
            files: list("files")?
                .iter()
                .map(|f| Ok(format!("{}:{}", text(f, "repo")?, text(f, "path")?)))
                .collect::<std::result::Result<_, String>>()?,
            citations: list("citations")?
                .iter()
                .map(|c| Ok((text(c, "repo")?, text(c, "symbol")?, text(c, "citation")?)))
                .collect::<std::result::Result<_, String>>()?,
            confident: answer["confident"]
                .as_bool()
                .ok_or("the answer does not say whether it is confident")?,
            generated: match answer.get("generated") {
                None | Some(serde_json::Value::Null) => None,
                Some(g) => {
                    let generated = serde_json::from_value(g.clone())
                        .map_err(|e| format!("the answer's generated part: {e}"))?;
                    Some(GeneratedView::new(generated, |n| {
                        let c = &answer["citations"][n.checked_sub(1)?];
                        Some(format!("{}:{}", c["repo"].as_str()?, c["path"].as_str()?))
                    }))
                }
            },
        })
    }
}

/// Scores one answer against its question (lanes and latency are filled in by the caller).
pub fn score(q: &Question, answer: &AnswerView, k: usize) -> QuestionResult {
    let grades = expected_grades(q);
    let mut files = answer.files.clone();
    files.truncate(k);
    let first_hit = first_hit(&files, &grades);
    let ndcg = ndcg_at(&files, &grades, 10);
    let recall = recall_at(&files, &grades, 10);
    let symbol_hit = (!q.symbols.is_empty()).then(|| {
        answer
            .citations
            .iter()
            .take(5)
            .any(|(_, symbol, _)| q.symbols.iter().any(|s| symbol_matches(symbol, s)))
    });
    let top: Vec<&String> = files.iter().take(PRECISION_FILES).collect();
    let precision = (!grades.is_empty() && !top.is_empty())
        .then(|| top.iter().filter(|f| grade_of(&grades, f) > 0).count() as f64 / top.len() as f64);
    let leaks = answer
        .citations
        .iter()
        .filter(|(repo, _, _)| q.forbidden_repos.contains(repo))
        .map(|(_, _, citation)| citation.clone())
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
        generated: answer
            .generated
            .as_ref()
            .map(|g| generated::score(g, &grades)),
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
            generated: None,
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
