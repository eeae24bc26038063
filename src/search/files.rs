//! How files count in a chunk ranking. A file with several matching chunks is likelier the
//! one a person would open (support), and its second and third chunks are worth less than
//! another file's best (saturation), so ten results spread over the files that matter
//! instead of filling up with pieces of one. For a description, a file named for what the
//! rest of the code mentions most is likelier where a concept lives (mentions).

use std::collections::HashMap;

use super::signals::{GENERIC_STEMS, file_stem, is_package_index};
use super::{Boost, SearchHit};
use crate::error::Result;
use crate::store::{ChunkFilter, IndexReader, code_tokens};

/// Share of a file's next best chunk scores added to its best one.
pub const FILE_SUPPORT_WEIGHT: f64 = 0.25;
/// How many of a file's next best chunks add support to its best.
pub const SUPPORTING_CHUNKS: usize = 2;
/// Factor for each chunk of a file that already has a better one in the ranking: the
/// second chunk gets it once, the third twice, and so on.
pub const FILE_SATURATION: f64 = 0.5;

/// Weight of how often the code mentions a file's name: a hit's factor is
/// `1 + weight × ln(1 + m) / ln(1 + n)` when `m` of the `n` chunks the query may see hold
/// its file's stem in their code (measured on the whole public suite, docs/EVAL.md).
pub const MENTIONS_WEIGHT: f64 = 0.15;

/// Shorter file stems are too often plain words or abbreviations to count as names.
const MIN_MENTIONED_STEM_CHARS: usize = 4;

/// The reason recorded for the mentions factor.
const MENTIONED: &str = "the code often mentions this file's name";

/// Lifts each hit by how often the code `filter` admits mentions its file's stem
/// (`Router.php` where hundreds of chunks say `router`): the file a concept is
/// named after and used through, rather than one that uses it. Meant for descriptions;
/// a query that names code already says which definition it wants. Counts come from the
/// admitted chunks only, so a principal's ranking does not depend on what they may not read.
pub(super) fn lift_mentioned_files(
    reader: &IndexReader,
    filter: &ChunkFilter,
    hits: &mut [SearchHit],
) -> Result<()> {
    let names: Vec<Option<String>> = hits
        .iter()
        .map(|h| mentionable_stem(&h.chunk.path))
        .collect();
    let mut stems: Vec<String> = names.iter().flatten().cloned().collect();
    stems.sort();
    stems.dedup();
    let (mentions, chunks) = reader.mentions(&stems, filter)?;
    if chunks == 0 {
        return Ok(());
    }
    let factors: HashMap<&str, f64> = stems
        .iter()
        .zip(mentions)
        .filter(|&(_, m)| m > 0)
        .map(|(stem, m)| (stem.as_str(), mentions_factor(m, chunks)))
        .collect();
    for (hit, name) in hits.iter_mut().zip(&names) {
        let factor = name.as_deref().and_then(|s| factors.get(s).copied());
        if let Some(factor) = factor {
            hit.boosts.push(Boost {
                reason: MENTIONED,
                factor,
            });
        }
    }
    Ok(())
}

/// The factor for a file whose stem `mentions` of `chunks` chunks hold.
fn mentions_factor(mentions: u64, chunks: u64) -> f64 {
    let share = (1.0 + mentions as f64).ln() / (1.0 + chunks as f64).ln();
    1.0 + MENTIONS_WEIGHT * share.min(1.0)
}

/// The name a file goes by, as the index holds it among code tokens: its stem, or its
/// folder's name for a package's index file (`search/mod.rs`, `router/__init__.py`); none
/// when that name is too short or too common to name anything, or is not one code token
/// (`rate-limiter`), so that the index could not count it.
fn mentionable_stem(path: &str) -> Option<String> {
    let name = match is_package_index(path) {
        true => path.rsplit('/').nth(1).unwrap_or_default(),
        false => file_stem(path),
    };
    let (token, _) = code_tokens(name)
        .into_iter()
        .find(|(_, span)| *span == (0..name.len()))?;
    (token.chars().count() >= MIN_MENTIONED_STEM_CHARS && !GENERIC_STEMS.contains(&token.as_str()))
        .then_some(token)
}

/// The file a hit belongs to.
fn file_key(hit: &SearchHit) -> (&str, &str) {
    (hit.chunk.repo.as_str(), hit.chunk.path.as_str())
}

/// Re-scores hits ranked best first by file — each file's best chunk gains the support of
/// its next best among the first `support_window` hits, later ones lose to saturation,
/// both recorded as boosts — and re-sorts them (ties keep their order). The window is the
/// number of results asked for: RRF scores fall slowly with rank, so support counted deep
/// in the pool would favour long files with many weak matches.
pub(super) fn rank_by_file(hits: &mut [SearchHit], support_window: usize) {
    let mut seen: HashMap<(String, String), (usize, usize)> = HashMap::new();
    let mut support = vec![0.0; hits.len()];
    let mut place_in_file = vec![0usize; hits.len()];
    for i in 0..hits.len() {
        let (repo, path) = file_key(&hits[i]);
        let entry = seen
            .entry((repo.to_string(), path.to_string()))
            .or_insert((i, 0));
        place_in_file[i] = entry.1;
        if (1..=SUPPORTING_CHUNKS).contains(&entry.1) && i < support_window {
            support[entry.0] += FILE_SUPPORT_WEIGHT * hits[i].score;
        }
        entry.1 += 1;
    }
    for (i, hit) in hits.iter_mut().enumerate() {
        let factor = if place_in_file[i] == 0 {
            if support[i] <= 0.0 || hit.score <= 0.0 {
                continue;
            }
            Boost {
                reason: "other chunks of the same file match too",
                factor: (hit.score + support[i]) / hit.score,
            }
        } else {
            Boost {
                reason: "a better chunk of the same file ranks higher",
                factor: FILE_SATURATION.powi(place_in_file[i] as i32),
            }
        };
        hit.score *= factor.factor;
        hit.boosts.push(factor);
    }
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
}

/// The best hit of each file, in rank order (the file-level view of a ranking).
pub(super) fn best_per_file(hits: Vec<SearchHit>) -> Vec<SearchHit> {
    let mut seen = std::collections::HashSet::new();
    hits.into_iter()
        .filter(|h| seen.insert((h.chunk.repo.clone(), h.chunk.path.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tests::{chunk, hit as unscored};

    fn hit(path: &str, line: u32, score: f64) -> SearchHit {
        SearchHit {
            score,
            fused_score: score,
            ..unscored(chunk(path, "function", "f", (line, line)))
        }
    }

    fn order(hits: &[SearchHit]) -> Vec<String> {
        hits.iter().map(|h| h.chunk.chunk_id.clone()).collect()
    }

    #[test]
    fn the_more_the_code_mentions_a_file_the_more_it_counts_up_to_the_weight() {
        let n = 10_000;
        let factors: Vec<f64> = [1, 10, 100, 1000, n]
            .map(|m| mentions_factor(m, n))
            .to_vec();
        assert!(factors.windows(2).all(|w| w[0] < w[1]), "{factors:?}");
        assert!(factors[0] > 1.0);
        assert!((factors[4] - (1.0 + MENTIONS_WEIGHT)).abs() < 1e-9);
        // The share is of the chunks the query may see: the same count weighs more in a
        // smaller visible corpus.
        assert!(mentions_factor(100, 1000) > mentions_factor(100, n));
    }

    #[test]
    fn only_a_stem_that_can_name_something_is_counted() {
        assert_eq!(
            mentionable_stem("src/Routing/Router.php").as_deref(),
            Some("router")
        );
        assert_eq!(
            mentionable_stem("chi/mux.go"),
            None,
            "too short to be a name"
        );
        assert_eq!(
            mentionable_stem("pkg/utils.ts"),
            None,
            "a generic file name"
        );
        assert_eq!(
            mentionable_stem("src/search/mod.rs").as_deref(),
            Some("search"),
            "a module's index file goes by its folder's name"
        );
        assert_eq!(
            mentionable_stem("router/__init__.py").as_deref(),
            Some("router")
        );
        assert_eq!(mentionable_stem("index.ts"), None, "no folder to go by");
        assert_eq!(
            mentionable_stem("site/docs/index.html"),
            None,
            "only a package's index file goes by its folder"
        );
        assert_eq!(
            mentionable_stem("src/rate-limiter.ts"),
            None,
            "not one code token: the index holds `rate` and `limiter`"
        );
        assert_eq!(
            mentionable_stem("src/rate_limiter.ts").as_deref(),
            Some("rate_limiter")
        );
        assert_eq!(
            mentionable_stem("src/createStore.ts").as_deref(),
            Some("createstore"),
            "lowercased, as the index holds code tokens"
        );
    }

    #[test]
    fn a_files_later_chunks_make_room_for_other_files() {
        let mut hits = vec![
            hit("big.py", 1, 1.0),
            hit("big.py", 20, 0.95),
            hit("big.py", 40, 0.9),
            hit("other.py", 1, 0.8),
            hit("third.py", 1, 0.6),
        ];
        rank_by_file(&mut hits, 10);
        assert_eq!(
            order(&hits),
            [
                "big.py:1",
                "other.py:1",
                "third.py:1",
                "big.py:20",
                "big.py:40"
            ]
        );
        // 1.0 + 0.25 × (0.95 + 0.9); 0.95 × 0.5; 0.9 × 0.25.
        assert!((hits[0].score - 1.4625).abs() < 1e-9, "{}", hits[0].score);
        assert!((hits[3].score - 0.475).abs() < 1e-9);
        assert!((hits[4].score - 0.225).abs() < 1e-9);
        assert_eq!(
            hits[0].boosts[0].reason,
            "other chunks of the same file match too"
        );
        assert_eq!(
            hits[4].boosts[0].reason,
            "a better chunk of the same file ranks higher"
        );
        assert!(hits[1].boosts.is_empty(), "a lone chunk keeps its score");
    }

    #[test]
    fn support_lifts_a_file_with_several_matches_over_a_single_slightly_better_chunk() {
        let mut hits = vec![
            hit("lone.py", 1, 1.0),
            hit("many.py", 1, 0.9),
            hit("many.py", 9, 0.5),
        ];
        let mut shallow = hits.clone();
        rank_by_file(&mut shallow, 2);
        assert_eq!(
            order(&shallow)[0],
            "lone.py:1",
            "support beyond the window is ignored"
        );
        rank_by_file(&mut hits, 3);
        assert_eq!(order(&hits)[0], "many.py:1");
        assert_eq!(
            order(&best_per_file(hits)),
            ["many.py:1", "lone.py:1"],
            "one hit per file, best first"
        );
    }
}
