//! The TUI's state and key handling, free of terminal I/O: a key turns into a state change
//! and at most one [`Action`] for the event loop to carry out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::answer::{Answer, Citation, Freshness};
use crate::backlog::Verdict;
use crate::report;
use crate::search::QueryScope;
use crate::session::Session;

/// The pane that receives keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// The question line.
    Input,
    /// The list of citations.
    Citations,
    /// The code of the selected citation.
    Preview,
}

impl Pane {
    fn next(self) -> Pane {
        match self {
            Pane::Input => Pane::Citations,
            Pane::Citations => Pane::Preview,
            Pane::Preview => Pane::Input,
        }
    }

    fn previous(self) -> Pane {
        match self {
            Pane::Input => Pane::Preview,
            Pane::Citations => Pane::Input,
            Pane::Preview => Pane::Citations,
        }
    }
}

/// Where the last question stands.
#[derive(Debug, Clone)]
pub enum QueryState {
    /// Nothing asked yet.
    Idle,
    /// A question is with the worker.
    Running {
        /// The question.
        question: String,
    },
    /// The worker answered.
    Answered {
        /// The answer, citations verified.
        answer: Box<Answer>,
        /// Wall time from Enter to answer.
        latency: Duration,
    },
    /// The worker failed.
    Failed {
        /// What went wrong, as the engine phrased it.
        message: String,
    },
}

/// A restriction offered by the `f` picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeChoice {
    /// Every repository and language the principal may read.
    Everything,
    /// One repository.
    Repo(String),
    /// One language.
    Language(String),
}

impl ScopeChoice {
    /// How the choice reads in the picker and the status bar.
    pub fn label(&self) -> String {
        match self {
            ScopeChoice::Everything => "everything".into(),
            ScopeChoice::Repo(repo) => format!("repo {repo}"),
            ScopeChoice::Language(language) => format!("language {language}"),
        }
    }
}

/// The `f` picker: one choice highlighted.
#[derive(Debug, Clone)]
pub struct Picker {
    /// What can be chosen.
    pub choices: Vec<ScopeChoice>,
    /// The highlighted one.
    pub selected: usize,
}

/// What the status bar shows besides the last query's timings.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// "alice (ACL)" or "single-user".
    pub principal: String,
    /// Embedding model id.
    pub model: String,
    /// Repositories, among the visible ones, whose HEAD moved since indexing.
    pub stale_repos: usize,
    /// Folder of each visible repository, to open and preview cited files.
    pub repo_dirs: HashMap<String, PathBuf>,
}

impl SessionInfo {
    /// What the status bar says of the index to `session`'s principal: only repositories
    /// it may read, and their staleness only where it reads them whole (as `codeq status`
    /// does: whole-repository state moves with files it cannot read).
    pub fn of(session: &Session) -> SessionInfo {
        let root = &session.manifest().root;
        SessionInfo {
            principal: report::principal_label(session.principal()),
            model: session.manifest().model.id.clone(),
            stale_repos: session.stale_repos(),
            repo_dirs: session
                .visible_repos()
                .into_iter()
                .map(|r| (r.id.clone(), root.join(&r.path)))
                .collect(),
        }
    }
}

/// Something the event loop must do outside the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a question to the worker.
    Ask {
        /// The question.
        question: String,
        /// Its restriction.
        scope: QueryScope,
    },
    /// Open a file at a line in `$EDITOR`.
    Open {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u32,
    },
    /// Put text on the clipboard.
    Copy(String),
    /// Record a verdict on citation `number` (from 1) of the current answer.
    Judge {
        /// Citation number.
        number: usize,
        /// The verdict.
        verdict: Verdict,
    },
    /// Leave the TUI.
    Quit,
}

/// The whole UI state.
#[derive(Debug, Clone)]
pub struct App {
    /// The question being typed.
    pub input: String,
    /// Questions asked, oldest first.
    pub history: Vec<String>,
    /// Position while browsing the history with Up/Down.
    history_pos: Option<usize>,
    /// The pane with the keyboard.
    pub focus: Pane,
    /// The last question's state.
    pub query: QueryState,
    /// The selected citation.
    pub selected: usize,
    /// Lines scrolled in the preview.
    pub preview_scroll: usize,
    /// Whether the help overlay is shown.
    pub show_help: bool,
    /// The open `f` picker.
    pub picker: Option<Picker>,
    /// The restriction questions are asked with.
    pub scope: ScopeChoice,
    /// Repositories and languages the picker offers.
    choices: Vec<ScopeChoice>,
    /// Citations per answer.
    pub k: usize,
    /// Principal, model, staleness, repository folders.
    pub session: SessionInfo,
    /// A one-line notice (copied, recorded, …) shown in the status bar.
    pub notice: Option<String>,
    /// Advances every tick while a question runs.
    pub spinner: usize,
    /// Colours on (off under `NO_COLOR`).
    pub color: bool,
    /// Trace id of the last answer (`codeq trace ID` explains it).
    pub trace_id: Option<String>,
}

impl App {
    /// A fresh UI: empty question, focus on it.
    pub fn new(
        session: SessionInfo,
        repos: &[String],
        languages: &[String],
        k: usize,
        color: bool,
    ) -> App {
        let choices = std::iter::once(ScopeChoice::Everything)
            .chain(repos.iter().cloned().map(ScopeChoice::Repo))
            .chain(languages.iter().cloned().map(ScopeChoice::Language))
            .collect();
        App {
            input: String::new(),
            history: Vec::new(),
            history_pos: None,
            focus: Pane::Input,
            query: QueryState::Idle,
            selected: 0,
            preview_scroll: 0,
            show_help: false,
            picker: None,
            scope: ScopeChoice::Everything,
            choices,
            k,
            session,
            notice: None,
            spinner: 0,
            color,
            trace_id: None,
        }
    }

    /// The current answer, if any.
    pub fn answer(&self) -> Option<&Answer> {
        match &self.query {
            QueryState::Answered { answer, .. } => Some(answer),
            _ => None,
        }
    }

    /// Indexes into the answer's citations in the order the list shows them: grouped by
    /// file, best file first, as `codeq ask` prints them (the summary leads with that
    /// file).
    pub fn list_order(&self) -> Vec<usize> {
        self.answer().map_or_else(Vec::new, |a| {
            a.files
                .iter()
                .flat_map(|f| f.citations.iter().copied())
                .collect()
        })
    }

    /// The selected citation of the current answer.
    pub fn selected_citation(&self) -> Option<&Citation> {
        let index = *self.list_order().get(self.selected)?;
        self.answer().and_then(|a| a.citations.get(index))
    }

    /// The absolute path of a cited file, when its repository folder is known.
    pub fn file_of(&self, citation: &Citation) -> Option<PathBuf> {
        self.session
            .repo_dirs
            .get(&citation.repo)
            .map(|dir| dir.join(&citation.path))
    }

    /// Takes the worker's outcome for the question in flight.
    pub fn finish(&mut self, outcome: Result<Answer, String>, latency: Duration) {
        if !matches!(self.query, QueryState::Running { .. }) {
            return;
        }
        self.selected = 0;
        self.preview_scroll = 0;
        self.query = match outcome {
            Ok(answer) => {
                if !answer.citations.is_empty() {
                    self.focus = Pane::Citations;
                }
                QueryState::Answered {
                    answer: Box::new(answer),
                    latency,
                }
            }
            Err(message) => QueryState::Failed { message },
        };
    }

    /// One step of the spinner.
    pub fn tick(&mut self) {
        if matches!(self.query, QueryState::Running { .. }) {
            self.spinner = self.spinner.wrapping_add(1);
        }
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        if self.show_help {
            // Any key closes the help; q and Esc do not also quit.
            self.show_help = false;
            return None;
        }
        if self.picker.is_some() {
            return self.on_picker_key(key);
        }
        match key.code {
            KeyCode::Esc => return Some(Action::Quit),
            KeyCode::F(1) => {
                self.show_help = true;
                return None;
            }
            KeyCode::Tab => {
                self.focus = self.focus.next();
                return None;
            }
            KeyCode::BackTab => {
                self.focus = self.focus.previous();
                return None;
            }
            _ => {}
        }
        match self.focus {
            Pane::Input => self.on_input_key(key),
            Pane::Citations | Pane::Preview => self.on_result_key(key),
        }
    }

    fn on_input_key(&mut self, key: KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => return self.ask(),
            KeyCode::Char('u') if ctrl => self.input.clear(),
            KeyCode::Char(c) if !ctrl => {
                self.input.push(c);
                self.history_pos = None;
            }
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Up => self.browse_history(-1),
            KeyCode::Down => self.browse_history(1),
            _ => {}
        }
        None
    }

    fn on_result_key(&mut self, key: KeyEvent) -> Option<Action> {
        let count = self.answer().map_or(0, |a| a.citations.len());
        match key.code {
            KeyCode::Char('q') => return Some(Action::Quit),
            KeyCode::Char('?') => self.show_help = true,
            KeyCode::Char('f') => {
                let selected = self
                    .choices
                    .iter()
                    .position(|c| *c == self.scope)
                    .unwrap_or(0);
                self.picker = Some(Picker {
                    choices: self.choices.clone(),
                    selected,
                });
            }
            KeyCode::Char('j') | KeyCode::Down if self.focus == Pane::Citations => {
                self.select((self.selected + 1).min(count.saturating_sub(1)));
            }
            KeyCode::Char('k') | KeyCode::Up if self.focus == Pane::Citations => {
                self.select(self.selected.saturating_sub(1));
            }
            KeyCode::Char('j') | KeyCode::Down => self.preview_scroll += 1,
            KeyCode::Char('k') | KeyCode::Up => {
                self.preview_scroll = self.preview_scroll.saturating_sub(1)
            }
            KeyCode::PageDown => self.preview_scroll += 20,
            KeyCode::PageUp => self.preview_scroll = self.preview_scroll.saturating_sub(20),
            KeyCode::Char('o') => {
                let citation = self.selected_citation()?;
                let path = self.file_of(citation)?;
                return Some(Action::Open {
                    path,
                    line: current_lines(citation).0,
                });
            }
            KeyCode::Char('y') => {
                let citation = self.selected_citation()?;
                let text = format!("{}:{}", citation.path, current_lines(citation).0);
                return Some(Action::Copy(text));
            }
            KeyCode::Char(c @ ('g' | 'b')) => {
                let index = *self.list_order().get(self.selected)?;
                let verdict = if c == 'g' {
                    Verdict::Good
                } else {
                    Verdict::Bad
                };
                return Some(Action::Judge {
                    number: index + 1,
                    verdict,
                });
            }
            KeyCode::Enter => self.focus = Pane::Preview,
            _ => {}
        }
        None
    }

    fn on_picker_key(&mut self, key: KeyEvent) -> Option<Action> {
        let picker = self.picker.as_mut()?;
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('f') => self.picker = None,
            KeyCode::Char('j') | KeyCode::Down => {
                picker.selected = (picker.selected + 1).min(picker.choices.len() - 1);
            }
            KeyCode::Char('k') | KeyCode::Up => {
                picker.selected = picker.selected.saturating_sub(1);
            }
            KeyCode::Enter => {
                self.scope = picker.choices[picker.selected].clone();
                self.picker = None;
                // Re-ask the last question under the new restriction.
                if let Some(last) = self.history.last().cloned() {
                    return self.start(last);
                }
            }
            _ => {}
        }
        None
    }

    fn ask(&mut self) -> Option<Action> {
        let question = self.input.trim().to_string();
        if question.is_empty() {
            return None;
        }
        if self.history.last() != Some(&question) {
            self.history.push(question.clone());
        }
        self.history_pos = None;
        self.start(question)
    }

    /// Puts `question` in flight, unless one already is.
    fn start(&mut self, question: String) -> Option<Action> {
        if matches!(self.query, QueryState::Running { .. }) {
            self.notice = Some("a question is still running".into());
            return None;
        }
        self.notice = None;
        self.query = QueryState::Running {
            question: question.clone(),
        };
        Some(Action::Ask {
            question,
            scope: self.query_scope(),
        })
    }

    /// The restriction of the next question.
    pub fn query_scope(&self) -> QueryScope {
        let (repos, language) = match &self.scope {
            ScopeChoice::Everything => (Vec::new(), None),
            ScopeChoice::Repo(repo) => (vec![repo.clone()], None),
            ScopeChoice::Language(language) => (Vec::new(), Some(language.clone())),
        };
        QueryScope {
            k: self.k,
            repos,
            language,
            per_file: false,
        }
    }

    fn browse_history(&mut self, step: isize) {
        if self.history.is_empty() {
            return;
        }
        let last = self.history.len() - 1;
        let pos = match (self.history_pos, step < 0) {
            (None, true) => Some(last),
            (None, false) => None,
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p < last => Some(p + 1),
            (Some(_), false) => None,
        };
        self.history_pos = pos;
        self.input = pos.map_or_else(String::new, |p| self.history[p].clone());
    }

    fn select(&mut self, index: usize) {
        if index != self.selected {
            self.selected = index;
            self.preview_scroll = 0;
        }
    }
}

/// The lines a citation covers in the file as it is now (moved code at its new place).
pub fn current_lines(citation: &Citation) -> (u32, u32) {
    match citation.freshness {
        Freshness::Moved {
            start_line,
            end_line,
        } => (start_line, end_line),
        _ => (citation.start_line, citation.end_line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(app: &mut App, text: &str) {
        for c in text.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn enter_asks_and_typing_q_does_not_quit() {
        let mut app = fixtures::app();
        typed(&mut app, "quit quickly");
        assert_eq!(app.input, "quit quickly");
        let action = app.on_key(key(KeyCode::Enter));
        assert_eq!(
            action,
            Some(Action::Ask {
                question: "quit quickly".into(),
                scope: QueryScope {
                    k: 8,
                    repos: vec![],
                    language: None,
                    per_file: false,
                }
            })
        );
        // A second Enter while the first runs sends nothing.
        assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    }

    #[test]
    fn an_answer_moves_focus_to_the_citations_and_keys_act_on_them() {
        let mut app = fixtures::app();
        typed(&mut app, "refund");
        app.on_key(key(KeyCode::Enter));
        app.finish(Ok(fixtures::answer()), Duration::from_millis(12));
        assert_eq!(app.focus, Pane::Citations);
        app.on_key(key(KeyCode::Char('j')));
        assert_eq!(app.selected, 1);
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            Some(Action::Copy("fraud/scoring.py:14".into())),
            "the moved citation is copied at its current line"
        );
        assert_eq!(
            app.on_key(key(KeyCode::Char('b'))),
            Some(Action::Judge {
                number: 2,
                verdict: Verdict::Bad
            })
        );
        assert_eq!(
            app.on_key(key(KeyCode::Char('o'))),
            Some(Action::Open {
                path: PathBuf::from("/src/payments/plugins/fraud/fraud/scoring.py"),
                line: 14
            })
        );
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('j')));
        assert_eq!(app.selected, 2, "selection stops at the last citation");
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Some(Action::Quit));
    }

    #[test]
    fn the_list_follows_the_file_ranking_and_verdicts_keep_ask_s_numbers() {
        let mut app = fixtures::app();
        let mut answer = fixtures::answer();
        answer.files.swap(0, 1); // the fraud plugin's file ranks first
        typed(&mut app, "score");
        app.on_key(key(KeyCode::Enter));
        app.finish(Ok(answer), Duration::ZERO);
        assert_eq!(app.list_order(), vec![1, 0, 2]);
        assert_eq!(app.selected_citation().unwrap().symbol, "FraudScorer.score");
        assert_eq!(
            app.on_key(key(KeyCode::Char('g'))),
            Some(Action::Judge {
                number: 2,
                verdict: Verdict::Good
            })
        );
    }

    #[test]
    fn tab_cycles_panes_and_history_recalls_questions() {
        let mut app = fixtures::app();
        for question in ["first", "second"] {
            typed(&mut app, question);
            app.on_key(key(KeyCode::Enter));
            app.finish(Err("boom".into()), Duration::ZERO);
            app.input.clear();
        }
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input, "second");
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input, "first");
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.input, "second");
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.input, "");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.focus, Pane::Citations);
        app.on_key(key(KeyCode::BackTab));
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.focus, Pane::Preview);
    }

    #[test]
    fn the_picker_restricts_and_re_asks_the_last_question() {
        let mut app = fixtures::app();
        typed(&mut app, "score");
        app.on_key(key(KeyCode::Enter));
        app.finish(Ok(fixtures::answer()), Duration::ZERO);
        app.on_key(key(KeyCode::Char('f')));
        assert!(app.picker.is_some());
        // everything, payments, payments/plugins/fraud, rust, python
        for _ in 0..4 {
            app.on_key(key(KeyCode::Char('j')));
        }
        let action = app.on_key(key(KeyCode::Enter));
        assert_eq!(app.scope, ScopeChoice::Language("python".into()));
        assert_eq!(
            action,
            Some(Action::Ask {
                question: "score".into(),
                scope: QueryScope {
                    k: 8,
                    repos: vec![],
                    language: Some("python".into()),
                    per_file: false,
                }
            })
        );
    }

    #[test]
    fn help_closes_on_any_key_and_ctrl_c_always_quits() {
        let mut app = fixtures::app();
        app.on_key(key(KeyCode::Tab));
        app.on_key(key(KeyCode::Char('?')));
        assert!(app.show_help);
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert!(!app.show_help);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Some(Action::Quit));
    }
}
