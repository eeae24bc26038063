//! Named pipeline stages: each one a tracing span and a stopwatch.
//!
//! Indexing runs walk, chunk, embed, store and publish; a query runs analyze, bm25, embed,
//! vector, fuse, rerank, answer and llm. Each opens a `stage` span named by its `stage`
//! field, so `RUST_LOG=codeq=debug` (or any subscriber) sees every stage close with its
//! time, and the caller records the same duration in its report or trace.

use std::time::{Duration, Instant};

/// A running stage; [`Stage::finish`] closes its span and returns its wall time.
pub(crate) struct Stage {
    _span: tracing::span::EnteredSpan,
    started: Instant,
}

impl Stage {
    /// Starts stage `name` on the current thread.
    pub(crate) fn start(name: &'static str) -> Stage {
        Stage {
            _span: tracing::debug_span!("stage", stage = name).entered(),
            started: Instant::now(),
        }
    }

    /// Ends the stage: its wall time.
    pub(crate) fn finish(self) -> Duration {
        self.started.elapsed()
    }
}
