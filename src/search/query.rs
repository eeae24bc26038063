//! What a query is: its terms for BM25, and whether it names code, describes behaviour,
//! asks about usage, tests or vendored code (which sets the lanes' weights and boosts).

use super::signals::GENERIC_STEMS;
use super::*;

/// Words that carry no signal in a question about code.
pub(super) const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "of", "on", "or", "the", "that", "this", "to", "what", "when", "where",
    "which", "who", "why", "with", "we", "you", "get", "gets",
];

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
    fn of_words(words: &[&str]) -> QueryKind {
        if words.len() <= 1 || words.iter().any(|w| is_code_like(w)) {
            QueryKind::Identifier
        } else {
            QueryKind::NaturalLanguage
        }
    }

    /// RRF weights (bm25, vector): identifiers lean lexical, descriptions lean on vectors.
    pub fn lane_weights(self) -> (f64, f64) {
        match self {
            QueryKind::Identifier => (1.0, 0.75),
            QueryKind::NaturalLanguage => (0.5, 1.0),
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

/// What a query asks for, read once before retrieval.
#[derive(Debug, Clone, Serialize)]
pub struct QueryAnalysis {
    /// Identifier or description.
    pub kind: QueryKind,
    /// RRF weight of the BM25 lane.
    pub bm25_weight: f64,
    /// RRF weight of the vector lane.
    pub vector_weight: f64,
    /// Symbol names the query mentions, lowercased (`Type::method` → `method`).
    pub symbols: Vec<String>,
    /// True when the query asks where something is used rather than defined.
    pub asks_for_usages: bool,
    /// True when the query is about tests, fixtures or benchmarks.
    pub asks_for_tests: bool,
    /// True when the query is about vendored or generated code.
    pub asks_for_vendored: bool,
}

/// Words that mean the user wants callers, not the definition.
pub(super) const USAGE_WORDS: &[&str] = &[
    "called",
    "calls",
    "caller",
    "callers",
    "usage",
    "usages",
    "used",
    "uses",
    "references",
];

/// Words that mean the user wants tests.
pub(super) const TEST_WORDS: &[&str] = &[
    "test",
    "tests",
    "testing",
    "tested",
    "fixture",
    "fixtures",
    "mock",
    "mocks",
    "spec",
    "bench",
    "benchmark",
    "benchmarks",
];

/// Words that mean the user wants vendored or generated code.
pub(super) const VENDORED_WORDS: &[&str] = &[
    "vendor",
    "vendored",
    "generated",
    "third_party",
    "thirdparty",
];

impl QueryAnalysis {
    /// Reads a query.
    pub fn of(query: &str) -> QueryAnalysis {
        let words = query_words(query);
        let kind = QueryKind::of_words(&words);
        let (bm25_weight, vector_weight) = kind.lane_weights();
        let single = words.iter().filter(|w| !w.is_empty()).count() == 1;
        let mut symbols = Vec::new();
        for word in &words {
            if (single || is_code_like(word)) && word.chars().any(char::is_alphabetic) {
                let name = last_segment(word).to_lowercase();
                if !name.is_empty() && !symbols.contains(&name) {
                    symbols.push(name);
                }
            }
        }
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let mentions = |set: &[&str]| lower.iter().any(|w| set.contains(&w.as_str()));
        QueryAnalysis {
            kind,
            bm25_weight,
            vector_weight,
            symbols,
            asks_for_usages: mentions(USAGE_WORDS),
            asks_for_tests: mentions(TEST_WORDS),
            asks_for_vendored: mentions(VENDORED_WORDS),
        }
    }

    /// The adjustments this query makes to one chunk.
    pub fn boosts_for(&self, chunk: &Chunk) -> Vec<Boost> {
        let mut boosts = Vec::new();
        let defines = !self.asks_for_usages && is_definition(&chunk.kind) && {
            let name = last_segment(&chunk.symbol).to_lowercase();
            self.symbols.contains(&name)
        };
        if defines {
            boosts.push(Boost {
                reason: "defines the named symbol",
                factor: DEFINITION_BOOST,
            });
        }
        // Only names count: a plain word such as "model" in a description would favour
        // model.py for every question about models.
        let stem = file_stem(&chunk.path).to_lowercase();
        if stem.len() >= 4
            && !GENERIC_STEMS.contains(&stem.as_str())
            && self.symbols.contains(&stem)
        {
            boosts.push(Boost {
                reason: "file name matches the query",
                factor: FILE_NAME_BOOST,
            });
        }
        if !self.asks_for_tests && is_test_code(chunk) {
            boosts.push(Boost {
                reason: "test code (the query does not ask for tests)",
                factor: TEST_PENALTY,
            });
        }
        if !self.asks_for_vendored && is_vendored(&chunk.path) {
            boosts.push(Boost {
                reason: "vendored or generated code",
                factor: VENDORED_PENALTY,
            });
        }
        boosts
    }
}

/// The whitespace-separated words of a query without surrounding punctuation (`_`, `::`
/// and `.` inside stay); a word of punctuation only becomes empty but still counts.
pub(super) fn query_words(query: &str) -> Vec<&str> {
    query
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'))
        .collect()
}

/// A token with `_`, `::`, an inner `.` or an inner capital names code.
pub(super) fn is_code_like(word: &str) -> bool {
    word.contains('_')
        || word.contains("::")
        || word.contains('.') && !word.ends_with('.')
        || word.chars().skip(1).any(char::is_uppercase) && word.chars().any(char::is_lowercase)
}
