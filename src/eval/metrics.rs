//! Ranking metrics of one question and their aggregates over a set: hits, MRR, NDCG,
//! recall, symbol hits, precision, lane figures and latency percentiles.

use super::*;

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
    /// The generated answers' figures, when `[llm]` wrote any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<GeneratedMetrics>,
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
            generated: GeneratedMetrics::of(results),
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

/// Grade of a ranked `repo:path`; an expected `*:path` matches that path in any repo.
pub(super) fn grade_of(grades: &HashMap<String, u32>, file: &str) -> u32 {
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
