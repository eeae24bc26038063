//! How generated (LLM) answers cite, scored against the same gold files as the extractive
//! answer: the verified citations' files against the expected ones (precision and recall),
//! answers that kept a verified citation, citations removed, refusals, latency and tokens.

use super::*;
use crate::answer::{EndpointUsage, Generated};
use crate::llm::{NO_VALID_CITATION, NOT_CONFIDENT};

/// What scoring reads of a generated answer: the answerer's record and the files of the
/// sources it validly cited.
#[derive(Debug, Clone)]
pub struct GeneratedView {
    /// The answerer's record (text, fallback, removed citations, usage).
    pub generated: Generated,
    /// `repo:path` of each validly cited source, first-cited first, without repeats.
    pub cited_files: Vec<String>,
}

/// Two generated answers are the same when they say the same and cite the same files
/// (latency and usage differ from run to run).
impl PartialEq for GeneratedView {
    fn eq(&self, other: &GeneratedView) -> bool {
        self.generated.text == other.generated.text && self.cited_files == other.cited_files
    }
}

impl GeneratedView {
    /// The view of `generated`, whose cited source `n` is the file `file_of(n)`.
    pub fn new(generated: Generated, file_of: impl Fn(usize) -> Option<String>) -> GeneratedView {
        let mut cited_files: Vec<String> = Vec::new();
        for file in generated.cited_sources.iter().filter_map(|&n| file_of(n)) {
            if !cited_files.contains(&file) {
                cited_files.push(file);
            }
        }
        GeneratedView {
            generated,
            cited_files,
        }
    }
}

/// How one question's generated answer scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GeneratedResult {
    /// Model name sent to the endpoint.
    pub model: String,
    /// Prompt version the answer was asked with.
    pub prompt_version: String,
    /// The reply was shown: it kept at least one verified citation.
    pub answered: bool,
    /// Why the extractive answer stood instead.
    pub fallback: Option<String>,
    /// Files of the verified citations.
    pub cited_files: Vec<String>,
    /// Share of the cited files that are expected (answered questions with expected files).
    pub precision: Option<f64>,
    /// Share of the expected files cited (0 when not answered).
    pub recall: Option<f64>,
    /// Citations and references removed from the reply.
    pub removed: usize,
    /// No answer was generated for want of evidence: the extractive answer was not
    /// confident (the model was not asked), or the model's reply cited nothing it was sent.
    pub declined: bool,
    /// Time spent on the endpoint, ms.
    pub latency_ms: f64,
    /// Tokens and timings the endpoint reported.
    pub usage: Option<EndpointUsage>,
}

/// Scores a generated answer against `grades` (the question's expected files).
pub(super) fn score(view: &GeneratedView, grades: &HashMap<String, u32>) -> GeneratedResult {
    let g = &view.generated;
    let answered = g.text.is_some();
    let expected_cited = view
        .cited_files
        .iter()
        .filter(|f| grade_of(grades, f) > 0)
        .count();
    let precision = (answered && !grades.is_empty() && !view.cited_files.is_empty())
        .then(|| expected_cited as f64 / view.cited_files.len() as f64);
    let recall = (!grades.is_empty()).then(|| expected_cited as f64 / grades.len() as f64);
    GeneratedResult {
        model: g.model.clone(),
        prompt_version: g.prompt_version.clone(),
        answered,
        fallback: g.fallback.clone(),
        cited_files: view.cited_files.clone(),
        precision,
        recall,
        removed: g.removed.len(),
        declined: matches!(
            g.fallback.as_deref(),
            Some(NO_VALID_CITATION | NOT_CONFIDENT)
        ),
        latency_ms: g.latency_ms,
        usage: g.usage,
    }
}

/// Generated answers over a group of questions, beside the extractive figures of
/// [`Metrics`] on the same questions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GeneratedMetrics {
    /// Model names seen (one, unless the configuration changed mid-run).
    pub models: Vec<String>,
    /// Prompt versions seen.
    pub prompt_versions: Vec<String>,
    /// Questions with a generated answer attempted.
    pub questions: usize,
    /// Share of them whose reply was shown (at least one verified citation).
    pub answered: f64,
    /// Share of the same questions whose extractive answer cites at least one file.
    pub extractive_cited: f64,
    /// Mean share of cited files that are expected, over answered questions with expected
    /// files.
    pub citation_precision: Option<f64>,
    /// Mean share of expected files cited, over questions with expected files.
    pub citation_recall: Option<f64>,
    /// Citations removed per reply received.
    pub removed_per_answer: f64,
    /// Expected refusals where nothing was generated for want of evidence.
    pub refusals_honoured: usize,
    /// Expected refusals.
    pub refusals_expected: usize,
    /// Replies the endpoint did not give (down, timeout, error, budget); questions not sent
    /// for want of evidence are not counted.
    pub endpoint_failures: usize,
    /// Median time on the endpoint, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile time on the endpoint, ms.
    pub latency_p95_ms: f64,
    /// Median time to the first reply token, ms, when the endpoint reports it.
    pub first_token_p50_ms: Option<f64>,
    /// Mean reply tokens per second, when the endpoint reports it.
    pub tokens_per_second: Option<f64>,
    /// Mean prompt tokens per request.
    pub prompt_tokens: Option<f64>,
    /// Mean reply tokens per request.
    pub completion_tokens: Option<f64>,
}

impl GeneratedMetrics {
    /// Aggregates the generated answers of `results`; `None` when none had one.
    pub(super) fn of(results: &[&QuestionResult]) -> Option<GeneratedMetrics> {
        let pairs: Vec<(&QuestionResult, &GeneratedResult)> = results
            .iter()
            .filter_map(|r| r.generated.as_ref().map(|g| (*r, g)))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let generated: Vec<&GeneratedResult> = pairs.iter().map(|(_, g)| *g).collect();
        let replied: Vec<&&GeneratedResult> =
            generated.iter().filter(|g| g.usage.is_some()).collect();
        let usage_mean = |f: &dyn Fn(&EndpointUsage) -> Option<f64>| {
            mean_of(replied.iter().filter_map(|g| g.usage.as_ref().and_then(f)))
        };
        let mut latencies: Vec<f64> = generated.iter().map(|g| g.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let mut first_tokens: Vec<f64> = replied
            .iter()
            .filter_map(|g| g.usage.and_then(|u| u.prompt_ms))
            .collect();
        first_tokens.sort_by(f64::total_cmp);
        let expected_refusals: Vec<&GeneratedResult> = pairs
            .iter()
            .filter(|(r, _)| r.expect_refusal)
            .map(|(_, g)| *g)
            .collect();
        let distinct = |f: &dyn Fn(&GeneratedResult) -> &String| {
            let mut seen: Vec<String> = generated.iter().map(|g| f(g).clone()).collect();
            seen.sort();
            seen.dedup();
            seen
        };
        Some(GeneratedMetrics {
            models: distinct(&|g| &g.model),
            prompt_versions: distinct(&|g| &g.prompt_version),
            questions: generated.len(),
            extractive_cited: pairs.iter().filter(|(r, _)| !r.files.is_empty()).count() as f64
                / pairs.len() as f64,
            answered: generated.iter().filter(|g| g.answered).count() as f64
                / generated.len() as f64,
            citation_precision: mean_of(generated.iter().filter_map(|g| g.precision)),
            citation_recall: mean_of(generated.iter().filter_map(|g| g.recall)),
            removed_per_answer: if replied.is_empty() {
                0.0
            } else {
                replied.iter().map(|g| g.removed).sum::<usize>() as f64 / replied.len() as f64
            },
            refusals_honoured: expected_refusals.iter().filter(|g| g.declined).count(),
            refusals_expected: expected_refusals.len(),
            endpoint_failures: generated
                .iter()
                .filter(|g| g.usage.is_none() && g.fallback.as_deref() != Some(NOT_CONFIDENT))
                .count(),
            latency_p50_ms: percentile(&latencies, 0.50),
            latency_p95_ms: percentile(&latencies, 0.95),
            first_token_p50_ms: (!first_tokens.is_empty()).then(|| percentile(&first_tokens, 0.50)),
            tokens_per_second: usage_mean(&|u| u.tokens_per_second),
            prompt_tokens: usage_mean(&|u| u.prompt_tokens.map(|t| t as f64)),
            completion_tokens: usage_mean(&|u| u.completion_tokens.map(|t| t as f64)),
        })
    }
}

fn mean_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::RemovedCitation;

    fn generated(text: Option<&str>, cited: Vec<usize>, fallback: Option<&str>) -> Generated {
        Generated {
            model: "m".into(),
            prompt_version: "v".into(),
            text: text.map(str::to_string),
            cited_sources: cited,
            removed: vec![RemovedCitation {
                cited: "[9]".into(),
                reason: "no such source".into(),
            }],
            fallback: fallback.map(str::to_string),
            flagged_sources: Vec::new(),
            sources_sent: 3,
            context_tokens: 100,
            estimated_cost_usd: None,
            latency_ms: 10.0,
            usage: Some(EndpointUsage {
                prompt_tokens: Some(100),
                completion_tokens: Some(20),
                prompt_ms: Some(50.0),
                tokens_per_second: Some(30.0),
            }),
        }
    }

    #[test]
    fn cited_files_score_against_the_expected_ones() {
        let files = ["app:a.py", "app:b.py", "app:a.py"];
        let view = GeneratedView::new(generated(Some("x [1] [2] [3]"), vec![1, 2, 3], None), |n| {
            files.get(n - 1).map(|f| f.to_string())
        });
        assert_eq!(view.cited_files, ["app:a.py", "app:b.py"]);
        let grades = HashMap::from([("app:a.py".to_string(), 2), ("app:c.py".to_string(), 1)]);
        let result = score(&view, &grades);
        assert!(result.answered && !result.declined);
        assert_eq!(result.precision, Some(0.5));
        assert_eq!(result.recall, Some(0.5));
        assert_eq!(result.removed, 1);

        let declined =
            GeneratedView::new(generated(None, vec![], Some(NO_VALID_CITATION)), |_| None);
        let result = score(&declined, &grades);
        assert!(!result.answered && result.declined);
        assert_eq!((result.precision, result.recall), (None, Some(0.0)));
    }

    #[test]
    fn questions_not_sent_for_weak_evidence_are_refusals_not_failures() {
        let grades = HashMap::from([("app:a.py".to_string(), 2)]);
        let question = |id: &str, g: Generated, expect_refusal: bool| {
            let mut r = super::super::score(
                &Question {
                    id: id.into(),
                    question: id.into(),
                    relevant: vec!["app:a.py".into()],
                    secondary: vec![],
                    symbols: vec![],
                    lines: BTreeMap::new(),
                    principal: None,
                    forbidden_repos: vec![],
                    expect_refusal,
                    tier: None,
                },
                &AnswerView {
                    files: vec!["app:a.py".into()],
                    citations: vec![],
                    confident: !expect_refusal,
                    generated: None,
                },
                10,
            );
            r.generated = Some(score(
                &GeneratedView::new(g, |_| Some("app:a.py".into())),
                &grades,
            ));
            r
        };
        let mut unsure = generated(None, vec![], Some(NOT_CONFIDENT));
        unsure.usage = None;
        let mut down = generated(None, vec![], Some("cannot connect to the endpoint"));
        down.usage = None;
        let results = [
            question("cited", generated(Some("a [1]"), vec![1], None), false),
            question("unsure", unsure, true),
            question("down", down, false),
        ];
        let m = GeneratedMetrics::of(&results.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(m.questions, 3);
        assert_eq!((m.refusals_honoured, m.refusals_expected), (1, 1));
        assert_eq!(m.endpoint_failures, 1);
        assert!((m.answered - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.citation_precision, Some(1.0));
    }
}
