//! `codeq eval`: question sets scored through the session, gated against a baseline,
//! optionally compared with a second index.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::args::Cli;
use super::human::age;
use super::{open_session, output, session_options, warn};
use crate::backlog;
use crate::eval::history::{self, HistoryEntry};
use crate::eval::remote::ServerRun;
use crate::eval::{self, Baseline, Changes, EvalReport, Metrics, QuestionSet, Tier};
use crate::report::JSON_SCHEMA_VERSION;
use crate::session::{Session, SessionOptions};

/// What every eval run takes, in process or through a server.
pub(super) struct EvalRun<'a> {
    pub(super) set_paths: &'a [PathBuf],
    pub(super) k: usize,
    pub(super) baseline: Option<&'a Path>,
    /// Score generated answers too (`--llm`).
    pub(super) llm: bool,
}

impl EvalRun<'_> {
    fn load_sets(&self) -> crate::Result<Vec<QuestionSet>> {
        self.set_paths
            .iter()
            .map(|p| QuestionSet::load(p))
            .collect()
    }
}

/// Scores the sets of `run`; exit 1 when a blocking gate fails.
pub(super) fn cmd_eval(
    cli: &Cli,
    run: &EvalRun,
    save_baseline: Option<&Path>,
    compare_index: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let sets = run.load_sets()?;
    let session = open_session(cli)?;
    anyhow::ensure!(
        !run.llm || session.config().llm.is_some(),
        "--llm needs an [llm] section (an OpenAI-compatible endpoint) in codeq.toml or your user configuration; `make llm-demo` shows a local one"
    );
    let k = run.k;
    let report = run_sets(&session, &sets, k)?;
    let changes = match run.baseline {
        Some(path) => Some(eval::compare_with_baseline(&report, &read_baseline(path)?)),
        None => None,
    };
    let comparison = match compare_index {
        Some(other_path) => {
            // The second index is queried with the model it was built with, never
            // --model-dir, and scoped by its own ACL, exactly as if it were queried alone.
            let other = Session::open(&SessionOptions {
                index_dir: Some(other_path.to_path_buf()),
                model_dir: None,
                ..session_options(cli)
            })?;
            let other_report = run_sets(&other, &sets, k)?;
            let flips = eval::compare_reports(&report, &other_report);
            Some((other, other_report, flips))
        }
        None => None,
    };
    if let Some(path) = save_baseline {
        let json = serde_json::to_string_pretty(&Baseline::of(&report))?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failures = eval::gate_failures(&report, changes.as_ref());
    let entry = HistoryEntry::of(
        &report,
        session.manifest().chunker_version,
        session.principal().map(str::to_string),
        failures.is_empty(),
    );
    if let Err(e) = history::append(session.index_dir(), &entry) {
        warn(&format!("this run is not in the eval history: {e}"));
    }
    let backlog = session.backlog();
    // Questions over `[budget] query_ms` (reported, not gated: timings depend on the machine).
    let budget = session.config().budget.query_ms.map(|limit| {
        let over: Vec<String> = report
            .questions()
            .filter(|(_, q)| q.latency_ms > limit as f64)
            .map(|(set, q)| format!("{set}/{}", q.id))
            .collect();
        (limit, over)
    });
    let mut out = output(cli.json);
    if cli.json {
        let value = json!({
            "schema_version": JSON_SCHEMA_VERSION,
            "report": report,
            "baseline_changes": changes,
            "compare": comparison.as_ref().map(|(d, r, f)| json!({
                "index_dir": d.index_dir(), "report": r, "changes": f})),
            "gate_failures": failures,
            "backlog": backlog,
            "budget": budget.as_ref().map(|(limit, over)| json!({"query_ms": limit, "over": over})),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "index {} (generation {}, model {})",
            session.index_dir().display(),
            report.generation,
            report.model
        )?;
        write_metrics_table(&mut out, &report, true)?;
        write_lane_table(&mut out, &report)?;
        write_generated_table(&mut out, &report)?;
        if let Some(changes) = &changes {
            write_changes(&mut out, "against the baseline", changes)?;
        }
        if let Some((limit, over)) = &budget {
            writeln!(
                out,
                "\nbudget: {} of {} questions took longer than query_ms = {limit}{}",
                over.len(),
                report.overall.questions,
                if over.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", over.join(", "))
                }
            )?;
        }
        if let Some((other_dir, other_report, flips)) = &comparison {
            writeln!(
                out,
                "\nB: index {} (generation {}, model {})",
                other_dir.index_dir().display(),
                other_report.generation,
                other_report.model
            )?;
            write_metrics_table(&mut out, other_report, true)?;
            write_metric_deltas(&mut out, &report.overall, &other_report.overall)?;
            write_changes(&mut out, "from A to B", flips)?;
        }
        for set in &report.sets {
            for q in set.questions.iter().filter(|q| q.tier == Tier::Backlog) {
                writeln!(
                    out,
                    "backlog {}/{}: first expected file at rank {}",
                    set.name,
                    q.id,
                    q.first_hit.map_or("-".into(), |r| r.to_string())
                )?;
            }
        }
        if !backlog.is_empty() {
            writeln!(
                out,
                "\n{} recorded verdicts await triage in {}:",
                backlog.len(),
                session.index_dir().join(backlog::BACKLOG_FILE).display()
            )?;
            for item in backlog.iter().rev().take(10) {
                writeln!(
                    out,
                    "  {} {} — {}",
                    item["verdict"].as_str().unwrap_or("?"),
                    item["citation"].as_str().unwrap_or("?"),
                    item["question"].as_str().unwrap_or("?")
                )?;
            }
        }
        write_gate(&mut out, &failures)?;
    }
    Ok(gate_exit(&failures))
}

/// Scores `set_paths` through a running `codeq serve` (see [`eval::remote`]): exit 1
/// when a blocking gate fails, a request fails, or an answer under load differs.
pub(super) fn cmd_eval_server(
    cli: &Cli,
    run: &EvalRun,
    (url, token_file, concurrency): (&str, &Path, usize),
) -> anyhow::Result<ExitCode> {
    let sets = run.load_sets()?;
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read the token file {}", token_file.display()))?
        .trim()
        .to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "the token file {} is empty",
        token_file.display()
    );
    let server = ServerRun {
        url: url.to_string(),
        token,
        concurrency,
    };
    let (report, load) = eval::remote::run_on_server(&sets, run.k, &server)?;
    // Only the server knows its configuration: judge by what came back.
    anyhow::ensure!(
        !run.llm || report.overall.generated.is_some(),
        "--llm: the server generated no answer: its configuration has no [llm] section"
    );
    let changes = run
        .baseline
        .map(|path| -> anyhow::Result<Changes> {
            let mut changes = eval::compare_with_baseline(&report, &read_baseline(path)?);
            // Each lane alone is not measured through a server: nothing to compare.
            changes.lane_regressed.clear();
            Ok(changes)
        })
        .transpose()?;
    let mut failures = eval::gate_failures(&report, changes.as_ref());
    failures.extend(
        load.errors
            .iter()
            .map(|e| format!("request failed under load: {e}")),
    );
    failures.extend(
        load.differing
            .iter()
            .map(|q| format!("answer under load differs from the unloaded one: {q}")),
    );
    let mut out = output(cli.json);
    if cli.json {
        let value = json!({
            "schema_version": JSON_SCHEMA_VERSION,
            "server": url,
            "report": report,
            "load": load,
            "baseline_changes": changes,
            "gate_failures": failures,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "server {url} (generation {}, model {}); each lane alone is measured in process only",
            report.generation, report.model
        )?;
        write_metrics_table(&mut out, &report, false)?;
        write_generated_table(&mut out, &report)?;
        writeln!(
            out,
            "\nunder load: {} clients, {} requests, p50 {:.1} ms, p95 {:.1} ms, {} errors, {} answers differing from the unloaded run",
            load.concurrency,
            load.requests,
            load.latency_p50_ms,
            load.latency_p95_ms,
            load.errors.len(),
            load.differing.len()
        )?;
        if let Some(changes) = &changes {
            write_changes(&mut out, "against the baseline", changes)?;
        }
        write_gate(&mut out, &failures)?;
    }
    Ok(gate_exit(&failures))
}

/// A saved baseline (`--save-baseline`'s file).
fn read_baseline(path: &Path) -> anyhow::Result<Baseline> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the baseline {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a codeq eval baseline", path.display()))
}

/// The gate's verdict and each failure.
fn write_gate(out: &mut impl Write, failures: &[String]) -> std::io::Result<()> {
    if failures.is_empty() {
        return writeln!(out, "\ngate: pass");
    }
    writeln!(out, "\ngate: FAIL")?;
    for f in failures {
        writeln!(out, "  {f}")?;
    }
    Ok(())
}

/// Exit 0 when the gate passed, 1 when it failed.
fn gate_exit(failures: &[String]) -> ExitCode {
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The summaries of earlier eval runs on the index, oldest first: those of the session's
/// principal, or every run for a principal who sees the whole index.
pub(super) fn cmd_history(cli: &Cli) -> anyhow::Result<ExitCode> {
    let session = open_session(cli)?;
    let entries = history::read(
        session.index_dir(),
        session.principal(),
        session.sees_everything(),
    )?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "history": entries})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        writeln!(
            out,
            "no eval has run on {} yet",
            session.index_dir().display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<12} {:<8} {:<8} {:<18} {:>3} {:>6} {:>6} {:>6} {:>7}  gate  model",
        "when", "gen", "chunker", "set", "n", "hit@1", "hit@5", "MRR", "NDCG@10"
    )?;
    for entry in &entries {
        for set in &entry.sets {
            writeln!(
                out,
                "{:<12} {:<8} {:<8} {:<18} {:>3} {:>6.3} {:>6.3} {:>6.3} {:>7.3}  {:<4}  {}",
                age(entry.unix),
                entry.generation,
                format!("v{}", entry.chunker_version),
                set.name,
                set.questions,
                set.hit_at_1,
                set.hit_at_5,
                set.mrr_at_10,
                set.ndcg_at_10,
                if entry.passed { "pass" } else { "FAIL" },
                entry.model
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `sets` through `session`, saying once on stderr when answers went untraced.
fn run_sets(session: &Session, sets: &[QuestionSet], k: usize) -> anyhow::Result<EvalReport> {
    let report = eval::run(session, sets, k)?;
    let untraced = report
        .questions()
        .filter(|(_, q)| q.trace_id.is_none())
        .count();
    if untraced > 0 {
        warn(&format!(
            "{untraced} eval answers of {} are not traced (the trace log could not be written)",
            session.index_dir().display()
        ));
    }
    Ok(report)
}

/// Each set's name, tier and metrics, then `overall` (no tier) with the report's.
fn metric_rows(report: &EvalReport) -> impl Iterator<Item = (&str, Option<Tier>, &Metrics)> {
    report
        .sets
        .iter()
        .map(|s| (s.name.as_str(), Some(s.tier), &s.metrics))
        .chain(std::iter::once(("overall", None, &report.overall)))
}

/// One row of metrics per set and overall; with `lanes`, hit@5 of each lane alone too.
fn write_metrics_table(
    out: &mut impl Write,
    report: &EvalReport,
    lanes: bool,
) -> std::io::Result<()> {
    write!(
        out,
        "{:<18} {:<10} {:>3} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>5} {:>5} {:>7} {:>6} {:>6}",
        "set",
        "tier",
        "n",
        "hit@1",
        "hit@5",
        "MRR",
        "NDCG@10",
        "R@10",
        "sym@5",
        "prec",
        "leaks",
        "refusal",
        "p50ms",
        "p95ms",
    )?;
    if lanes {
        write!(out, " | {:>6} {:>6} {:>6}", "bm25@5", "vec@5", "hyb@5")?;
    }
    writeln!(out)?;
    for (name, tier, m) in metric_rows(report) {
        let tier = tier.map_or(String::new(), |t| format!("{t:?}").to_lowercase());
        write!(
            out,
            "{:<18} {:<10} {:>3} {:>6.3} {:>6.3} {:>6.3} {:>7.3} {:>6.3} {:>6} {:>5.2} {:>5} {:>7} {:>6.1} {:>6.1}",
            name,
            tier,
            m.questions,
            m.hit_at_1,
            m.hit_at_5,
            m.mrr_at_10,
            m.ndcg_at_10,
            m.recall_at_10,
            m.symbol_hit_at_5.map_or("-".into(), |v| format!("{v:.3}")),
            m.citation_precision,
            m.acl_leaks,
            format!("{}/{}", m.refusals_honoured, m.refusals_expected),
            m.latency_p50_ms,
            m.latency_p95_ms,
        )?;
        if lanes {
            write!(
                out,
                " | {:>6.3} {:>6.3} {:>6.3}",
                m.bm25_hit_at_5, m.vector_hit_at_5, m.hybrid_hit_at_5,
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The generated answers of each set and overall, each beside the extractive answer on
/// the same questions (citation precision over its top files and recall@10 of its files).
/// Latency here is the endpoint's; the metrics table's is the whole ask, generation included.
fn write_generated_table(out: &mut impl Write, report: &EvalReport) -> std::io::Result<()> {
    let Some(overall) = &report.overall.generated else {
        return Ok(());
    };
    writeln!(
        out,
        "\ngenerated answers (model {}, prompt {}), beside the extractive answer",
        overall.models.join(", "),
        overall.prompt_versions.join(", ")
    )?;
    writeln!(
        out,
        "{:<18} {:<10} {:>3} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} {:>8} {:>8} {:>7} {:>6} {:>7} {:>7}",
        "set",
        "answer",
        "n",
        "cited",
        "prec",
        "recall",
        "removed",
        "refusal",
        "fail",
        "p50ms",
        "p95ms",
        "ttft50",
        "tok/s",
        "in-tok",
        "out-tok",
    )?;
    let or_dash = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for (name, _, m) in metric_rows(report) {
        let Some(g) = &m.generated else { continue };
        writeln!(
            out,
            "{:<18} {:<10} {:>3} {:>6.3} {:>6} {:>6} {:>7.2} {:>7} {:>5} {:>8.0} {:>8.0} {:>7} {:>6} {:>7} {:>7}",
            name,
            "generated",
            g.questions,
            g.answered,
            or_dash(g.citation_precision, 3),
            or_dash(g.citation_recall, 3),
            g.removed_per_answer,
            format!("{}/{}", g.refusals_honoured, g.refusals_expected),
            g.endpoint_failures,
            g.latency_p50_ms,
            g.latency_p95_ms,
            or_dash(g.first_token_p50_ms, 0),
            or_dash(g.tokens_per_second, 1),
            or_dash(g.prompt_tokens, 0),
            or_dash(g.completion_tokens, 0),
        )?;
        writeln!(
            out,
            "{:<18} {:<10} {:>3} {:>6.3} {:>6.3} {:>6.3} {:>7.2} {:>7}",
            "",
            "extractive",
            g.questions,
            g.extractive_cited,
            m.citation_precision,
            m.recall_at_10,
            0.0,
            format!("{}/{}", m.refusals_honoured, m.refusals_expected),
        )?;
    }
    Ok(())
}

/// hit@1, hit@5 and MRR@10 of each lane alone, beside the fused ranking.
fn write_lane_table(out: &mut impl Write, report: &EvalReport) -> std::io::Result<()> {
    writeln!(
        out,
        "\n{:<18} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6}",
        "by lane", "bm25@1", "bm25@5", "MRR", "vec@1", "vec@5", "MRR", "hyb@1", "hyb@5", "MRR"
    )?;
    for (name, _, m) in metric_rows(report) {
        writeln!(
            out,
            "{:<18} | {:>6.3} {:>6.3} {:>6.3} | {:>6.3} {:>6.3} {:>6.3} | {:>6.3} {:>6.3} {:>6.3}",
            name,
            m.bm25_hit_at_1,
            m.bm25_hit_at_5,
            m.bm25_mrr_at_10,
            m.vector_hit_at_1,
            m.vector_hit_at_5,
            m.vector_mrr_at_10,
            m.hit_at_1,
            m.hybrid_hit_at_5,
            m.mrr_at_10
        )?;
    }
    Ok(())
}

/// The overall metrics of B beside A's.
fn write_metric_deltas(out: &mut impl Write, a: &Metrics, b: &Metrics) -> std::io::Result<()> {
    let rows = [
        ("hit@1", a.hit_at_1, b.hit_at_1),
        ("hit@5", a.hit_at_5, b.hit_at_5),
        ("MRR@10", a.mrr_at_10, b.mrr_at_10),
        ("NDCG@10", a.ndcg_at_10, b.ndcg_at_10),
        ("recall@10", a.recall_at_10, b.recall_at_10),
        ("bm25 hit@5", a.bm25_hit_at_5, b.bm25_hit_at_5),
        ("vector hit@5", a.vector_hit_at_5, b.vector_hit_at_5),
    ];
    writeln!(out, "\noverall B - A:")?;
    for (name, va, vb) in rows {
        writeln!(out, "  {name:<13} {va:.3} -> {vb:.3}  ({:+.3})", vb - va)?;
    }
    Ok(())
}

/// Questions that regressed or improved.
fn write_changes(out: &mut impl Write, label: &str, changes: &Changes) -> std::io::Result<()> {
    writeln!(
        out,
        "\nquestions that changed {label}: {} blocking regressions, {} lane regressions, {} monitoring regressions, {} improvements",
        changes.regressed.len(),
        changes.lane_regressed.len(),
        changes.monitoring_regressed.len(),
        changes.improved.len()
    )?;
    for (tag, list) in [
        ("REGRESSED", &changes.regressed),
        ("LANE REGRESSED", &changes.lane_regressed),
        ("regressed (monitoring)", &changes.monitoring_regressed),
        ("improved", &changes.improved),
    ] {
        for key in list {
            writeln!(out, "  {tag}: {key}")?;
        }
    }
    Ok(())
}
