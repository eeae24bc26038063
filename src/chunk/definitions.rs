//! Definitions in one parsed file: the grammar's query matches merged per name, arranged
//! into a containment tree, pruned to what gets its own chunk, and given qualified symbols.
//! Also measures how much of a tree did not parse.

use std::collections::HashMap;

use tree_sitter::{Node, QueryCursor, StreamingIterator};

use super::symbols::{body_of, cap_symbol, clean_name, end_row, leading_start, module_path};
use super::{FileInput, Grammar, MAX_DEFINITION_DEPTH};

/// Kinds whose nested definitions get their own chunks.
pub(super) const CONTAINER_KINDS: &[&str] = &[
    "impl",
    "trait",
    "class",
    "module",
    "namespace",
    "interface",
    "struct",
    "enum",
    "union",
    "object",
    "protocol",
    "extension",
];

/// Containers whose functions stay functions (a namespace's), not methods.
const NAMESPACE_KINDS: &[&str] = &["module", "namespace"];

/// A definition found by the query.
#[derive(Debug, Clone)]
pub(super) struct Def<'t> {
    pub(super) node: Node<'t>,
    pub(super) kind: String,
    pub(super) name: String,
    /// The body: the `@body` capture, else the node's `body` field.
    pub(super) body: Option<Node<'t>>,
    /// A docstring captured as `@doc`.
    pub(super) docstring: Option<Node<'t>>,
    /// The type a method is declared on outside any container (Go receivers).
    pub(super) receiver: Option<String>,
    pub(super) start: usize,
    pub(super) end: usize,
    /// Where the definition's last byte is: its node's end, or its last clause's.
    pub(super) end_byte: usize,
    pub(super) parent: Option<usize>,
    pub(super) children: Vec<usize>,
    pub(super) symbol: String,
}

/// Bytes of the tree inside parse errors (outermost `ERROR` nodes only).
pub(super) fn error_bytes(root: Node<'_>) -> usize {
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() {
            total += node.byte_range().len();
            continue;
        }
        let mut cursor = node.walk();
        stack.extend(node.children(&mut cursor).filter(|c| c.has_error()));
    }
    total
}

/// What the query found in one file.
pub(super) struct FoundDefs<'t> {
    pub(super) defs: Vec<Def<'t>>,
    /// What top-level symbols are qualified by: the module path or the `@package` name.
    pub(super) prefix: Option<String>,
}

/// The captures of every match that named the same node, merged.
struct Named<'t> {
    def: Option<(Node<'t>, String)>,
    body: Option<Node<'t>>,
    docstring: Option<Node<'t>>,
    receiver: Option<Node<'t>>,
    name: Node<'t>,
}

/// Runs the grammar's query and arranges the definitions into a containment tree.
///
/// In a `damaged` file only definitions without parse errors inside count: a container
/// that did not parse gives up its intact members to the container around it.
pub(super) fn collect_defs<'t>(
    grammar: &Grammar,
    tree: &'t tree_sitter::Tree,
    input: FileInput<'_>,
    damaged: bool,
) -> FoundDefs<'t> {
    let source = input.text.as_bytes();
    let text_of = |node: Node<'_>| node.utf8_text(source).unwrap_or_default().to_string();
    let captures = &grammar.captures;
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(&grammar.query, tree.root_node(), source);
    let mut package: Option<String> = None;
    // Keyed by the name node, so that a decorated or exported definition and its inner
    // match collapse into the outermost one, and captures of several patterns merge.
    let mut by_name: HashMap<usize, Named<'t>> = HashMap::new();
    while let Some(m) = matches.next() {
        let mut def: Option<(Node<'t>, String)> = None;
        let mut name: Option<Node<'t>> = None;
        let (mut body, mut docstring, mut receiver) = (None, None, None);
        for capture in m.captures() {
            let index = Some(capture.index);
            if capture.index == captures.name {
                name = Some(capture.node);
            } else if index == captures.body {
                body = Some(capture.node);
            } else if index == captures.doc {
                docstring = Some(capture.node);
            } else if index == captures.receiver {
                receiver = Some(capture.node);
            } else if index == captures.package {
                package.get_or_insert_with(|| text_of(capture.node));
            } else if let Some(Some(kind)) = grammar.kinds.get(capture.index as usize) {
                def = Some((capture.node, kind.clone()));
            }
        }
        let Some(name) = name else {
            continue;
        };
        let entry = by_name.entry(name.id()).or_insert(Named {
            def: None,
            body: None,
            docstring: None,
            receiver: None,
            name,
        });
        if let Some((node, kind)) = def
            && entry
                .def
                .as_ref()
                .is_none_or(|(held, _)| node.byte_range().len() > held.byte_range().len())
        {
            entry.def = Some((node, kind));
        }
        entry.body = entry.body.or(body);
        entry.docstring = entry.docstring.or(docstring);
        entry.receiver = entry.receiver.or(receiver);
    }
    // A definition matched under two names (a grammar whose `name` field also holds the
    // return type) keeps the first of them.
    let mut named_defs: Vec<Named<'t>> = by_name.into_values().collect();
    named_defs.sort_by_key(|named| named.name.start_byte());
    let mut seen_defs = std::collections::HashSet::new();
    named_defs.retain(|named| {
        named
            .def
            .as_ref()
            .is_some_and(|(node, _)| seen_defs.insert(node.id()))
    });
    let mut defs: Vec<Def<'t>> = named_defs
        .into_iter()
        .filter_map(|named| {
            let (node, kind) = named.def?;
            Some(Def {
                start: leading_start(node, grammar.syntax.leading_kinds),
                end: end_row(node),
                end_byte: node.end_byte(),
                body: named.body.or_else(|| body_of(node)),
                docstring: named.docstring,
                receiver: named.receiver.map(|r| clean_name(&text_of(r))),
                name: clean_name(&text_of(named.name)),
                node,
                kind,
                parent: None,
                children: Vec::new(),
                symbol: String::new(),
            })
        })
        .collect();
    if damaged {
        defs.retain(|d| !d.node.has_error());
    }
    defs.sort_by_key(|d| (d.node.start_byte(), std::cmp::Reverse(d.end_byte)));
    if grammar.spec.joins_clauses {
        defs = join_clauses(defs);
    }
    let prefix = if grammar.syntax.module_from_path {
        Some(module_path(input.path))
    } else {
        package.map(|p| clean_name(&p))
    };

    // Containment: the innermost earlier definition whose bytes enclose this one.
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..defs.len() {
        while let Some(&top) = stack.last() {
            if defs[top].end_byte >= defs[i].end_byte {
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
    let separator = grammar.syntax.separator;
    for i in 0..kept.len() {
        let parent = kept[i].parent.and_then(|p| remap[p]);
        kept[i].parent = parent;
        if let Some(p) = parent {
            kept[p].children.push(i);
            if kept[i].kind == "function" && !NAMESPACE_KINDS.contains(&kept[p].kind.as_str()) {
                kept[i].kind = "method".into();
            }
            // A child's leading comments may not reach above its container's first line.
            kept[i].start = kept[i].start.max(kept[p].start);
        }
        let mut parts: Vec<&str> = Vec::new();
        match parent {
            Some(p) => parts.push(&kept[p].symbol),
            None => parts.extend(prefix.as_deref()),
        }
        parts.extend(kept[i].receiver.as_deref());
        parts.push(&kept[i].name);
        parts.retain(|part| !part.is_empty());
        kept[i].symbol = cap_symbol(parts.join(separator));
    }
    FoundDefs { defs: kept, prefix }
}

/// Joins each run of sibling definitions of one name and kind (a Haskell signature and the
/// equations after it, an Elixir function's clauses) into its first member, which then
/// spans the run. Its node stays the first clause's, so the signature and doc line are
/// that clause's; it has no single body, so a long run is cut into windows.
fn join_clauses(defs: Vec<Def<'_>>) -> Vec<Def<'_>> {
    let mut joined: Vec<Def<'_>> = Vec::with_capacity(defs.len());
    for def in defs {
        // Definitions sorted by start with one parent node are siblings: they never nest.
        if let Some(last) = joined.last_mut()
            && last.name == def.name
            && last.kind == def.kind
            && last.node.parent() == def.node.parent()
        {
            last.end = def.end;
            last.end_byte = def.end_byte;
            last.body = None;
            last.docstring = last.docstring.or(def.docstring);
            continue;
        }
        joined.push(def);
    }
    joined
}
