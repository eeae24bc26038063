//! Splits source files into chunks: tree-sitter definitions for languages with a grammar
//! (queries in `grammars/*.scm`), line windows for every other text file.
//!
//! Every line of a file belongs to at most one chunk; definitions nested in containers
//! (impl blocks, traits, classes, inline modules) become their own chunks with qualified
//! symbols, and the code between definitions becomes module-level chunks.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Parser, Query, QueryCursor, StreamingIterator};

use crate::error::{Error, Result};
use crate::hash::{sha256_hex, sha256_parts};

/// Bumped whenever chunk boundaries or fields change, so indexes record what made them.
pub const CHUNKER_VERSION: u32 = 2;

/// One semantic unit of code, as stored in the index (without its vector).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Stable id: hash of repo, path, symbol and content.
    pub chunk_id: String,
    /// Repository id.
    pub repo: String,
    /// Path relative to the repository, `/`-separated.
    pub path: String,
    /// Language name (`rust`, `python`, `markdown`, …).
    pub language: String,
    /// `function`, `method`, `struct`, `impl`, `class`, `module`, `window`, …
    pub kind: String,
    /// Qualified symbol (`Type::method`, `pkg.mod.Class.method`); the file name for windows.
    pub symbol: String,
    /// Declaration line(s) of the definition, whitespace-collapsed.
    pub signature: String,
    /// First line of the doc comment or docstring.
    pub doc: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
    /// The exact text of lines `start_line..=end_line`.
    pub content: String,
    /// sha256 of `content`.
    pub content_hash: String,
    /// sha256 of the whole file's bytes when it was chunked.
    pub file_hash: String,
    /// Commit of the repository when indexed (empty outside git).
    pub commit: String,
}

impl Chunk {
    /// Where the chunk is, as citations name it: `repo:path:start-end`.
    pub fn citation(&self) -> String {
        format!(
            "{}:{}:{}-{}",
            self.repo, self.path, self.start_line, self.end_line
        )
    }

    /// The text handed to the embedding model: where the chunk lives and what it declares,
    /// then its code, so that a method is findable by its type's name and its path.
    pub fn embedding_text(&self) -> String {
        let mut text = format!("{} · {} {}\n", self.path, self.kind, self.symbol);
        if !self.signature.is_empty() && !self.content.contains(&self.signature) {
            text.push_str(&self.signature);
            text.push('\n');
        }
        text.push_str(&self.content);
        text
    }
}

/// What the chunker is told about the file besides its text.
#[derive(Debug, Clone, Copy)]
pub struct FileInput<'a> {
    /// Repository id.
    pub repo: &'a str,
    /// Path relative to the repository.
    pub path: &'a str,
    /// Commit being indexed.
    pub commit: &'a str,
    /// sha256 of the file's bytes.
    pub file_hash: &'a str,
    /// The file's text.
    pub text: &'a str,
}

/// Size limits that shape chunks.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// A definition longer than this is split at statement boundaries.
    pub max_lines: usize,
    /// A definition larger than this is split at statement boundaries.
    pub max_bytes: usize,
    /// Chunks smaller than this are merged with small neighbours.
    pub tiny_bytes: usize,
    /// Merged small chunks never grow past this size.
    pub merge_max_bytes: usize,
    /// Lines per window for files without a grammar.
    pub window_lines: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_lines: 60,
            max_bytes: 3000,
            tiny_bytes: 100,
            merge_max_bytes: 600,
            window_lines: 40,
        }
    }
}

/// A language with a tree-sitter grammar: adding one is an entry here plus a query file.
struct LanguageSpec {
    name: &'static str,
    extensions: &'static [&'static str],
    grammar: fn() -> tree_sitter::Language,
    query: &'static str,
    /// Joins the parts of a qualified symbol.
    separator: &'static str,
    /// Qualify top-level symbols with the module path derived from the file path.
    module_from_path: bool,
    /// Sibling nodes right before a definition that belong to it (doc comments, attributes).
    leading_kinds: &'static [&'static str],
}

const LANGUAGES: &[LanguageSpec] = &[
    LanguageSpec {
        name: "rust",
        extensions: &["rs"],
        grammar: || tree_sitter_rust::LANGUAGE.into(),
        query: include_str!("../grammars/rust.scm"),
        separator: "::",
        module_from_path: false,
        leading_kinds: &["line_comment", "block_comment", "attribute_item"],
    },
    LanguageSpec {
        name: "python",
        extensions: &["py", "pyi"],
        grammar: || tree_sitter_python::LANGUAGE.into(),
        query: include_str!("../grammars/python.scm"),
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
const PLAIN_LANGUAGES: &[(&str, &[&str])] = &[
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

/// Containers nested deeper than this do not get chunks of their own: they stay in their
/// ancestor's chunk. It bounds the chunker's recursion and the length of symbols on
/// pathological input (thousands of nested blocks) without touching real code.
pub const MAX_DEFINITION_DEPTH: usize = 24;
/// Longest qualified symbol kept, in characters; a longer one keeps its end (the name).
pub const MAX_SYMBOL_CHARS: usize = 256;
/// Longest name taken from a definition (an `impl` of a huge generic type, say).
const MAX_NAME_CHARS: usize = 128;

/// Kinds whose nested definitions get their own chunks.
const CONTAINER_KINDS: &[&str] = &["impl", "trait", "class", "module"];

struct Grammar {
    spec: &'static LanguageSpec,
    language: tree_sitter::Language,
    query: Query,
    name_capture: u32,
    /// For each capture index, the definition kind it marks (`definition.<kind>`).
    kinds: Vec<Option<String>>,
}

/// Turns files into chunks. Build once; `chunk` is cheap per file.
pub struct Chunker {
    grammars: Vec<Grammar>,
    limits: ChunkLimits,
}

/// A chunk before its text is cut out: a line range plus its metadata.
#[derive(Debug, Clone)]
struct Piece {
    kind: String,
    symbol: String,
    signature: String,
    doc: String,
    /// 0-based first row.
    start: usize,
    /// 0-based last row, inclusive.
    end: usize,
    /// Pieces are only merged with neighbours of the same group (same enclosing container).
    group: Option<usize>,
}

/// A definition found by the query.
#[derive(Debug, Clone)]
struct Def<'t> {
    node: Node<'t>,
    kind: String,
    name: String,
    start: usize,
    end: usize,
    parent: Option<usize>,
    children: Vec<usize>,
    symbol: String,
}

impl Chunker {
    /// Compiles the grammar queries.
    pub fn new(limits: ChunkLimits) -> Result<Chunker> {
        let grammars = LANGUAGES
            .iter()
            .map(|spec| {
                let language = (spec.grammar)();
                let query = Query::new(&language, spec.query).map_err(|e| Error::Grammar {
                    language: spec.name.to_string(),
                    detail: format!("the query does not compile: {e}"),
                })?;
                let name_capture =
                    query
                        .capture_index_for_name("name")
                        .ok_or_else(|| Error::Grammar {
                            language: spec.name.to_string(),
                            detail: "the query has no @name capture".into(),
                        })?;
                let kinds = query
                    .capture_names()
                    .iter()
                    .map(|n| n.strip_prefix("definition.").map(str::to_string))
                    .collect();
                Ok(Grammar {
                    spec,
                    language,
                    query,
                    name_capture,
                    kinds,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Chunker { grammars, limits })
    }

    /// The language name codeq assigns to a path.
    pub fn language_of(&self, path: &str) -> &'static str {
        let ext = extension(path);
        if let Some(g) = self.grammar_for(path) {
            return g.spec.name;
        }
        PLAIN_LANGUAGES
            .iter()
            .find(|(_, exts)| exts.contains(&ext.as_str()))
            .map_or("text", |(name, _)| name)
    }

    fn grammar_for(&self, path: &str) -> Option<&Grammar> {
        let ext = extension(path);
        self.grammars
            .iter()
            .find(|g| g.spec.extensions.contains(&ext.as_str()))
    }

    /// Chunks one file. Never fails: unparsable code falls back to line windows.
    pub fn chunk(&self, input: FileInput<'_>) -> Vec<Chunk> {
        let lines = LineIndex::new(input.text);
        if lines.is_blank() {
            return Vec::new();
        }
        let language = self.language_of(input.path);
        let pieces = match self.grammar_for(input.path) {
            Some(grammar) => self
                .definition_pieces(grammar, input, &lines)
                .unwrap_or_else(|| self.plain_pieces(input.path, language, &lines)),
            None => self.plain_pieces(input.path, language, &lines),
        };
        let pieces = merge_tiny(pieces, &lines, &self.limits);
        let mut chunks: Vec<Chunk> = pieces
            .into_iter()
            .filter(|p| !lines.range_is_blank(p.start, p.end))
            .map(|p| build_chunk(input, language, &lines, p))
            .collect();
        number_repeated_ids(&mut chunks);
        chunks
    }

    fn definition_pieces(
        &self,
        grammar: &Grammar,
        input: FileInput<'_>,
        lines: &LineIndex,
    ) -> Option<Vec<Piece>> {
        let mut parser = Parser::new();
        parser.set_language(&grammar.language).ok()?;
        let tree = parser.parse(input.text, None)?;
        let defs = collect_defs(grammar, &tree, input);
        let module = grammar
            .spec
            .module_from_path
            .then(|| module_path(input.path));
        let file_symbol = module.clone().unwrap_or_else(|| file_name(input.path));
        let top: Vec<usize> = (0..defs.len())
            .filter(|&i| defs[i].parent.is_none())
            .collect();
        let mut emitter = Emitter {
            defs: &defs,
            lines,
            limits: &self.limits,
            text: input.text,
            file_symbol,
            pieces: Vec::new(),
        };
        emitter.emit_range(0, lines.count() - 1, &top, None);
        Some(emitter.pieces)
    }

    fn plain_pieces(&self, path: &str, language: &str, lines: &LineIndex) -> Vec<Piece> {
        let markdown = language == "markdown";
        window_pieces(
            lines,
            0,
            lines.count() - 1,
            &self.limits,
            markdown,
            &Piece {
                kind: "window".into(),
                symbol: file_name(path),
                signature: String::new(),
                doc: String::new(),
                start: 0,
                end: 0,
                group: None,
            },
        )
    }
}

/// Runs the grammar's query and arranges the definitions into a containment tree.
fn collect_defs<'t>(
    grammar: &Grammar,
    tree: &'t tree_sitter::Tree,
    input: FileInput<'_>,
) -> Vec<Def<'t>> {
    let source = input.text.as_bytes();
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(&grammar.query, tree.root_node(), source);
    // Keyed by the name node, so that a decorated definition and its inner match collapse.
    let mut by_name: HashMap<usize, (Node<'t>, String, String)> = HashMap::new();
    while let Some(m) = matches.next() {
        let mut def: Option<(Node<'t>, String)> = None;
        let mut name: Option<Node<'t>> = None;
        for capture in m.captures() {
            if capture.index == grammar.name_capture {
                name = Some(capture.node);
            } else if let Some(Some(kind)) = grammar.kinds.get(capture.index as usize) {
                def = Some((capture.node, kind.clone()));
            }
        }
        let (Some((node, kind)), Some(name_node)) = (def, name) else {
            continue;
        };
        let name_text = clean_name(name_node.utf8_text(source).unwrap_or_default());
        let entry =
            by_name
                .entry(name_node.id())
                .or_insert((node, kind.clone(), name_text.clone()));
        if node.byte_range().len() > entry.0.byte_range().len() {
            *entry = (node, kind, name_text);
        }
    }
    let mut defs: Vec<Def<'t>> = by_name
        .into_values()
        .map(|(node, kind, name)| Def {
            start: leading_start(node, grammar.spec.leading_kinds),
            end: end_row(node),
            node,
            kind,
            name,
            parent: None,
            children: Vec::new(),
            symbol: String::new(),
        })
        .collect();
    defs.sort_by_key(|d| (d.node.start_byte(), std::cmp::Reverse(d.node.end_byte())));

    // Containment: the innermost earlier definition whose bytes enclose this one.
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..defs.len() {
        while let Some(&top) = stack.last() {
            if defs[top].node.end_byte() >= defs[i].node.end_byte() {
                break;
            }
            stack.pop();
        }
        defs[i].parent = stack.last().copied();
        stack.push(i);
    }
    // Definitions inside functions stay part of the function's chunk, and so do those
    // nested deeper than MAX_DEFINITION_DEPTH containers (their ancestor at that depth
    // holds them): 5,000 nested `mod` blocks make 25 chunks, not 5,000 ever longer
    // symbols. A parent always comes before its children, so one pass decides.
    let mut keep = vec![true; defs.len()];
    let mut depth = vec![0usize; defs.len()];
    for i in 0..defs.len() {
        if let Some(p) = defs[i].parent {
            depth[i] = depth[p] + 1;
            keep[i] = keep[p]
                && CONTAINER_KINDS.contains(&defs[p].kind.as_str())
                && depth[i] <= MAX_DEFINITION_DEPTH;
        }
    }
    let mut remap = vec![None; defs.len()];
    let mut kept: Vec<Def<'t>> = Vec::new();
    for (i, def) in defs.into_iter().enumerate() {
        if keep[i] {
            remap[i] = Some(kept.len());
            kept.push(def);
        }
    }
    for i in 0..kept.len() {
        let parent = kept[i].parent.and_then(|p| remap[p]);
        kept[i].parent = parent;
        if let Some(p) = parent {
            kept[p].children.push(i);
            if kept[i].kind == "function" && kept[p].kind != "module" {
                kept[i].kind = "method".into();
            }
            // A child's leading comments may not reach above its container's first line.
            kept[i].start = kept[i].start.max(kept[p].start);
        }
        let prefix = match parent {
            Some(p) => Some(kept[p].symbol.clone()),
            None => grammar
                .spec
                .module_from_path
                .then(|| module_path(input.path)),
        };
        kept[i].symbol = cap_symbol(match prefix {
            Some(prefix) if !prefix.is_empty() => {
                format!("{prefix}{}{}", grammar.spec.separator, kept[i].name)
            }
            _ => kept[i].name.clone(),
        });
    }
    kept
}

/// Walks definitions in order and emits pieces for them and for the code between them.
struct Emitter<'a, 't> {
    defs: &'a [Def<'t>],
    lines: &'a LineIndex<'a>,
    limits: &'a ChunkLimits,
    text: &'a str,
    file_symbol: String,
    pieces: Vec<Piece>,
}

impl Emitter<'_, '_> {
    /// Emits rows `start..=end`, which hold the definitions `children` (in order).
    /// `container` is the definition owning the range, if any.
    fn emit_range(
        &mut self,
        start: usize,
        end: usize,
        children: &[usize],
        container: Option<usize>,
    ) {
        let gap_template = match container {
            Some(c) => self.def_piece(c),
            None => Piece {
                kind: "module".into(),
                symbol: self.file_symbol.clone(),
                signature: String::new(),
                doc: String::new(),
                start: 0,
                end: 0,
                group: None,
            },
        };
        let mut cursor = start;
        for &child in children {
            let def = &self.defs[child];
            if def.end < cursor {
                // It shares its rows with an earlier definition, whose piece holds them.
                continue;
            }
            if def.start > cursor {
                self.emit_gap(cursor, def.start - 1, &gap_template);
            }
            let child_start = def.start.max(cursor);
            if def.children.is_empty() {
                self.emit_definition(child, child_start);
            } else {
                let grandchildren = def.children.clone();
                self.emit_range(child_start, def.end, &grandchildren, Some(child));
            }
            cursor = cursor.max(def.end + 1);
        }
        if cursor <= end {
            self.emit_gap(cursor, end, &gap_template);
        }
    }

    /// Code between definitions: skipped when it is only punctuation, windowed when long.
    fn emit_gap(&mut self, mut start: usize, mut end: usize, template: &Piece) {
        if !self.lines.range_has_word(start, end) {
            return;
        }
        while self.lines.line(start).trim().is_empty() {
            start += 1;
        }
        while self.lines.line(end).trim().is_empty() {
            end -= 1;
        }
        let pieces = window_pieces(self.lines, start, end, self.limits, false, template);
        self.pieces.extend(pieces);
    }

    fn emit_definition(&mut self, index: usize, start: usize) {
        let def = &self.defs[index];
        let mut piece = self.def_piece(index);
        piece.start = start;
        piece.end = def.end;
        let lines = def.end + 1 - start;
        let bytes = self.lines.range_bytes(start, def.end);
        if lines <= self.limits.max_lines && bytes <= self.limits.max_bytes {
            self.pieces.push(piece);
            return;
        }
        let split = split_at_statements(def.node, start, def.end, self.lines, self.limits);
        match split {
            Some(ranges) => self.pieces.extend(ranges.into_iter().map(|(s, e)| Piece {
                start: s,
                end: e,
                ..piece.clone()
            })),
            None => {
                let windows = window_pieces(self.lines, start, def.end, self.limits, false, &piece);
                self.pieces.extend(windows);
            }
        }
    }

    fn def_piece(&self, index: usize) -> Piece {
        let def = &self.defs[index];
        Piece {
            kind: def.kind.clone(),
            symbol: def.symbol.clone(),
            signature: signature(def.node, self.text),
            doc: doc_line(def, self.lines, self.text),
            start: def.start,
            end: def.end,
            group: def.parent,
        }
    }
}

/// Splits an oversized definition at its body's top-level statements.
/// Returns `None` when the body cannot be split into two or more parts.
fn split_at_statements(
    node: Node<'_>,
    start: usize,
    end: usize,
    lines: &LineIndex,
    limits: &ChunkLimits,
) -> Option<Vec<(usize, usize)>> {
    let body = body_of(node)?;
    let mut walker = body.walk();
    let statement_ends: Vec<usize> = body
        .named_children(&mut walker)
        .map(|s| end_row(s).min(end))
        .collect();
    let mut parts = Vec::new();
    let mut part_start = start;
    let mut last_end: Option<usize> = None;
    for stmt_end in statement_ends {
        if let Some(prev) = last_end {
            let too_long = stmt_end + 1 - part_start > limits.max_lines
                || lines.range_bytes(part_start, stmt_end) > limits.max_bytes;
            if too_long && prev >= part_start && prev < end {
                parts.push((part_start, prev));
                part_start = prev + 1;
            }
        }
        last_end = Some(stmt_end);
    }
    parts.push((part_start, end));
    (parts.len() > 1).then_some(parts)
}

/// Cuts rows `start..=end` into windows, preferring to end a window at a blank line
/// (or, in Markdown, before a heading). Windows inherit `template`'s metadata.
fn window_pieces(
    lines: &LineIndex,
    start: usize,
    end: usize,
    limits: &ChunkLimits,
    markdown: bool,
    template: &Piece,
) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut cursor = start;
    let mut heading: Option<String> = None;
    while cursor <= end {
        let mut stop = (cursor + limits.window_lines - 1).min(end);
        // Keep windows under the byte limit too (long lines), but always take one line.
        while stop > cursor && lines.range_bytes(cursor, stop) > limits.max_bytes {
            stop -= 1;
        }
        if stop < end {
            let earliest = cursor + (stop - cursor) / 2;
            let boundary = (earliest + 1..=stop).rev().find(|&row| {
                lines.line(row).trim().is_empty()
                    || (markdown && lines.line(row + 1).starts_with('#'))
            });
            if let Some(b) = boundary {
                stop = b;
            }
        }
        let mut piece = template.clone();
        piece.start = cursor;
        piece.end = stop;
        if markdown {
            let headings: Vec<String> = (cursor..=stop)
                .map(|r| lines.line(r))
                .filter(|l| l.starts_with('#'))
                .map(|l| l.trim_start_matches('#').trim().to_string())
                .collect();
            if let Some(h) = heading.as_ref().or(headings.first()) {
                piece.symbol = format!("{} > {h}", template.symbol);
            }
            if let Some(last) = headings.last() {
                heading = Some(last.clone());
            }
        }
        pieces.push(piece);
        cursor = stop + 1;
    }
    pieces
}

/// Merges runs of small neighbouring pieces of the same container into one piece.
fn merge_tiny(pieces: Vec<Piece>, lines: &LineIndex, limits: &ChunkLimits) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if let Some(last) = out.last_mut() {
            let last_bytes = lines.range_bytes(last.start, last.end);
            let bytes = lines.range_bytes(piece.start, piece.end);
            let adjacent = piece.start > last.end
                && (last.end + 1..piece.start).all(|r| lines.line(r).trim().is_empty());
            let mergeable = |p: &Piece| {
                p.kind != "module"
                    && p.kind != "window"
                    && !CONTAINER_KINDS.contains(&p.kind.as_str())
            };
            if adjacent
                && mergeable(last)
                && mergeable(&piece)
                && last.group == piece.group
                && bytes < limits.tiny_bytes
                && last_bytes < limits.merge_max_bytes
                && lines.range_bytes(last.start, piece.end) <= limits.merge_max_bytes
                && (last_bytes < limits.tiny_bytes || last.symbol.contains(", "))
            {
                if last.kind != piece.kind {
                    last.kind = "group".into();
                }
                if last.symbol != piece.symbol {
                    last.symbol = format!("{}, {}", last.symbol, piece.symbol);
                }
                last.end = piece.end;
                continue;
            }
        }
        out.push(piece);
    }
    out
}

/// Chunks of one file with the same symbol and the same text (repeated boilerplate,
/// generated code, a redefined function) would share their content-addressed id. Then the
/// lanes could not tell them apart, and a round of pending vectors would store one vector
/// for two BM25 documents. The second and later copies get their occurrence number mixed
/// into the id, so an id names one place, and the id of a chunk without a twin is unchanged.
fn number_repeated_ids(chunks: &mut [Chunk]) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for chunk in chunks {
        let occurrence = seen.entry(chunk.chunk_id.clone()).or_insert(0);
        if *occurrence > 0 {
            chunk.chunk_id =
                sha256_parts(&[chunk.chunk_id.as_bytes(), occurrence.to_string().as_bytes()])[..32]
                    .to_string();
        }
        *occurrence += 1;
    }
}

fn build_chunk(input: FileInput<'_>, language: &str, lines: &LineIndex, piece: Piece) -> Chunk {
    let symbol = cap_symbol(piece.symbol);
    let content = lines.range_text(piece.start, piece.end).to_string();
    let content_hash = sha256_hex(content.as_bytes());
    let chunk_id = sha256_parts(&[
        input.repo.as_bytes(),
        input.path.as_bytes(),
        symbol.as_bytes(),
        content.as_bytes(),
    ])[..32]
        .to_string();
    Chunk {
        chunk_id,
        repo: input.repo.to_string(),
        path: input.path.to_string(),
        language: language.to_string(),
        kind: piece.kind,
        symbol,
        signature: piece.signature,
        doc: piece.doc,
        start_line: piece.start as u32 + 1,
        end_line: piece.end as u32 + 1,
        content,
        content_hash,
        file_hash: input.file_hash.to_string(),
        commit: input.commit.to_string(),
    }
}

/// The definition's body node (`body` field, or the body of a decorated definition).
fn body_of(node: Node<'_>) -> Option<Node<'_>> {
    node.child_by_field_name("body").or_else(|| {
        node.child_by_field_name("definition")
            .and_then(|d| d.child_by_field_name("body"))
    })
}

/// The declaration text before the body, whitespace-collapsed and capped.
fn signature(node: Node<'_>, text: &str) -> String {
    let inner = node.child_by_field_name("definition").unwrap_or(node);
    let end = body_of(node).map_or_else(
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
    let trimmed = collapsed.trim_end_matches([':', '{', ' ']);
    truncate_chars(trimmed, 200)
}

/// First line of the definition's doc comment (leading comments) or docstring.
fn doc_line(def: &Def<'_>, lines: &LineIndex, text: &str) -> String {
    let node_row = def.node.start_position().row;
    for row in def.start..node_row {
        let line = lines.line(row).trim();
        if line.starts_with("#[") || line.starts_with('@') {
            continue;
        }
        let stripped = line
            .trim_start_matches("///")
            .trim_start_matches("//!")
            .trim_start_matches("//")
            .trim_start_matches("/**")
            .trim_start_matches("/*")
            .trim_start_matches('#')
            .trim_start_matches('*')
            .trim_end_matches("*/")
            .trim();
        if !stripped.is_empty() {
            return truncate_chars(stripped, 200);
        }
    }
    let docstring = body_of(def.node)
        .and_then(|b| b.named_child(0))
        .filter(|s| s.kind() == "expression_statement")
        .and_then(|s| s.named_child(0))
        .filter(|s| s.kind() == "string");
    if let Some(s) = docstring {
        let raw = text.get(s.byte_range()).unwrap_or_default();
        let inner = raw.trim_matches(|c| c == '"' || c == '\'' || c == 'r' || c == 'b');
        if let Some(first) = inner.lines().map(str::trim).find(|l| !l.is_empty()) {
            return truncate_chars(first, 200);
        }
    }
    String::new()
}

/// First row of a definition, extended upward over its doc comments and attributes.
fn leading_start(node: Node<'_>, leading_kinds: &[&str]) -> usize {
    let mut start = node.start_position().row;
    let mut prev = node.prev_sibling();
    while let Some(p) = prev {
        if !leading_kinds.contains(&p.kind()) || end_row(p) + 1 < start {
            break;
        }
        start = p.start_position().row;
        prev = p.prev_sibling();
    }
    start
}

/// Last row of a node, not counting a trailing newline that ends at column 0.
fn end_row(node: Node<'_>) -> usize {
    let end = node.end_position();
    if end.column == 0 && end.row > node.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}

/// `Foo<T>` → `Foo`; `&'a mut Bar` → `Bar`: the name a qualified symbol should use (at
/// most [`MAX_NAME_CHARS`] characters).
fn clean_name(raw: &str) -> String {
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
fn cap_symbol(symbol: String) -> String {
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
fn module_path(path: &str) -> String {
    let without_ext = path.rsplit_once('.').map_or(path, |(stem, _)| stem);
    let without_src = without_ext.strip_prefix("src/").unwrap_or(without_ext);
    let dotted = without_src.replace('/', ".");
    dotted
        .strip_suffix(".__init__")
        .map(str::to_string)
        .unwrap_or(dotted)
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default()
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Line offsets of a text, for cutting chunks out by row.
struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        if starts.len() > 1 && starts.last() == Some(&text.len()) {
            starts.pop();
        }
        LineIndex { text, starts }
    }

    fn count(&self) -> usize {
        self.starts.len()
    }

    fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// Byte range of rows `start..=end`, without the final newline.
    fn byte_range(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        let last = end.min(self.count() - 1);
        let from = self.starts[start.min(last)];
        let to = self
            .starts
            .get(last + 1)
            .map_or(self.text.len(), |&next| next - 1);
        let line = &self.text[from..to.max(from)];
        let trimmed = line.strip_suffix('\n').unwrap_or(line);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        from..from + trimmed.len()
    }

    fn range_text(&self, start: usize, end: usize) -> &'a str {
        &self.text[self.byte_range(start, end)]
    }

    fn range_bytes(&self, start: usize, end: usize) -> usize {
        self.byte_range(start, end).len()
    }

    fn line(&self, row: usize) -> &'a str {
        if row >= self.count() {
            return "";
        }
        self.range_text(row, row)
    }

    fn range_is_blank(&self, start: usize, end: usize) -> bool {
        self.range_text(start, end).trim().is_empty()
    }

    fn range_has_word(&self, start: usize, end: usize) -> bool {
        self.range_text(start, end)
            .chars()
            .any(|c| c.is_alphanumeric())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(path: &str, text: &str) -> Vec<Chunk> {
        let chunker = Chunker::new(ChunkLimits::default()).unwrap();
        chunker.chunk(FileInput {
            repo: "r",
            path,
            commit: "c",
            file_hash: "h",
            text,
        })
    }

    fn summary(chunks: &[Chunk]) -> Vec<(String, String, u32, u32)> {
        chunks
            .iter()
            .map(|c| (c.kind.clone(), c.symbol.clone(), c.start_line, c.end_line))
            .collect()
    }

    fn owned(rows: &[(&str, &str, u32, u32)]) -> Vec<(String, String, u32, u32)> {
        rows.iter()
            .map(|(k, s, a, b)| (k.to_string(), s.to_string(), *a, *b))
            .collect()
    }

    #[test]
    fn rust_methods_are_qualified_by_their_impl_type() {
        let src = "\
use std::fmt;

/// A point in the plane,
/// with integer coordinates.
#[derive(Debug)]
pub struct Point {
    x: i64,
    y: i64,
    label: String,
    weight: f64,
    tags: Vec<String>,
}

impl<T> Grid<T> {
    /// Builds an empty grid of the given size.
    pub fn new(width: usize, height: usize) -> Self {
        let cells = Vec::with_capacity(width * height);
        let origin = Point { x: 0, y: 0, label: String::new(), weight: 0.0, tags: vec![] };
        Grid { width, height, cells, origin }
    }

    fn area(&self) -> usize {
        let w = self.width;
        let h = self.height;
        let area = w * h;
        assert!(area < usize::MAX / 2, \"grid too large for this platform\");
        area
    }
}

fn distance(a: &Point, b: &Point) -> f64 {
    let dx = (a.x - b.x) as f64;
    let dy = (a.y - b.y) as f64;
    (dx * dx + dy * dy).sqrt()
}
";
        let chunks = chunks_of("src/geo.rs", src);
        assert_eq!(
            summary(&chunks),
            owned(&[
                ("module", "geo.rs", 1, 1),
                ("struct", "Point", 3, 12),
                ("impl", "Grid", 14, 14),
                ("method", "Grid::new", 15, 20),
                ("method", "Grid::area", 22, 28),
                ("function", "distance", 31, 35),
            ])
        );
        let point = &chunks[1];
        assert_eq!(point.doc, "A point in the plane,");
        assert_eq!(point.signature, "pub struct Point");
        let new = &chunks[3];
        assert_eq!(new.doc, "Builds an empty grid of the given size.");
        assert_eq!(
            new.signature,
            "pub fn new(width: usize, height: usize) -> Self"
        );
        assert!(new.content.starts_with("    /// Builds an empty grid"));
        assert!(new.content.ends_with("    }"));
    }

    #[test]
    fn python_symbols_carry_module_and_class() {
        let src = "\
\"\"\"Billing helpers.\"\"\"
import decimal


class Invoice:
    \"\"\"An invoice with line items.\"\"\"

    TAX_RATE = decimal.Decimal(\"0.2\")

    @property
    def total(self):
        \"\"\"Sum of all line items, tax included.\"\"\"
        subtotal = sum(item.amount for item in self.items)
        return subtotal * (1 + self.TAX_RATE)


def render_invoice(invoice, template):
    def fmt(x):
        return f\"{x:.2f}\"
    return template.format(total=fmt(invoice.total))
";
        let chunks = chunks_of("src/billing/invoice.py", src);
        assert_eq!(
            summary(&chunks),
            owned(&[
                ("module", "billing.invoice", 1, 2),
                ("class", "billing.invoice.Invoice", 5, 8),
                ("method", "billing.invoice.Invoice.total", 10, 14),
                ("function", "billing.invoice.render_invoice", 17, 20),
            ])
        );
        assert_eq!(chunks[1].doc, "An invoice with line items.");
        assert_eq!(chunks[2].doc, "Sum of all line items, tax included.");
        assert_eq!(chunks[2].signature, "def total(self)");
    }

    #[test]
    fn oversized_functions_split_at_statements_with_the_signature_kept() {
        let mut src = String::from("fn long_one(n: u32) -> u32 {\n");
        for i in 0..150 {
            src.push_str(&format!("    let v{i} = n + {i};\n"));
        }
        src.push_str("    n\n}\n");
        let chunks = chunks_of("a.rs", &src);
        assert!(chunks.len() >= 3, "{:?}", summary(&chunks));
        assert!(chunks.iter().all(|c| c.symbol == "long_one"));
        assert!(
            chunks
                .iter()
                .all(|c| c.signature == "fn long_one(n: u32) -> u32")
        );
        assert!(
            chunks
                .iter()
                .all(|c| (c.end_line - c.start_line + 1) as usize <= 60)
        );
        // The parts tile the function exactly.
        assert_eq!(chunks[0].start_line, 1);
        assert_eq!(chunks.last().unwrap().end_line, 153);
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end_line + 1, pair[1].start_line);
        }
        assert!(
            chunks[1]
                .embedding_text()
                .contains("fn long_one(n: u32) -> u32")
        );
    }

    #[test]
    fn tiny_neighbours_are_merged() {
        let src = "\
struct A;
struct B;
struct C;
fn big() {
    let x = 1;
    let y = 2;
    let z = 3;
    let long_name_to_make_this_function_large_enough = x + y + z;
    println!(\"{}\", long_name_to_make_this_function_large_enough);
    let w = long_name_to_make_this_function_large_enough * 2;
    println!(\"{}\", w);
}
";
        let chunks = chunks_of("t.rs", src);
        assert_eq!(
            summary(&chunks),
            owned(&[("struct", "A, B, C", 1, 3), ("function", "big", 4, 12)])
        );
    }

    #[test]
    fn other_files_get_line_windows_with_markdown_headings() {
        let mut md = String::from("# Guide\n\nIntro text.\n\n## Install\n\n");
        for i in 0..60 {
            md.push_str(&format!("Step {i}: do the thing.\n"));
        }
        let chunks = chunks_of("docs/guide.md", &md);
        assert!(chunks.len() >= 2);
        assert!(
            chunks
                .iter()
                .all(|c| c.kind == "window" && c.language == "markdown")
        );
        assert_eq!(chunks[0].start_line, 1);
        assert!(chunks[0].symbol.starts_with("guide.md > Guide"));
        assert_eq!(chunks.last().unwrap().end_line, 66);
        assert!(chunks.last().unwrap().symbol.ends_with("Install"));
    }

    #[test]
    fn garbage_and_edge_cases_do_not_panic() {
        for text in [
            "",
            "\n\n\n",
            "fn (",
            "}}}}",
            "def",
            "\u{feff}fn x() {}",
            "fn a() {}\r\nfn b() {}\r\n",
        ] {
            for path in ["x.rs", "x.py", "x.txt"] {
                let chunks = chunks_of(path, text);
                for c in &chunks {
                    assert!(c.start_line <= c.end_line);
                }
            }
        }
        let crlf = chunks_of("c.rs", "fn a() {}\r\nfn b() {}\r\n");
        assert!(crlf.iter().all(|c| !c.content.ends_with('\r')));
        let long_line = "x".repeat(100_000);
        let chunks = chunks_of("big.txt", &long_line);
        assert_eq!(chunks.len(), 1);
    }

    /// Definitions that share a line (minified code, or a parse recovered from garbage):
    /// the first one's chunk covers the line, and no later one may yield a chunk that ends
    /// before it starts. The first input is the case the fuzz test found.
    #[test]
    fn definitions_sharing_a_line_yield_one_well_formed_chunk() {
        for (path, text) in [
            (
                "lib.rs",
                "def fn )pub r#\"\"{impl struct fn fn ;impl pub lambda [struct fn ",
            ),
            (
                "one.rs",
                "fn a() {} fn b() {} struct S; impl S { fn c() {} }",
            ),
            ("one.py", "def a(): pass; x = 1\nclass B: pass; y = 2\n"),
        ] {
            let chunks = chunks_of(path, text);
            let lines = text.lines().count() as u32;
            assert!(!chunks.is_empty(), "{path}: no chunk");
            for c in &chunks {
                assert!(
                    1 <= c.start_line && c.start_line <= c.end_line && c.end_line <= lines,
                    "{path}: chunk {}..{} of {lines} lines",
                    c.start_line,
                    c.end_line
                );
            }
        }
    }

    #[test]
    fn chunk_ids_are_stable_and_content_addressed() {
        let a = chunks_of("a.rs", "fn f() { 1 }\n");
        let b = chunks_of("a.rs", "fn f() { 1 }\n");
        let c = chunks_of("a.rs", "fn f() { 2 }\n");
        assert_eq!(a[0].chunk_id, b[0].chunk_id);
        assert_ne!(a[0].chunk_id, c[0].chunk_id);
        assert_eq!(a[0].content_hash, sha256_hex(b"fn f() { 1 }"));
    }

    #[test]
    fn identical_chunks_of_one_file_get_distinct_ids() {
        let def = "def export_rows(rows):\n    \"\"\"Writes every row to the export file, one line each.\"\"\"\n    for row in rows:\n        print(row)\n";
        let once = chunks_of("dup.py", def);
        let twice = chunks_of("dup.py", &format!("{def}\n\n{def}"));
        assert_eq!(twice.len(), 2, "{twice:?}");
        assert_eq!(twice[0].content, twice[1].content);
        assert_eq!(twice[0].symbol, twice[1].symbol);
        assert_ne!(twice[0].chunk_id, twice[1].chunk_id);
        assert_eq!(
            once[0].chunk_id, twice[0].chunk_id,
            "the first copy keeps its id"
        );
    }

    #[test]
    fn thousands_of_nested_containers_stay_bounded() {
        let depth = 5000;
        let mut src = String::new();
        for i in 0..depth {
            src.push_str(&format!("mod m{i} {{\n"));
        }
        src.push_str("fn innermost() {}\n");
        for _ in 0..depth {
            src.push_str("}\n");
        }
        let chunks = chunks_of("src/deep.rs", &src);
        assert!(!chunks.is_empty());
        // The container at the depth limit holds the rest, cut into windows.
        assert!(chunks.len() < 400, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.symbol.chars().count() <= MAX_SYMBOL_CHARS, "{}", c.symbol);
            assert!(c.start_line <= c.end_line);
        }
        assert_eq!(chunks.first().unwrap().start_line, 1);
        assert!(chunks.iter().any(|c| c.content.contains("fn innermost")));
    }
}
