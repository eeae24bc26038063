//! Answers and sessions for the TUI's own tests: what the engine would hand the UI, so the
//! UI's states can be rendered without an index.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::app::{App, SessionInfo};
use crate::answer::{Answer, Citation, FileGroup, Freshness};
use crate::search::{Boost, SearchTimings};

/// Two visible repositories, a principal under an ACL, no stale repository.
pub fn session() -> SessionInfo {
    SessionInfo {
        principal: "alice (ACL)".into(),
        model: "all-MiniLM-L6-v2@int8".into(),
        stale_repos: 0,
        repo_dirs: HashMap::from([
            ("payments".into(), PathBuf::from("/src/payments")),
            (
                "payments/plugins/fraud".into(),
                PathBuf::from("/src/payments/plugins/fraud"),
            ),
        ]),
    }
}

/// A UI without colours (snapshots compare text), eight citations per answer.
pub fn app() -> App {
    App::new(
        session(),
        &["payments".into(), "payments/plugins/fraud".into()],
        &["rust".into(), "python".into()],
        8,
        false,
    )
}

fn citation(
    repo: &str,
    path: &str,
    lines: (u32, u32),
    symbol: &str,
    freshness: Freshness,
    content: &str,
) -> Citation {
    Citation {
        citation: format!("{repo}:{path}:{}-{}", lines.0, lines.1),
        repo: repo.into(),
        path: path.into(),
        start_line: lines.0,
        end_line: lines.1,
        symbol: symbol.into(),
        kind: "function".into(),
        signature: String::new(),
        doc: String::new(),
        why: "both lanes".into(),
        confidence: 0.8,
        freshness,
        score: 0.03,
        fused_score: 0.02,
        boosts: vec![Boost {
            reason: "defines a queried symbol",
            factor: 1.6,
        }],
        bm25_rank: Some(1),
        vector_rank: Some(2),
        rerank_score: None,
        content: content.into(),
    }
}

/// An answer with three citations: current, moved, and changed since indexing.
pub fn answer() -> Answer {
    let citations = vec![
        citation(
            "payments",
            "src/lib.rs",
            (3, 5),
            "refund_payment",
            Freshness::Current,
            "/// Gives the money back.\npub fn refund_payment(id: u64) -> bool {\n    id > 0\n}\n",
        ),
        citation(
            "payments/plugins/fraud",
            "fraud/scoring.py",
            (10, 12),
            "FraudScorer.score",
            Freshness::Moved {
                start_line: 14,
                end_line: 16,
            },
            "def score(self, tx):\n    # weigh the amount\n    return tx.amount * 0.5\n",
        ),
        citation(
            "payments",
            "src/legacy.rs",
            (1, 2),
            "old_total",
            Freshness::Changed,
            "fn old_total() -> u32 {\n    42 }\n",
        ),
    ];
    Answer {
        question: "how are refunds paid".into(),
        confident: true,
        summary: "refund_payment in payments:src/lib.rs gives the money back.".into(),
        files: vec![
            FileGroup {
                repo: "payments".into(),
                path: "src/lib.rs".into(),
                confidence: 0.8,
                score: 0.03,
                citations: vec![0],
            },
            FileGroup {
                repo: "payments/plugins/fraud".into(),
                path: "fraud/scoring.py".into(),
                confidence: 0.8,
                score: 0.02,
                citations: vec![1],
            },
            FileGroup {
                repo: "payments".into(),
                path: "src/legacy.rs".into(),
                confidence: 0.8,
                score: 0.01,
                citations: vec![2],
            },
        ],
        citations,
        dropped: Vec::new(),
        vector_coverage: None,
        timings: SearchTimings {
            analyze: Duration::ZERO,
            embed: Duration::from_millis(3),
            bm25: Duration::from_millis(1),
            vector: Duration::from_millis(4),
            fuse: Duration::from_millis(2),
            rerank: Duration::ZERO,
            total: Duration::from_millis(9),
        },
        answer_time: Duration::from_millis(1),
        verify_time: Duration::ZERO,
        candidates: Vec::new(),
        generated: None,
    }
}

/// An answer that found nothing.
pub fn empty_answer() -> Answer {
    Answer {
        question: "zanzibar".into(),
        confident: false,
        summary: "No confident answer: nothing in the visible index matches.".into(),
        citations: Vec::new(),
        files: Vec::new(),
        dropped: Vec::new(),
        vector_coverage: None,
        timings: SearchTimings::default(),
        answer_time: Duration::ZERO,
        verify_time: Duration::ZERO,
        candidates: Vec::new(),
        generated: None,
    }
}
