//! Syntax colouring for the preview: the file is parsed with the same tree-sitter grammars
//! the chunker uses, and leaf nodes are classed as comment, string, keyword, number,
//! type or function name. Other languages are shown plain.

use std::ops::Range;

use tree_sitter::{Node, Parser};

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
    /// The name of a function being defined.
    Function,
}

/// Classed byte ranges of `text`, in order and not overlapping; empty for a language
/// without a grammar or text that does not parse.
pub fn tokens(language: &str, text: &str) -> Vec<(Range<usize>, Token)> {
    let grammar: tree_sitter::Language = match language {
        "rust" => tree_sitter_rust::LANGUAGE.into(),
        "python" => tree_sitter_python::LANGUAGE.into(),
        _ => return Vec::new(),
    };
    let mut parser = Parser::new();
    if parser.set_language(&grammar).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(text, None) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect(tree.root_node(), &mut out);
    out
}

fn collect(node: Node, out: &mut Vec<(Range<usize>, Token)>) {
    if let Some(token) = classify(node) {
        out.push((node.byte_range(), token));
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect(child, out);
    }
}

fn classify(node: Node) -> Option<Token> {
    let kind = node.kind();
    if kind.contains("comment") {
        return Some(Token::Comment);
    }
    if kind.contains("string") || kind == "char_literal" {
        return Some(Token::String);
    }
    if node.child_count() > 0 {
        return None;
    }
    if !node.is_named() {
        return kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_')
            .then_some(Token::Keyword)
            .filter(|_| kind.len() > 1);
    }
    match kind {
        "integer_literal" | "float_literal" | "integer" | "float" => Some(Token::Number),
        "type_identifier" | "primitive_type" => Some(Token::Type),
        "true" | "false" | "none" | "self" => Some(Token::Keyword),
        "identifier" => {
            let parent = node.parent()?;
            let is_name = parent
                .child_by_field_name("name")
                .is_some_and(|n| n == node);
            (is_name && matches!(parent.kind(), "function_item" | "function_definition"))
                .then_some(Token::Function)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(language: &str, text: &str) -> Vec<(String, Token)> {
        tokens(language, text)
            .into_iter()
            .map(|(r, t)| (text[r].to_string(), t))
            .collect()
    }

    #[test]
    fn rust_keywords_strings_comments_and_names_are_classed() {
        let found = classes(
            "rust",
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
        let found = classes("python", "def score(tx):\n    return 'a'  # why\n");
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
        assert!(tokens("markdown", "# title").is_empty());
    }
}
