//! The languages the chunker knows: grammars with their chunk queries, and the plain
//! languages that are cut into line windows.

/// A language with a tree-sitter grammar: adding one is an entry here plus a query file.
pub(super) struct LanguageSpec {
    pub(super) name: &'static str,
    pub(super) extensions: &'static [&'static str],
    pub(super) grammar: fn() -> tree_sitter::Language,
    pub(super) query: &'static str,
    /// Joins the parts of a qualified symbol.
    pub(super) separator: &'static str,
    /// Qualify top-level symbols with the module path derived from the file path.
    pub(super) module_from_path: bool,
    /// Sibling nodes right before a definition that belong to it (doc comments, attributes).
    pub(super) leading_kinds: &'static [&'static str],
}

pub(super) const LANGUAGES: &[LanguageSpec] = &[
    LanguageSpec {
        name: "rust",
        extensions: &["rs"],
        grammar: || tree_sitter_rust::LANGUAGE.into(),
        query: include_str!("../../grammars/rust.scm"),
        separator: "::",
        module_from_path: false,
        leading_kinds: &["line_comment", "block_comment", "attribute_item"],
    },
    LanguageSpec {
        name: "python",
        extensions: &["py", "pyi"],
        grammar: || tree_sitter_python::LANGUAGE.into(),
        query: include_str!("../../grammars/python.scm"),
        separator: ".",
        module_from_path: true,
        leading_kinds: &["comment"],
    },
];

/// Every language chunked with a grammar, as (name, its first file extension).
pub fn grammar_languages() -> Vec<(&'static str, &'static str)> {
    LANGUAGES
        .iter()
        .map(|spec| (spec.name, spec.extensions[0]))
        .collect()
}

/// Languages recognised by extension for the line-window fallback.
pub(super) const PLAIN_LANGUAGES: &[(&str, &[&str])] = &[
    ("markdown", &["md", "markdown", "rst", "txt"]),
    ("toml", &["toml"]),
    ("yaml", &["yaml", "yml"]),
    ("json", &["json", "jsonl"]),
    ("shell", &["sh", "bash", "zsh"]),
    ("javascript", &["js", "mjs", "cjs", "jsx"]),
    ("typescript", &["ts", "tsx"]),
    ("go", &["go"]),
    ("java", &["java"]),
    ("c", &["c", "h"]),
    ("cpp", &["cc", "cpp", "cxx", "hpp", "hh"]),
    ("ruby", &["rb"]),
    ("sql", &["sql"]),
    ("html", &["html", "htm"]),
    ("css", &["css", "scss"]),
];
