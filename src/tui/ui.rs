//! Drawing the TUI from its state: question line, answer summary, citations, preview,
//! status bar, and the help and filter overlays. Nothing here reads the index.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph, Wrap};

use super::app::{App, Pane, QueryState, current_lines};
use super::highlight::{self, Token};
use crate::answer::{Citation, Freshness};
use crate::working_tree;

/// Smallest terminal the full layout is drawn in; below it a notice asks for more room.
pub const MIN_SIZE: (u16, u16) = (40, 12);
/// From this width on, citations and preview sit side by side.
const SIDE_BY_SIDE_WIDTH: u16 = 100;
const SPINNER: [&str; 4] = ["|", "/", "-", "\\"];

/// The code shown for the selected citation.
#[derive(Debug, Clone)]
pub struct Preview {
    /// `repo:path` and the cited lines.
    pub title: String,
    /// Why the text is not the current file, when it is not.
    pub note: Option<String>,
    /// The text's lines.
    pub lines: Vec<String>,
    /// Line number of `lines[0]` in the file.
    pub first_line: u32,
    /// Cited lines (inclusive), in file line numbers.
    pub cited: (u32, u32),
    /// Highlighted ranges per line (byte offsets within the line).
    pub tokens: Vec<Vec<(std::ops::Range<usize>, Token)>>,
}

/// Builds the preview of the selected citation: the whole current file when it can be
/// read and still holds the cited code, else the indexed text with a note.
pub fn load_preview(app: &App) -> Option<Preview> {
    let citation = app.selected_citation()?;
    let (start, end) = current_lines(citation);
    // Read the file as the walker would (no symlinks, no special files), and show it only
    // while it still holds the cited code: it may have changed since the answer.
    let on_disk = match citation.freshness {
        Freshness::Changed | Freshness::Missing => None,
        _ => app
            .session
            .repo_dirs
            .get(&citation.repo)
            .and_then(|dir| working_tree::read(dir, &citation.path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .filter(|text| text.contains(citation.content.trim_end())),
    };
    let (text, first_line, cited, note) = match on_disk {
        Some(text) => (text, 1, (start, end), None),
        None => {
            let note = match citation.freshness {
                Freshness::Changed | Freshness::Missing => {
                    "STALE: the file changed since indexing; this is the indexed code"
                }
                _ => "the file cannot be read here as indexed; this is the indexed code",
            };
            (
                citation.content.clone(),
                citation.start_line,
                (citation.start_line, citation.end_line),
                Some(note.to_string()),
            )
        }
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    Some(Preview {
        title: format!(
            "{}:{}:{}-{}",
            citation.repo, citation.path, cited.0, cited.1
        ),
        note,
        tokens: tokens_per_line(&citation.path, &text, &lines),
        lines,
        first_line,
        cited,
    })
}

/// Splits file-wide token ranges into per-line ranges.
fn tokens_per_line(
    path: &str,
    text: &str,
    lines: &[String],
) -> Vec<Vec<(std::ops::Range<usize>, Token)>> {
    let mut per_line = vec![Vec::new(); lines.len()];
    let mut starts = Vec::with_capacity(lines.len());
    let mut offset = 0;
    for line in text.split_inclusive('\n').take(lines.len()) {
        starts.push(offset);
        offset += line.len();
    }
    for (range, token) in highlight::tokens(path, text) {
        let first = starts
            .partition_point(|&s| s <= range.start)
            .saturating_sub(1);
        for (i, &line_start) in starts.iter().enumerate().skip(first) {
            if line_start >= range.end {
                break;
            }
            let line_len = lines[i].len();
            let from = range.start.saturating_sub(line_start).min(line_len);
            let to = (range.end - line_start).min(line_len);
            if from < to {
                per_line[i].push((from..to, token));
            }
        }
    }
    per_line
}

/// Styles, with colours unless `NO_COLOR` turned them off.
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    fn focused(&self, yes: bool) -> Style {
        match (yes, self.color) {
            (true, true) => Style::new().fg(Color::Cyan),
            (true, false) => Style::new().add_modifier(Modifier::BOLD),
            (false, _) => Style::new(),
        }
    }

    fn selected(&self) -> Style {
        if self.color {
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    fn cited(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Rgb(40, 40, 70))
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    fn warning(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    fn token(&self, token: Token) -> Style {
        match token {
            Token::Comment => self.fg(Color::DarkGray),
            Token::String => self.fg(Color::Green),
            Token::Keyword => self.fg(Color::Magenta),
            Token::Number => self.fg(Color::Yellow),
            Token::Type => self.fg(Color::Cyan),
            Token::Function => self.fg(Color::Blue).add_modifier(Modifier::BOLD),
        }
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App, preview: Option<&Preview>) {
    let area = frame.area();
    let theme = Theme { color: app.color };
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let notice = Paragraph::new(format!(
            "codeq needs a terminal of at least {}x{} (this one is {}x{}); q quits",
            MIN_SIZE.0, MIN_SIZE.1, area.width, area.height
        ))
        .wrap(Wrap { trim: true });
        frame.render_widget(notice, area);
        return;
    }
    let [input, summary, main, status] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(2),
    ])
    .areas(area);
    render_input(frame, app, &theme, input);
    render_summary(frame, app, &theme, summary);
    let [list, code] = if area.width >= SIDE_BY_SIDE_WIDTH {
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(main)
    } else {
        Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(main)
    };
    render_citations(frame, app, &theme, list);
    render_preview(frame, app, &theme, preview, code);
    render_status(frame, app, &theme, status);
    if app.picker.is_some() {
        render_picker(frame, app, &theme, area);
    }
    if app.show_help {
        render_help(frame, &theme, area);
    }
}

fn render_input(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let focused = app.focus == Pane::Input;
    let block = Block::bordered()
        .title(" Ask (Enter) ")
        .border_style(theme.focused(focused));
    let cursor = if focused { "_" } else { "" };
    let text = Line::from(vec![
        Span::styled("> ", theme.fg(Color::Cyan)),
        Span::raw(format!("{}{cursor}", app.input)),
    ]);
    frame.render_widget(Paragraph::new(text).block(block), area);
}

fn render_summary(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let line = match &app.query {
        QueryState::Idle => Line::raw(
            "Type a question and press Enter. Tab moves between panes; ? there (or F1) shows the keys.",
        ),
        QueryState::Running { question } => Line::from(vec![
            Span::styled(
                format!("{} ", SPINNER[app.spinner % SPINNER.len()]),
                theme.warning(),
            ),
            Span::raw(format!("asking: {question}")),
        ]),
        QueryState::Answered { answer, .. }
            if answer.generated.as_ref().is_some_and(|g| g.text.is_some()) =>
        {
            let text = answer.generated.as_ref().and_then(|g| g.text.clone());
            Line::raw(text.unwrap_or_default().replace('\n', " "))
        }
        QueryState::Answered { answer, .. } if !answer.confident => {
            Line::styled(answer.summary.clone(), theme.warning())
        }
        QueryState::Answered { answer, .. } => Line::raw(answer.summary.clone()),
        QueryState::Failed { message } => Line::styled(format!("error: {message}"), theme.error()),
    };
    frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), area);
}

/// The marker after a citation that is not current.
fn freshness_marker(citation: &Citation) -> Option<String> {
    match citation.freshness {
        Freshness::Current | Freshness::Unverified => None,
        Freshness::Moved {
            start_line,
            end_line,
        } => Some(format!("[moved: now {start_line}-{end_line}]")),
        Freshness::Changed => Some("[STALE: file changed]".into()),
        Freshness::Missing => Some("[STALE: file gone]".into()),
    }
}

fn render_citations(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let focused = app.focus == Pane::Citations;
    let citations = app.answer().map_or(&[][..], |a| &a.citations[..]);
    let order = app.list_order();
    let title = match app.answer() {
        Some(a) if a.citations.is_empty() => " Citations: none ".to_string(),
        Some(a) => format!(" Citations ({}) ", a.citations.len()),
        None => " Citations ".to_string(),
    };
    let block = Block::bordered()
        .title(title)
        .border_style(theme.focused(focused));
    if citations.is_empty() {
        let text = match &app.query {
            QueryState::Answered { .. } => "No citation matched this question.",
            _ => "",
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    // Numbered as `codeq ask` numbers them (verdicts use these numbers), listed by file.
    let items: Vec<ListItem> = order
        .iter()
        .map(|&i| (i, &citations[i]))
        .map(|(i, c)| {
            let mut detail = vec![
                Span::raw("   "),
                Span::styled(c.symbol.clone(), theme.fg(Color::Blue)),
                Span::raw(format!("  {:.2}", c.confidence)),
            ];
            if let Some(marker) = freshness_marker(c) {
                detail.push(Span::raw(" "));
                detail.push(Span::styled(marker, theme.warning()));
            }
            ListItem::new(vec![
                Line::from(vec![
                    Span::styled(format!("{:>2} ", i + 1), theme.fg(Color::DarkGray)),
                    Span::raw(c.citation.clone()),
                ]),
                Line::from(detail),
            ])
        })
        .collect();
    let list = List::new(items)
        .block(block)
        .highlight_style(theme.selected())
        .highlight_symbol(">");
    let mut state = ListState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(list, area, &mut state);
}

fn render_preview(
    frame: &mut Frame,
    app: &App,
    theme: &Theme,
    preview: Option<&Preview>,
    area: Rect,
) {
    let focused = app.focus == Pane::Preview;
    let block = Block::bordered().border_style(theme.focused(focused));
    let Some(preview) = preview else {
        frame.render_widget(Paragraph::new("").block(block.title(" Preview ")), area);
        return;
    };
    let block = block.title(format!(" {} ", preview.title));
    let inner_height = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    if let Some(note) = &preview.note {
        lines.push(Line::styled(note.clone(), theme.warning()));
    }
    // Open with the cited lines near the top, three lines of context above.
    let cited_index = preview.cited.0.saturating_sub(preview.first_line) as usize;
    let top = cited_index.saturating_sub(3) + app.preview_scroll;
    let width = (preview.first_line as usize + preview.lines.len())
        .to_string()
        .len();
    for (i, text) in preview
        .lines
        .iter()
        .enumerate()
        .skip(top)
        .take(inner_height.saturating_sub(lines.len()))
    {
        let number = preview.first_line + i as u32;
        let cited = (preview.cited.0..=preview.cited.1).contains(&number);
        let base = if cited { theme.cited() } else { Style::new() };
        let mut spans = vec![
            Span::styled(format!("{number:>width$} "), theme.fg(Color::DarkGray)),
            Span::styled(if cited { "| " } else { "  " }, theme.warning()),
        ];
        let mut at = 0;
        for (range, token) in preview.tokens.get(i).map_or(&[][..], |t| &t[..]) {
            if range.start > at {
                spans.push(Span::styled(text[at..range.start].to_string(), base));
            }
            spans.push(Span::styled(
                text[range.clone()].to_string(),
                base.patch(theme.token(*token)),
            ));
            at = range.end;
        }
        spans.push(Span::styled(text[at..].to_string(), base));
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn render_status(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let session = &app.session;
    let freshness = match session.stale_repos {
        0 => Span::raw("index current"),
        1 => Span::styled("1 repo stale", theme.warning()),
        n => Span::styled(format!("{n} repos stale"), theme.warning()),
    };
    let first = Line::from(vec![
        Span::raw(format!(" as {} | ", session.principal)),
        freshness,
        Span::raw(format!(
            " | model {} | scope: {} | ? help",
            session.model,
            app.scope.label()
        )),
    ]);
    let second = match (&app.notice, &app.query) {
        (Some(notice), _) => Line::styled(format!(" {notice}"), theme.warning()),
        (None, QueryState::Answered { answer, latency }) => {
            let t = &answer.timings;
            let trace = app
                .trace_id
                .as_ref()
                .map_or(String::new(), |id| format!(" | trace {id}"));
            let rerank = match t.rerank.is_zero() {
                true => String::new(),
                false => format!(", rerank {}", millis(t.rerank)),
            };
            Line::raw(format!(
                " last query {} ms: embed {}, bm25 {}, vector {}, fuse {}{rerank}, answer {}{trace}",
                millis(*latency),
                millis(t.embed),
                millis(t.bm25),
                millis(t.vector),
                millis(t.fuse),
                millis(answer.answer_time)
            ))
        }
        (None, _) => Line::raw(""),
    };
    frame.render_widget(Paragraph::new(vec![first, second]), area);
}

/// A box of `width` x `height` in the middle of `area` (clamped to it).
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn render_picker(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let Some(picker) = &app.picker else {
        return;
    };
    let height = picker.choices.len() as u16 + 2;
    let box_area = centered(area, 50, height);
    let items: Vec<ListItem> = picker
        .choices
        .iter()
        .map(|c| ListItem::new(c.label()))
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title(" Restrict to (Enter; Esc cancels) "))
        .highlight_style(theme.selected())
        .highlight_symbol(">");
    let mut state = ListState::default().with_selected(Some(picker.selected));
    frame.render_widget(Clear, box_area);
    frame.render_stateful_widget(list, box_area, &mut state);
}

/// The keys, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    (
        "Enter",
        "ask the question (in the results: show the preview)",
    ),
    ("Up/Down", "question history (in the question line)"),
    ("Tab, Shift-Tab", "next / previous pane"),
    ("j/k, arrows", "select a citation; scroll the preview"),
    ("PgUp/PgDn", "scroll the preview by a page"),
    ("o", "open the cited file at the line in $EDITOR"),
    ("y", "copy path:line"),
    ("f", "restrict to a repository or a language"),
    ("g / b", "mark the citation good / bad (eval backlog)"),
    ("? or F1", "this help"),
    ("q, Esc, Ctrl-C", "quit (q outside the question line)"),
];

fn render_help(frame: &mut Frame, theme: &Theme, area: Rect) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>16}  "), theme.fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    let box_area = centered(area, 78, HELP.len() as u16 + 2);
    frame.render_widget(Clear, box_area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys (any key closes) ")),
        box_area,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::tui::fixtures;

    /// The screen as text, one line per row.
    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let preview = load_preview(app);
        terminal.draw(|f| render(f, app, preview.as_ref())).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                let row: String = (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect();
                row.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    /// Compares with `src/tui/snapshots/NAME.txt`; `UPDATE_SNAPSHOTS=1` rewrites it.
    fn assert_snapshot(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/tui/snapshots")
            .join(format!("{name}.txt"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_SNAPSHOTS=1", path.display()));
        assert_eq!(
            actual,
            expected,
            "screen {name} differs from {} (UPDATE_SNAPSHOTS=1 rewrites it after review)",
            path.display()
        );
    }

    fn answered(answer: crate::answer::Answer) -> App {
        let mut app = fixtures::app();
        app.input = answer.question.clone();
        app.query = QueryState::Running {
            question: answer.question.clone(),
        };
        app.finish(Ok(answer), Duration::from_millis(14));
        app
    }

    #[test]
    fn empty_screen() {
        assert_snapshot("empty", &screen(&fixtures::app(), 100, 24));
    }

    #[test]
    fn results_screen() {
        assert_snapshot("results", &screen(&answered(fixtures::answer()), 100, 24));
    }

    #[test]
    fn no_results_screen() {
        assert_snapshot(
            "no_results",
            &screen(&answered(fixtures::empty_answer()), 100, 24),
        );
    }

    #[test]
    fn stale_screen() {
        let mut app = answered(fixtures::answer());
        app.session.stale_repos = 2;
        app.selected = 2;
        let text = screen(&app, 100, 24);
        assert!(text.contains("2 repos stale"), "{text}");
        assert!(
            text.contains("STALE: the file changed since indexing"),
            "{text}"
        );
        assert_snapshot("stale", &text);
    }

    #[test]
    fn error_screen() {
        let mut app = fixtures::app();
        app.input = "refund".into();
        app.query = QueryState::Running {
            question: "refund".into(),
        };
        app.finish(
            Err("the index in /x/.codeq is damaged (lance missing): rebuild it".into()),
            Duration::ZERO,
        );
        assert_snapshot("error", &screen(&app, 100, 24));
    }

    #[test]
    fn help_screen() {
        let mut app = answered(fixtures::answer());
        app.show_help = true;
        assert_snapshot("help", &screen(&app, 100, 24));
    }

    #[test]
    fn control_characters_in_an_answer_never_reach_the_terminal() {
        let mut answer = fixtures::answer();
        let evil = "\x1b[2J\x1b]52;c;QUFB\x07\u{9b}31m\r";
        answer.summary = format!("Most likely {evil} here");
        for c in &mut answer.citations {
            c.symbol = format!("sym{evil}");
            c.citation = format!("payments:src/{evil}.rs:1-2");
            c.content = format!("fn x() {{ \"{evil}\" }}");
        }
        let mut app = answered(answer);
        app.input = format!("question{evil}");
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
        let preview = load_preview(&app);
        terminal
            .draw(|f| render(f, &app, preview.as_ref()))
            .unwrap();
        let buffer = terminal.backend().buffer();
        for cell in buffer.content() {
            assert!(
                !cell.symbol().chars().any(|c| c.is_control()),
                "a cell holds {:?}",
                cell.symbol()
            );
        }
    }

    #[test]
    fn narrow_and_tiny_terminals_degrade() {
        let narrow = screen(&answered(fixtures::answer()), 60, 30);
        assert!(narrow.contains("payments:src/lib.rs:3-5"), "{narrow}");
        let tiny = screen(&fixtures::app(), 30, 8);
        assert!(tiny.contains("codeq needs a terminal"), "{tiny}");
    }

    #[test]
    fn cited_lines_are_highlighted_and_code_is_coloured() {
        let mut app = answered(fixtures::answer());
        app.color = true;
        let preview = load_preview(&app).unwrap();
        assert_eq!(preview.cited, (3, 5));
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
        terminal.draw(|f| render(f, &app, Some(&preview))).unwrap();
        let buffer = terminal.backend().buffer();
        let row = (0..24)
            .find(|&y| {
                (0..100)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .contains("pub fn refund_payment")
            })
            .expect("the cited function is on screen");
        let pub_x = (0..100)
            .find(|&x| buffer[(x, row)].symbol() == "p" && buffer[(x + 1, row)].symbol() == "u")
            .unwrap();
        let cell = &buffer[(pub_x, row)];
        assert_eq!(cell.fg, Color::Magenta, "keyword colour");
        assert_eq!(cell.bg, Color::Rgb(40, 40, 70), "cited-line background");
    }
}
