//! Vectors after BM25: chunks published without a vector are embedded in rounds, each
//! round published as a new generation, so queries see more of the vector lane as it goes.

use super::*;

/// What computing the pending vectors did.
#[derive(Debug, Default)]
pub(super) struct Embedded {
    pub(super) vectors: usize,
    pub(super) time: Duration,
}

impl Embedded {
    /// Vectors per second of model time so far.
    pub(super) fn model_rate(&self) -> f64 {
        self.vectors as f64 / self.time.as_secs_f64().max(1e-9)
    }
}

/// A round of pending vectors lasts at least this many times as long as the previous
/// publish took: a publish costs more as the table grows (index upkeep), and rounds of a
/// fixed size ended up spending as much time publishing as embedding.
pub(super) const ROUND_TO_PUBLISH: f64 = 9.0;

/// The largest round, in multiples of `[index] embed_round`: it bounds how long queries
/// wait for new vectors and what a stopped run loses.
pub(super) const MAX_ROUND_FACTOR: usize = 8;

/// Vectors of the next round: at least `min_round`, and enough that embedding them at
/// `model_rate` (vectors per second of model time) takes [`ROUND_TO_PUBLISH`] times the
/// last publish, at most [`MAX_ROUND_FACTOR`] × `min_round`.
pub(super) fn next_round_size(min_round: usize, last_publish: Duration, model_rate: f64) -> usize {
    let wanted = (last_publish.as_secs_f64() * ROUND_TO_PUBLISH * model_rate).ceil();
    let wanted = if wanted.is_finite() {
        wanted as usize
    } else {
        0
    };
    wanted.clamp(min_round, min_round.saturating_mul(MAX_ROUND_FACTOR))
}

/// Computes the vectors of the chunks waiting in the current generation, most useful
/// first, publishing a generation every round — at least `[index] embed_round` vectors,
/// more as publishing grows dearer (see [`next_round_size`]) — so that queries gain them
/// as they come and a stopped run loses at most one round.
pub(super) fn embed_pending(
    dir: &IndexDir,
    lock: &crate::store::IndexLock,
    options: &IndexOptions,
    embedder: &mut dyn Embedder,
    progress: &dyn IndexProgress,
) -> Result<Embedded> {
    let model = embedder.info().clone();
    let total = dir.reader()?.manifest().totals.pending;
    let mut out = Embedded::default();
    let min_round = options.settings.embed_round;
    let mut round_size = min_round;
    loop {
        let reader = dir.reader()?;
        let waiting = reader.manifest().totals.pending;
        if waiting == 0 {
            return Ok(out);
        }
        let round = reader.pending_batch(round_size)?;
        if round.is_empty() {
            return Err(Error::CorruptIndex {
                dir: dir.path().to_path_buf(),
                detail: format!(
                    "the manifest counts {waiting} chunks waiting for vectors, the pending table none"
                ),
            });
        }
        // Identical embedding inputs (copied files) are embedded once per round.
        let mut computed: HashMap<String, Vec<f32>> = HashMap::new();
        let mut rows = Vec::with_capacity(round.len());
        for call in round.chunks(options.settings.write_batch) {
            let missing: Vec<&(Chunk, String)> = call
                .iter()
                .filter(|(_, hash)| !computed.contains_key(hash))
                .collect();
            let texts: Vec<String> = missing.iter().map(|(c, _)| c.embedding_text()).collect();
            let fresh = embed_timed(embedder, &texts, &mut out.time)?;
            out.vectors += fresh.len();
            for ((_, hash), vector) in missing.into_iter().zip(fresh) {
                computed.insert(hash.clone(), vector);
            }
            rows.extend(call.iter().cloned());
            progress.embedding(total - waiting + rows.len(), total, out.model_rate());
        }
        let publish_stage = Stage::start("publish");
        let mut writer = dir.begin_generation(
            lock,
            &model,
            GenerationBase {
                copy_of: Some(&reader),
                reuse: None,
            },
        )?;
        let ids: Vec<String> = rows.iter().map(|(c, _)| c.chunk_id.clone()).collect();
        writer.remove_pending(&ids)?;
        for (chunk, hash) in rows {
            let vector = computed
                .get(&hash)
                .cloned()
                .ok_or_else(|| Error::Embed("a chunk has no vector".into()))?;
            writer.add_vector(chunk, hash, vector)?;
        }
        let mut manifest = reader.manifest().clone();
        manifest.generation = writer.name().to_string();
        manifest.created_unix = unix_nanos() as u64 / 1_000_000_000;
        manifest.embed_rate = out.model_rate();
        let files = dir.file_table(reader.generation()).unwrap_or_default();
        let finished = writer.finish(manifest, files, options.settings.ann_policy())?;
        dir.publish(lock, finished)?;
        let publish_time = publish_stage.finish();
        round_size = next_round_size(min_round, publish_time, out.model_rate());
        tracing::debug!(
            vectors = out.vectors,
            publish_ms = publish_time.as_millis() as u64,
            next_round = round_size,
            "published a round of pending vectors"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_grow_with_the_cost_of_publishing_within_their_bounds() {
        // A cheap publish keeps the configured round.
        assert_eq!(
            next_round_size(2048, Duration::from_millis(500), 80.0),
            2048
        );
        // A 10 s publish at 80 vectors/s: 9 × 10 s of embedding = 7,200 vectors.
        assert_eq!(next_round_size(2048, Duration::from_secs(10), 80.0), 7200);
        // A very slow publish is capped at 8 rounds' worth.
        assert_eq!(next_round_size(2048, Duration::from_secs(600), 80.0), 16384);
        // No rate measured yet (a round of cached vectors): the configured round.
        assert_eq!(next_round_size(2048, Duration::from_secs(10), 0.0), 2048);
        assert_eq!(
            next_round_size(2048, Duration::from_secs(10), f64::NAN),
            2048
        );
    }
}
