//! `codeq trace`: a recorded query explained, stage times and why each result ranked
//! where it did.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use super::args::Cli;
use super::human::age;
use super::{open_session, output};
use crate::report::{self, JSON_SCHEMA_VERSION};
use crate::trace;

/// Prints the principal's trace `id` (or their latest).
pub(super) fn cmd_trace(cli: &Cli, id: Option<&str>) -> anyhow::Result<ExitCode> {
    let found = open_session(cli)?.trace(id)?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "trace": found})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    write_trace(&mut out, &found)?;
    Ok(ExitCode::SUCCESS)
}

fn write_trace(out: &mut impl Write, t: &trace::Trace) -> std::io::Result<()> {
    let who = report::principal_label(t.principal.as_deref());
    writeln!(
        out,
        "trace {} — {} by {who} via {}, generation {}, model {}, {}",
        t.id,
        if t.confident.is_some() {
            "ask"
        } else {
            "search"
        },
        t.surface,
        t.generation,
        t.model,
        age(t.recorded_unix_ms / 1000)
    )?;
    let repos = if t.repos.is_empty() {
        "all visible".to_string()
    } else {
        t.repos.join(", ")
    };
    writeln!(
        out,
        "query {:?} (k {}, repos {repos}, language {})",
        t.query,
        t.k,
        t.language.as_deref().unwrap_or("any")
    )?;
    let m = &t.timings_ms;
    writeln!(
        out,
        "time  {:.1} ms: analyze {:.2}, embed {:.1}, bm25 {:.1}, vector {:.1}, fuse {:.1}, rerank {:.1}, answer {:.1} (verify {:.1}), llm {:.1}",
        m.total, m.analyze, m.embed, m.bm25, m.vector, m.fuse, m.rerank, m.answer, m.verify, m.llm
    )?;
    match t.confident {
        Some(true) => writeln!(out, "answer: confident")?,
        Some(false) => writeln!(out, "answer: no confident answer (weak evidence)")?,
        None => {}
    }
    let kept: Vec<&trace::TracedHit> = t.candidates.iter().filter(|h| h.kept).collect();
    for (i, hit) in kept.iter().enumerate() {
        writeln!(out, "{:>2}. {}  {}", i + 1, hit.citation, hit.symbol)?;
        if let Some(c) = t.citations.iter().find(|c| c.citation == hit.citation) {
            writeln!(
                out,
                "    shown with confidence {:.2}, {}; {}",
                c.confidence, c.freshness, c.why
            )?;
        }
        writeln!(out, "    {}", ranking_of(hit))?;
    }
    let cut: Vec<&trace::TracedHit> = t.candidates.iter().filter(|h| !h.kept).collect();
    if !cut.is_empty() {
        writeln!(
            out,
            "{} more candidates were cut (overlap with a better chunk, k, or the file ranking); the best:",
            cut.len()
        )?;
        for hit in cut.iter().take(5) {
            writeln!(
                out,
                "    {}  {}: {}",
                hit.citation,
                hit.symbol,
                ranking_of(hit)
            )?;
        }
    }
    for d in &t.dropped {
        writeln!(out, "dropped {}: {}", d.citation, d.reason)?;
    }
    if let Some(g) = &t.generated {
        let outcome = g.fallback.as_ref().map_or_else(
            || format!("answered citing sources {:?}", g.cited_sources),
            |reason| format!("not used: {reason}"),
        );
        writeln!(
            out,
            "llm   {} (prompt {}) in {:.0} ms: {outcome}",
            g.model, g.prompt_version, g.latency_ms
        )?;
        for removed in &g.removed {
            writeln!(out, "      removed {}: {}", removed.cited, removed.reason)?;
        }
        if !g.flagged_sources.is_empty() {
            writeln!(
                out,
                "      sources {:?} read like instructions to a model",
                g.flagged_sources
            )?;
        }
    }
    if t.over_budget {
        writeln!(out, "over the [budget] query_ms latency budget")?;
    }
    if t.withheld > 0 {
        writeln!(
            out,
            "{} entries are withheld: you may not read them under the current ACL",
            t.withheld
        )?;
    }
    Ok(())
}

/// "BM25 #1, score 4.10, vector #2, distance 0.310 -> fused 0.0325 x 1.60 (…) = 0.0520".
fn ranking_of(hit: &trace::TracedHit) -> String {
    let mut lanes = Vec::new();
    if let Some(rank) = hit.bm25_rank {
        let score = hit
            .bm25_score
            .map_or(String::new(), |s| format!(", score {s:.2}"));
        lanes.push(format!("BM25 #{rank}{score}"));
    }
    if let Some(rank) = hit.vector_rank {
        let distance = hit
            .vector_distance
            .map_or(String::new(), |d| format!(", distance {d:.3}"));
        lanes.push(format!("vector #{rank}{distance}"));
    }
    let boosts: String = hit
        .boosts
        .iter()
        .map(|b| format!(" x {:.2} ({})", b.factor, b.reason))
        .collect();
    let reranked = hit
        .rerank_score
        .map_or(String::new(), |s| format!("; reranker {s:.2}"));
    format!(
        "{} -> fused {:.4}{boosts} = {:.4}{reranked}",
        if lanes.is_empty() {
            "no lane".to_string()
        } else {
            lanes.join(", ")
        },
        hit.fused_score,
        hit.score
    )
}
