//! `codeq eval` on the fixture corpus: the shipped blocking set passes, a baseline catches a
//! regression, and the A/B comparison catches a broken vector lane.

mod common;

use codeq::config::Config;
use codeq::embed::{Embedder, FastEmbedder, ModelInfo};
use codeq::eval::{self, QuestionSet};
use codeq::index::{self, IndexOptions, NoProgress};
use codeq::session::{Session, SessionOptions, SharedIndex};
use common::{codeq_json, fixture, stderr};

fn set_path(name: &str) -> String {
    format!("{}/eval-questions/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_fixture_set_passes_its_gate() {
    let fx = fixture();
    let (out, report) = codeq_json(&fx.root, &["eval", &set_path("fixture.toml")]);
    assert_eq!(out.status.code(), Some(0), "{}\n{report}", stderr(&out));
    let overall = &report["report"]["overall"];
    assert!(overall["hit_at_5"].as_f64().unwrap() >= 0.9, "{overall}");
    assert_eq!(overall["acl_leaks"], 0);
    assert_eq!(overall["refusals_honoured"], overall["refusals_expected"]);
    assert!(overall["bm25_hit_at_5"].as_f64().unwrap() > 0.0);
    assert!(overall["vector_hit_at_5"].as_f64().unwrap() > 0.0);
    assert_eq!(report["gate_failures"].as_array().unwrap().len(), 0);
}

#[test]
fn a_baseline_regression_fails_the_gate_and_names_the_question() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let set = scratch.path().join("moved.toml");
    std::fs::write(
        &set,
        "name = \"moved\"\ntier = \"blocking\"\n\n[[question]]\nid = \"refund\"\nquestion = \"refund_payment\"\nrelevant = [\"payments:src/lib.rs\"]\n",
    )
    .unwrap();
    let baseline = scratch.path().join("baseline.json");
    let set_arg = set.to_str().unwrap();
    let base_arg = baseline.to_str().unwrap();
    let (out, _) = codeq_json(&fx.root, &["eval", set_arg, "--save-baseline", base_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (out, _) = codeq_json(&fx.root, &["eval", set_arg, "--baseline", base_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The expected file "moves": the same question now expects another file.
    std::fs::write(
        &set,
        "name = \"moved\"\ntier = \"blocking\"\n\n[[question]]\nid = \"refund\"\nquestion = \"refund_payment\"\nrelevant = [\"payments:src/elsewhere.rs\"]\n",
    )
    .unwrap();
    let (out, report) = codeq_json(&fx.root, &["eval", set_arg, "--baseline", base_arg]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["baseline_changes"]["regressed"][0], "moved/refund");
    let failures = report["gate_failures"].to_string();
    assert!(failures.contains("moved/refund"), "{failures}");
}

/// A model that ignores its input: what a broken export or a wrong tokenizer looks like.
struct ConstantEmbedder {
    info: ModelInfo,
}

impl Embedder for ConstantEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&mut self, texts: &[String]) -> codeq::Result<Vec<Vec<f32>>> {
        let mut v = vec![0.0; self.info.dimension];
        v[0] = 1.0;
        Ok(texts.iter().map(|_| v.clone()).collect())
    }
}

#[test]
fn the_ab_comparison_catches_a_broken_embedding_model() {
    let fx = fixture();
    let config = Config::load_for_root(&fx.root).unwrap();
    let sets = vec![QuestionSet::load(std::path::Path::new(&set_path("fixture.toml"))).unwrap()];
    let good = FastEmbedder::load(&config.model).unwrap();
    let a_session = Session::open(&SessionOptions {
        index_dir: Some(fx.index_dir.clone()),
        ..SessionOptions::default()
    })
    .unwrap();
    let a = eval::run(&a_session, &sets, 10).unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let mut broken = ConstantEmbedder {
        info: ModelInfo {
            id: "broken-model".into(),
            ..good.info().clone()
        },
    };
    let options = IndexOptions {
        index_dir: Some(scratch.path().join("b")),
        rebuild: true,
        ..config.index_options(fx.root.clone())
    };
    index::run(&options, &mut broken, &NoProgress).unwrap();
    // B is queried with the broken model it was built with, as a library user may bring
    // their own embedder.
    let b_session = SharedIndex::open_with_embedder(
        &SessionOptions {
            index_dir: Some(scratch.path().join("b")),
            ..SessionOptions::default()
        },
        Box::new(broken),
    )
    .unwrap()
    .session(None)
    .unwrap();
    let b = eval::run(&b_session, &sets, 10).unwrap();

    assert!(
        b.overall.vector_hit_at_5 < a.overall.vector_hit_at_5,
        "vector lane A {} B {}",
        a.overall.vector_hit_at_5,
        b.overall.vector_hit_at_5
    );
    let changes = eval::compare_reports(&a, &b);
    // On a corpus this small BM25 still carries the fused ranking, so the lane view is what
    // exposes the broken model.
    assert!(
        changes
            .lane_regressed
            .iter()
            .any(|q| q.ends_with("(vector)")),
        "the broken model must flip vector-lane hits: {changes:?}"
    );
    assert!(!eval::gate_failures(&b, Some(&changes)).is_empty());
}
