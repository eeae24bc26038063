//! What a query is: its terms for BM25, and whether it names code, describes behaviour,
//! asks about usage, tests or vendored code (which sets the lanes' weights and boosts).

use super::signals::GENERIC_STEMS;
use super::*;
use crate::store::{MIN_STEM_CHARS, english_stem};

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
    /// The same names as the query spells them (`Session`, not `session`).
    pub spellings: Vec<String>,
    /// Names a description spells in words: two or three adjacent words run together
    /// ("json object" → `jsonobject`, matching `JsonObject` or `json_object.py`).
    pub spelled_names: Vec<String>,
    /// The English stems of the plain words of a description, which may name a file
    /// (words of three letters or more, no stop words); none for a query that names code.
    pub path_stems: Vec<String>,
    /// True when the query asks where something is used rather than defined.
    pub asks_for_usages: bool,
    /// True when the query is about tests, fixtures or benchmarks.
    pub asks_for_tests: bool,
    /// True when the query is about vendored or generated code.
    pub asks_for_vendored: bool,
    /// True when the query is about examples, demos or documentation.
    pub asks_for_examples: bool,
    /// True when the query is about legacy, deprecated or compatibility code, or names a
    /// version.
    pub asks_for_legacy: bool,
}

/// Words that mean the user wants examples or documentation.
pub(super) const EXAMPLE_WORDS: &[&str] = &[
    "example",
    "examples",
    "sample",
    "samples",
    "demo",
    "demos",
    "docs",
    "documentation",
    "documented",
    "readme",
    "guide",
    "manual",
    "changelog",
    "tutorial",
];

/// Words that mean the user wants legacy or compatibility code.
pub(super) const LEGACY_WORDS: &[&str] = &[
    "legacy",
    "deprecated",
    "compat",
    "compatibility",
    "old",
    "older",
];

/// The reason of the boost for a chunk that defines a symbol the query names.
pub(super) const DEFINES_NAMED_SYMBOL: &str = "defines the named symbol";

/// The reason of the further boost when the defined name has the query's exact case.
pub(super) const SPELLED_EXACTLY: &str = "spelled exactly as in the query";

/// Shorter words of a description are matched exactly only.
const MIN_PROSE_WORD_CHARS: usize = 4;

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

/// A symbol a chunk defines whose name the query names.
#[derive(Debug, Clone, Copy)]
pub(super) struct NamedDefinition<'c> {
    /// The symbol, as the chunk lists it.
    pub symbol: &'c str,
    /// How the query names it.
    pub naming: Naming,
}

/// How a query names a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Naming {
    /// As written in the code (`Session`).
    ExactSpelling,
    /// In another case (`session` for `Session`).
    Name,
    /// In words run together ("json object" for `JsonObject`).
    Words,
}

impl QueryAnalysis {
    /// Reads a query.
    pub fn of(query: &str) -> QueryAnalysis {
        let words = query_words(query);
        let kind = QueryKind::of_words(&words);
        let (bm25_weight, vector_weight) = kind.lane_weights();
        let single = words.iter().filter(|w| !w.is_empty()).count() == 1;
        let mut symbols = Vec::new();
        let mut spellings = Vec::new();
        for word in &words {
            if (single || is_code_like(word)) && word.chars().any(char::is_alphabetic) {
                let spelled = last_segment(word);
                let name = spelled.to_lowercase();
                if !name.is_empty() && !symbols.contains(&name) {
                    symbols.push(name);
                    spellings.push(spelled.to_string());
                }
            }
        }
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let spelled_names = match kind {
            QueryKind::NaturalLanguage => spelled_names(&lower),
            QueryKind::Identifier => Vec::new(),
        };
        let mentions = |set: &[&str]| lower.iter().any(|w| set.contains(&w.as_str()));
        let path_stems = match kind {
            QueryKind::NaturalLanguage => query_terms(query)
                .into_iter()
                .filter(|t| t.len() >= 3 && t.chars().all(char::is_alphabetic))
                .map(|t| english_stem(&t).into_owned())
                .collect(),
            QueryKind::Identifier => Vec::new(),
        };
        QueryAnalysis {
            kind,
            bm25_weight,
            vector_weight,
            symbols,
            spellings,
            spelled_names,
            path_stems,
            asks_for_usages: mentions(USAGE_WORDS),
            asks_for_tests: mentions(TEST_WORDS),
            asks_for_vendored: mentions(VENDORED_WORDS),
            asks_for_examples: mentions(EXAMPLE_WORDS),
            // Naming a version (`v1`, `v3`) asks for that version's code, old or not.
            asks_for_legacy: mentions(LEGACY_WORDS)
                || lower.iter().any(|w| {
                    w.strip_prefix('v')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                }),
        }
    }

    /// The terms of a description that are plain words, whose other forms BM25 also
    /// matches ("compared" finds `comparable`); none for a query that names code, whose
    /// identifiers stay exact.
    pub fn prose_words(&self, terms: &[String]) -> Vec<String> {
        if self.kind != QueryKind::NaturalLanguage {
            return Vec::new();
        }
        terms
            .iter()
            .filter(|t| {
                t.chars().count() >= MIN_PROSE_WORD_CHARS && t.chars().all(char::is_alphabetic)
            })
            .cloned()
            .collect()
    }

    /// Of the symbols `chunk` defines, the first whose name the query names, else the first
    /// it spells in words; none when the query asks for usages.
    pub(super) fn named_definition<'c>(&self, chunk: &'c Chunk) -> Option<NamedDefinition<'c>> {
        if self.asks_for_usages {
            return None;
        }
        let named = defined_symbols(chunk).find_map(|symbol| {
            let name = last_segment(symbol);
            let naming = match self.spellings.iter().any(|s| s == name) {
                true => Naming::ExactSpelling,
                false => Naming::Name,
            };
            self.symbols
                .contains(&name.to_lowercase())
                .then_some(NamedDefinition { symbol, naming })
        });
        named.or_else(|| {
            defined_symbols(chunk)
                .find(|symbol| {
                    let name = last_segment(symbol).to_lowercase();
                    self.spelled_names.contains(&squashed(&name))
                })
                .map(|symbol| NamedDefinition {
                    symbol,
                    naming: Naming::Words,
                })
        })
    }

    /// The adjustments this query makes to one chunk.
    pub fn boosts_for(&self, chunk: &Chunk) -> Vec<Boost> {
        let mut boosts = Vec::new();
        let naming = self.named_definition(chunk).map(|d| d.naming);
        if matches!(naming, Some(Naming::Name | Naming::ExactSpelling)) {
            boosts.push(Boost {
                reason: DEFINES_NAMED_SYMBOL,
                factor: DEFINITION_BOOST,
            });
        }
        if naming == Some(Naming::ExactSpelling) {
            boosts.push(Boost {
                reason: SPELLED_EXACTLY,
                factor: EXACT_SPELLING_BOOST,
            });
        }
        if naming == Some(Naming::Words) {
            boosts.push(Boost {
                reason: "defines the name the query spells in words",
                factor: DEFINITION_BOOST,
            });
        }
        // Only names count: a plain word such as "model" in a description would favour
        // model.py for every question about models.
        let stem = file_stem(&chunk.path).to_lowercase();
        let named = self.symbols.contains(&stem) || self.spelled_names.contains(&squashed(&stem));
        if stem.len() >= 4 && !GENERIC_STEMS.contains(&stem.as_str()) && named {
            boosts.push(Boost {
                reason: "file name matches the query",
                factor: FILE_NAME_BOOST,
            });
        }
        // The share of plain words adds to a name match: a file named by the words of a
        // description ("equals builder", `EqualsBuilder.java`) is named twice.
        let share = self.path_word_share(&chunk.path);
        if share > 0.0 {
            boosts.push(Boost {
                reason: "words of the query name the file",
                factor: 1.0 + PATH_WORDS_WEIGHT * share,
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
        if !self.asks_for_examples && is_example_or_docs(&chunk.path) {
            boosts.push(Boost {
                reason: "examples or documentation sources (the query does not ask for them)",
                factor: EXAMPLE_PENALTY,
            });
        }
        if !self.asks_for_examples && is_prose(chunk) {
            boosts.push(Boost {
                reason: "prose documentation (the query does not ask for docs)",
                factor: PROSE_PENALTY,
            });
        }
        if !self.asks_for_legacy && is_legacy(&chunk.path) {
            boosts.push(Boost {
                reason: "legacy or compatibility code",
                factor: LEGACY_PENALTY,
            });
        }
        if is_reexport_module(chunk) && self.symbols.is_empty() {
            boosts.push(Boost {
                reason: "a package's re-export module, not the code it exports",
                factor: REEXPORT_PENALTY,
            });
        }
        boosts
    }

    /// The share of the description's words that a word of the file's stem matches in
    /// some form (`store` and `creation` in "store creation" both match `createStore.ts`).
    fn path_word_share(&self, path: &str) -> f64 {
        if self.path_stems.is_empty() {
            return 0.0;
        }
        let names: Vec<(String, String)> = code_tokens(file_stem(path))
            .into_iter()
            .map(|(name, _)| (english_stem(&name).into_owned(), name))
            .collect();
        let matched = self
            .path_stems
            .iter()
            .filter(|stem| names.iter().any(|name| same_word(stem, name)))
            .count();
        matched as f64 / self.path_stems.len() as f64
    }
}

/// Whether a description's word (by its `stem`) and a file name's word (`name`, with its
/// stem) are one word in two forms: the same stem, or one begins with the other's stem of
/// four letters or more (`create` and `creation`, `connect` and `connector`, `utility`
/// and `utils`; not `content` and `context`).
fn same_word(stem: &str, (name_stem, name): &(String, String)) -> bool {
    let long_enough = |s: &str| s.chars().count() >= MIN_STEM_CHARS;
    stem == name_stem
        || long_enough(stem) && name.starts_with(stem)
        || long_enough(name_stem) && stem.starts_with(name_stem.as_str())
}

/// A name without its word separators: `json_object`, `json-object` → `jsonobject`.
fn squashed(name: &str) -> String {
    name.chars().filter(|c| *c != '_' && *c != '-').collect()
}

/// Runs of two or three adjacent plain words of a description, joined: the names it may
/// spell ("equals builder" → `equalsbuilder`). Stop words break a run.
fn spelled_names(words: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for start in 0..words.len() {
        for len in 2..=3 {
            let Some(run) = words.get(start..start + len) else {
                break;
            };
            let plain = |w: &String| {
                !w.is_empty()
                    && w.chars().all(char::is_alphanumeric)
                    && !STOP_WORDS.contains(&w.as_str())
            };
            if !run.iter().all(plain) {
                break;
            }
            let name = run.concat();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
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
