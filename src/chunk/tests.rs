//! The chunker on small files of each language.

use super::*;

fn chunks_of(path: &str, text: &str) -> Vec<Chunk> {
    let chunker = Chunker::new(ChunkLimits::default());
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

/// The parts of an oversized definition: each within the limits, tiling it exactly, all
/// with its symbol.
fn assert_split_within_limits(chunks: &[Chunk], symbol: &str, lines: (u32, u32)) {
    assert!(chunks.len() >= 3, "{:?}", summary(chunks));
    assert!(
        chunks.iter().all(|c| c.symbol == symbol),
        "{:?}",
        summary(chunks)
    );
    let limits = ChunkLimits::default();
    for c in chunks {
        let rows = (c.end_line - c.start_line + 1) as usize;
        assert!(rows <= limits.max_lines, "{:?}", summary(chunks));
        assert!(c.content.len() <= limits.max_bytes, "{:?}", summary(chunks));
    }
    assert_eq!(chunks[0].start_line, lines.0);
    assert_eq!(chunks.last().unwrap().end_line, lines.1);
    for pair in chunks.windows(2) {
        assert_eq!(pair[0].end_line + 1, pair[1].start_line);
    }
}

#[test]
fn one_giant_statement_splits_at_its_own_parts() {
    // A shell dispatcher: after one line of setup, the body is one `case` with an arm per
    // command.
    let mut src = String::from("dispatch() {\n  local cmd=\"$1\"\n  case \"$cmd\" in\n");
    for arm in 0..40 {
        src.push_str(&format!(
            "    cmd{arm})\n      echo one {arm}\n      echo two {arm}\n    ;;\n"
        ));
    }
    src.push_str("  esac\n}\n");
    let chunks = chunks_of("tool.sh", &src);
    assert_split_within_limits(&chunks, "dispatch", (1, 165));
    let arm = chunks
        .iter()
        .find(|c| c.content.contains("cmd20)"))
        .unwrap();
    assert!(arm.content.contains("echo two 20"), "an arm stays whole");

    // A factory whose body is one returned object literal.
    let mut src = String::from("function createApi() {\n  const base = 1;\n  return {\n");
    for m in 0..50 {
        src.push_str(&format!(
            "    method{m}(x) {{\n      return x + {m};\n    }},\n"
        ));
    }
    src.push_str("  };\n}\n");
    let chunks = chunks_of("api.js", &src);
    assert_split_within_limits(&chunks, "createApi", (1, 155));
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

#[test]
fn a_class_leaves_no_one_line_pieces_of_itself_but_its_header() {
    let src = "\
class Mailer:
    def send(self, to):
        self.queue.append(to)
        return len(self.queue)

    retries = 3

    def flush(self):
        while self.queue:
            self.deliver(self.queue.pop())

    timeout = 30
";
    assert_eq!(
        summary(&chunks_of("mail.py", src)),
        owned(&[
            // The header is the class's definition; each attribute joins the method before it.
            ("class", "mail.Mailer", 1, 1),
            ("method", "mail.Mailer.send", 2, 6),
            ("method", "mail.Mailer.flush", 8, 12),
        ])
    );
    let nested = "\
module Rack
  module Multipart
    def self.parse(io)
      Parser.new(io).run
    end
  end
end
";
    // Both closing `end`s join the method; each module keeps its header.
    assert_eq!(
        summary(&chunks_of("multipart.rb", nested)),
        owned(&[
            ("module", "Rack", 1, 1),
            ("module", "Rack::Multipart", 2, 2),
            ("function", "Rack::Multipart::parse", 3, 7),
        ])
    );
}

#[test]
fn a_license_right_above_a_definition_is_not_its_doc() {
    let doc_of = |path: &str, text: &str, symbol: &str| {
        chunks_of(path, text)
            .into_iter()
            .find(|c| c.symbol == symbol)
            .map(|c| c.doc)
            .unwrap_or_else(|| {
                panic!(
                    "no chunk {symbol} in {path}: {:?}",
                    summary(&chunks_of(path, text))
                )
            })
    };
    let java = "\
/*
 * Copyright 2020 Example Corp.
 * Licensed under the Apache License, Version 2.0.
 */
/** Decides whether a caller may act again. */
public class Limit {
    public boolean allow(long now, long last, long gap) {
        return now - last >= gap;
    }
}
";
    assert_eq!(
        doc_of("src/Limit.java", java, "Limit"),
        "Decides whether a caller may act again."
    );
    let without_javadoc = java.replace("/** Decides whether a caller may act again. */\n", "");
    assert_eq!(doc_of("src/Limit.java", &without_javadoc, "Limit"), "");

    let go = "\
// Copyright 2015 The Example Authors. All rights reserved.
// Use of this source code is governed by a BSD-style license.
func Allow(now, last, gap int64) bool {
\treturn now-last >= gap
}
";
    assert_eq!(doc_of("rate/limit.go", go, "Allow"), "");

    // A doc comment that only mentions a license stays the doc.
    let python = "\
# Reads the LICENSE file of a package.
def license_of(root):
    return (root / \"LICENSE\").read_text().splitlines()[0]
";
    assert_eq!(
        doc_of("pkg/licenses.py", python, "pkg.licenses.license_of"),
        "Reads the LICENSE file of a package."
    );
}
