//! `codeq bench …`: indexing throughput, query and vector-lane latency, embedding rate,
//! incremental re-indexing, coverage and ANN builds, printed as tables or JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use super::args::Cli;
use super::human::human_bytes;
use super::{load_embedder, model_config, output, session_options};
use crate::bench::{self, Corpus, IncrementalBenchOptions};
use crate::config::Config;
use crate::embed::Embedder;
use crate::report::{JSON_SCHEMA_VERSION, ms};
use crate::session::{self, SessionOptions, WholeIndex};
use crate::store::{AnnIndex, AnnPolicy, IndexReader};
use crate::walk;

/// Indexing throughput on `root`.
pub(super) fn cmd_bench(
    cli: &Cli,
    root: &Path,
    out_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let checked_root = walk::check_root(root)?;
    let config = Config::load_for_root(&checked_root)?;
    let load_started = Instant::now();
    let mut embedder = load_embedder(cli, &config)?;
    let load_time = load_started.elapsed();
    let figures = in_bench_dir(out_dir, |index_dir| {
        bench::index_bench(&checked_root, index_dir, &config, &mut embedder)
    })?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "model_load_ms": ms(load_time), "bench": figures})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = &figures.report;
    let t = &r.times;
    let total = t.total.as_secs_f64().max(f64::EPSILON);
    writeln!(out, "corpus       {}", checked_root.display())?;
    writeln!(
        out,
        "content      {} repos, {} files ({} skipped), {} chunks, {} of source",
        r.repos,
        r.totals.files,
        r.totals.skipped.total(),
        r.totals.chunks,
        human_bytes(r.totals.source_bytes)
    )?;
    writeln!(out, "model load   {:.2}s", load_time.as_secs_f64())?;
    writeln!(
        out,
        "walk         {:>9.1} files/s   {:>6.2}s  {:>5.1}% of wall",
        figures.files_per_second_walked,
        t.walk.as_secs_f64(),
        100.0 * t.walk.as_secs_f64() / total
    )?;
    writeln!(
        out,
        "read+chunk   {:>9.1} chunks/s  {:>6.2}s  (overlapped with embedding)",
        figures.chunks_per_second_parsed,
        t.read_chunk.as_secs_f64()
    )?;
    for (name, d) in [
        ("embed", t.embed),
        ("store", t.store),
        ("publish", t.publish),
    ] {
        writeln!(
            out,
            "{name:<12} {:>9}             {:>6.2}s  {:>5.1}% of wall",
            "",
            d.as_secs_f64(),
            100.0 * d.as_secs_f64() / total
        )?;
    }
    writeln!(
        out,
        "embedder     {:>9.1} chunks/s (model time only)",
        figures.chunks_per_second_embedded
    )?;
    writeln!(
        out,
        "end to end   {:>9.1} chunks/s  {:>6.2}s  = {:.0}% of the embedder's rate",
        figures.chunks_per_second_end_to_end,
        total,
        100.0 * figures.end_to_end_vs_embedder
    )?;
    writeln!(out, "peak RSS     {}", human_bytes(figures.peak_rss_bytes))?;
    writeln!(
        out,
        "index size   {} ({:.2}x the source)",
        human_bytes(figures.index_bytes),
        figures.index_bytes as f64 / (r.totals.source_bytes.max(1)) as f64
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Time to the first answer and to full vector coverage, indexing `root` from empty.
pub(super) fn cmd_bench_coverage(
    cli: &Cli,
    root: &Path,
    query: &str,
    out_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let figures = bench::coverage_bench(root, out_dir, query)?;
    let mut stdout = output(cli.json);
    if cli.json {
        return print_bench_json(&mut stdout, &figures);
    }
    writeln!(
        stdout,
        "{} files, {} chunks: first answer after {:.1}s (BM25 published at {:.1}s), \
         full vector coverage after {:.1}s; {} vectors at {:.1} chunks/s (model time) \
         / {:.1} chunks/s (wall); peak RSS {}",
        figures.files,
        figures.chunks,
        figures.first_answer_s,
        figures.queryable_after_s,
        figures.full_coverage_s,
        figures.vectors_embedded,
        figures.model_chunks_per_second,
        figures.embedding_chunks_per_second,
        human_bytes(figures.peak_rss_bytes)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a benchmark that writes an index into `out_dir`, or into a temporary folder that
/// is removed afterwards.
fn in_bench_dir<T>(
    out_dir: Option<&Path>,
    run: impl FnOnce(&Path) -> crate::Result<T>,
) -> crate::Result<T> {
    if let Some(dir) = out_dir {
        return run(dir);
    }
    let scratch = std::env::temp_dir().join(format!("codeq-bench-{}", std::process::id()));
    let result = run(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// A `codeq serve` process under load beside the same queries in process.
pub(super) fn cmd_bench_serve(
    cli: &Cli,
    load: bench::ServeLoad,
    sources: &[PathBuf],
    out_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (corpus, _, config) = bench_corpus(cli, sources)?;
    let exe = std::env::current_exe()?;
    let figures = in_bench_dir(out_dir, |index_dir| {
        eprintln!(
            "codeq: replicating {} chunks to at least {} chunks in {}",
            corpus.len(),
            load.chunks,
            index_dir.display()
        );
        bench::serve_bench(&corpus, index_dir, config.index.ann_policy(), load, &exe)
    })?;
    let mut out = output(cli.json);
    if cli.json {
        return print_bench_json(&mut out, &figures);
    }
    let f = &figures;
    writeln!(
        out,
        "index        {} chunks, written in {:.1}s; {} distinct queries, k = 10",
        f.chunks,
        f.build.as_secs_f64(),
        f.queries
    )?;
    writeln!(out, "{:<34} {:>9} {:>9}", "search", "p50 ms", "p95 ms")?;
    for (what, p50, p95) in [
        (
            "in process (engine)",
            f.in_process_p50_ms,
            f.in_process_p95_ms,
        ),
        (
            &*format!("in process, {} threads at once", f.clients),
            f.in_process_loaded_p50_ms,
            f.in_process_loaded_p95_ms,
        ),
        ("server, one client", f.unloaded_p50_ms, f.unloaded_p95_ms),
        (
            &*format!("server, {} clients at once", f.clients),
            f.loaded_p50_ms,
            f.loaded_p95_ms,
        ),
    ] {
        writeln!(out, "{what:<34} {p50:>9.1} {p95:>9.1}")?;
    }
    writeln!(
        out,
        "under load   {} requests, {:.1}/s; p50 {:.2}x in process at once, {:.2}x one at a time; \
         {} errors, {} leaks, {} answers differ",
        f.requests,
        f.throughput_per_s,
        f.loaded_vs_in_process_loaded,
        f.loaded_vs_in_process,
        f.errors,
        f.leaks,
        f.differing
    )?;
    for why in &f.first_errors {
        writeln!(out, "  error: {why}")?;
    }
    Ok(if f.errors == 0 && f.leaks == 0 && f.differing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `{"schema_version", "bench"}` on one line.
fn print_bench_json(
    out: &mut impl Write,
    bench: &impl serde::Serialize,
) -> anyhow::Result<ExitCode> {
    writeln!(
        out,
        "{}",
        json!({"schema_version": JSON_SCHEMA_VERSION, "bench": bench})
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The corpus of a replicating benchmark: the rows of `sources` (default: the current
/// index), with the first index and its configuration. The benchmark copies whole
/// indexes, so it runs only as a principal who may read every repository of each.
fn bench_corpus(cli: &Cli, sources: &[PathBuf]) -> anyhow::Result<(Corpus, IndexReader, Config)> {
    let options = session_options(cli);
    let mut indexes = if sources.is_empty() {
        vec![WholeIndex::open(&options)?]
    } else {
        sources
            .iter()
            .map(|path| {
                WholeIndex::open(&SessionOptions {
                    index_dir: Some(path.clone()),
                    ..options.clone()
                })
            })
            .collect::<crate::Result<Vec<_>>>()?
    };
    let readers: Vec<&IndexReader> = indexes.iter().map(|index| &index.reader).collect();
    let corpus = Corpus::of(&readers)?;
    let first = indexes.swap_remove(0);
    Ok((corpus, first.reader, first.config))
}

/// Building an ANN index from scratch over the current index's vectors.
pub(super) fn cmd_bench_ann_build(
    cli: &Cli,
    index: AnnIndex,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let WholeIndex {
        dir,
        reader,
        config,
    } = WholeIndex::open(&session_options(cli))?;
    drop(reader);
    let policy = AnnPolicy {
        index,
        min_rows: 0,
        ..config.index.ann_policy()
    };
    let figures = bench::ann_build_bench(&dir, out, policy)?;
    let mut stdout = output(cli.json);
    if cli.json {
        return print_bench_json(&mut stdout, &figures);
    }
    writeln!(
        stdout,
        "{} over {} rows ({} per partition): {:.1}s; RSS {} before, peak {}",
        figures.index,
        figures.rows,
        figures.partition_rows,
        figures.build_s,
        human_bytes(figures.rss_before_bytes),
        human_bytes(figures.peak_rss_bytes)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Warm query latency on a replicated copy of the current index.
pub(super) fn cmd_bench_query(
    cli: &Cli,
    chunks: usize,
    rounds: usize,
    sources: &[PathBuf],
    out_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (corpus, first, config) = bench_corpus(cli, sources)?;
    let mut embedder = session::index_embedder(cli.model_dir.as_deref(), &config, &first)?;
    let figures = in_bench_dir(out_dir, |index_dir| {
        eprintln!(
            "codeq: replicating {} chunks to at least {chunks} chunks in {}",
            corpus.len(),
            index_dir.display()
        );
        bench::query_bench(
            &corpus,
            index_dir,
            chunks,
            rounds,
            config.index.ann_policy(),
            &mut embedder,
        )
    })?;
    let mut out = output(cli.json);
    if cli.json {
        return print_bench_json(&mut out, &figures);
    }
    writeln!(
        out,
        "index        {} chunks in {} repos, written in {:.1}s; {} queries x {} rounds, warm",
        figures.chunks,
        figures.repos,
        figures.build.as_secs_f64(),
        figures.queries,
        figures.rounds
    )?;
    writeln!(
        out,
        "{:<40} {:>8} {:>9} {:>9} {:>9} {:>9} | p50 embed   bm25 vector   fuse",
        "scenario", "visible", "search50", "search95", "ask50", "ask95"
    )?;
    for (i, s) in figures.scenarios.iter().enumerate() {
        let overhead = match i {
            0 => String::new(),
            _ => format!("  ({:+.0}% search, paired)", 100.0 * s.search_overhead_p50),
        };
        let [embed, bm25, vector, fuse] = s.stage_p50_ms;
        writeln!(
            out,
            "{:<40} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} | {embed:>9.1} {bm25:>6.1} {vector:>6.1} {fuse:>6.1}{overhead}",
            s.scenario,
            s.visible_chunks,
            s.search_p50_ms,
            s.search_p95_ms,
            s.ask_p50_ms,
            s.ask_p95_ms
        )?;
    }
    writeln!(out, "peak RSS     {}", human_bytes(figures.peak_rss_bytes))?;
    Ok(ExitCode::SUCCESS)
}

/// Embedding throughput per batch size and token limit.
pub(super) fn cmd_bench_embed(
    cli: &Cli,
    chunks: usize,
    (batch, max_length, call_size): (&[usize], &[usize], usize),
    sources: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let (corpus, _, config) = bench_corpus(cli, sources)?;
    let texts = corpus.embedding_texts(chunks);
    let model = model_config(cli, &config);
    let figures = bench::embed_bench(&texts, &model, batch, max_length, call_size)?;
    let mut out = output(cli.json);
    if cli.json {
        return print_bench_json(&mut out, &figures);
    }
    writeln!(out, "{} chunk texts, {call_size} per call", texts.len())?;
    writeln!(
        out,
        "{:>10} {:>10} {:>10} {:>10}",
        "max_len", "batch", "chunks/s", "peak RSS"
    )?;
    for f in &figures {
        writeln!(
            out,
            "{:>10} {:>10} {:>10.1} {:>10}",
            f.max_length,
            f.batch_size,
            f.chunks_per_second,
            human_bytes(f.peak_rss_bytes)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-indexing cost on a large corpus.
pub(super) fn cmd_bench_incremental(
    cli: &Cli,
    options: IncrementalBenchOptions,
) -> anyhow::Result<ExitCode> {
    let config = Config::load_for_root(&options.work)?;
    let model = load_embedder(cli, &config)?.info().clone();
    let figures = bench::incremental_bench(&options, &model)?;
    let mut out = output(cli.json);
    if cli.json {
        return print_bench_json(&mut out, &figures);
    }
    writeln!(
        out,
        "index        {} chunks, {} files, {} repositories",
        figures.chunks, figures.files, figures.repos
    )?;
    let rows = [
        ("initial build", std::slice::from_ref(&figures.initial)),
        ("no change", &figures.no_change[..]),
        ("one file", &figures.one_file[..]),
        (
            "branch switch",
            std::slice::from_ref(&figures.branch_switch),
        ),
        ("switch back", std::slice::from_ref(&figures.switch_back)),
    ];
    writeln!(
        out,
        "{:<14} {:>24} {:>10} {:>9} {:>9}",
        "run", "wall s", "peak RSS", "embedded", "reused"
    )?;
    for (name, runs) in rows {
        let walls: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.wall_s)).collect();
        let peak = runs.iter().map(|r| r.peak_rss_bytes).max().unwrap_or(0);
        let sum = |key: &str| -> u64 {
            runs.iter()
                .map(|r| r.changes[key].as_u64().unwrap_or(0))
                .sum()
        };
        writeln!(
            out,
            "{name:<14} {:>24} {:>10} {:>9} {:>9}",
            walls.join(" "),
            human_bytes(peak),
            sum("vectors_embedded"),
            sum("vectors_reused"),
        )?;
    }
    writeln!(
        out,
        "median: no change {:.2} s, one file {:.2} s; cache hit rate: switch {:.3}, back {:.3}",
        figures.no_change_p50_s,
        figures.one_file_p50_s,
        figures.branch_switch_cache_hit_rate,
        figures.switch_back_cache_hit_rate
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Vector-lane latency and recall of each ANN index.
pub(super) fn cmd_bench_vectors(
    cli: &Cli,
    (chunks, ann): (usize, &[AnnIndex]),
    (queries, k): (usize, usize),
    sources: &[PathBuf],
    out_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (corpus, _, config) = bench_corpus(cli, sources)?;

    let figures = in_bench_dir(out_dir, |index_dir| {
        eprintln!(
            "codeq: replicating {} chunks to at least {chunks} chunks in {}, once per index kind",
            corpus.len(),
            index_dir.display()
        );
        bench::vector_bench(
            &corpus,
            index_dir,
            chunks,
            ann,
            config.index.ann_partition_chunks,
            (queries, k),
        )
    })?;
    let mut out = output(cli.json);
    if cli.json {
        return print_bench_json(&mut out, &figures);
    }
    writeln!(
        out,
        "table        {} chunks in {} repos; {} query vectors per scenario, warm, top {}",
        figures.chunks, figures.repos, figures.queries, figures.k
    )?;
    writeln!(
        out,
        "{:<12} {:>8} {:>9} | {:<28} {:>8} {:>7} {:>7} {:>9} {:>7}",
        "index", "build s", "size", "scenario", "visible", "p50 ms", "p95 ms", "recall@k", "leaked"
    )?;
    for figures in &figures.indexes {
        for (i, s) in figures.scenarios.iter().enumerate() {
            let (name, build, size) = if i == 0 {
                (
                    figures.index.name().to_string(),
                    format!("{:.1}", figures.build.as_secs_f64()),
                    human_bytes(figures.index_bytes),
                )
            } else {
                Default::default()
            };
            writeln!(
                out,
                "{name:<12} {build:>8} {size:>9} | {:<28} {:>8} {:>7.2} {:>7.2} {:>9.3} {:>7}",
                s.scenario, s.visible_chunks, s.p50_ms, s.p95_ms, s.recall_at_k, s.outside_filter
            )?;
        }
    }
    writeln!(out, "peak RSS     {}", human_bytes(figures.peak_rss_bytes))?;
    Ok(ExitCode::SUCCESS)
}
