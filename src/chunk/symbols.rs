//! What a chunk says about its definition: signature, first doc line, qualified symbol.

use super::*;

/// The definition's body node: its `body` field, or that of the definition it wraps (a
/// decorated or exported one).
pub(super) fn body_of(node: Node<'_>) -> Option<Node<'_>> {
    node.child_by_field_name("body").or_else(|| {
        node.child_by_field_name("definition")
            .or_else(|| node.child_by_field_name("declaration"))
            .and_then(|d| d.child_by_field_name("body"))
    })
}

/// The declaration text before the body, whitespace-collapsed and capped.
pub(super) fn signature(node: Node<'_>, body: Option<Node<'_>>, text: &str) -> String {
    let inner = node.child_by_field_name("definition").unwrap_or(node);
    let end = body
        .filter(|b| b.start_byte() > inner.start_byte())
        .map_or_else(
            || {
                let start = inner.start_byte();
                text[start..inner.end_byte()]
                    .find('\n')
                    .map_or(inner.end_byte(), |i| start + i)
            },
            |b| b.start_byte(),
        );
    let raw = text.get(inner.start_byte()..end).unwrap_or_default();
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = collapsed.trim_end_matches([':', '{', ' ', '=']);
    truncate_chars(trimmed, 200)
}

/// Comment and string punctuation around documentation text, longest first.
const DOC_MARKERS: &[&str] = &[
    "<summary>",
    "</summary>",
    "\"\"\"",
    "'''",
    "///",
    "//!",
    "/**",
    "/*!",
    "--[[",
    "---",
    "--|",
    "//",
    "/*",
    "*/",
    "]]",
    "--",
    "#",
    "|",
    "*",
    "\"",
    "'",
];

/// First line of the definition's doc comment (the comments among the siblings right before
/// it) or of its docstring (the query's `@doc` capture).
pub(super) fn doc_line(def: &Def<'_>, leading_kinds: &[&str], text: &str) -> String {
    let mut comments = leading_nodes(def.node, leading_kinds)
        .into_iter()
        .filter(|n| n.kind().contains("comment"));
    let text_of = |n: Node<'_>| text.get(n.byte_range()).unwrap_or_default();
    // A license right above the definition is no doc of it. A block comment is the whole
    // notice, and a doc comment may follow it; a notice in line comments is one node per
    // line, and where it ends cannot be told, so no comment line is taken then.
    let first_comment = match comments.next() {
        Some(first) if is_license(text_of(first)) => {
            comments.next().filter(|_| text_of(first).contains('\n'))
        }
        first => first,
    };
    first_comment
        .into_iter()
        .chain(def.docstring)
        .find_map(|node| first_doc_text(text_of(node)))
        .map(|line| truncate_chars(&line, 200))
        .unwrap_or_default()
}

/// Words only a license or copyright notice uses (matched in lower case).
const LICENSE_MARKERS: &[&str] = &[
    "copyright",
    "spdx-license-identifier",
    "licensed under",
    "permission is hereby granted",
];

/// Whether a comment is a license or copyright notice: a file's license header right above
/// its first definition is no doc of that definition (a class would read "Copyright 2020
/// Example Corp." in every answer that cites it).
fn is_license(comment: &str) -> bool {
    let lower = comment.to_lowercase();
    LICENSE_MARKERS.iter().any(|marker| lower.contains(marker))
}

/// The first line of a comment or docstring with something in it, punctuation removed.
fn first_doc_text(raw: &str) -> Option<String> {
    let raw = raw.trim_start_matches(['r', 'b', 'u', 'f', 'R', 'B', 'U', 'F']);
    raw.lines().find_map(|line| {
        let mut rest = line.trim();
        while let Some(marker) = DOC_MARKERS.iter().find(|m| rest.starts_with(**m)) {
            rest = rest[marker.len()..].trim_start();
        }
        while let Some(marker) = DOC_MARKERS.iter().find(|m| rest.ends_with(**m)) {
            rest = rest[..rest.len() - marker.len()].trim_end();
        }
        (!rest.is_empty()).then(|| rest.to_string())
    })
}

/// The siblings right before `node` that belong to it (doc comments, attributes), topmost
/// first; they stop at a blank line or a node of another kind.
fn leading_nodes<'t>(node: Node<'t>, leading_kinds: &[&str]) -> Vec<Node<'t>> {
    let mut nodes = Vec::new();
    let mut start = node.start_position().row;
    let mut prev = node.prev_sibling();
    while let Some(p) = prev {
        if !leading_kinds.contains(&p.kind()) || end_row(p) + 1 < start {
            break;
        }
        start = p.start_position().row;
        nodes.push(p);
        prev = p.prev_sibling();
    }
    nodes.reverse();
    nodes
}

/// First row of a definition, extended upward over its doc comments and attributes.
pub(super) fn leading_start(node: Node<'_>, leading_kinds: &[&str]) -> usize {
    leading_nodes(node, leading_kinds)
        .first()
        .map_or(node.start_position().row, |n| n.start_position().row)
}

/// Last row of a node, not counting a trailing newline that ends at column 0.
pub(super) fn end_row(node: Node<'_>) -> usize {
    let end = node.end_position();
    if end.column == 0 && end.row > node.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}

/// `Foo<T>` → `Foo`; `&'a mut Bar` → `Bar`: the name a qualified symbol should use (at
/// most [`MAX_NAME_CHARS`] characters).
pub(super) fn clean_name(raw: &str) -> String {
    if raw.starts_with('"') {
        // A string names it (a Zig test): the words inside, without the quotes.
        return raw.trim_matches('"').chars().take(MAX_NAME_CHARS).collect();
    }
    let base = raw.split('<').next().unwrap_or(raw);
    let base = base
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim_start_matches("dyn ")
        .trim();
    let name = base.split_whitespace().last().unwrap_or(base);
    name.chars().take(MAX_NAME_CHARS).collect()
}

/// A symbol of at most [`MAX_SYMBOL_CHARS`] characters. A merged group (`a, b, c`) keeps
/// its first whole names and ends with `, …`; a long qualified symbol loses its beginning
/// (the outer containers), marked with `…`, and keeps the name it ends with.
pub(super) fn cap_symbol(symbol: String) -> String {
    let count = symbol.chars().count();
    if count <= MAX_SYMBOL_CHARS {
        return symbol;
    }
    if symbol.contains(", ") {
        let mut kept = String::new();
        for name in symbol.split(", ") {
            let sep = if kept.is_empty() { 0 } else { 2 };
            if kept.chars().count() + sep + name.chars().count() + 3 > MAX_SYMBOL_CHARS {
                break;
            }
            if !kept.is_empty() {
                kept.push_str(", ");
            }
            kept.push_str(name);
        }
        if !kept.is_empty() {
            return format!("{kept}, …");
        }
    }
    let tail: String = symbol
        .chars()
        .skip(count - (MAX_SYMBOL_CHARS - 1))
        .collect();
    format!("…{tail}")
}

/// `pkg/sub/mod.py` → `pkg.sub.mod`; `pkg/__init__.py` → `pkg`; a leading `src/` is dropped.
pub(super) fn module_path(path: &str) -> String {
    let without_ext = path.rsplit_once('.').map_or(path, |(stem, _)| stem);
    let without_src = without_ext.strip_prefix("src/").unwrap_or(without_ext);
    let dotted = without_src.replace('/', ".");
    dotted
        .strip_suffix(".__init__")
        .map(str::to_string)
        .unwrap_or(dotted)
}

pub(super) fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

pub(super) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
