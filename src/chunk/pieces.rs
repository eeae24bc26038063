//! Cutting a file into line ranges: oversized definitions split at statement boundaries,
//! line windows for what no definition covers, tiny neighbours merged.

use super::*;

/// How deep [`split_at_statements`] looks inside a statement too long to stand alone.
const MAX_SPLIT_DEPTH: usize = 6;

/// Splits an oversized definition at its body's statements: the top-level ones, and
/// inside one that is itself too long (a shell dispatcher's `case`, a `switch`, a returned
/// object literal) at its own parts, so a single giant statement does not stay one chunk.
/// Returns `None` when the body cannot be split into two or more parts.
pub(super) fn split_at_statements(
    body: Option<Node<'_>>,
    start: usize,
    end: usize,
    lines: &LineIndex,
    limits: &ChunkLimits,
) -> Option<Vec<(usize, usize)>> {
    let mut statement_ends = Vec::new();
    cut_rows(body?, end, lines, limits, 0, &mut statement_ends);
    let mut parts = Vec::new();
    let mut part_start = start;
    let mut last_end: Option<usize> = None;
    for stmt_end in statement_ends {
        if let Some(prev) = last_end {
            let too_long = (stmt_end + 1).saturating_sub(part_start) > limits.max_lines
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

/// Pushes the last row of each of `node`'s named children (capped at `end`), in order,
/// and before the end of a child too long to be one chunk, the ends of that child's own
/// parts, down to [`MAX_SPLIT_DEPTH`].
fn cut_rows(
    node: Node<'_>,
    end: usize,
    lines: &LineIndex,
    limits: &ChunkLimits,
    depth: usize,
    rows: &mut Vec<usize>,
) {
    let mut walker = node.walk();
    for child in node.named_children(&mut walker) {
        let child_end = end_row(child).min(end);
        let child_start = child.start_position().row.min(child_end);
        let too_long = child_end + 1 - child_start > limits.max_lines
            || lines.range_bytes(child_start, child_end) > limits.max_bytes;
        if too_long && depth < MAX_SPLIT_DEPTH {
            cut_rows(child, end, lines, limits, depth + 1, rows);
        }
        rows.push(child_end);
    }
}

/// Cuts rows `start..=end` into windows, preferring to end a window at a blank line
/// (or, in Markdown, before a heading). Windows inherit `template`'s metadata.
pub(super) fn window_pieces(
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
pub(super) fn merge_tiny(
    pieces: Vec<Piece>,
    lines: &LineIndex,
    limits: &ChunkLimits,
) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if let Some(last) = out.last_mut() {
            let last_bytes = lines.range_bytes(last.start, last.end);
            let bytes = lines.range_bytes(piece.start, piece.end);
            let adjacent = piece.start > last.end
                && (last.end + 1..piece.start).all(|r| lines.line(r).trim().is_empty());
            let mergeable =
                |p: &Piece| p.kind != "module" && p.kind != "window" && p.part_of.is_none();
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

/// Line offsets of a text, for cutting chunks out by row.
pub(super) struct LineIndex<'a> {
    pub(super) text: &'a str,
    /// Byte offset where each line starts.
    pub(super) starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        if starts.len() > 1 && starts.last() == Some(&text.len()) {
            starts.pop();
        }
        LineIndex { text, starts }
    }

    pub(super) fn count(&self) -> usize {
        self.starts.len()
    }

    pub(super) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// Byte range of rows `start..=end`, without the final newline.
    pub(super) fn byte_range(&self, start: usize, end: usize) -> std::ops::Range<usize> {
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

    pub(super) fn range_text(&self, start: usize, end: usize) -> &'a str {
        &self.text[self.byte_range(start, end)]
    }

    pub(super) fn range_bytes(&self, start: usize, end: usize) -> usize {
        self.byte_range(start, end).len()
    }

    pub(super) fn line(&self, row: usize) -> &'a str {
        if row >= self.count() {
            return "";
        }
        self.range_text(row, row)
    }

    pub(super) fn range_is_blank(&self, start: usize, end: usize) -> bool {
        self.range_text(start, end).trim().is_empty()
    }

    pub(super) fn range_has_word(&self, start: usize, end: usize) -> bool {
        self.range_text(start, end)
            .chars()
            .any(|c| c.is_alphanumeric())
    }
}
