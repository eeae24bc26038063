//! `codeq tui`: ask questions in a terminal UI. The UI holds no retrieval logic: questions
//! go to a worker thread that calls [`answer::ask`] exactly as `codeq ask` does, under the
//! access filter fixed when the TUI started, so the screen stays live while it works.

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

use crate::acl::Access;
use crate::answer::Answer;
use crate::backlog;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::llm::AnswerSettings;
use crate::rerank::{self, Reranker};
use crate::search::QueryScope;
use crate::store::{IndexDir, IndexReader};
use crate::trace;

/// How often the screen is redrawn while waiting (spinner speed, key latency).
const TICK: Duration = Duration::from_millis(80);

/// Everything the TUI needs, opened and checked by the caller like `codeq ask` does.
pub struct TuiContext {
    /// The index folder (the eval backlog lives there).
    pub dir: IndexDir,
    /// The published generation.
    pub reader: IndexReader,
    /// The model the index was built with.
    pub embedder: Box<dyn Embedder>,
    /// The cross-encoder, when `[rerank]` is on.
    pub reranker: Option<Box<dyn Reranker>>,
    /// What the principal may read; fixed for the session.
    pub access: Access,
    /// The optional LLM answerer and the latency budget.
    pub settings: AnswerSettings,
    /// Citations per answer.
    pub k: usize,
    /// Principal, model, staleness and repository folders for the status bar.
    pub session: SessionInfo,
}

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

/// Runs the TUI until the user quits. The terminal is restored on return, on error and on
/// panic.
pub fn run(context: TuiContext) -> Result<()> {
    let TuiContext {
        dir,
        reader,
        embedder,
        reranker,
        access,
        settings,
        k,
        session,
    } = context;
    let repos: Vec<String> = reader
        .manifest()
        .repo_ids()
        .into_iter()
        .filter(|r| access.filter.admits_repo(r))
        .collect();
    let languages: Vec<String> = reader
        .languages(&access.filter)?
        .into_iter()
        .map(|(language, _)| language)
        .collect();
    let generation = reader.generation().to_string();
    let principal = access.principal().map(str::to_string);
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(session, &repos, &languages, k, color);

    let (requests, request_rx) = mpsc::channel::<Request>();
    let (response_tx, responses) = mpsc::channel::<Response>();
    let worker_dir = dir.clone();
    let worker = std::thread::spawn(move || {
        let engine = Engine {
            dir: worker_dir,
            reader,
            embedder,
            reranker,
            access,
            settings,
        };
        answer_questions(engine, request_rx, response_tx)
    });

    let mut terminal =
        ratatui::try_init().map_err(|e| Error::io("cannot set up the terminal", e))?;
    let result = event_loop(
        &mut terminal,
        &mut app,
        &requests,
        &responses,
        &dir,
        (&generation, principal.as_deref()),
    );
    ratatui::restore();
    drop(requests);
    let _ = worker.join();
    result
}

/// The worker: answers questions one at a time until the UI hangs up.
/// What the worker answers with.
struct Engine {
    dir: IndexDir,
    reader: IndexReader,
    embedder: Box<dyn Embedder>,
    reranker: Option<Box<dyn Reranker>>,
    access: Access,
    settings: AnswerSettings,
}

fn answer_questions(mut engine: Engine, requests: Receiver<Request>, responses: Sender<Response>) {
    for request in requests {
        let started = Instant::now();
        let traced = trace::traced_ask(
            &engine.dir,
            &engine.reader,
            engine.embedder.as_mut(),
            rerank::borrowed(&mut engine.reranker),
            &engine.access,
            &engine.settings,
            "tui",
            &request.question,
            &request.scope,
        );
        let (outcome, trace_id) = match traced {
            Ok((answer, id)) => (Ok(answer), id.ok()),
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
    dir: &IndexDir,
    (generation, principal): (&str, Option<&str>),
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
                            match backlog::record(
                                dir,
                                generation,
                                principal,
                                answer,
                                &[(number, verdict)],
                            ) {
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
