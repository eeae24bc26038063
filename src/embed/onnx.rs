//! A sentence-embedding transformer in ONNX form, run by fastembed.

use std::path::Path;

use serde::Deserialize;

use super::{
    Embedder, ModelConfig, ModelInfo, init_onnx_runtime, read_model_folder, resolve_model_dir,
    resolve_ort_lib, the_only_vector,
};
use crate::error::{Error, Result};

/// Files a model folder must hold.
const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// How a model folder says to use its model, in an optional `embedding.json`; without the
/// file, MiniLM's way: mean pooling and queries as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct EmbeddingUse {
    /// `mean` (MiniLM) or `cls` (bge).
    pooling: Pooling,
    /// Put before every query, not before documents (bge's retrieval instruction).
    query_prefix: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Pooling {
    #[default]
    Mean,
    Cls,
}

impl EmbeddingUse {
    /// Reads `embedding.json` from `dir`; its absence means the defaults.
    fn read(dir: &Path) -> Result<EmbeddingUse> {
        let file = dir.join("embedding.json");
        if !file.is_file() {
            return Ok(EmbeddingUse::default());
        }
        let problem = |detail: String| Error::ModelMissing {
            dir: dir.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| problem(format!("cannot read embedding.json: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            problem(format!(
                "embedding.json is not valid ({e}); it may hold \"pooling\" (\"mean\" or \"cls\") and \"query_prefix\""
            ))
        })
    }
}

/// A sentence-embedding transformer (MiniLM, bge) run by fastembed: pooled, L2-normalised.
pub struct FastEmbedder {
    model: fastembed::TextEmbedding,
    info: ModelInfo,
    batch_size: usize,
    query_prefix: String,
}

impl FastEmbedder {
    /// Loads ONNX Runtime and the model named by `config` (or the defaults setup installs).
    pub fn load(config: &ModelConfig) -> Result<FastEmbedder> {
        let ort_lib = resolve_ort_lib(config);
        init_onnx_runtime(&ort_lib)?;
        let dir = resolve_model_dir(config);
        let (onnx, tokenizer, id) = read_model_folder(&dir, &MODEL_FILES)?;
        let usage = EmbeddingUse::read(&dir)?;
        let file_sha256 = crate::hash::sha256_hex(&onnx);
        let pooling = match usage.pooling {
            Pooling::Mean => fastembed::Pooling::Mean,
            Pooling::Cls => fastembed::Pooling::Cls,
        };
        let user_model =
            fastembed::UserDefinedEmbeddingModel::new(onnx, tokenizer).with_pooling(pooling);
        let mut options =
            fastembed::InitOptionsUserDefined::new().with_max_length(config.max_length);
        if let Some(threads) = config.threads {
            options = options.with_intra_threads(threads);
        }
        let mut model = fastembed::TextEmbedding::try_new_from_user_defined(user_model, options)
            .map_err(|e| Error::ModelMissing {
                dir: dir.clone(),
                detail: format!("the model does not load: {e}"),
            })?;
        let probe = model
            .embed(["dimension probe"], Some(1))
            .map_err(|e| Error::ModelMissing {
                dir: dir.clone(),
                detail: format!("the model does not run: {e}"),
            })?;
        let dimension = probe.first().map_or(0, Vec::len);
        Ok(FastEmbedder {
            model,
            info: ModelInfo {
                id,
                file_sha256,
                dimension,
                max_length: config.max_length,
                dir: dir.canonicalize().ok(),
            },
            batch_size: config.batch_size,
            query_prefix: usage.query_prefix,
        })
    }
}

impl Embedder for FastEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Texts go to the model shortest first, so each batch of `batch_size` pads its texts
    /// to a length close to their own; the vectors come back in the callers' order.
    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let by_length: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
        let vectors = self
            .model
            .embed(by_length, Some(self.batch_size))
            .map_err(|e| Error::Embed(e.to_string()))?;
        let mut out = vec![Vec::new(); texts.len()];
        for (slot, vector) in order.into_iter().zip(vectors) {
            out[slot] = vector;
        }
        Ok(out)
    }

    fn embed_query(&mut self, query: &str) -> Result<Vec<f32>> {
        let text = format!("{}{query}", self.query_prefix);
        the_only_vector(self.embed(&[text])?)
    }
}
