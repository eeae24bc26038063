//! `codeq tui`: ask questions in a terminal UI. The UI holds no retrieval logic: questions
//! go to a worker thread that asks through the [`Session`] exactly as `codeq ask` does, as
//! the principal fixed when the TUI started, so the screen stays live while it works.

mod app;
#[cfg(test)]
mod fixtures;
mod highlight;
mod ui;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;

pub use app::SessionInfo;
use app::{Action, App};

use crate::answer::Answer;
use crate::error::{Error, Result};
use crate::search::QueryScope;
use crate::session::Session;
use crate::trace::Surface;

/// How often the screen is redrawn while waiting (spinner speed, key latency).
const TICK: Duration = Duration::from_millis(80);

/// A question for the worker.
struct Request {
    question: String,
    scope: QueryScope,
}

/// The worker's outcome, with the wall time it took and the trace id.
struct Response {
    outcome: std::result::Result<Answer, String>,
    latency: Duration,
    trace_id: Option<String>,
}

/// Runs the TUI as `session`'s principal, `k` citations per answer, until the user quits.
/// The terminal is restored on return, on error and on panic.
pub fn run(session: &Session, k: usize) -> Result<()> {
    let repos: Vec<String> = session
        .visible_repos()
        .into_iter()
        .map(|r| r.id.clone())
        .collect();
    let languages = session.languages()?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(SessionInfo::of(session), &repos, &languages, k, color);

    let (requests, request_rx) = mpsc::channel::<Request>();
    let (response_tx, responses) = mpsc::channel::<Response>();
    let worker_session = session.clone();
    let worker =
        std::thread::spawn(move || answer_questions(&worker_session, request_rx, response_tx));

    let mut terminal =
        ratatui::try_init().map_err(|e| Error::io("cannot set up the terminal", e))?;
    let result = event_loop(&mut terminal, &mut app, &requests, &responses, session);
    ratatui::restore();
    drop(requests);
    let _ = worker.join();
    result
}

/// The worker: answers questions one at a time until the UI hangs up.
fn answer_questions(session: &Session, requests: Receiver<Request>, responses: Sender<Response>) {
    for request in requests {
        let started = Instant::now();
        let (outcome, trace_id) = match session.ask(Surface::Tui, &request.question, &request.scope)
        {
            Ok(asked) => (Ok(asked.value), asked.trace.ok()),
            Err(e) => (Err(e.to_string()), None),
        };
        let response = Response {
            outcome,
            latency: started.elapsed(),
            trace_id,
        };
        if responses.send(response).is_err() {
            return;
        }
    }
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    requests: &Sender<Request>,
    responses: &Receiver<Response>,
    session: &Session,
) -> Result<()> {
    let io = |e| Error::io("terminal input/output failed", e);
    let mut preview = None;
    let mut previewed = None;
    loop {
        let key = (app.answer().map(|a| a.question.clone()), app.selected);
        if previewed.as_ref() != Some(&key) {
            preview = ui::load_preview(app);
            previewed = Some(key);
        }
        terminal
            .draw(|frame| ui::render(frame, app, preview.as_ref()))
            .map_err(io)?;
        if event::poll(TICK).map_err(io)? {
            let action = match event::read().map_err(io)? {
                Event::Key(key) if key.kind == KeyEventKind::Press => app.on_key(key),
                _ => None,
            };
            match action {
                Some(Action::Quit) => return Ok(()),
                Some(Action::Ask { question, scope }) => {
                    previewed = None;
                    if requests.send(Request { question, scope }).is_err() {
                        return Err(Error::WorkerStopped("the query worker"));
                    }
                }
                Some(Action::Open { path, line }) => {
                    app.notice = open_in_editor(terminal, &path, line).err();
                }
                Some(Action::Copy(text)) => app.notice = Some(copy_to_clipboard(&text)),
                Some(Action::Judge { number, verdict }) => {
                    app.notice = Some(match app.answer() {
                        Some(answer) => {
                            match session.record_verdicts(answer, &[(number, verdict)]) {
                                Ok(_) => format!(
                                    "recorded citation {number} as {verdict:?} for `codeq eval` triage"
                                ),
                                Err(e) => e.to_string(),
                            }
                        }
                        None => "no answer to judge".into(),
                    });
                }
                None => {}
            }
        }
        loop {
            match responses.try_recv() {
                Ok(response) => {
                    previewed = None;
                    app.finish(response.outcome, response.latency);
                    app.trace_id = response.trace_id;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(Error::WorkerStopped("the query worker"));
                }
            }
        }
        app.tick();
    }
}

/// Suspends the TUI, runs `$EDITOR +LINE FILE` (vi when unset), and takes the screen back.
fn open_in_editor(
    terminal: &mut DefaultTerminal,
    path: &Path,
    line: u32,
) -> std::result::Result<(), String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi").to_string();
    ratatui::restore();
    let status = Command::new(&program)
        .args(words)
        .arg(format!("+{line}"))
        .arg(path)
        .status();
    *terminal = ratatui::try_init().map_err(|e| format!("cannot take the terminal back: {e}"))?;
    let _ = terminal.clear();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{program} exited with {s}")),
        Err(e) => Err(format!(
            "cannot run {program} ({e}): set $EDITOR to your editor"
        )),
    }
}

/// Puts `text` on the clipboard with the OSC 52 escape sequence, which terminals (and tmux
/// with `set-clipboard on`) honour, also over SSH.
fn copy_to_clipboard(text: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = std::io::stdout();
    match write!(out, "\x1b]52;c;{encoded}\x07").and_then(|_| out.flush()) {
        Ok(()) => format!("copied {text}"),
        Err(e) => format!("cannot copy: {e}"),
    }
}
