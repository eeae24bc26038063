//! The optional cross-encoder reranker (`[rerank]`): a model that reads the query and a
//! candidate chunk together and scores how well the chunk answers it, applied to the best
//! fused candidates of a query. Local files only, like the embedding model.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::embed::{ModelConfig, init_onnx_runtime, read_model_folder, resolve_ort_lib};
use crate::error::{Error, Result};

/// The cross-encoder reranker (`[rerank]`): off unless enabled; when on, the best
/// `candidates` fused results of every query are re-scored by the model and re-ordered.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankConfig {
    /// Re-score the best fused candidates with the cross-encoder.
    pub enabled: bool,
    /// Folder with the reranker's ONNX model and tokenizer files; default: the one
    /// `scripts/setup.sh` installs (ms-marco-MiniLM-L-12-v2, int8).
    pub dir: Option<PathBuf>,
    /// Fused candidates re-scored per query (the rest keep their order after them).
    pub candidates: usize,
    /// Tokens per (query, chunk) pair; longer chunks are truncated.
    pub max_length: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            enabled: false,
            dir: None,
            candidates: 20,
            max_length: 256,
        }
    }
}

/// Scores (query, text) pairs: higher means more relevant.
pub trait Reranker: Send {
    /// Which model this is (recorded in traces).
    fn id(&self) -> &str;
    /// How many of a query's best fused hits it re-scores.
    fn candidates(&self) -> usize;
    /// One score per text, in the texts' order.
    fn score(&mut self, query: &str, texts: &[String]) -> Result<Vec<f32>>;
}

/// Files a reranker folder must hold (`config.json` is optional).
const RERANKER_FILES: [&str; 4] = [
    "model.onnx",
    "tokenizer.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// A BERT-style cross-encoder (one relevance logit per pair) run by fastembed.
pub struct CrossEncoder {
    model: fastembed::TextRerank,
    id: String,
    candidates: usize,
}

impl CrossEncoder {
    /// Loads ONNX Runtime (as `model` configures it) and the reranker `config` names.
    pub fn load(config: &RerankConfig, model: &ModelConfig) -> Result<CrossEncoder> {
        init_onnx_runtime(&resolve_ort_lib(model))?;
        let dir = resolve_reranker_dir(config);
        let (onnx, tokenizer, id) =
            read_model_folder(&dir, &RERANKER_FILES).map_err(|e| match e {
                Error::ModelMissing { dir, detail } => Error::RerankerMissing { dir, detail },
                other => other,
            })?;
        let user_model = fastembed::UserDefinedRerankingModel::new(onnx, tokenizer);
        let mut options =
            fastembed::RerankInitOptionsUserDefined::new().with_max_length(config.max_length);
        if let Some(threads) = model.threads {
            options = options.with_intra_threads(threads);
        }
        let model =
            fastembed::TextRerank::try_new_from_user_defined(user_model, options).map_err(|e| {
                Error::RerankerMissing {
                    dir: dir.clone(),
                    detail: format!("the model does not load: {e}"),
                }
            })?;
        Ok(CrossEncoder {
            model,
            id,
            candidates: config.candidates,
        })
    }
}

impl Reranker for CrossEncoder {
    fn id(&self) -> &str {
        &self.id
    }

    fn candidates(&self) -> usize {
        self.candidates
    }

    /// Pairs go to the model one at a time: on CPU a batch pads every pair to the longest
    /// (the embedding model measured fastest at batch 1 for the same reason).
    fn score(&mut self, query: &str, texts: &[String]) -> Result<Vec<f32>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let documents: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ranked = self
            .model
            .rerank(query, documents, false, Some(1))
            .map_err(|e| Error::Embed(format!("the reranker failed: {e}")))?;
        let mut scores = vec![f32::NEG_INFINITY; texts.len()];
        for result in ranked {
            if let Some(slot) = scores.get_mut(result.index) {
                *slot = result.score;
            }
        }
        Ok(scores)
    }
}

/// Loads the reranker when `[rerank] enabled` says so.
pub fn load_if_enabled(
    config: &RerankConfig,
    model: &ModelConfig,
) -> Result<Option<Box<dyn Reranker>>> {
    match config.enabled {
        true => Ok(Some(Box::new(CrossEncoder::load(config, model)?))),
        false => Ok(None),
    }
}

/// A loaded reranker as the query functions take it.
pub fn borrowed(reranker: &mut Option<Box<dyn Reranker>>) -> Option<&mut dyn Reranker> {
    reranker.as_mut().map(|r| &mut **r as &mut dyn Reranker)
}

/// The reranker folder: `[rerank] dir`, else the one `scripts/setup.sh` installs.
pub fn resolve_reranker_dir(config: &RerankConfig) -> PathBuf {
    config
        .dir
        .clone()
        .unwrap_or_else(crate::paths::default_reranker_dir)
}
