//! Hybrid retrieval: BM25 over code tokens and exact vector search, both restricted by the
//! same [`ChunkFilter`] before ranking, fused with weighted reciprocal rank fusion, then
//! adjusted by what the query asks for (definitions, file names, tests), deduplicated and
//! re-scored by file (support, saturation and, for descriptions, how often the code
//! mentions a file's name: [`files`]); with `[rerank]` on, the best
//! hits are then re-scored by a cross-encoder.
//!
//! Every adjustment is recorded on the hit ([`SearchHit::boosts`]) so `--json` output and
//! traces show why a chunk ranks where it does.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chunk::Chunk;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::rerank::Reranker;
use crate::stage::Stage;

mod files;
mod query;
mod signals;

use crate::store::{ChunkFilter, IndexReader, code_tokens};
use query::{DEFINES_NAMED_SYMBOL, NamedDefinition, Naming, SPELLED_EXACTLY};
pub use query::{QueryAnalysis, QueryKind, query_terms};
pub use signals::embedding_priority;
use signals::{
    VersionFolders, defined_symbols, file_stem, is_example_or_docs, is_legacy, is_prose,
    is_reexport_module, is_test_code, is_vendored, last_segment,
};

/// The RRF constant: scores are Σ weight / (RRF_K + rank). Lower than the usual 60, which
/// was chosen for fusing many runs: with two lanes of 50 candidates each and
/// multiplicative priors applied after fusion, a 60 made a lane's first hit worth barely
/// more than its tenth (1/61 against 1/70), so the priors decided most orderings; at 20
/// a lane's top ranks count (measured on the whole public suite, docs/EVAL.md).
pub const RRF_K: f64 = 20.0;

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

/// Candidate pools grow by this factor when results are restricted to one language.
pub const LANGUAGE_POOL_FACTOR: usize = 4;

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
    /// Only chunks of this language (`rust`, `python`, `markdown`, …): applied to the fused
    /// candidates before they are ranked; both lanes' pools grow by
    /// [`LANGUAGE_POOL_FACTOR`] so that a minority language still fills the results.
    pub language: Option<String>,
    /// At most one hit per file, its best chunk: the file-level view of the ranking.
    pub per_file: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            candidates: 50,
            filter: ChunkFilter::default(),
            lanes: Lanes::Hybrid,
            language: None,
            per_file: false,
        }
    }
}

/// What a user narrowed a query to: result count, repositories, language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryScope {
    /// Results wanted.
    pub k: usize,
    /// Only these repositories (empty: every visible one).
    pub repos: Vec<String>,
    /// Only this language.
    pub language: Option<String>,
    /// One result per file, its best chunk (`codeq search --files`).
    pub per_file: bool,
}

impl QueryScope {
    /// Search options within `allowed` (the principal's access filter) over an index of
    /// the repositories `indexed`. A repository the filter does not admit is refused in the
    /// same words as one the index does not have.
    pub fn options(&self, allowed: &ChunkFilter, indexed: &[String]) -> Result<SearchOptions> {
        if let Some(hidden) = self
            .repos
            .iter()
            .find(|r| !allowed.admits_repo(r) || !indexed.contains(r))
        {
            return Err(Error::RepoNotVisible(hidden.clone()));
        }
        let filter = if self.repos.is_empty() {
            allowed.clone()
        } else {
            allowed.narrowed_to(&self.repos)
        };
        Ok(SearchOptions {
            k: self.k,
            filter,
            language: self.language.as_ref().map(|l| l.to_lowercase()),
            per_file: self.per_file,
            ..SearchOptions::default()
        })
    }
}

/// A multiplicative adjustment of a fused score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Boost {
    /// What triggered it.
    pub reason: &'static str,
    /// The factor applied to the score.
    pub factor: f64,
}

/// Factor for the chunk that defines a symbol the query names.
pub const DEFINITION_BOOST: f64 = 1.6;
/// Further factor for a defining chunk whose name has the query's exact case (`Session`
/// the class over `session` the function).
pub const EXACT_SPELLING_BOOST: f64 = 1.25;
/// Factor for a file whose name the query mentions.
pub const FILE_NAME_BOOST: f64 = 1.15;
/// Weight of the share of a description's words that the file's name holds: the factor is
/// `1 + weight × share` ("store creation" lifts `createStore.ts`).
pub const PATH_WORDS_WEIGHT: f64 = 0.25;
/// Factor for tests, fixtures and benchmarks when the query does not ask for them.
pub const TEST_PENALTY: f64 = 0.5;
/// Factor for vendored or generated code when the query does not ask for it.
pub const VENDORED_PENALTY: f64 = 0.6;
/// Factor for examples, demos and documentation sources when the query does not ask for
/// them.
pub const EXAMPLE_PENALTY: f64 = 0.8;
/// Factor for prose documents (Markdown, reStructuredText, plain text) when the query does
/// not ask for documentation: a code search answers with code first.
pub const PROSE_PENALTY: f64 = 0.8;
/// Factor for legacy or compatibility code, and for an older version folder beside a
/// newer one, when the query does not ask for old code.
pub const LEGACY_PENALTY: f64 = 0.7;
/// Factor for the module part of a package's index file (`__init__.py`, `mod.rs`,
/// `index.ts`) when the query names no symbol.
pub const REEXPORT_PENALTY: f64 = 0.8;

/// One fused result, with each lane's contribution.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// The chunk.
    pub chunk: Chunk,
    /// Final score: the fused score times every boost.
    pub score: f64,
    /// Weighted RRF score before boosts.
    pub fused_score: f64,
    /// Adjustments applied after fusion.
    pub boosts: Vec<Boost>,
    /// 1-based rank in the BM25 lane.
    pub bm25_rank: Option<usize>,
    /// BM25 score.
    pub bm25_score: Option<f32>,
    /// 1-based rank in the vector lane.
    pub vector_rank: Option<usize>,
    /// Cosine distance in the vector lane.
    pub vector_distance: Option<f32>,
    /// The cross-encoder's score, when the reranker re-scored this hit (higher is better;
    /// re-scored hits are ordered by it).
    pub rerank_score: Option<f32>,
}

/// Time per retrieval stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchTimings {
    /// Query analysis: terms, query kind, lane weights.
    pub analyze: Duration,
    /// Embedding the query.
    pub embed: Duration,
    /// BM25 lane.
    pub bm25: Duration,
    /// Vector lane.
    pub vector: Duration,
    /// Fusion, boosts and overlap removal.
    pub fuse: Duration,
    /// The cross-encoder reranker (zero when off).
    pub rerank: Duration,
    /// The whole search, wall clock.
    pub total: Duration,
}

/// Results of one query.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// Ranked hits, best first.
    pub hits: Vec<SearchHit>,
    /// Query terms the BM25 lane used.
    pub terms: Vec<String>,
    /// How the query was read.
    pub analysis: QueryAnalysis,
    /// Lower-ranked chunks dropped because they overlap a better one in the same file.
    pub overlaps_removed: usize,
    /// Share of the chunks the query may see that the vector lane can find, while
    /// embedding runs behind the lexical index; `None` when every chunk has its vector.
    pub vector_coverage: Option<f64>,
    /// Stage timings.
    pub timings: SearchTimings,
    /// Every fused candidate of both lanes, ranked, before overlap removal and the cut to
    /// `k` (what traces record).
    pub candidates: Vec<SearchHit>,
}

/// Runs a hybrid query, re-scoring the best fused hits with `reranker` when one is given.
/// Refuses when the loaded model is not the index's model.
pub fn search(
    reader: &IndexReader,
    embedder: &mut dyn Embedder,
    reranker: Option<&mut dyn Reranker>,
    query: &str,
    options: &SearchOptions,
) -> Result<SearchResults> {
    let built_with = &reader.manifest().model;
    if !built_with.compatible_with(embedder.info()) {
        return Err(built_with.refusal(embedder.info()));
    }
    let started = Instant::now();
    let mut timings = SearchTimings::default();
    let stage = Stage::start("analyze");
    let terms = query_terms(query);
    let analysis = QueryAnalysis::of(query);
    timings.analyze = stage.finish();
    let (bm25_weight, vector_weight) = (analysis.bm25_weight, analysis.vector_weight);
    let candidates = match options.language {
        Some(_) => options.candidates.saturating_mul(LANGUAGE_POOL_FACTOR),
        None => options.candidates,
    };

    let mut bm25 = Vec::new();
    if options.lanes != Lanes::Vector {
        let stage = Stage::start("bm25");
        let words = analysis.prose_words(&terms);
        bm25 = reader.bm25_with_word_forms(&terms, &words, &options.filter, candidates)?;
        timings.bm25 = stage.finish();
    }

    let mut vector_hits = Vec::new();
    if options.lanes != Lanes::Bm25 && !query.trim().is_empty() {
        let stage = Stage::start("embed");
        let vector = embedder.embed_query(query)?;
        timings.embed = stage.finish();
        let stage = Stage::start("vector");
        vector_hits = reader.nearest(&vector, &options.filter, candidates)?;
        timings.vector = stage.finish();
    }

    let stage = Stage::start("fuse");
    let mut fused: HashMap<String, SearchHit> = HashMap::new();
    for (rank0, (chunk, distance)) in vector_hits.into_iter().enumerate() {
        let rank = rank0 + 1;
        fused.insert(
            chunk.chunk_id.clone(),
            SearchHit {
                chunk,
                score: 0.0,
                fused_score: vector_weight / (RRF_K + rank as f64),
                boosts: Vec::new(),
                bm25_rank: None,
                bm25_score: None,
                vector_rank: Some(rank),
                vector_distance: Some(distance),
                rerank_score: None,
            },
        );
    }
    let bm25_candidates = bm25.len();
    for (rank0, hit) in bm25.into_iter().enumerate() {
        let rank = rank0 + 1;
        let contribution = bm25_weight / (RRF_K + rank as f64);
        if let Some(existing) = fused.get_mut(&hit.chunk.chunk_id) {
            existing.fused_score += contribution;
            existing.bm25_rank = Some(rank);
            existing.bm25_score = Some(hit.score);
        } else {
            fused.insert(
                hit.chunk.chunk_id.clone(),
                SearchHit {
                    chunk: hit.chunk,
                    score: 0.0,
                    fused_score: contribution,
                    boosts: Vec::new(),
                    bm25_rank: Some(rank),
                    bm25_score: Some(hit.score),
                    vector_rank: None,
                    vector_distance: None,
                    rerank_score: None,
                },
            );
        }
    }
    let mut candidates: Vec<SearchHit> = fused
        .into_values()
        .filter(|h| {
            options
                .language
                .as_ref()
                .is_none_or(|l| h.chunk.language == *l)
        })
        .collect();
    let versions = VersionFolders::of(
        candidates
            .iter()
            .map(|h| (h.chunk.repo.as_str(), h.chunk.path.as_str())),
    );
    for hit in &mut candidates {
        hit.boosts = analysis.boosts_for(&hit.chunk);
        if !analysis.asks_for_legacy && versions.superseded(&hit.chunk.repo, &hit.chunk.path) {
            hit.boosts.push(Boost {
                reason: "an older version folder beside a newer one",
                factor: LEGACY_PENALTY,
            });
        }
    }
    if analysis.kind == QueryKind::NaturalLanguage {
        files::lift_mentioned_files(reader, &options.filter, &mut candidates)?;
    }
    prefer_definitions_outside_tests(&analysis, &mut candidates);
    prefer_the_exact_case(&analysis, &mut candidates);
    keep_definition_boost_on_headers(&analysis, &mut candidates);
    for hit in &mut candidates {
        hit.score = hit.boosts.iter().fold(hit.fused_score, |s, b| s * b.factor);
    }
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.chunk.chunk_id.cmp(&b.chunk.chunk_id))
    });
    let kept = without_overlaps(&candidates);
    let overlaps_removed = candidates.len() - kept.len();
    let mut ranked: Vec<SearchHit> = kept.into_iter().cloned().collect();
    files::rank_by_file(&mut ranked, options.k);
    if options.per_file {
        ranked = files::best_per_file(ranked);
    }
    let reranked = reranker.as_ref().map_or(0, |r| r.candidates());
    let mut hits: Vec<SearchHit> = ranked.into_iter().take(options.k.max(reranked)).collect();
    timings.fuse = stage.finish();
    if let Some(reranker) = reranker {
        let stage = Stage::start("rerank");
        let best = reranked.min(hits.len());
        rerank(reranker, query, &mut hits[..best])?;
        let scores: HashMap<&str, f32> = hits
            .iter()
            .filter_map(|h| Some((h.chunk.chunk_id.as_str(), h.rerank_score?)))
            .collect();
        for candidate in &mut candidates {
            candidate.rerank_score = scores.get(candidate.chunk.chunk_id.as_str()).copied();
        }
        timings.rerank = stage.finish();
    }
    hits.truncate(options.k);
    tracing::debug!(
        query,
        kind = ?analysis.kind,
        bm25_candidates,
        hits = hits.len(),
        ?timings,
        "search"
    );
    if hits.is_empty()
        && let Some(language) = &options.language
    {
        let visible = reader.languages(&options.filter)?;
        if !visible.iter().any(|(l, _)| l == language) {
            return Err(Error::LanguageNotVisible {
                language: language.clone(),
                visible: visible.into_iter().map(|(l, _)| l).collect(),
            });
        }
    }
    // Pending work is reported only where the principal can see it.
    let vector_coverage = match reader.manifest().totals.pending {
        0 => None,
        _ => Some(reader.lane_counts(&options.filter)?)
            .filter(|counts| counts.pending > 0)
            .map(|counts| counts.vector_coverage()),
    };
    timings.total = started.elapsed();
    Ok(SearchResults {
        hits,
        terms,
        analysis,
        overlaps_removed,
        vector_coverage,
        timings,
        candidates,
    })
}

/// Re-scores `hits` with the cross-encoder and orders them by its score (ties keep the
/// fused order). The reranker sees only what the lanes returned, all of it admitted by the
/// query's access filter.
fn rerank(reranker: &mut dyn Reranker, query: &str, hits: &mut [SearchHit]) -> Result<()> {
    let texts: Vec<String> = hits.iter().map(|h| h.chunk.embedding_text()).collect();
    let scores = reranker.score(query, &texts)?;
    for (hit, score) in hits.iter_mut().zip(scores) {
        hit.rerank_score = Some(score);
    }
    hits.sort_by(|a, b| {
        let score = |h: &SearchHit| h.rerank_score.unwrap_or(f32::NEG_INFINITY);
        score(b).total_cmp(&score(a))
    });
    Ok(())
}

/// A long definition is several chunks with its symbol (its header, the code between its
/// members); the named symbol's definition is where it starts. Of the candidates with the
/// same symbol in one file, the first carries the definition boost, scored as the best
/// match among them ("the best match among its definition's pieces"), and the others lose
/// it, so `end` or a line of attributes between two methods does not stand in for the
/// class and a weak header does not hide a file whose class matched well.
fn keep_definition_boost_on_headers(analysis: &QueryAnalysis, candidates: &mut [SearchHit]) {
    let defines = |h: &SearchHit| h.boosts.iter().any(|b| b.reason == DEFINES_NAMED_SYMBOL);
    // (repo, path, named symbol) → (index of the first piece, best fused score of the pieces).
    let mut groups: HashMap<(String, String, String), (usize, f64)> = HashMap::new();
    for (i, hit) in candidates.iter().enumerate().filter(|(_, h)| defines(h)) {
        let c = &hit.chunk;
        let Some(named) = analysis.named_definition(c) else {
            continue;
        };
        let key = (c.repo.clone(), c.path.clone(), named.symbol.to_string());
        let group = groups.entry(key).or_insert((i, hit.fused_score));
        if c.start_line < candidates[group.0].chunk.start_line {
            group.0 = i;
        }
        group.1 = group.1.max(hit.fused_score);
    }
    let headers: HashMap<usize, f64> = groups.into_values().collect();
    for (i, hit) in candidates.iter_mut().enumerate() {
        if !defines(hit) {
            continue;
        }
        match headers.get(&i) {
            Some(&best) if best > hit.fused_score && hit.fused_score > 0.0 => {
                hit.boosts.push(Boost {
                    reason: "the best match among its definition's pieces",
                    factor: best / hit.fused_score,
                });
            }
            Some(_) => {}
            None => {
                withdraw_definition_boost(hit, "a later piece of the named symbol's definition");
            }
        }
    }
}

/// A test that defines a named symbol the code also defines holds a stub or a mock of it
/// (a shell test's `nvm_has() { …; }`): unless the query asks for tests, such definitions
/// lose the definition boost to the real one.
fn prefer_definitions_outside_tests(analysis: &QueryAnalysis, candidates: &mut [SearchHit]) {
    if analysis.asks_for_tests {
        return;
    }
    hand_definition_boost_over(
        analysis,
        candidates,
        |hit, _| !is_test_code(&hit.chunk),
        |hit, _| is_test_code(&hit.chunk),
        "a test's stand-in for a symbol the code defines",
    );
}

/// Case tells symbols apart: `Timeout` the class and `timeout` the property that holds
/// one, Go's exported `Client` and unexported `client`. When the query spells a name with
/// capitals and a candidate defines it in exactly that spelling, a definition of the name
/// in another case loses the definition boost. A name typed in lower case names no case,
/// so every spelling of it keeps its boost.
fn prefer_the_exact_case(analysis: &QueryAnalysis, candidates: &mut [SearchHit]) {
    hand_definition_boost_over(
        analysis,
        candidates,
        |_, named| {
            named.naming == Naming::ExactSpelling
                && last_segment(named.symbol).chars().any(char::is_uppercase)
        },
        |_, named| named.naming == Naming::Name,
        "defines the name in another case than the query's",
    );
}

/// Among the candidates holding the definition boost for a name the query names: where a
/// `preferred` definition of a name is found, the definitions of the same name (compared
/// without case) that `yield` to it lose the boost, with `why` in its place.
fn hand_definition_boost_over(
    analysis: &QueryAnalysis,
    candidates: &mut [SearchHit],
    preferred: impl Fn(&SearchHit, &NamedDefinition<'_>) -> bool,
    yields: impl Fn(&SearchHit, &NamedDefinition<'_>) -> bool,
    why: &'static str,
) {
    // Per candidate: the boosted name it defines, lowercased, and whether it is preferred
    // or yields.
    let judged: Vec<Option<(String, bool, bool)>> = candidates
        .iter()
        .map(|hit| {
            if !hit.boosts.iter().any(|b| b.reason == DEFINES_NAMED_SYMBOL) {
                return None;
            }
            let named = analysis.named_definition(&hit.chunk)?;
            Some((
                last_segment(named.symbol).to_lowercase(),
                preferred(hit, &named),
                yields(hit, &named),
            ))
        })
        .collect();
    let preferred_names: HashSet<&str> = judged
        .iter()
        .flatten()
        .filter(|(_, preferred, _)| *preferred)
        .map(|(name, ..)| name.as_str())
        .collect();
    for (hit, judged) in candidates.iter_mut().zip(&judged) {
        if let Some((name, _, true)) = judged
            && preferred_names.contains(name.as_str())
        {
            withdraw_definition_boost(hit, why);
        }
    }
}

/// Takes back a hit's definition boosts, leaving `why` (factor 1) in their place.
fn withdraw_definition_boost(hit: &mut SearchHit, why: &'static str) {
    hit.boosts.retain(|b| b.reason != SPELLED_EXACTLY);
    for boost in &mut hit.boosts {
        if boost.reason == DEFINES_NAMED_SYMBOL {
            *boost = Boost {
                reason: why,
                factor: 1.0,
            };
        }
    }
}

/// Keeps each hit unless a better-ranked hit of the same file covers any of its lines.
fn without_overlaps(ranked: &[SearchHit]) -> Vec<&SearchHit> {
    let mut kept: Vec<&SearchHit> = Vec::with_capacity(ranked.len());
    for hit in ranked {
        let c = &hit.chunk;
        let overlaps = kept.iter().any(|k| {
            k.chunk.repo == c.repo
                && k.chunk.path == c.path
                && k.chunk.start_line <= c.end_line
                && c.start_line <= k.chunk.end_line
        });
        if !overlaps {
            kept.push(hit);
        }
    }
    kept
}

#[cfg(test)]
mod tests;
