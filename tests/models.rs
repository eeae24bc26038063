//! The embedding models setup installs besides the default, as an A/B compares them: the
//! static model (potion-base-8M) indexes and answers end to end, bge-small-en prefixes its
//! queries with its instruction, and a damaged model folder is refused with a clear error.

mod common;

use std::path::{Path, PathBuf};

use codeq::embed::{Embedder, FastEmbedder, ModelConfig, StaticEmbedder, load_embedder};
use common::{build_corpus, codeq, codeq_json, stderr, stdout};

fn installed(name: &str) -> PathBuf {
    codeq::paths::codeq_home().join("models").join(name)
}

fn model(dir: &Path) -> ModelConfig {
    ModelConfig {
        dir: Some(dir.to_path_buf()),
        ..ModelConfig::default()
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn the_static_model_embeds_unit_vectors_that_tell_texts_apart() {
    let dir = installed("potion-base-8m");
    let mut embedder = load_embedder(&model(&dir)).unwrap();
    assert_eq!(embedder.info().id, "minishlab/potion-base-8M");
    assert_eq!(embedder.info().dimension, 256);
    let texts = [
        "refund a payment to the customer".to_string(),
        "return the money of a payment".to_string(),
        "parse a yaml configuration file".to_string(),
        String::new(),
    ];
    let vectors = embedder.embed(&texts).unwrap();
    for v in &vectors[..3] {
        let norm = cosine(v, v).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    // A text without known tokens is the zero vector, not NaN.
    assert!(vectors[3].iter().all(|&x| x == 0.0));
    let (related, unrelated) = (
        cosine(&vectors[0], &vectors[1]),
        cosine(&vectors[0], &vectors[2]),
    );
    assert!(related > unrelated, "{related} <= {unrelated}");
    assert_eq!(embedder.embed_query(&texts[0]).unwrap(), vectors[0]);
}

#[test]
fn bge_queries_carry_the_retrieval_instruction_and_documents_do_not() {
    let dir = installed("bge-small-en-int8");
    let mut embedder = FastEmbedder::load(&model(&dir)).unwrap();
    assert_eq!(embedder.info().dimension, 384);
    let query = "where are payments refunded";
    let instructed = format!("Represent this sentence for searching relevant passages: {query}");
    let vectors = embedder.embed(&[query.to_string(), instructed]).unwrap();
    let as_query = embedder.embed_query(query).unwrap();
    assert!(cosine(&as_query, &vectors[1]) > 0.9999);
    assert!(cosine(&as_query, &vectors[0]) < 0.9999);
}

#[test]
fn a_damaged_static_model_or_model_settings_file_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("potion");
    common::copy_tree(&installed("potion-base-8m"), &copy);
    let tensors = copy.join("model.safetensors");
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    let err = StaticEmbedder::load(&copy, &model(&copy)).err().unwrap();
    assert!(
        err.to_string()
            .contains("the embeddings tensor is cut short"),
        "{err}"
    );

    let onnx = tmp.path().join("bge");
    common::copy_tree(&installed("bge-small-en-int8"), &onnx);
    std::fs::write(onnx.join("embedding.json"), r#"{"pooling": "max"}"#).unwrap();
    let err = FastEmbedder::load(&model(&onnx)).err().unwrap();
    assert!(
        err.to_string().contains("embedding.json is not valid"),
        "{err}"
    );
}

#[test]
fn an_index_built_with_the_static_model_answers_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("corpus");
    build_corpus(&root);
    let dir = installed("potion-base-8m");
    let index_dir = tmp.path().join("index");
    let (index_arg, model_arg) = (index_dir.to_str().unwrap(), dir.to_str().unwrap());
    let out = codeq(
        &root,
        &[
            "index",
            ".",
            "--index-dir",
            index_arg,
            "--model-dir",
            model_arg,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, status) = codeq_json(&root, &["status", "--index-dir", index_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status["model"]["id"], "minishlab/potion-base-8M");
    assert_eq!(status["lanes"]["pending"], 0);
    // Queries load the model the index records; no --model-dir needed.
    let out = codeq(
        &root,
        &[
            "search",
            "give the money of a payment back",
            "--index-dir",
            index_arg,
            "-k",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("payments"), "{}", stdout(&out));
    // The default model would mix its vectors with the static model's: refused.
    let out = codeq(&root, &["index", ".", "--index-dir", index_arg]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("minishlab/potion-base-8M"),
        "{}",
        stderr(&out)
    );
}
