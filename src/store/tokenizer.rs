//! A code-aware tokenizer for tantivy: keeps whole identifiers and also splits them at
//! `snake_case` and `camelCase` boundaries, so `parseConfigFile` matches `parse`, `config`,
//! `file` and `parseconfigfile`.

use std::borrow::Cow;

use rust_stemmers::{Algorithm, Stemmer};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name under which the tokenizer is registered in the tantivy index.
pub const CODE_TOKENIZER: &str = "code";

/// Identifiers longer than this are noise (hashes, base64) and are not indexed.
const MAX_TOKEN_CHARS: usize = 64;

/// Stems shorter than this match too many unrelated words to count as a word's forms.
pub const MIN_STEM_CHARS: usize = 4;

/// The English stem of a lowercased word (`published` → `publish`, `create` → `creat`):
/// what the BM25 lane's word forms and the ranking's file-name words compare.
pub fn english_stem(word: &str) -> Cow<'_, str> {
    Stemmer::create(Algorithm::English).stem(word)
}

/// The tantivy [`Tokenizer`] over [`code_tokens`].
#[derive(Clone, Default)]
pub struct CodeTokenizer;

/// Token stream produced by [`CodeTokenizer`].
pub struct CodeTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream {
        let tokens = code_tokens(text)
            .into_iter()
            .enumerate()
            .map(|(position, (text, range))| Token {
                offset_from: range.start,
                offset_to: range.end,
                position,
                text,
                position_length: 1,
            })
            .collect();
        CodeTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for CodeTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// Lower-cased terms of `text` with their byte ranges: each identifier whole, then its parts.
pub fn code_tokens(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        let word_char = c.is_alphanumeric() || c == '_';
        match (word_char, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push_identifier(&text[s..i], s, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn push_identifier(word: &str, offset: usize, out: &mut Vec<(String, std::ops::Range<usize>)>) {
    let trimmed = word.trim_matches('_');
    if trimmed.is_empty() || trimmed.chars().count() > MAX_TOKEN_CHARS {
        return;
    }
    let lead = word.len() - word.trim_start_matches('_').len();
    let base = offset + lead;
    out.push((trimmed.to_lowercase(), base..base + trimmed.len()));
    let parts = split_identifier(trimmed);
    if parts.len() > 1 {
        for (s, e) in parts {
            out.push((trimmed[s..e].to_lowercase(), base + s..base + e));
        }
    }
}

/// Byte ranges of the sub-words of an identifier: `HTTPServer_v2` → `HTTP`, `Server`, `v2`.
fn split_identifier(word: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c == '_' {
            if let Some(s) = part_start.take() {
                parts.push((s, i));
            }
            continue;
        }
        if let Some(s) = part_start {
            let prev = chars[k - 1].1;
            let next = chars.get(k + 1).map(|&(_, n)| n);
            let lower_to_upper = prev.is_lowercase() && c.is_uppercase();
            let acronym_end =
                prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase);
            let letter_digit = prev.is_alphabetic() && c.is_numeric() && !prev.is_lowercase();
            if lower_to_upper || acronym_end || letter_digit {
                parts.push((s, i));
                part_start = Some(i);
            }
        } else {
            part_start = Some(i);
        }
    }
    if let Some(s) = part_start {
        parts.push((s, word.len()));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        code_tokens(text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn identifiers_are_kept_whole_and_split() {
        assert_eq!(
            terms("parseConfigFile"),
            ["parseconfigfile", "parse", "config", "file"]
        );
        assert_eq!(terms("parse_config"), ["parse_config", "parse", "config"]);
        assert_eq!(terms("HTTPServer"), ["httpserver", "http", "server"]);
        assert_eq!(terms("__init__"), ["init"]);
        assert_eq!(terms("x"), ["x"]);
    }

    #[test]
    fn punctuation_separates_tokens_and_offsets_point_into_the_text() {
        let text = "fn run(&self) -> Result<()>";
        let tokens = code_tokens(text);
        let words: Vec<&str> = tokens.iter().map(|(_, r)| &text[r.clone()]).collect();
        assert_eq!(words, ["fn", "run", "self", "Result"]);
    }

    #[test]
    fn noise_tokens_are_dropped() {
        let blob = "a".repeat(200);
        assert!(terms(&blob).is_empty());
        assert!(terms("  ::  ").is_empty());
    }
}
