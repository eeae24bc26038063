//! A static embedding model (model2vec, e.g. potion-base-8M): one stored vector per
//! token, a text's vector is the mean of its tokens' vectors. No neural network runs, so
//! it embeds thousands of chunks per second on one core, at some cost in quality.

use std::path::Path;

use serde::Deserialize;

use super::{Embedder, ModelConfig, ModelInfo, model_id};
use crate::error::{Error, Result};

/// The tensor of token vectors in `model.safetensors`.
const EMBEDDINGS_TENSOR: &str = "embeddings";

/// The part of a model2vec `config.json` this reads.
#[derive(Debug, Deserialize)]
struct StaticConfig {
    model_type: String,
    #[serde(default = "normalize_by_default")]
    normalize: bool,
}

fn normalize_by_default() -> bool {
    true
}

/// One tensor's entry in a safetensors header.
#[derive(Debug, Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// A model2vec model loaded from a local folder (`model.safetensors`, `tokenizer.json`,
/// `config.json`).
pub struct StaticEmbedder {
    tokenizer: tokenizers::Tokenizer,
    /// Row-major `rows × dimension` token vectors.
    vectors: Vec<f32>,
    unknown_token: Option<u32>,
    normalize: bool,
    info: ModelInfo,
}

impl StaticEmbedder {
    /// True when `dir` holds a static model rather than an ONNX one.
    pub fn is_static_model(dir: &Path) -> bool {
        dir.join("model.safetensors").is_file() && !dir.join("model.onnx").is_file()
    }

    /// Loads the model in `dir`; `config.max_length` caps the tokens read per text.
    pub fn load(dir: &Path, config: &ModelConfig) -> Result<StaticEmbedder> {
        let problem = |detail: String| Error::ModelMissing {
            dir: dir.to_path_buf(),
            detail,
        };
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| problem(format!("cannot read {name}: {e}")))
        };
        let settings: StaticConfig = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| problem(format!("config.json is not a model2vec config: {e}")))?;
        if settings.model_type != "model2vec" {
            return Err(problem(format!(
                "config.json names model type {:?}; a static model is \"model2vec\"",
                settings.model_type
            )));
        }
        let tensors = read("model.safetensors")?;
        let file_sha256 = crate::hash::sha256_hex(&tensors);
        let (vectors, dimension) = token_vectors(&tensors).map_err(problem)?;
        let mut tokenizer = tokenizers::Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| problem(format!("tokenizer.json does not load: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| problem(format!("tokenizer.json does not load: {e}")))?;
        let rows = vectors.len() / dimension.max(1);
        if tokenizer.get_vocab_size(true) > rows {
            return Err(problem(format!(
                "the tokenizer knows {} tokens but the model has vectors for {rows}",
                tokenizer.get_vocab_size(true)
            )));
        }
        let unknown_token = tokenizer.token_to_id("[UNK]");
        Ok(StaticEmbedder {
            tokenizer,
            vectors,
            unknown_token,
            normalize: settings.normalize,
            info: ModelInfo {
                id: model_id(dir),
                file_sha256,
                dimension,
                max_length: config.max_length,
                dir: dir.canonicalize().ok(),
            },
        })
    }

    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let dimension = self.info.dimension;
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Embed(e.to_string()))?;
        let mut sum = vec![0f32; dimension];
        let mut count = 0usize;
        let tokens = encoding
            .get_ids()
            .iter()
            .filter(|&&id| Some(id) != self.unknown_token)
            .take(self.info.max_length);
        for &id in tokens {
            let row = &self.vectors[id as usize * dimension..(id as usize + 1) * dimension];
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            count += 1;
        }
        if count > 0 {
            sum.iter_mut().for_each(|s| *s /= count as f32);
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        if self.normalize && norm > 0.0 {
            sum.iter_mut().for_each(|s| *s /= norm);
        }
        Ok(sum)
    }
}

impl Embedder for StaticEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }
}

/// The `embeddings` tensor of a safetensors file as f32 rows, with the row length.
/// Format: an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the data.
fn token_vectors(file: &[u8]) -> std::result::Result<(Vec<f32>, usize), String> {
    let bad = |what: &str| format!("model.safetensors is not a safetensors file: {what}");
    let header_len = file
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("shorter than its header"))?;
    let header = file
        .get(8..8usize.saturating_add(header_len))
        .ok_or_else(|| bad("shorter than its header"))?;
    let mut tensors: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let entry = tensors
        .remove(EMBEDDINGS_TENSOR)
        .ok_or_else(|| bad("it has no \"embeddings\" tensor"))?;
    let entry: TensorEntry = serde_json::from_value(entry).map_err(|e| bad(&e.to_string()))?;
    let [rows, dimension] = entry.shape[..] else {
        return Err(bad("the embeddings tensor is not a matrix"));
    };
    if entry.dtype != "F32" {
        return Err(format!(
            "model.safetensors stores its vectors as {}; codeq reads F32",
            entry.dtype
        ));
    }
    let data_start = 8 + header_len;
    let (from, to) = entry.data_offsets;
    let bytes = file
        .get(data_start + from..data_start + to)
        .filter(|b| b.len() == rows * dimension * 4)
        .ok_or_else(|| bad("the embeddings tensor is cut short"))?;
    let vectors = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    Ok((vectors, dimension))
}
