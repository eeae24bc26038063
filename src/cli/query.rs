//! `codeq search`, `codeq ask`, the TUI and the MCP server: the commands that answer
//! queries through a [`Session`], and how answers and results are printed.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::args::Cli;
use super::{open_session, output, warn};
use crate::answer::{Answer, Freshness, Generated};
use crate::backlog::Verdict;
use crate::mcp;
use crate::paths;
use crate::report;
use crate::search::{QueryScope, SearchResults};
use crate::trace::{Surface, TraceId};
use crate::tui;

/// `codeq` alone: the TUI when an index is found from here, else the help.
pub(super) fn cmd_default(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    if cli.index_dir.is_some() || paths::discover_index_dir(&cwd).is_ok() {
        return cmd_tui(cli, 8);
    }
    let mut command = <Cli as clap::CommandFactory>::command();
    command.print_help()?;
    eprintln!("\ncodeq: no index here: run `codeq index ROOT`, then `codeq` inside ROOT");
    Ok(ExitCode::from(2))
}

/// The terminal UI, `k` citations per answer.
pub(super) fn cmd_tui(cli: &Cli, k: usize) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("`codeq tui` needs a terminal; for scripts use `codeq ask QUESTION --json`");
    }
    tui::run(&open_session(cli)?, k)?;
    Ok(ExitCode::SUCCESS)
}

/// The MCP server on stdin/stdout, as the principal fixed now.
pub(super) fn cmd_mcp(cli: &Cli) -> anyhow::Result<ExitCode> {
    let session = open_session(cli)?;
    mcp::serve(&session, std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// Hybrid search; exit 1 when nothing is found.
pub(super) fn cmd_search(cli: &Cli, query: &str, scope: &QueryScope) -> anyhow::Result<ExitCode> {
    let session = open_session(cli)?;
    let searched = session.search(Surface::Search, query, scope)?;
    let trace_id = trace_id_or_warn(&searched.trace);
    let results = &searched.value;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(out, "{}", session.search_json(query, &searched))?;
    } else {
        write_search_results(&mut out, results)?;
        write_coverage_note(&mut out, results.vector_coverage)?;
        let repos = results.hits.iter().map(|h| h.chunk.repo.as_str());
        write_stale_note(&mut out, &session.index_state(repos))?;
        write_trace_hint(&mut out, trace_id)?;
    }
    Ok(if results.hits.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Answers a question, recording `verdicts` on its citations; exit 1 when not confident.
pub(super) fn cmd_ask(
    cli: &Cli,
    question: &str,
    scope: &QueryScope,
    verdicts: &[(usize, Verdict)],
) -> anyhow::Result<ExitCode> {
    let session = open_session(cli)?;
    let asked = session.ask(Surface::Ask, question, scope)?;
    let trace_id = trace_id_or_warn(&asked.trace);
    let answer = &asked.value;
    if !verdicts.is_empty() {
        let path = session.record_verdicts(answer, verdicts)?;
        warn(&format!(
            "recorded {} verdict(s) in {} for `codeq eval` triage",
            verdicts.len(),
            path.display()
        ));
    }
    let mut out = output(cli.json);
    if cli.json {
        writeln!(out, "{}", session.ask_json(&asked))?;
    } else {
        write_answer(&mut out, answer)?;
        write_coverage_note(&mut out, answer.vector_coverage)?;
        let repos = answer.citations.iter().map(|c| c.repo.as_str());
        write_stale_note(&mut out, &session.index_state(repos))?;
        write_trace_hint(&mut out, trace_id)?;
    }
    Ok(if answer.confident {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The trace id, or `None` after saying on stderr why the trace was not written.
fn trace_id_or_warn(id: &TraceId) -> Option<&str> {
    match id {
        Ok(id) => Some(id),
        Err(e) => {
            warn(&format!("the query's trace was not recorded: {e}"));
            None
        }
    }
}

/// Where the query's trace is and how to read it.
fn write_trace_hint(out: &mut impl Write, id: Option<&str>) -> std::io::Result<()> {
    match id {
        Some(id) => writeln!(out, "trace {id} (`codeq trace {id}` explains the ranking)"),
        None => Ok(()),
    }
}

/// A line saying how much of the index the vector lane covered, while it is incomplete.
fn write_coverage_note(out: &mut impl Write, coverage: Option<f64>) -> std::io::Result<()> {
    match coverage {
        Some(share) => writeln!(
            out,
            "note: vectors cover {:.0}% of the chunks you can see so far (all are in BM25); \
             `codeq index` computes the rest",
            share * 100.0
        ),
        None => Ok(()),
    }
}

/// One line per cited repository whose HEAD moved since it was indexed.
fn write_stale_note(
    out: &mut impl Write,
    state: &serde_json::Map<String, serde_json::Value>,
) -> std::io::Result<()> {
    for (repo, s) in state {
        if s["stale"] == true {
            let short = |v: &serde_json::Value| {
                v.as_str()
                    .map_or_else(|| "none".to_string(), |c| c.chars().take(8).collect())
            };
            writeln!(
                out,
                "note: {repo} is at {} but was indexed at {}; run `codeq index` to refresh",
                short(&s["head"]),
                short(&s["indexed_commit"])
            )?;
        }
    }
    Ok(())
}

/// The LLM's part of an answer: its verified text, or why the extractive answer stands, and
/// what verification removed or flagged.
fn write_generated(out: &mut impl Write, g: &Generated) -> std::io::Result<()> {
    match (&g.text, &g.fallback) {
        (Some(text), _) => writeln!(
            out,
            "Answer by {} (prompt {}; [n] = citation n below):\n{text}\n",
            g.model, g.prompt_version
        )?,
        (None, Some(reason)) => writeln!(
            out,
            "note: no generated answer ({reason}); the extractive answer follows"
        )?,
        (None, None) => {}
    }
    for removed in &g.removed {
        writeln!(
            out,
            "note: removed the model's citation {}: {}",
            removed.cited, removed.reason
        )?;
    }
    for n in &g.flagged_sources {
        writeln!(
            out,
            "warning: source [{n}] contains text that reads like instructions to a model; it was passed as data only"
        )?;
    }
    Ok(())
}

/// An answer: the generated text if any, the summary and the citations by file.
fn write_answer(out: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    if let Some(generated) = &answer.generated {
        write_generated(out, generated)?;
    }
    writeln!(out, "{}", answer.summary)?;
    for group in &answer.files {
        writeln!(
            out,
            "\n{}:{}  (confidence {:.2})",
            group.repo, group.path, group.confidence
        )?;
        for &i in &group.citations {
            let c = &answer.citations[i];
            let freshness = match &c.freshness {
                Freshness::Current | Freshness::Unverified => String::new(),
                Freshness::Moved {
                    start_line,
                    end_line,
                } => format!(
                    "  [STALE: file changed; this code is now at lines {start_line}-{end_line}]"
                ),
                Freshness::Changed => "  [STALE: file changed since indexing]".into(),
                Freshness::Missing => "  [STALE: file no longer exists]".into(),
            };
            writeln!(
                out,
                "  [{}] lines {}-{}  {} ({})  confidence {:.2}{freshness}",
                i + 1,
                c.start_line,
                c.end_line,
                c.symbol,
                c.kind,
                c.confidence
            )?;
            if !c.signature.is_empty() {
                writeln!(out, "      {}", c.signature)?;
            }
            if !c.doc.is_empty() {
                writeln!(out, "      \"{}\"", c.doc)?;
            }
            writeln!(out, "      why: {}", c.why)?;
        }
    }
    for d in &answer.dropped {
        writeln!(out, "\ndropped {}: {}", d.citation, d.reason)?;
    }
    Ok(())
}

/// Ranked results with their lanes and a few lines of each.
fn write_search_results(out: &mut impl Write, results: &SearchResults) -> std::io::Result<()> {
    if results.hits.is_empty() {
        writeln!(out, "no results")?;
        return Ok(());
    }
    for (i, hit) in results.hits.iter().enumerate() {
        let c = &hit.chunk;
        let lanes = match (hit.bm25_rank, hit.vector_rank) {
            (Some(b), Some(v)) => format!("bm25 #{b}, vector #{v}"),
            (Some(b), None) => format!("bm25 #{b}"),
            (None, Some(v)) => format!("vector #{v}"),
            (None, None) => String::new(),
        };
        writeln!(
            out,
            "{:>2}. {}:{}:{}-{}  {} ({})  [{lanes}]",
            i + 1,
            c.repo,
            c.path,
            c.start_line,
            c.end_line,
            c.symbol,
            c.kind
        )?;
        for line in report::snippet(&c.content, 3).lines() {
            writeln!(out, "      | {line}")?;
        }
    }
    Ok(())
}
