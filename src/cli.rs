//! Command-line surface: clap definitions, argument → library call, output formatting and
//! exit codes (0 results, 1 no results, 2 usage, configuration or index error).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{FromArgMatches, Parser, Subcommand};
use serde_json::json;

use crate::acl::{self, Access, AccessMode, Acl};
use crate::answer::{Answer, Freshness};
use crate::backlog::{self, Verdict};
use crate::config::Config;
use crate::display::{TerminalSafe, escape_controls};
use crate::embed::FastEmbedder;
use crate::eval::{self, Baseline, Changes, EvalReport, Metrics, QuestionSet, Tier};
use crate::index::{self, IndexOptions, IndexProgress, IndexReport};
use crate::mcp;
use crate::paths;
use crate::report::{self, JSON_SCHEMA_VERSION, ms};
use crate::rerank::{self, Reranker};
use crate::search::{QueryScope, SearchResults};
use crate::store::{AnnIndex, AnnPolicy, IndexDir, IndexReader};
use crate::trace;
use crate::tui;
use crate::walk;

#[derive(Parser, Debug)]
#[command(
    name = "codeq",
    version,
    about = "Index a codebase and find code with cited files and line ranges"
)]
struct Cli {
    /// Index folder (default: .codeq in the indexed root, found by walking up from here).
    #[arg(long, global = true, env = "CODEQ_INDEX_DIR")]
    index_dir: Option<PathBuf>,
    /// Folder with the embedding model (default: the one scripts/setup.sh installs).
    #[arg(long, global = true, env = "CODEQ_MODEL_DIR")]
    model_dir: Option<PathBuf>,
    /// Access-control list (an [acl] section); default: the [acl] of the root's codeq.toml.
    /// (A flag only, deliberately not an environment variable: a server process may pass
    /// its clients' environment through, and the ACL must stay the operator's choice.)
    #[arg(long, global = true)]
    acl: Option<PathBuf>,
    /// Run queries as this principal (default: CODEQ_USER, else the OS user).
    #[arg(long = "as", global = true, env = "CODEQ_USER", value_name = "USER")]
    as_user: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// Without a command: the TUI when an index is found from here, else this help.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build or refresh the index of ROOT (a git repo, a folder of repos, or any folder).
    Index {
        /// The folder to index.
        root: PathBuf,
        /// Start from scratch (required after changing the embedding model).
        #[arg(long)]
        rebuild: bool,
        /// Keep running: re-index (incrementally) whenever files under ROOT change.
        #[arg(long)]
        watch: bool,
        /// Publish without the access-control list the index was built under (every
        /// principal then sees every repository); without it such a run is refused.
        #[arg(long)]
        drop_acl: bool,
    },
    /// Show what is indexed, how fresh it is, and whether both lanes agree.
    Status,
    /// Free the disk space of older generations (and, with --cache, of the embedding
    /// cache); `codeq status` shows how much there is.
    Gc {
        /// Also empty the cache of evicted vectors (branch switches re-embed afterwards).
        #[arg(long)]
        cache: bool,
    },
    /// Hybrid search (BM25 + vectors, fused with RRF); prints ranked citations.
    Search {
        /// What to look for: an identifier or a plain-English description.
        query: String,
        /// Number of results.
        #[arg(short = 'k', long, value_parser = parse_k, default_value_t = 10)]
        k: usize,
        /// Only these repositories (repeatable).
        #[arg(long = "repo")]
        repos: Vec<String>,
        /// Only chunks of this language (rust, python, markdown, …).
        #[arg(long = "lang")]
        language: Option<String>,
    },
    /// Answer a question with verified citations grouped by file.
    Ask {
        /// The question.
        question: String,
        /// Citations to consider.
        #[arg(short = 'k', long, value_parser = parse_k, default_value_t = 8)]
        k: usize,
        /// Only these repositories (repeatable).
        #[arg(long = "repo")]
        repos: Vec<String>,
        /// Only chunks of this language (rust, python, markdown, …).
        #[arg(long = "lang")]
        language: Option<String>,
        /// Record a verdict on citation N for the eval backlog: `1=good`, `3=bad` (repeatable).
        #[arg(long = "verdict", value_parser = parse_verdict)]
        verdicts: Vec<(usize, Verdict)>,
    },
    /// Ask questions in a terminal UI (also `codeq` alone inside an indexed tree).
    Tui {
        /// Citations per answer.
        #[arg(short = 'k', long, value_parser = parse_k, default_value_t = 8)]
        k: usize,
    },
    /// Serve coding agents: a Model Context Protocol server on stdin/stdout (tools search,
    /// ask, status, read_citation), as the principal fixed at start.
    Mcp,
    /// The effective configuration and where each value comes from (defaults, the user's
    /// ~/.config/codeq/config.toml, ROOT/codeq.toml, CODEQ_* variables).
    Config {
        /// The indexed root (default: the root of the index found from here, else here).
        root: Option<PathBuf>,
    },
    /// Explain a recorded query: who asked, each stage's time, and why each result ranked
    /// where it did (lane ranks and scores, fusion, boosts).
    Trace {
        /// The trace id that search, ask, the TUI and MCP results carry.
        id: Option<String>,
        /// The latest trace (the default without an id).
        #[arg(long, conflicts_with = "id")]
        last: bool,
    },
    /// Shell completions, generated from these definitions (bash, zsh, fish, elvish,
    /// powershell): `codeq completions bash > /etc/bash_completion.d/codeq`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), generated from these definitions: `codeq man > codeq.1`.
    Man,
    /// Score question sets through the ask path; exit 1 when a blocking gate fails.
    Eval {
        /// Question set files (TOML, see eval-questions/README.md).
        #[arg(required = true)]
        sets: Vec<PathBuf>,
        /// Files considered per question.
        #[arg(short = 'k', long, value_parser = parse_k, default_value_t = 10)]
        k: usize,
        /// Fail when a blocking question that was a hit@5 in this baseline no longer is.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Write this run's per-question outcomes as a baseline.
        #[arg(long)]
        save_baseline: Option<PathBuf>,
        /// Run the same sets against a second index and show what changed.
        #[arg(long)]
        compare_index: Option<PathBuf>,
    },
    /// Benchmarks (build with --release): indexing throughput or query latency.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Indexing throughput, time per stage, peak memory and index size on ROOT.
    Index {
        /// The corpus to index.
        root: PathBuf,
        /// Where to build the benchmark index (deleted first; default: a temporary folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Warm latency of search and ask, with and without ACL filtering, on a copy of the
    /// current index replicated to at least --chunks chunks (real text, real vectors).
    Query {
        /// Chunks in the benchmark index.
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        /// Timed rounds over the query sample (after one warm-up round).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Index folders whose rows seed the corpus (default: the current index).
        #[arg(long)]
        source: Vec<PathBuf>,
        /// Where to build the benchmark index (deleted first; default: a temporary folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-indexing cost on a large index: no change, one changed file, a branch switch
    /// and back (wall time, peak memory, embedding-cache hit rate), on --copies copies of
    /// the given source trees, each its own git repository.
    Incremental {
        /// Source trees to copy into the corpus.
        #[arg(required = true)]
        trees: Vec<PathBuf>,
        /// Copies of each tree.
        #[arg(long, default_value_t = 11)]
        copies: usize,
        /// Indexes built with the same model whose vectors seed the embedding cache, so the
        /// initial build need not embed what they already did.
        #[arg(long)]
        seed: Vec<PathBuf>,
        /// Working folder for the corpus and its index (kept; reused on the next run).
        #[arg(long)]
        work: PathBuf,
    },
    /// Indexes ROOT from empty and measures the time to the first answer (BM25 comes
    /// first), the time to full vector coverage, the embedding rate and peak memory.
    Coverage {
        /// The tree to index.
        root: PathBuf,
        /// An identifier in the tree that `codeq search` is polled with.
        #[arg(long)]
        query: String,
        /// Where to build the index (deleted first).
        #[arg(long)]
        out: PathBuf,
    },
    /// Time and peak memory of building an ANN index from scratch over the current index's
    /// vectors (what the indexer's final publish does), alone in this process.
    AnnBuild {
        /// The index to build (ivf_pq, ivf_hnsw_sq, ivf_rq).
        #[arg(long, default_value_t = AnnIndex::IvfHnswSq)]
        ann: AnnIndex,
        /// Where the vector tables are linked and the index is built (deleted first).
        #[arg(long)]
        out: PathBuf,
    },
    /// Embedding throughput on chunk texts of the current index (or --source indexes) per
    /// ONNX batch size and token limit; each call's texts are sorted by length.
    Embed {
        /// Chunk texts to embed per configuration.
        #[arg(long, default_value_t = 512)]
        chunks: usize,
        /// ONNX batch sizes to compare.
        #[arg(long, value_delimiter = ',', default_value = "1,8,16,32")]
        batch: Vec<usize>,
        /// Token limits to compare.
        #[arg(long, value_delimiter = ',', default_value = "256")]
        max_length: Vec<usize>,
        /// Texts per call to the embedder (the indexer's `write_batch`).
        #[arg(long, default_value_t = 256)]
        call_size: usize,
        /// Index folders whose chunk texts are embedded (default: the current index).
        #[arg(long)]
        source: Vec<PathBuf>,
    },
    /// Vector-lane latency and recall@10 of each ANN index against exact search, with and
    /// without ACL pre-filters, on the current index (or --source indexes) replicated to
    /// --chunks chunks with perturbed vectors.
    Vectors {
        /// Chunks in the benchmark table.
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        /// ANN indexes to compare with exact search (off, ivf_pq, ivf_hnsw_sq, ivf_rq).
        #[arg(long, value_delimiter = ',', default_values_t = [AnnIndex::IvfPq, AnnIndex::IvfHnswSq, AnnIndex::IvfRq])]
        ann: Vec<AnnIndex>,
        /// Query vectors per scenario.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// Results per query; recall is measured at this depth (search lanes fetch 50).
        #[arg(short = 'k', long, default_value_t = 10)]
        k: usize,
        /// Index folders whose rows seed the corpus (default: the current index).
        #[arg(long)]
        source: Vec<PathBuf>,
        /// Where to build the benchmark index (deleted first; default: a temporary folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// glibc malloc arenas the process may use. By default glibc gives each thread that
/// contends for the heap its own arena, up to 8 per core, and freed memory stays cached in
/// every one: building the ANN index over 245k vectors peaked at 867 MiB with the default
/// and 679 MiB with two arenas (`codeq bench ann-build`, docs/BENCH.md).
const MALLOC_ARENAS: i32 = 2;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // SAFETY: mallopt only changes a glibc allocator setting; it runs before any thread
    // of ours starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
    let parsed = <Cli as clap::CommandFactory>::command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            if matches!(cli.command, Some(Command::Mcp)) {
                ignore_environment_of_served_process(&mut cli, &matches);
            }
            cli
        }
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            warn(&describe_error(&err));
            ExitCode::from(2)
        }
    }
}

/// A served process (`codeq mcp`) answers whoever talks to it, and its environment is
/// often set by that client's configuration: its index and principal come from flags only.
/// `CODEQ_INDEX_DIR` and `CODEQ_USER` are ignored, with a note on standard error.
fn ignore_environment_of_served_process(cli: &mut Cli, matches: &clap::ArgMatches) {
    use clap::parser::ValueSource;
    let from_env = |id: &str| {
        let given_to_subcommand = matches
            .subcommand()
            .is_some_and(|(_, sub)| sub.value_source(id) == Some(ValueSource::CommandLine));
        matches.value_source(id) == Some(ValueSource::EnvVariable) && !given_to_subcommand
    };
    if from_env("index_dir") {
        cli.index_dir = None;
        warn("CODEQ_INDEX_DIR is ignored by a served process: pass --index-dir");
    }
    if from_env("as_user") {
        cli.as_user = None;
        warn("CODEQ_USER is ignored by a served process: pass --as");
    }
}

/// Standard output: exact for `--json`, with terminal control characters escaped for
/// people (indexed text is anyone's, and must not drive the reader's terminal).
fn output(json: bool) -> Box<dyn Write> {
    let out = std::io::stdout().lock();
    if json {
        Box::new(out)
    } else {
        Box::new(TerminalSafe::new(out))
    }
}

/// Prints `codeq: TEXT` on standard error, terminal controls escaped.
fn warn(text: &str) {
    eprintln!("codeq: {}", escape_controls(text));
}

/// An error and its causes on one line, each cause once: an error whose message already
/// ends with its cause (`cannot read x: No such file …`) does not repeat it.
fn describe_error(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        // LanceDB's table statistics (read by status and index upkeep) warn on every call
        // about a future change in what they include; nothing for a codeq user to act on.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,lance::index::vector::ivf=error")
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = &cli.command else {
        return cmd_default(&cli);
    };
    match command {
        Command::Tui { k } => cmd_tui(&cli, *k),
        Command::Mcp => cmd_mcp(&cli),
        Command::Trace { id, last: _ } => cmd_trace(&cli, id.as_deref()),
        Command::Config { root } => cmd_config(&cli, root.as_deref()),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "codeq", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Index {
            root,
            rebuild,
            watch,
            drop_acl,
        } => cmd_index(&cli, root, (*rebuild, *drop_acl), *watch),
        Command::Status => cmd_status(&cli),
        Command::Gc { cache } => cmd_gc(&cli, *cache),
        Command::Search {
            query,
            k,
            repos,
            language,
        } => cmd_search(&cli, query, &query_scope(*k, repos, language)),
        Command::Ask {
            question,
            k,
            repos,
            language,
            verdicts,
        } => cmd_ask(&cli, question, &query_scope(*k, repos, language), verdicts),
        Command::Eval {
            sets,
            k,
            baseline,
            save_baseline,
            compare_index,
        } => cmd_eval(
            &cli,
            sets,
            *k,
            baseline.as_deref(),
            save_baseline.as_deref(),
            compare_index.as_deref(),
        ),
        Command::Bench {
            what: BenchCommand::Index { root, out },
        } => cmd_bench(&cli, root, out.as_deref()),
        Command::Bench {
            what:
                BenchCommand::Query {
                    chunks,
                    rounds,
                    source,
                    out,
                },
        } => cmd_bench_query(&cli, *chunks, *rounds, source, out.as_deref()),
        Command::Bench {
            what:
                BenchCommand::Vectors {
                    chunks,
                    ann,
                    queries,
                    k,
                    source,
                    out,
                },
        } => cmd_bench_vectors(&cli, (*chunks, ann), (*queries, *k), source, out.as_deref()),
        Command::Bench {
            what: BenchCommand::Coverage { root, query, out },
        } => {
            let bench = crate::bench::coverage_bench(root, out, query)?;
            let mut stdout = output(cli.json);
            if cli.json {
                return print_bench_json(&mut stdout, &bench);
            }
            writeln!(
                stdout,
                "{} files, {} chunks: first answer after {:.1}s (BM25 published at {:.1}s), \
                 full vector coverage after {:.1}s; {} vectors at {:.1} chunks/s (model time) \
                 / {:.1} chunks/s (wall); peak RSS {}",
                bench.files,
                bench.chunks,
                bench.first_answer_s,
                bench.queryable_after_s,
                bench.full_coverage_s,
                bench.vectors_embedded,
                bench.model_chunks_per_second,
                bench.embedding_chunks_per_second,
                human_bytes(bench.peak_rss_bytes)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            what: BenchCommand::AnnBuild { ann, out },
        } => cmd_bench_ann_build(&cli, *ann, out),
        Command::Bench {
            what:
                BenchCommand::Embed {
                    chunks,
                    batch,
                    max_length,
                    call_size,
                    source,
                },
        } => cmd_bench_embed(&cli, *chunks, (batch, max_length, *call_size), source),
        Command::Bench {
            what:
                BenchCommand::Incremental {
                    trees,
                    copies,
                    seed,
                    work,
                },
        } => cmd_bench_incremental(
            &cli,
            crate::bench::IncrementalBenchOptions {
                trees: trees.clone(),
                copies: *copies,
                seeds: seed.clone(),
                work: work.clone(),
            },
        ),
    }
}

/// `codeq` alone: the TUI when an index is found from here, else the help.
fn cmd_default(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    if cli.index_dir.is_some() || paths::discover_index_dir(&cwd).is_ok() {
        return cmd_tui(cli, 8);
    }
    let mut command = <Cli as clap::CommandFactory>::command();
    command.print_help()?;
    eprintln!("\ncodeq: no index here: run `codeq index ROOT`, then `codeq` inside ROOT");
    Ok(ExitCode::from(2))
}

fn cmd_tui(cli: &Cli, k: usize) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("`codeq tui` needs a terminal; for scripts use `codeq ask QUESTION --json`");
    }
    let Opened {
        dir,
        reader,
        config,
        access,
        embedder,
        reranker,
    } = open_for_queries(cli)?;
    let session = tui::SessionInfo::of(&reader, &access);
    tui::run(tui::TuiContext {
        dir,
        reader,
        embedder: Box::new(embedder),
        reranker,
        access,
        settings: config.answer_settings(),
        k,
        session,
    })?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_config(cli: &Cli, root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let root = match root {
        Some(root) => walk::check_root(root)?,
        None => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            let index = cli
                .index_dir
                .clone()
                .map_or_else(|| paths::discover_index_dir(&cwd), Ok);
            match index
                .ok()
                .and_then(|dir| IndexDir::open(&dir).ok()?.reader().ok())
            {
                Some(reader) => reader.manifest().root.clone(),
                None => cwd,
            }
        }
    };
    let (mut config, mut provenance) = Config::discover(&root)?;
    if let Some(dir) = &cli.model_dir {
        config.model.dir = Some(dir.clone());
        provenance.insert("model.dir".into(), "--model-dir / CODEQ_MODEL_DIR".into());
    }
    let acl = match (&cli.acl, config.acl()) {
        (Some(path), _) => Some((Acl::load(path)?, format!("--acl {}", path.display()))),
        (None, Some(acl)) => Some((
            acl.clone(),
            root.join(paths::CONFIG_FILE).display().to_string(),
        )),
        (None, None) => None,
    };
    let values = config.layered();
    let mut out = output(cli.json);
    if cli.json {
        let acl_json = acl.as_ref().map(|(acl, source)| {
            json!({"source": source, "groups": acl.group_count(), "grants": acl.grant_count()})
        });
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "root": root,
                   "user_file": paths::user_config_file(), "values": values,
                   "sources": provenance, "acl": acl_json})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "# effective configuration for {}", root.display())?;
    for section in ["index", "model"] {
        writeln!(out, "\n[{section}]")?;
        for (key, value) in values[section].as_object().into_iter().flatten() {
            let source = provenance
                .get(&format!("{section}.{key}"))
                .map_or("default", String::as_str);
            let shown = match value {
                serde_json::Value::Null => "(unset)".to_string(),
                other => other.to_string(),
            };
            writeln!(out, "{:<36} # {source}", format!("{key} = {shown}"))?;
        }
    }
    match acl {
        Some((acl, source)) => writeln!(
            out,
            "\n[acl]  # from {source}: {} groups, {} grants",
            acl.group_count(),
            acl.grant_count()
        )?,
        None => writeln!(out, "\n# no [acl]: single-user mode")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_trace(cli: &Cli, id: Option<&str>) -> anyhow::Result<ExitCode> {
    let (dir, reader, config) = open_index(cli)?;
    let access = resolve_access(cli, &config, &reader)?;
    let found = trace::find(&dir, id, &access)?;
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

fn cmd_mcp(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Opened {
        dir,
        reader,
        config,
        access,
        embedder,
        reranker,
    } = open_for_queries(cli)?;
    let context = mcp::McpContext {
        dir,
        reader,
        embedder: Box::new(embedder),
        reranker,
        access,
        settings: config.answer_settings(),
        index_config: config.index.clone(),
    };
    mcp::serve(context, std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the model named on the command line or in the configuration.
fn load_embedder(cli: &Cli, config: &Config) -> anyhow::Result<FastEmbedder> {
    let mut model = config.model.clone();
    if let Some(dir) = &cli.model_dir {
        model.dir = Some(dir.clone());
    }
    Ok(FastEmbedder::load(&model)?)
}

/// Loads the model an index was built with: `--model-dir` / `CODEQ_MODEL_DIR` or
/// `[model] dir` when given, else the folder recorded in the index, with the index's token
/// limit, so that query vectors are comparable with the stored ones.
fn load_index_embedder(
    model_dir: Option<&Path>,
    config: &Config,
    reader: &IndexReader,
) -> anyhow::Result<FastEmbedder> {
    let built_with = &reader.manifest().model;
    let mut model = config.model.clone();
    model.max_length = built_with.max_length;
    if model.dir.is_none() {
        model.dir = built_with.dir.clone().filter(|d| d.is_dir());
    }
    if let Some(dir) = model_dir {
        model.dir = Some(dir.to_path_buf());
    }
    Ok(FastEmbedder::load(&model)?)
}

/// The access-control list that applies to `reader`'s index: `--acl`, else
/// the `[acl]` of the root's codeq.toml. An index built with an ACL refuses to run without
/// one instead of opening up to everybody.
fn effective_acl(cli: &Cli, config: &Config, reader: &IndexReader) -> anyhow::Result<Option<Acl>> {
    let acl = match &cli.acl {
        Some(path) => Some(Acl::load(path)?),
        None => config.acl().cloned(),
    };
    if acl.is_none() && reader.manifest().acl_required {
        return Err(crate::Error::AclMissing {
            config: reader.manifest().root.join(paths::CONFIG_FILE),
        }
        .into());
    }
    Ok(acl)
}

/// What the principal of this invocation may read of `reader`'s index. With an ACL, what
/// no grant allows is denied; an ACL that does not load stops the command (fail closed).
fn resolve_access(cli: &Cli, config: &Config, reader: &IndexReader) -> anyhow::Result<Access> {
    access_under(cli, effective_acl(cli, config, reader)?.as_ref(), reader)
}

/// What the principal may read of `reader`'s index under `acl` (`None`: single-user mode).
fn access_under(cli: &Cli, acl: Option<&Acl>, reader: &IndexReader) -> anyhow::Result<Access> {
    let Some(acl) = acl else {
        if cli.as_user.is_some() {
            eprintln!(
                "codeq: no access-control list is configured, so --as / CODEQ_USER has no effect (single-user mode)"
            );
        }
        return Ok(Access::single_user());
    };
    let principal = acl::principal(cli.as_user.as_deref());
    let mut access = acl.access_for(&principal, &reader.manifest().repo_ids());
    access.filter = reader.prepare_filter(&access.filter)?;
    Ok(access)
}

/// How `codeq eval` scopes the questions on one index under `acl`: each as its `as`
/// principal (only when the run's principal may read everything) or as the run's principal.
fn eval_scope(cli: &Cli, acl: Option<Acl>, reader: &IndexReader) -> Box<dyn eval::ScopeResolver> {
    match acl {
        Some(acl) => Box::new(eval::AclScope::new(
            acl,
            acl::principal(cli.as_user.as_deref()),
            reader.manifest().repo_ids(),
        )),
        None => Box::new(eval::Unrestricted),
    }
}

/// Search options of `search` and `ask`: top `k` within what `access` allows, optionally
/// narrowed to some repositories. A repository that is absent and one the principal may
/// not read get the same answer, so the error reveals nothing.
fn query_scope(k: usize, repos: &[String], language: &Option<String>) -> QueryScope {
    QueryScope {
        k,
        repos: repos.to_vec(),
        language: language.clone(),
    }
}

/// An index opened for queries: its folder, generation, configuration, the principal's
/// access and the model it was built with.
struct Opened {
    dir: IndexDir,
    reader: IndexReader,
    config: Config,
    access: Access,
    embedder: FastEmbedder,
    reranker: Option<Box<dyn Reranker>>,
}

/// Opens the index, resolves the principal's access and loads the index's model: what
/// every command that answers queries does first.
fn open_for_queries(cli: &Cli) -> anyhow::Result<Opened> {
    let (dir, reader, config) = open_index(cli)?;
    let access = resolve_access(cli, &config, &reader)?;
    let embedder = load_index_embedder(cli.model_dir.as_deref(), &config, &reader)?;
    let reranker = rerank::load_if_enabled(&config.rerank, &config.model)?;
    Ok(Opened {
        dir,
        reader,
        config,
        access,
        embedder,
        reranker,
    })
}

/// Finds and opens the index for a query command.
fn open_index(cli: &Cli) -> anyhow::Result<(IndexDir, IndexReader, Config)> {
    let path = match &cli.index_dir {
        Some(p) => p.clone(),
        None => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            paths::discover_index_dir(&cwd)?
        }
    };
    let dir = IndexDir::open(&path)?;
    let reader = dir.reader()?;
    let config = Config::load_for_root(&reader.manifest().root)?;
    Ok((dir, reader, config))
}

fn cmd_index(
    cli: &Cli,
    root: &Path,
    (rebuild, drop_acl): (bool, bool),
    watch: bool,
) -> anyhow::Result<ExitCode> {
    let checked_root = walk::check_root(root)?;
    let config = Config::load_for_root(&checked_root)?;
    let mut embedder = load_embedder(cli, &config)?;
    let mut options = IndexOptions {
        index_dir: cli.index_dir.clone(),
        rebuild,
        acl_file: cli.acl.clone(),
        drop_acl,
        ..config.index_options(checked_root)
    };
    let mut index_once = |options: &IndexOptions| -> anyhow::Result<()> {
        let progress = TerminalProgress::new(cli.json);
        let report = index::run(options, &mut embedder, &progress);
        progress.done();
        let report = report?;
        let mut out = output(cli.json);
        if cli.json {
            writeln!(
                out,
                "{}",
                json!({"schema_version": JSON_SCHEMA_VERSION, "index": report})
            )?;
        } else {
            write_index_summary(&mut out, &report)?;
        }
        Ok(())
    };
    index_once(&options)?;
    if watch {
        options.rebuild = false;
        let index_dir = options
            .index_dir
            .clone()
            .unwrap_or_else(|| index::default_index_dir(&options.root));
        index::watch(&options.root, &index_dir, || {
            // A failed run (a file mid-write, a lock held by another run) is reported and
            // the watch goes on: the next change retries.
            if let Err(err) = index_once(&options) {
                warn(&describe_error(&err));
            }
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_gc(cli: &Cli, cache: bool) -> anyhow::Result<ExitCode> {
    let (dir, reader, config) = open_index(cli)?;
    let access = resolve_access(cli, &config, &reader)?;
    if !access.sees_everything() {
        anyhow::bail!(
            "codeq gc changes the whole index; it needs a principal who may read all of it"
        );
    }
    drop(reader);
    let lock = dir.lock()?;
    let freed = dir.collect_garbage(&lock, cache)?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "freed_bytes": freed})
        )?;
    } else {
        writeln!(out, "freed {}", human_bytes(freed))?;
    }
    Ok(ExitCode::SUCCESS)
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

fn write_index_summary(out: &mut impl Write, report: &IndexReport) -> std::io::Result<()> {
    let t = &report.totals;
    let c = &report.changes;
    if c.up_to_date {
        writeln!(
            out,
            "up to date: {} repos, {} files, {} chunks; nothing changed since {} ({:.2}s) -> {}",
            report.repos,
            t.files,
            t.chunks,
            report.generation,
            report.times.total.as_secs_f64(),
            report.index_dir.display(),
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "indexed {} repos, {} files, {} chunks in {:.1}s -> {} ({})",
        report.repos,
        t.files,
        t.chunks,
        report.times.total.as_secs_f64(),
        report.index_dir.display(),
        report.generation,
    )?;
    writeln!(
        out,
        "files: {} unchanged ({} re-hashed), {} modified, {} added, {} removed{}",
        c.files_unchanged,
        c.files_rehashed,
        c.files_modified,
        c.files_added,
        c.files_removed,
        if c.incremental {
            ""
        } else {
            " (built from empty)"
        },
    )?;
    writeln!(
        out,
        "chunks written: {}; vectors: {} computed ({:.1} chunks/s), {} reused",
        c.chunks_written,
        c.vectors_embedded,
        report.embed_rate(),
        c.vectors_reused
    )?;
    if t.skipped.total() > 0 {
        let parts: Vec<String> = t
            .skipped
            .counts
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.label()))
            .collect();
        writeln!(
            out,
            "skipped {} files: {}",
            t.skipped.total(),
            parts.join(", ")
        )?;
    }
    if t.lossy_utf8 > 0 {
        writeln!(
            out,
            "{} files were not valid UTF-8 and were indexed with replacement characters",
            t.lossy_utf8
        )?;
    }
    Ok(())
}

fn cmd_status(cli: &Cli) -> anyhow::Result<ExitCode> {
    let (dir, reader, config) = open_index(cli)?;
    let access = resolve_access(cli, &config, &reader)?;
    let status = report::Status::build(&dir, &reader, &access, &config.index)?;
    let manifest = reader.manifest();
    let everything = access.sees_everything();
    let mut out = output(cli.json);
    if cli.json {
        let value = status.to_json();
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "index {} (generation {}, built {})",
            dir.path().display(),
            reader.generation(),
            age(manifest.created_unix)
        )?;
        writeln!(out, "root  {}", manifest.root.display())?;
        match &access.mode {
            AccessMode::SingleUser => writeln!(
                out,
                "access: single-user mode (no ACL configured; every repository is visible)"
            )?,
            AccessMode::Acl { principal, source } => writeln!(
                out,
                "access: as {principal} under the ACL in {} ({} of the index visible)",
                source.display(),
                if everything { "all" } else { "part" }
            )?,
        }
        writeln!(
            out,
            "model {} ({} dimensions, max {} tokens), chunker v{}",
            manifest.model.id,
            manifest.model.dimension,
            manifest.model.max_length,
            manifest.chunker_version
        )?;
        if status.repos.is_empty() {
            writeln!(out, "  no repository of this index is visible to you")?;
        }
        for repo in &status.repos {
            let only = repo
                .paths
                .as_ref()
                .map_or(String::new(), |p| format!("  (only {})", p.join(", ")));
            writeln!(
                out,
                "  {:<24} {:>6} files {:>7} chunks  {}{only}",
                repo.id,
                repo.files,
                repo.chunks,
                repo.describe()
            )?;
        }
        let lanes = &status.lanes;
        if lanes.consistent {
            writeln!(
                out,
                "lanes: {} BM25 documents, {} vectors (consistent)",
                lanes.bm25_docs, lanes.vectors
            )?;
            if lanes.pending > 0 {
                let eta = status
                    .embedding_eta
                    .map(|eta| format!(", about {} left", human_duration(eta)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "embedding: {} chunks wait for vectors ({:.0}% covered{eta}); `codeq index` resumes it",
                    lanes.pending,
                    lanes.vector_coverage * 100.0
                )?;
            }
        } else {
            writeln!(
                out,
                "LANES DISAGREE: {} BM25 documents, {} vectors, {} chunks in the manifest; rebuild with `codeq index ROOT --rebuild`",
                lanes.bm25_docs, lanes.vectors, lanes.chunks
            )?;
        }
        if let Some((disk, upkeep)) = &status.storage {
            writeln!(
                out,
                "size on disk {} for {} of source: current generation {}, older generations {} \
                 (reclaimable with `codeq gc`), embedding cache {}",
                human_bytes(disk.total),
                human_bytes(manifest.totals.source_bytes),
                human_bytes(disk.current_generation),
                human_bytes(disk.older_generations),
                human_bytes(disk.embed_cache),
            )?;
            writeln!(
                out,
                "storage: {} table versions, {} fragments, {} deleted rows awaiting compaction; \
                 {} tantivy segments, {} deleted documents awaiting a merge",
                upkeep.table_versions,
                upkeep.fragments,
                upkeep.deleted_rows,
                upkeep.segments,
                upkeep.deleted_docs,
            )?;
        }
    }
    Ok(if status.lanes.consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn cmd_search(cli: &Cli, query: &str, scope: &QueryScope) -> anyhow::Result<ExitCode> {
    let Opened {
        dir,
        reader,
        config: _,
        access,
        mut embedder,
        mut reranker,
    } = open_for_queries(cli)?;
    let (results, trace_id) = trace::traced_search(
        &dir,
        &reader,
        &mut embedder,
        rerank::borrowed(&mut reranker),
        &access,
        "search",
        query,
        scope,
    )?;
    let trace_id = trace_id_or_warn(trace_id);
    let mut out = output(cli.json);
    if cli.json {
        let value = report::search_json(
            query,
            &results,
            &access,
            reader.manifest(),
            trace_id.as_deref(),
        );
        writeln!(out, "{value}")?;
    } else {
        write_search_results(&mut out, &results)?;
        write_coverage_note(&mut out, results.vector_coverage)?;
        let repos = results.hits.iter().map(|h| h.chunk.repo.as_str());
        write_stale_note(
            &mut out,
            &report::index_state(reader.manifest(), &access, repos),
        )?;
        write_trace_hint(&mut out, trace_id.as_deref())?;
    }
    Ok(if results.hits.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Most results a command-line query returns.
const MAX_K: usize = 1000;

/// `-k`: from 1 to [`MAX_K`] (0 would ask for nothing and always answer "no results").
fn parse_k(raw: &str) -> Result<usize, String> {
    let k: usize = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of results"))?;
    if (1..=MAX_K).contains(&k) {
        Ok(k)
    } else {
        Err(format!("k must be from 1 to {MAX_K}"))
    }
}

fn parse_verdict(raw: &str) -> Result<(usize, Verdict), String> {
    let (n, v) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?}: write N=good or N=bad"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a citation number"))?;
    let verdict: Verdict = v.parse()?;
    if n == 0 {
        return Err("citations are numbered from 1".into());
    }
    Ok((n, verdict))
}

fn cmd_ask(
    cli: &Cli,
    question: &str,
    scope: &QueryScope,
    verdicts: &[(usize, Verdict)],
) -> anyhow::Result<ExitCode> {
    let Opened {
        dir,
        reader,
        config,
        access,
        mut embedder,
        mut reranker,
    } = open_for_queries(cli)?;
    let (answer, trace_id) = trace::traced_ask(
        &dir,
        &reader,
        &mut embedder,
        rerank::borrowed(&mut reranker),
        &access,
        &config.answer_settings(),
        "ask",
        question,
        scope,
    )?;
    let trace_id = trace_id_or_warn(trace_id);
    if !verdicts.is_empty() {
        let path = backlog::record(
            &dir,
            reader.generation(),
            access.principal(),
            &answer,
            verdicts,
        )?;
        warn(&format!(
            "recorded {} verdict(s) in {} for `codeq eval` triage",
            verdicts.len(),
            path.display()
        ));
    }
    let mut out = output(cli.json);
    if cli.json {
        let value = report::ask_json(&access, reader.manifest(), &answer, trace_id.as_deref());
        writeln!(out, "{value}")?;
    } else {
        write_answer(&mut out, &answer)?;
        write_coverage_note(&mut out, answer.vector_coverage)?;
        let repos = answer.citations.iter().map(|c| c.repo.as_str());
        write_stale_note(
            &mut out,
            &report::index_state(reader.manifest(), &access, repos),
        )?;
        write_trace_hint(&mut out, trace_id.as_deref())?;
    }
    Ok(if answer.confident {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The LLM's part of an answer: its verified text, or why the extractive answer stands, and
/// what verification removed or flagged.
fn write_generated(out: &mut impl Write, g: &crate::answer::Generated) -> std::io::Result<()> {
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

/// Records each eval answer as a trace (surface `eval`) of the principal who runs the eval,
/// noting the principal each question was asked as.
fn eval_tracer<'a>(
    dir: &'a IndexDir,
    reader: &'a IndexReader,
    access: &'a Access,
    k: usize,
) -> impl FnMut(&eval::Question, Option<&str>, &Answer, Duration) -> Option<String> + 'a {
    let mut warned = false;
    move |question, asked_as, answer, elapsed| {
        let id = trace::record_eval_answer(
            dir,
            reader,
            access.principal(),
            asked_as,
            &question.question,
            k,
            answer,
            elapsed,
        );
        match id {
            Ok(id) => Some(id),
            Err(e) => {
                if !warned {
                    warn(&format!("eval answers are not traced: {e}"));
                    warned = true;
                }
                None
            }
        }
    }
}

/// The trace id, or `None` after saying on stderr why the trace was not written.
fn trace_id_or_warn(id: trace::TraceId) -> Option<String> {
    id.map_err(|e| warn(&format!("the query's trace was not recorded: {e}")))
        .ok()
}

fn write_trace_hint(out: &mut impl Write, id: Option<&str>) -> std::io::Result<()> {
    match id {
        Some(id) => writeln!(out, "trace {id} (`codeq trace {id}` explains the ranking)"),
        None => Ok(()),
    }
}

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

fn cmd_eval(
    cli: &Cli,
    set_paths: &[PathBuf],
    k: usize,
    baseline: Option<&Path>,
    save_baseline: Option<&Path>,
    compare_index: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (dir, reader, config) = open_index(cli)?;
    let sets = set_paths
        .iter()
        .map(|p| QuestionSet::load(p))
        .collect::<crate::Result<Vec<_>>>()?;
    let acl = effective_acl(cli, &config, &reader)?;
    let access = access_under(cli, acl.as_ref(), &reader)?;
    let scope = eval_scope(cli, acl, &reader);
    let mut embedder = load_index_embedder(cli.model_dir.as_deref(), &config, &reader)?;
    let mut reranker = rerank::load_if_enabled(&config.rerank, &config.model)?;
    let report = eval::run(
        &reader,
        &mut embedder,
        rerank::borrowed(&mut reranker),
        &sets,
        scope.as_ref(),
        k,
        &mut eval_tracer(&dir, &reader, &access, k),
    )?;
    let changes = match baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the baseline {}", path.display()))?;
            let saved: Baseline = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a codeq eval baseline", path.display()))?;
            Some(eval::compare_with_baseline(&report, &saved))
        }
        None => None,
    };
    let comparison = match compare_index {
        Some(other_path) => {
            let other_dir = IndexDir::open(other_path)?;
            let other = other_dir.reader()?;
            let other_config = Config::load_for_root(&other.manifest().root)?;
            // The second index is queried with the model it was built with, never --model-dir.
            let mut other_embedder = load_index_embedder(None, &other_config, &other)?;
            // The second index is scoped by its own ACL, exactly as if it were queried alone.
            let other_acl = effective_acl(cli, &other_config, &other)?;
            let other_access = access_under(cli, other_acl.as_ref(), &other)?;
            let other_scope = eval_scope(cli, other_acl, &other);
            let other_report = eval::run(
                &other,
                &mut other_embedder,
                rerank::borrowed(&mut reranker),
                &sets,
                other_scope.as_ref(),
                k,
                &mut eval_tracer(&other_dir, &other, &other_access, k),
            )?;
            let flips = eval::compare_reports(&report, &other_report);
            Some((other_dir, other_report, flips))
        }
        None => None,
    };
    if let Some(path) = save_baseline {
        let json = serde_json::to_string_pretty(&Baseline::of(&report))?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failures = eval::gate_failures(&report, changes.as_ref());
    let backlog = backlog::read(&dir, &access);
    // Questions over `[budget] query_ms` (reported, not gated: timings depend on the machine).
    let budget = config.budget.query_ms.map(|limit| {
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
                "index_dir": d.path(), "report": r, "changes": f})),
            "gate_failures": failures,
            "backlog": backlog,
            "budget": budget.as_ref().map(|(limit, over)| json!({"query_ms": limit, "over": over})),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "index {} (generation {}, model {})",
            dir.path().display(),
            report.generation,
            report.model
        )?;
        write_metrics_table(&mut out, &report)?;
        write_lane_table(&mut out, &report)?;
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
                other_dir.path().display(),
                other_report.generation,
                other_report.model
            )?;
            write_metrics_table(&mut out, other_report)?;
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
                dir.path().join(backlog::BACKLOG_FILE).display()
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
        if failures.is_empty() {
            writeln!(out, "\ngate: pass")?;
        } else {
            writeln!(out, "\ngate: FAIL")?;
            for f in &failures {
                writeln!(out, "  {f}")?;
            }
        }
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_metrics_table(out: &mut impl Write, report: &EvalReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<18} {:<10} {:>3} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>5} {:>5} {:>7} {:>6} {:>6} | {:>6} {:>6} {:>6}",
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
        "bm25@5",
        "vec@5",
        "hyb@5"
    )?;
    let rows = report
        .sets
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                format!("{:?}", s.tier).to_lowercase(),
                &s.metrics,
            )
        })
        .chain(std::iter::once(("overall", String::new(), &report.overall)));
    for (name, tier, m) in rows {
        writeln!(
            out,
            "{:<18} {:<10} {:>3} {:>6.3} {:>6.3} {:>6.3} {:>7.3} {:>6.3} {:>6} {:>5.2} {:>5} {:>7} {:>6.1} {:>6.1} | {:>6.3} {:>6.3} {:>6.3}",
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
            m.bm25_hit_at_5,
            m.vector_hit_at_5,
            m.hybrid_hit_at_5,
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
    let rows = report
        .sets
        .iter()
        .map(|s| (s.name.as_str(), &s.metrics))
        .chain(std::iter::once(("overall", &report.overall)));
    for (name, m) in rows {
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

fn cmd_bench(cli: &Cli, root: &Path, out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let checked_root = walk::check_root(root)?;
    let config = Config::load_for_root(&checked_root)?;
    let load_started = Instant::now();
    let mut embedder = load_embedder(cli, &config)?;
    let load_time = load_started.elapsed();
    let bench = in_bench_dir(out_dir, |index_dir| {
        crate::bench::index_bench(&checked_root, index_dir, &config, &mut embedder)
    })?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "model_load_ms": ms(load_time), "bench": bench})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = &bench.report;
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
        bench.files_per_second_walked,
        t.walk.as_secs_f64(),
        100.0 * t.walk.as_secs_f64() / total
    )?;
    writeln!(
        out,
        "read+chunk   {:>9.1} chunks/s  {:>6.2}s  (overlapped with embedding)",
        bench.chunks_per_second_parsed,
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
        bench.chunks_per_second_embedded
    )?;
    writeln!(
        out,
        "end to end   {:>9.1} chunks/s  {:>6.2}s  = {:.0}% of the embedder's rate",
        bench.chunks_per_second_end_to_end,
        total,
        100.0 * bench.end_to_end_vs_embedder
    )?;
    writeln!(out, "peak RSS     {}", human_bytes(bench.peak_rss_bytes))?;
    writeln!(
        out,
        "index size   {} ({:.2}x the source)",
        human_bytes(bench.index_bytes),
        bench.index_bytes as f64 / (r.totals.source_bytes.max(1)) as f64
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
fn bench_corpus(
    cli: &Cli,
    sources: &[PathBuf],
) -> anyhow::Result<(crate::bench::Corpus, IndexReader, Config)> {
    let readers = if sources.is_empty() {
        let (_dir, reader, config) = open_index(cli)?;
        vec![(reader, config)]
    } else {
        sources
            .iter()
            .map(|path| {
                let reader = IndexDir::open(path)?.reader()?;
                let config = Config::load_for_root(&reader.manifest().root)?;
                Ok((reader, config))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    for (reader, config) in &readers {
        ensure_sees_everything(cli, config, reader)?;
    }
    let config = readers[0].1.clone();
    let mut readers: Vec<IndexReader> = readers.into_iter().map(|(r, _)| r).collect();
    let corpus = crate::bench::Corpus::of(&readers)?;
    Ok((corpus, readers.swap_remove(0), config))
}

/// Benchmarks copy whole indexes: they run only as a principal who may read all of it.
fn ensure_sees_everything(cli: &Cli, config: &Config, reader: &IndexReader) -> anyhow::Result<()> {
    if !resolve_access(cli, config, reader)?.sees_everything() {
        anyhow::bail!(
            "`codeq bench` copies whole indexes, so it runs only as a principal who may read every repository of each"
        );
    }
    Ok(())
}

fn cmd_bench_ann_build(cli: &Cli, index: AnnIndex, out: &Path) -> anyhow::Result<ExitCode> {
    let (dir, reader, config) = open_index(cli)?;
    ensure_sees_everything(cli, &config, &reader)?;
    drop(reader);
    let policy = AnnPolicy {
        index,
        min_rows: 0,
        ..config.index.ann_policy()
    };
    let bench = crate::bench::ann_build_bench(&dir, out, policy)?;
    let mut stdout = output(cli.json);
    if cli.json {
        return print_bench_json(&mut stdout, &bench);
    }
    writeln!(
        stdout,
        "{} over {} rows ({} per partition): {:.1}s; RSS {} before, peak {}",
        bench.index,
        bench.rows,
        bench.partition_rows,
        bench.build_s,
        human_bytes(bench.rss_before_bytes),
        human_bytes(bench.peak_rss_bytes)
    )?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench_query(
    cli: &Cli,
    chunks: usize,
    rounds: usize,
    sources: &[PathBuf],
    out_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (corpus, first, config) = bench_corpus(cli, sources)?;
    let mut embedder = load_index_embedder(cli.model_dir.as_deref(), &config, &first)?;
    let bench = in_bench_dir(out_dir, |index_dir| {
        eprintln!(
            "codeq: replicating {} chunks to at least {chunks} chunks in {}",
            corpus.len(),
            index_dir.display()
        );
        crate::bench::query_bench(
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
        return print_bench_json(&mut out, &bench);
    }
    writeln!(
        out,
        "index        {} chunks in {} repos, written in {:.1}s; {} queries x {} rounds, warm",
        bench.chunks,
        bench.repos,
        bench.build.as_secs_f64(),
        bench.queries,
        bench.rounds
    )?;
    writeln!(
        out,
        "{:<40} {:>8} {:>9} {:>9} {:>9} {:>9} | p50 embed   bm25 vector   fuse",
        "scenario", "visible", "search50", "search95", "ask50", "ask95"
    )?;
    for (i, s) in bench.scenarios.iter().enumerate() {
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
    writeln!(out, "peak RSS     {}", human_bytes(bench.peak_rss_bytes))?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench_embed(
    cli: &Cli,
    chunks: usize,
    (batch, max_length, call_size): (&[usize], &[usize], usize),
    sources: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let (corpus, _, config) = bench_corpus(cli, sources)?;
    let texts = corpus.embedding_texts(chunks);
    let figures = crate::bench::embed_bench(&texts, &config.model, batch, max_length, call_size)?;
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

fn cmd_bench_incremental(
    cli: &Cli,
    options: crate::bench::IncrementalBenchOptions,
) -> anyhow::Result<ExitCode> {
    let config = Config::load_for_root(&options.work)?;
    let model = crate::embed::Embedder::info(&load_embedder(cli, &config)?).clone();
    let bench = crate::bench::incremental_bench(&options, &model)?;
    let mut out = output(cli.json);
    if cli.json {
        return print_bench_json(&mut out, &bench);
    }
    writeln!(
        out,
        "index        {} chunks, {} files, {} repositories",
        bench.chunks, bench.files, bench.repos
    )?;
    let rows = [
        ("initial build", std::slice::from_ref(&bench.initial)),
        ("no change", &bench.no_change[..]),
        ("one file", &bench.one_file[..]),
        ("branch switch", std::slice::from_ref(&bench.branch_switch)),
        ("switch back", std::slice::from_ref(&bench.switch_back)),
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
        bench.no_change_p50_s,
        bench.one_file_p50_s,
        bench.branch_switch_cache_hit_rate,
        bench.switch_back_cache_hit_rate
    )?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench_vectors(
    cli: &Cli,
    (chunks, ann): (usize, &[AnnIndex]),
    (queries, k): (usize, usize),
    sources: &[PathBuf],
    out_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (corpus, _, config) = bench_corpus(cli, sources)?;

    let bench = in_bench_dir(out_dir, |index_dir| {
        eprintln!(
            "codeq: replicating {} chunks to at least {chunks} chunks in {}, once per index kind",
            corpus.len(),
            index_dir.display()
        );
        crate::bench::vector_bench(
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
        return print_bench_json(&mut out, &bench);
    }
    writeln!(
        out,
        "table        {} chunks in {} repos; {} query vectors per scenario, warm, top {}",
        bench.chunks, bench.repos, bench.queries, bench.k
    )?;
    writeln!(
        out,
        "{:<12} {:>8} {:>9} | {:<28} {:>8} {:>7} {:>7} {:>9} {:>7}",
        "index", "build s", "size", "scenario", "visible", "p50 ms", "p95 ms", "recall@k", "leaked"
    )?;
    for figures in &bench.indexes {
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
    writeln!(out, "peak RSS     {}", human_bytes(bench.peak_rss_bytes))?;
    Ok(ExitCode::SUCCESS)
}

/// Draws indexing progress on a terminal; prints a line every few seconds otherwise.
struct TerminalProgress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    last_line: std::cell::Cell<Option<Instant>>,
    started: Instant,
    total_files: std::cell::Cell<usize>,
}

impl TerminalProgress {
    fn new(quiet: bool) -> TerminalProgress {
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

    fn done(&self) {
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

/// A duration as `1h 02m`, `3m 05s` or `42s`.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn age(unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(unix);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}
