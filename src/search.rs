//! Hybrid retrieval: BM25 over code tokens and exact vector search, both restricted by the
//! same [`ChunkFilter`] before ranking, fused with reciprocal rank fusion.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chunk::Chunk;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::store::{ChunkFilter, IndexReader, code_tokens};

/// The RRF constant: scores are Σ 1 / (RRF_K + rank).
pub const RRF_K: f64 = 60.0;

/// Words that carry no signal in a question about code.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "of", "on", "or", "the", "that", "this", "to", "what", "when", "where",
    "which", "who", "why", "with", "we", "you", "get", "gets",
];

/// Which retrievers a query uses. Production queries use both; the eval also measures
/// each lane alone so that a dead lane cannot hide behind the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lanes {
    /// BM25 and vectors, fused.
    #[default]
    Hybrid,
    /// BM25 only.
    Bm25,
    /// Vectors only.
    Vector,
}

/// How many results and from where.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Results to return.
    pub k: usize,
    /// Candidates each lane contributes before fusion.
    pub candidates: usize,
    /// Which chunks the query may see.
    pub filter: ChunkFilter,
    /// Which retrievers run.
    pub lanes: Lanes,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            candidates: 50,
            filter: ChunkFilter::default(),
            lanes: Lanes::Hybrid,
        }
    }
}

/// One fused result, with each lane's contribution.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// The chunk.
    pub chunk: Chunk,
    /// Fused RRF score.
    pub score: f64,
    /// 1-based rank in the BM25 lane.
    pub bm25_rank: Option<usize>,
    /// BM25 score.
    pub bm25_score: Option<f32>,
    /// 1-based rank in the vector lane.
    pub vector_rank: Option<usize>,
    /// Cosine distance in the vector lane.
    pub vector_distance: Option<f32>,
}

/// Time per retrieval stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchTimings {
    /// Embedding the query.
    pub embed: Duration,
    /// BM25 lane.
    pub bm25: Duration,
    /// Vector lane.
    pub vector: Duration,
    /// Fusion and loading BM25-only chunks.
    pub fuse: Duration,
}

/// Results of one query.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// Ranked hits, best first.
    pub hits: Vec<SearchHit>,
    /// Query terms the BM25 lane used.
    pub terms: Vec<String>,
    /// Stage timings.
    pub timings: SearchTimings,
}

/// What a query looks like, which decides how much each lane counts in the fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// Names code: a single word, or a token with `_`, `::`, `.` or an inner capital.
    Identifier,
    /// A description in words.
    NaturalLanguage,
}

impl QueryKind {
    /// Classifies a query.
    pub fn of(query: &str) -> QueryKind {
        let words: Vec<&str> = query.split_whitespace().collect();
        let code_like = |w: &&str| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
            w.contains('_')
                || w.contains("::")
                || w.contains('.') && !w.ends_with('.')
                || w.chars().skip(1).any(char::is_uppercase) && w.chars().any(char::is_lowercase)
        };
        if words.len() <= 1 || words.iter().any(code_like) {
            QueryKind::Identifier
        } else {
            QueryKind::NaturalLanguage
        }
    }

    /// RRF weights (bm25, vector): identifiers lean lexical, descriptions lean on vectors.
    pub fn lane_weights(self) -> (f64, f64) {
        match self {
            QueryKind::Identifier => (1.0, 0.75),
            QueryKind::NaturalLanguage => (0.75, 1.0),
        }
    }
}

/// Lexical terms of a query: code tokens without stop words, deduplicated.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for (term, _) in code_tokens(query) {
        if !STOP_WORDS.contains(&term.as_str()) && !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// Runs a hybrid query. Refuses when the loaded model is not the index's model.
pub fn search(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    query: &str,
    options: &SearchOptions,
) -> Result<SearchResults> {
    let built_with = &reader.manifest().model;
    if !built_with.compatible_with(embedder.info()) {
        return Err(Error::ModelMismatch {
            index_model: built_with.id.clone(),
            index_dim: built_with.dimension,
            loaded_model: embedder.info().id.clone(),
            loaded_dim: embedder.info().dimension,
        });
    }
    let mut timings = SearchTimings::default();
    let terms = query_terms(query);
    let (bm25_weight, vector_weight) = QueryKind::of(query).lane_weights();

    let mut bm25 = Vec::new();
    if options.lanes != Lanes::Vector {
        let started = Instant::now();
        bm25 = reader.bm25(&terms, &options.filter, options.candidates)?;
        timings.bm25 = started.elapsed();
    }

    let mut vector_hits = Vec::new();
    if options.lanes != Lanes::Bm25 && !query.trim().is_empty() {
        let started = Instant::now();
        let vector = embedder
            .embed(&[query.to_string()])?
            .pop()
            .ok_or_else(|| Error::Embed("the model returned no vector".into()))?;
        timings.embed = started.elapsed();
        let started = Instant::now();
        vector_hits = reader.nearest(&vector, &options.filter, options.candidates)?;
        timings.vector = started.elapsed();
    }

    let started = Instant::now();
    let mut fused: HashMap<String, SearchHit> = HashMap::new();
    for (rank0, (chunk, distance)) in vector_hits.into_iter().enumerate() {
        let rank = rank0 + 1;
        fused.insert(
            chunk.chunk_id.clone(),
            SearchHit {
                chunk,
                score: vector_weight / (RRF_K + rank as f64),
                bm25_rank: None,
                bm25_score: None,
                vector_rank: Some(rank),
                vector_distance: Some(distance),
            },
        );
    }
    let lexical_only: Vec<String> = bm25
        .iter()
        .filter(|h| !fused.contains_key(&h.chunk_id))
        .map(|h| h.chunk_id.clone())
        .collect();
    let mut loaded: HashMap<String, Chunk> = reader
        .chunks_by_id(&lexical_only, &options.filter)?
        .into_iter()
        .map(|c| (c.chunk_id.clone(), c))
        .collect();
    for (rank0, hit) in bm25.iter().enumerate() {
        let rank = rank0 + 1;
        let contribution = bm25_weight / (RRF_K + rank as f64);
        if let Some(existing) = fused.get_mut(&hit.chunk_id) {
            existing.score += contribution;
            existing.bm25_rank = Some(rank);
            existing.bm25_score = Some(hit.score);
        } else if let Some(chunk) = loaded.remove(&hit.chunk_id) {
            fused.insert(
                hit.chunk_id.clone(),
                SearchHit {
                    chunk,
                    score: contribution,
                    bm25_rank: Some(rank),
                    bm25_score: Some(hit.score),
                    vector_rank: None,
                    vector_distance: None,
                },
            );
        }
    }
    let mut hits: Vec<SearchHit> = fused.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.chunk.chunk_id.cmp(&b.chunk.chunk_id))
    });
    hits.truncate(options.k);
    timings.fuse = started.elapsed();
    Ok(SearchResults {
        hits,
        terms,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms_drop_stop_words_and_split_identifiers() {
        assert_eq!(
            query_terms("how does the parseConfig function work"),
            ["parseconfig", "parse", "config", "function", "work"]
        );
        assert!(query_terms("  ").is_empty());
    }

    #[test]
    fn queries_are_classified_as_identifiers_or_descriptions() {
        for q in [
            "refund_payment",
            "IndexDir::publish",
            "parseConfig",
            "Session.request",
            "FraudScorer",
            "where is parse_config called",
        ] {
            assert_eq!(QueryKind::of(q), QueryKind::Identifier, "{q}");
        }
        for q in [
            "how risky is a card transaction",
            "Split the query. Then rank it.",
        ] {
            assert_eq!(QueryKind::of(q), QueryKind::NaturalLanguage, "{q}");
        }
    }
}
