//! The optional cross-encoder reranker, with the real model `scripts/setup.sh` installs:
//! it re-orders the best fused hits by its own scores (visible in `--json` and traces),
//! sees only what the principal may read, and a missing model is a clear error.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use codeq::config::Config;
use codeq::rerank::RerankConfig;
use codeq::rerank::{CrossEncoder, Reranker};
use common::{fixture, stderr, stdout};

/// `codeq ARGS` in `cwd` with the reranker switched on through the environment (plus
/// `extra` variables).
fn codeq_reranked(cwd: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_codeq"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CODEQ_INDEX_DIR")
        .env("CODEQ_RERANK_ENABLED", "true");
    for (name, value) in extra {
        command.env(name, value);
    }
    command.output().expect("run codeq")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("json output")
}

#[test]
fn the_cross_encoder_scores_a_relevant_chunk_above_an_unrelated_one() {
    let config = Config::default();
    let mut reranker = CrossEncoder::load(&RerankConfig::default(), &config.model).unwrap();
    let scores = reranker
        .score(
            "how is a payment refunded",
            &[
                "pub fn refund_payment(ledger: &mut HashMap<String, i64>, payment_id: &str) -> Option<i64> {\n    ledger.remove(payment_id)\n}".to_string(),
                "def parse_query_string(text):\n    \"\"\"Splits a search query into terms.\"\"\"\n    return text.lower().split()".to_string(),
            ],
        )
        .unwrap();
    assert!(scores[0] > scores[1] + 1.0, "{scores:?}");
}

#[test]
fn reranked_results_follow_the_model_and_say_so_in_json_and_traces() {
    let fx = fixture();
    let query = "how is a payment refunded";
    let plain = json_of(&common::codeq(&fx.root, &["search", query, "--json"]));
    assert!(plain["results"][0]["rerank_score"].is_null(), "{plain}");

    let reranked = json_of(&codeq_reranked(&fx.root, &["search", query, "--json"], &[]));
    let results = reranked["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{reranked}");
    assert!(
        results[0]["citation"]
            .as_str()
            .unwrap()
            .starts_with("payments:src/lib.rs:")
    );
    assert_eq!(results[0]["symbol"], "refund_payment", "{reranked}");
    let scores: Vec<f64> = results
        .iter()
        .map_while(|r| r["rerank_score"].as_f64())
        .collect();
    assert!(!scores.is_empty(), "{reranked}");
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "re-scored hits come in the model's order: {scores:?}"
    );
    assert!(reranked["timings_ms"]["rerank"].as_f64().unwrap() > 0.0);
    common::assert_schema("search", &reranked);

    let trace = json_of(&common::codeq(&fx.root, &["trace", "--last", "--json"]));
    assert!(
        trace["trace"]["timings_ms"]["rerank"].as_f64().unwrap() > 0.0,
        "{trace}"
    );
    assert!(
        trace["trace"]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rerank_score"].is_f64()),
        "{trace}"
    );
    let explained = stdout(&common::codeq(&fx.root, &["trace", "--last"]));
    assert!(explained.contains("reranker"), "{explained}");
}

#[test]
fn the_reranker_sees_only_what_the_principal_may_read() {
    let fx = fixture();
    let acl = fx.home.join("rerank-acl.toml");
    std::fs::write(
        &acl,
        "[[acl.grant]]\nrepos = [\"search-service\"]\nread = [\"carol\"]\n",
    )
    .unwrap();
    let acl = acl.to_string_lossy().into_owned();
    // The control: without the ACL, the same reranked query does show the payments code.
    let open = json_of(&codeq_reranked(
        &fx.root,
        &["search", "refund_payment", "--json"],
        &[],
    ));
    assert_eq!(open["results"][0]["symbol"], "refund_payment", "{open}");
    for query in [
        "refund_payment",
        "how is a payment refunded",
        "fraud score of a transaction",
    ] {
        for command in ["search", "ask"] {
            let out = codeq_reranked(
                &fx.root,
                &[command, query, "--acl", &acl, "--as", "carol", "--json"],
                &[],
            );
            assert!(out.status.code().is_some_and(|c| c < 2), "{}", stderr(&out));
            // The query itself is echoed back (query, terms, analysis, the answer's
            // question): the rest must not
            // hold anything of the payments repositories.
            let mut value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            for echoed in ["query", "terms", "analysis"] {
                value.as_object_mut().unwrap().remove(echoed);
            }
            if let Some(answer) = value.get_mut("answer").and_then(|a| a.as_object_mut()) {
                answer.remove("question");
            }
            let text = value.to_string() + &stderr(&out);
            for marker in [
                "refund_payment",
                "payments",
                "FraudScorer",
                "score_transaction",
            ] {
                assert!(
                    !text.contains(marker),
                    "{command} {query:?} as carol shows {marker:?}:\n{text}"
                );
            }
        }
    }
}

#[test]
fn an_enabled_reranker_without_its_files_stops_the_query_with_what_to_do() {
    let fx = fixture();
    let missing = fx.home.join("no-reranker-here");
    let out = codeq_reranked(
        &fx.root,
        &["search", "refund"],
        &[("CODEQ_RERANK_DIR", &missing.to_string_lossy())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("reranker not usable"), "{message}");
    assert!(message.contains("model.onnx is missing"), "{message}");
    assert!(message.contains("scripts/setup.sh"), "{message}");
    assert!(stdout(&out).is_empty());
}
