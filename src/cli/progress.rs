//! Indexing progress on standard error: a bar on a terminal, a line every ten seconds
//! otherwise, nothing with `--json`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::human::human_duration;
use super::warn;
use crate::display::escape_controls;
use crate::index::IndexProgress;

/// Draws indexing progress on a terminal; prints a line every few seconds otherwise.
pub(super) struct TerminalProgress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    last_line: std::cell::Cell<Option<Instant>>,
    started: Instant,
    total_files: std::cell::Cell<usize>,
}

impl TerminalProgress {
    /// Progress reporting; `quiet` (for `--json`) shows only what must be said.
    pub(super) fn new(quiet: bool) -> TerminalProgress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        TerminalProgress {
            bar,
            quiet,
            last_line: std::cell::Cell::new(None),
            started: Instant::now(),
            total_files: std::cell::Cell::new(0),
        }
    }

    /// Clears the bar.
    pub(super) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Without a bar (not a terminal): true when a progress line is due — ten seconds
    /// after the last one, or at once with `force` — and never in quiet mode.
    fn line_due(&self, force: bool) -> bool {
        let due = !self.quiet
            && (force
                || self
                    .last_line
                    .get()
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(10)));
        if due {
            self.last_line.set(Some(Instant::now()));
        }
        due
    }
}

impl IndexProgress for TerminalProgress {
    fn message(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(escape_controls(text)),
            None if !self.quiet => warn(text),
            None => {}
        }
    }

    fn scanned(&self, files: usize, repos: usize) {
        self.total_files.set(files);
        if let Some(bar) = &self.bar {
            bar.set_length(files as u64);
        }
        self.message(&format!("{files} files in {repos} repos to read"));
    }

    fn advanced(&self, files_done: usize, chunks_stored: usize, embedded: usize) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = embedded as f64 / elapsed;
        if let Some(bar) = &self.bar {
            bar.set_position(files_done as u64);
            bar.set_message(format!("{chunks_stored} chunks, {rate:.1} embeddings/s"));
            return;
        }
        if self.line_due(false) {
            eprintln!(
                "codeq: {files_done}/{} files, {chunks_stored} chunks, {rate:.1} embeddings/s",
                self.total_files.get()
            );
        }
    }

    fn embedding(&self, done: usize, total: usize, rate: f64) {
        let left = total.saturating_sub(done);
        let eta = Duration::from_secs_f64(left as f64 / rate.max(1e-9));
        if let Some(bar) = &self.bar {
            if bar.length() != Some(total as u64) {
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} vectors  {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.set_length(total as u64);
            }
            bar.set_position(done as u64);
            bar.set_message(format!("{rate:.1} chunks/s, ETA {}", human_duration(eta)));
            return;
        }
        if self.line_due(done == total) {
            eprintln!(
                "codeq: vectors {done}/{total} ({rate:.1} chunks/s, ETA {}); queries already see the rest through BM25",
                human_duration(eta)
            );
        }
    }
}
