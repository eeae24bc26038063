//! What fails `codeq eval`: blocking thresholds missed, and questions that were a hit in
//! the baseline and are not now (per question and per lane).

use super::*;

pub(super) fn missed_thresholds(t: &Thresholds, m: &Metrics) -> Vec<String> {
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
