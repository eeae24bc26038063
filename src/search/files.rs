//! How files count in a chunk ranking. A file with several matching chunks is likelier the
//! one a person would open (support), and its second and third chunks are worth less than
//! another file's best (saturation), so ten results spread over the files that matter
//! instead of filling up with pieces of one.

use std::collections::HashMap;

use super::{Boost, SearchHit};

/// Share of a file's next best chunk scores added to its best one.
pub const FILE_SUPPORT_WEIGHT: f64 = 0.25;
/// How many of a file's next best chunks add support to its best.
pub const SUPPORTING_CHUNKS: usize = 2;
/// Factor for each chunk of a file that already has a better one in the ranking: the
/// second chunk gets it once, the third twice, and so on.
pub const FILE_SATURATION: f64 = 0.5;

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
