//! `codeq bench embed`: the embedding model's throughput on real chunk texts under
//! different batch sizes and token limits (issue 9: faster embedding at measured quality).
//! Texts are handed to the model as the indexer hands them: `call_size` per call, each
//! call sorted by length inside the embedder.

use std::time::Instant;

use serde::Serialize;

use crate::embed::ModelConfig;
use crate::embed::load_embedder;
use crate::error::Result;

/// One configuration's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedFigures {
    /// Texts per ONNX Runtime call.
    pub batch_size: usize,
    /// Token limit per text.
    pub max_length: usize,
    /// Texts per call to the embedder.
    pub call_size: usize,
    /// Chunks embedded per second.
    pub chunks_per_second: f64,
    /// Peak resident memory of the process after this configuration, bytes.
    pub peak_rss_bytes: u64,
}

/// Embeds `texts` once per (batch size, token limit) pair and measures each.
pub fn embed_bench(
    texts: &[String],
    model: &ModelConfig,
    batch_sizes: &[usize],
    max_lengths: &[usize],
    call_size: usize,
) -> Result<Vec<EmbedFigures>> {
    let mut out = Vec::new();
    for &max_length in max_lengths {
        for &batch_size in batch_sizes {
            let config = ModelConfig {
                batch_size,
                max_length,
                ..model.clone()
            };
            let mut embedder = load_embedder(&config)?;
            let started = Instant::now();
            for call in texts.chunks(call_size.max(1)) {
                embedder.embed(call)?;
            }
            let secs = started.elapsed().as_secs_f64();
            out.push(EmbedFigures {
                batch_size,
                max_length,
                call_size,
                chunks_per_second: texts.len() as f64 / secs.max(f64::EPSILON),
                peak_rss_bytes: super::peak_rss_bytes(),
            });
        }
    }
    Ok(out)
}
