//! Splits source files into chunks: tree-sitter definitions for languages with a grammar
//! (queries in `grammars/*.scm`), line windows for every other text file.
//!
//! Every line of a file belongs to at most one chunk; definitions nested in containers
//! (impl blocks, traits, classes, inline modules) become their own chunks with qualified
//! symbols, and the code between definitions becomes module-level chunks.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Parser, Query};

use crate::error::{Error, Result};
use crate::hash::{sha256_hex, sha256_parts};

mod definitions;
pub mod languages;
mod pieces;
mod symbols;

use definitions::{Def, collect_defs, error_bytes};
use languages::{LANGUAGES, Syntax};
pub use languages::{LanguageSpec, grammar_languages};
use pieces::{LineIndex, merge_tiny, split_at_statements, window_pieces};
use symbols::{cap_symbol, doc_line, end_row, file_name, signature};

/// Bumped whenever chunk boundaries or fields change, so indexes record what made them.
/// 3: sixteen grammar languages through the registry; docstrings from the query.
/// 4: JavaScript functions assigned to a `var` or to a property (`res.send = function …`).
/// 5: a 1–2 line part of a container (a class attribute, Ruby's `end`) joins the piece
///    before it; a file its grammar mostly cannot parse keeps its intact definitions
///    instead of becoming all windows.
/// 6: Haskell and Elixir grammars; a function's adjacent clauses are one definition there.
/// 7: an oversized definition also splits inside a statement too long to be one chunk (a
///    shell `case`, a `switch`, a returned object literal).
/// 8: a license comment right above a definition is not its doc line.
pub const CHUNKER_VERSION: u32 = 8;

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

/// Containers nested deeper than this do not get chunks of their own: they stay in their
/// ancestor's chunk. It bounds the chunker's recursion and the length of symbols on
/// pathological input (thousands of nested blocks) without touching real code.
pub const MAX_DEFINITION_DEPTH: usize = 24;
/// Longest qualified symbol kept, in characters; a longer one keeps its end (the name).
pub const MAX_SYMBOL_CHARS: usize = 256;
/// Longest name taken from a definition (an `impl` of a huge generic type, say).
const MAX_NAME_CHARS: usize = 128;

/// Container parts of at most this many lines do not stand alone: one line of a class (an
/// attribute between two methods, Ruby's closing `end`) says little but the class's name,
/// and a list of them fills a result page with the same class. They join the piece before
/// them in the container. A short header stays a chunk of its own: it is the container's
/// definition, and leading the first member with it measured worse on the Semble suite.
const FRAGMENT_LINES: usize = 2;

/// More than this share of a file's bytes inside parse errors means the grammar could not
/// read it: only its definitions without errors inside become chunks, windows the rest
/// (all of it when none is intact), and the index report says so.
const MAX_ERROR_SHARE: f64 = 0.5;

/// Capture indexes of a chunk query.
struct Captures {
    name: u32,
    body: Option<u32>,
    receiver: Option<u32>,
    doc: Option<u32>,
    package: Option<u32>,
}

struct Grammar {
    spec: &'static LanguageSpec,
    syntax: &'static Syntax,
    language: tree_sitter::Language,
    query: Query,
    captures: Captures,
    /// For each capture index, the definition kind it marks (`definition.<kind>`).
    kinds: Vec<Option<String>>,
}

impl Grammar {
    /// Loads a registry entry's grammar and compiles its chunk query.
    fn load(spec: &'static LanguageSpec, syntax: &'static Syntax) -> Result<Grammar> {
        let problem = |detail: String| Error::Grammar {
            language: spec.name.to_string(),
            detail,
        };
        let language = (syntax.grammar)();
        Parser::new()
            .set_language(&language)
            .map_err(|e| problem(format!("the grammar does not load: {e}")))?;
        let query = Query::new(&language, syntax.chunks)
            .map_err(|e| problem(format!("the chunk query does not compile: {e}")))?;
        let name = query
            .capture_index_for_name("name")
            .ok_or_else(|| problem("the chunk query has no @name capture".into()))?;
        let captures = Captures {
            name,
            body: query.capture_index_for_name("body"),
            receiver: query.capture_index_for_name("receiver"),
            doc: query.capture_index_for_name("doc"),
            package: query.capture_index_for_name("package"),
        };
        let kinds = query
            .capture_names()
            .iter()
            .map(|n| n.strip_prefix("definition.").map(str::to_string))
            .collect();
        Ok(Grammar {
            spec,
            syntax,
            language,
            query,
            captures,
            kinds,
        })
    }
}

/// A registered grammar that could not be used; its files are cut into windows.
#[derive(Debug, Clone)]
pub struct GrammarProblem {
    /// The language.
    pub language: &'static str,
    /// What went wrong, for the index report.
    pub detail: String,
}

/// How a file was chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkMode {
    /// At its grammar's definitions.
    Definitions,
    /// In line windows: the language has no grammar (or none that loaded).
    Windows,
    /// Its grammar could not parse most of it (macros it does not know, say): at the
    /// definitions that parsed without errors, windows between them.
    IntactDefinitions,
    /// In line windows because its grammar could not parse it.
    WindowsAfterParseFailure,
}

/// The chunks of one file and how they were made.
#[derive(Debug, Clone)]
pub struct ChunkedFile {
    /// The chunks, in file order.
    pub chunks: Vec<Chunk>,
    /// Definitions or windows, and why.
    pub mode: ChunkMode,
}

/// Turns files into chunks. Build once; `chunk` is cheap per file.
pub struct Chunker {
    grammars: Vec<Grammar>,
    unavailable: Vec<GrammarProblem>,
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
    /// For a part of a container that holds other definitions (its header, the code
    /// between its members), that container: never merged into a neighbour as a small
    /// definition, but a fragment of it joins the container's other pieces.
    part_of: Option<usize>,
}

impl Piece {
    /// A template for text outside any definition (module code, windows): no signature,
    /// doc or group; the range is set by whoever cuts it.
    fn outside_definitions(kind: &str, symbol: String) -> Piece {
        Piece {
            kind: kind.into(),
            symbol,
            signature: String::new(),
            doc: String::new(),
            start: 0,
            end: 0,
            group: None,
            part_of: None,
        }
    }
}

impl Chunker {
    /// Loads every registered grammar. One that does not load or whose query does not
    /// compile is listed in [`Chunker::unavailable`] and its files are cut into windows.
    pub fn new(limits: ChunkLimits) -> Chunker {
        let mut grammars = Vec::new();
        let mut unavailable = Vec::new();
        for spec in LANGUAGES {
            let Some(syntax) = &spec.syntax else {
                continue;
            };
            match Grammar::load(spec, syntax) {
                Ok(grammar) => grammars.push(grammar),
                Err(e) => {
                    tracing::warn!(language = spec.name, error = %e, "grammar unavailable");
                    unavailable.push(GrammarProblem {
                        language: spec.name,
                        detail: e.to_string(),
                    });
                }
            }
        }
        Chunker {
            grammars,
            unavailable,
            limits,
        }
    }

    /// Registered grammars that could not be used, with the reason.
    pub fn unavailable(&self) -> &[GrammarProblem] {
        &self.unavailable
    }

    fn grammar_of(&self, spec: &LanguageSpec) -> Option<&Grammar> {
        self.grammars.iter().find(|g| g.spec.name == spec.name)
    }

    /// Chunks one file. Never fails: unparsable code falls back to line windows.
    pub fn chunk(&self, input: FileInput<'_>) -> Vec<Chunk> {
        self.chunk_file(input).chunks
    }

    /// Chunks one file and says whether its grammar's definitions or windows were used.
    pub fn chunk_file(&self, input: FileInput<'_>) -> ChunkedFile {
        let lines = LineIndex::new(input.text);
        if lines.is_blank() {
            return ChunkedFile {
                chunks: Vec::new(),
                mode: ChunkMode::Windows,
            };
        }
        let spec = languages::detect(input.path, input.text);
        let language = spec.map_or("text", |s| s.name);
        let heading_windows = spec.is_some_and(|s| s.heading_windows);
        let grammar = spec.and_then(|s| self.grammar_of(s));
        let (pieces, mode) = match grammar {
            Some(grammar) => match self.definition_pieces(grammar, input, &lines) {
                Some(chunked) => chunked,
                None => (
                    self.plain_pieces(input.path, false, &lines),
                    ChunkMode::WindowsAfterParseFailure,
                ),
            },
            None => (
                self.plain_pieces(input.path, heading_windows, &lines),
                ChunkMode::Windows,
            ),
        };
        let pieces = merge_tiny(pieces, &lines, &self.limits);
        let mut chunks: Vec<Chunk> = pieces
            .into_iter()
            .filter(|p| !lines.range_is_blank(p.start, p.end))
            .map(|p| build_chunk(input, language, &lines, p))
            .collect();
        number_repeated_ids(&mut chunks);
        ChunkedFile { chunks, mode }
    }

    fn definition_pieces(
        &self,
        grammar: &Grammar,
        input: FileInput<'_>,
        lines: &LineIndex,
    ) -> Option<(Vec<Piece>, ChunkMode)> {
        let mut parser = Parser::new();
        parser.set_language(&grammar.language).ok()?;
        let tree = parser.parse(input.text, None)?;
        let root = tree.root_node();
        let damaged = root.has_error()
            && error_bytes(root) as f64 > MAX_ERROR_SHARE * input.text.len().max(1) as f64;
        let found = collect_defs(grammar, &tree, input, damaged);
        if damaged && found.defs.is_empty() {
            return None;
        }
        let file_symbol = match &found.prefix {
            Some(module) if grammar.syntax.module_from_path => module.clone(),
            _ => file_name(input.path),
        };
        let defs = found.defs;
        let top: Vec<usize> = (0..defs.len())
            .filter(|&i| defs[i].parent.is_none())
            .collect();
        let mut emitter = Emitter {
            defs: &defs,
            lines,
            limits: &self.limits,
            text: input.text,
            leading_kinds: grammar.syntax.leading_kinds,
            file_symbol,
            pieces: Vec::new(),
        };
        emitter.emit_range(0, lines.count() - 1, &top, None);
        let mode = match damaged {
            true => ChunkMode::IntactDefinitions,
            false => ChunkMode::Definitions,
        };
        Some((emitter.pieces, mode))
    }

    fn plain_pieces(&self, path: &str, heading_windows: bool, lines: &LineIndex) -> Vec<Piece> {
        window_pieces(
            lines,
            0,
            lines.count() - 1,
            &self.limits,
            heading_windows,
            &Piece::outside_definitions("window", file_name(path)),
        )
    }
}

/// The language name codeq gives a file (`text` when the registry knows none).
pub fn language_name(path: &str, text: &str) -> &'static str {
    languages::detect(path, text).map_or("text", |s| s.name)
}

/// Walks definitions in order and emits pieces for them and for the code between them.
struct Emitter<'a, 't> {
    defs: &'a [Def<'t>],
    lines: &'a LineIndex<'a>,
    limits: &'a ChunkLimits,
    text: &'a str,
    leading_kinds: &'a [&'a str],
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
            Some(c) => Piece {
                part_of: Some(c),
                ..self.def_piece(c)
            },
            None => Piece::outside_definitions("module", self.file_symbol.clone()),
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

    /// Code between definitions: skipped when it is only punctuation, windowed when long;
    /// a short part of a container joins the piece before it inside the container.
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
        if let Some(container) = template.part_of
            && end + 1 - start <= FRAGMENT_LINES
            && let Some(last) = self.pieces.last_mut()
            && last.start >= self.defs[container].start
            && last.end < start
        {
            // Only blank lines lie between: the rows from `last.end` on are this gap's.
            last.end = end;
            return;
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
        let split = split_at_statements(def.body, start, def.end, self.lines, self.limits);
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
            signature: signature(def.node, def.body, self.text),
            doc: doc_line(def, self.leading_kinds, self.text),
            start: def.start,
            end: def.end,
            group: def.parent,
            part_of: None,
        }
    }
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

#[cfg(test)]
mod tests;
