//! Syntax colouring for the preview: the file is parsed with the grammar the language
//! registry names for it and coloured by that grammar crate's own highlights query
//! (capture names such as `@keyword`, `@string`, `@function.method`). Keywords the query
//! leaves out are taken from the tree's anonymous word leaves. Languages without a grammar
//! are shown plain.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use tree_sitter::{Node, Parser, Query, QueryCursor, StreamingIterator};

use crate::chunk::languages::{self, LanguageSpec};

/// What a highlighted stretch of code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A comment.
    Comment,
    /// A string or character literal.
    String,
    /// A keyword.
    Keyword,
    /// A numeric literal.
    Number,
    /// A type name.
    Type,
    /// The name of a function.
    Function,
}

/// A language's grammar with its compiled highlights query (`None`: the query does not
/// compile for this grammar version, so only the fallback applies).
struct Highlighter {
    language: tree_sitter::Language,
    query: Option<Query>,
}

/// Compiled once per language and kept: highlights queries take milliseconds to build.
fn highlighter(spec: &'static LanguageSpec) -> Option<Arc<Highlighter>> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<Highlighter>>>> = OnceLock::new();
    let syntax = spec.syntax.as_ref()?;
    let mut cache = CACHE.get_or_init(Default::default).lock().ok()?;
    let entry = cache.entry(spec.name).or_insert_with(|| {
        let language = (syntax.grammar)();
        let source = syntax.highlights.concat();
        let query = (!source.is_empty())
            .then(|| Query::new(&language, &source).ok())
            .flatten();
        Arc::new(Highlighter { language, query })
    });
    Some(entry.clone())
}

/// Classed byte ranges of `text`, in order and not overlapping; empty for a language
/// without a grammar or text that does not parse.
pub fn tokens(path: &str, text: &str) -> Vec<(Range<usize>, Token)> {
    let Some(highlighter) = languages::detect(path, text).and_then(highlighter) else {
        return Vec::new();
    };
    let mut parser = Parser::new();
    if parser.set_language(&highlighter.language).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(text, None) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(query) = &highlighter.query {
        let names = query.capture_names();
        let mut cursor = QueryCursor::new();
        let mut captures = cursor.captures(query, tree.root_node(), text.as_bytes());
        while let Some((m, index)) = captures.next() {
            let capture = m.captures()[*index];
            if let Some(token) = token_for(names[capture.index as usize], capture.node) {
                found.push((capture.node.byte_range(), token));
            }
        }
    }
    collect_keywords(tree.root_node(), &mut found);
    without_overlaps(found)
}

/// The token a highlights capture name stands for (`keyword.function` → keyword).
fn token_for(capture: &str, node: Node) -> Option<Token> {
    let head = capture.split('.').next().unwrap_or(capture);
    let numeric = node.kind().contains("integer")
        || node.kind().contains("float")
        || node.kind().contains("number");
    match head {
        "comment" => Some(Token::Comment),
        "string" | "character" | "escape" => Some(Token::String),
        "number" | "float" => Some(Token::Number),
        "constant" if numeric => Some(Token::Number),
        "keyword" | "include" | "conditional" | "repeat" | "exception" | "boolean" => {
            Some(Token::Keyword)
        }
        "constant" if capture == "constant.builtin" => Some(Token::Keyword),
        "type" | "constructor" => Some(Token::Type),
        "function" | "method" => Some(Token::Function),
        _ => None,
    }
}

/// Anonymous word leaves (`fn`, `return`) are keywords in every grammar.
fn collect_keywords(node: Node, out: &mut Vec<(Range<usize>, Token)>) {
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        if node.child_count() == 0 {
            let kind = node.kind();
            let word = kind.len() > 1 && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if !node.is_named() && word {
                out.push((node.byte_range(), Token::Keyword));
            }
            continue;
        }
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor));
    }
}

/// Sorted by start; of overlapping ranges the one found first (the query's) wins.
fn without_overlaps(found: Vec<(Range<usize>, Token)>) -> Vec<(Range<usize>, Token)> {
    let mut ordered: Vec<(usize, (Range<usize>, Token))> = found.into_iter().enumerate().collect();
    ordered.sort_by_key(|(i, (range, _))| (range.start, std::cmp::Reverse(range.end), *i));
    let mut out: Vec<(Range<usize>, Token)> = Vec::new();
    let mut covered = 0;
    for (_, (range, token)) in ordered {
        if range.start >= covered && !range.is_empty() {
            covered = range.end;
            out.push((range, token));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grammar_language_has_a_highlights_query_that_compiles() {
        for spec in languages::LANGUAGES.iter().filter(|s| s.syntax.is_some()) {
            let highlighter = highlighter(spec).unwrap();
            assert!(
                highlighter.query.is_some(),
                "{}: highlights do not compile",
                spec.name
            );
        }
    }

    fn classes(path: &str, text: &str) -> Vec<(String, Token)> {
        tokens(path, text)
            .into_iter()
            .map(|(r, t)| (text[r].to_string(), t))
            .collect()
    }

    #[test]
    fn rust_keywords_strings_comments_and_names_are_classed() {
        let found = classes(
            "a.rs",
            "// hi\nfn total(n: u32) -> &str { let s = \"x\"; 42 }\n",
        );
        for expected in [
            ("// hi", Token::Comment),
            ("fn", Token::Keyword),
            ("total", Token::Function),
            ("u32", Token::Type),
            ("let", Token::Keyword),
            ("\"x\"", Token::String),
            ("42", Token::Number),
        ] {
            assert!(
                found.contains(&(expected.0.to_string(), expected.1)),
                "{expected:?} not in {found:?}"
            );
        }
    }

    #[test]
    fn python_is_classed_and_unknown_languages_are_plain() {
        let found = classes("a.py", "def score(tx):\n    return 'a'  # why\n");
        assert!(found.contains(&("def".into(), Token::Keyword)), "{found:?}");
        assert!(
            found.contains(&("score".into(), Token::Function)),
            "{found:?}"
        );
        assert!(found.contains(&("'a'".into(), Token::String)), "{found:?}");
        assert!(
            found.contains(&("# why".into(), Token::Comment)),
            "{found:?}"
        );
        assert!(tokens("a.md", "# title").is_empty());
    }
}
