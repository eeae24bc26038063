//! Command-line surface: argument → library call, output formatting and exit codes (0
//! results, 1 no results, 2 usage, configuration or index error). Every command that
//! answers queries goes through a [`Session`]; this module only turns flags into
//! [`SessionOptions`] and prints.

mod args;
mod bench;
mod eval;
mod human;
mod index;
mod progress;
mod query;
mod status;
mod trace;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::acl::AccessMode;
use crate::config::Config;
use crate::display::{TerminalSafe, escape_controls};
use crate::embed::{self, Embedder, ModelConfig};
use crate::search::QueryScope;
use crate::session::{Session, SessionOptions};
use args::{BenchCommand, Cli, Command};

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
            if matches!(cli.command, Some(Command::Serve { .. }))
                && let Err(err) = principals_come_from_tokens(&mut cli, &matches)
            {
                warn(err);
                return ExitCode::from(2);
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

/// `codeq serve` takes each request's principal from its token: `--as` is refused, and
/// `CODEQ_USER` is ignored.
fn principals_come_from_tokens(
    cli: &mut Cli,
    matches: &clap::ArgMatches,
) -> Result<(), &'static str> {
    use clap::parser::ValueSource;
    let given = |m: &clap::ArgMatches| m.value_source("as_user") == Some(ValueSource::CommandLine);
    if given(matches) || matches.subcommand().is_some_and(|(_, sub)| given(sub)) {
        return Err(
            "codeq serve takes each request's principal from its bearer token; --as is not accepted",
        );
    }
    cli.as_user = None;
    Ok(())
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
    // Each pipeline stage is a span: `RUST_LOG=codeq=debug` prints its time as it closes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(std::io::stderr().is_terminal())
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
        return query::cmd_default(&cli);
    };
    match command {
        Command::Tui { k } => query::cmd_tui(&cli, *k),
        Command::Mcp => query::cmd_mcp(&cli),
        Command::Serve {
            listen,
            tokens,
            requests_per_minute,
            log_queries,
        } => {
            crate::serve::run(crate::serve::ServeOptions {
                index: session_options(&cli),
                listen: listen.clone(),
                tokens_file: tokens.clone(),
                requests_per_minute: *requests_per_minute,
                log_queries: *log_queries,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trace { id, last: _ } => trace::cmd_trace(&cli, id.as_deref()),
        Command::Config { root } => status::cmd_config(&cli, root.as_deref()),
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
            shard,
        } => index::cmd_index(&cli, root, (*rebuild, *drop_acl, *shard), *watch),
        Command::Status => status::cmd_status(&cli),
        Command::Gc { cache } => index::cmd_gc(&cli, *cache),
        Command::Rollback { generation } => index::cmd_rollback(&cli, generation.as_deref()),
        Command::Search {
            query,
            k,
            repos,
            language,
            files,
        } => query::cmd_search(
            &cli,
            query,
            &QueryScope {
                per_file: *files,
                ..query_scope(*k, repos, language)
            },
        ),
        Command::Ask {
            question,
            k,
            repos,
            language,
            verdicts,
        } => query::cmd_ask(&cli, question, &query_scope(*k, repos, language), verdicts),
        Command::Eval { history: true, .. } => eval::cmd_history(&cli),
        Command::Eval {
            sets,
            k,
            baseline,
            llm,
            server: Some(url),
            token_file: Some(token_file),
            concurrency,
            ..
        } => eval::cmd_eval_server(
            &cli,
            &eval::EvalRun {
                set_paths: sets,
                k: *k,
                baseline: baseline.as_deref(),
                llm: *llm,
            },
            (url, token_file, usize::from(*concurrency)),
        ),
        Command::Eval {
            sets,
            k,
            baseline,
            save_baseline,
            compare_index,
            llm,
            ..
        } => eval::cmd_eval(
            &cli,
            &eval::EvalRun {
                set_paths: sets,
                k: *k,
                baseline: baseline.as_deref(),
                llm: *llm,
            },
            save_baseline.as_deref(),
            compare_index.as_deref(),
        ),
        Command::Bench {
            what: BenchCommand::Index { root, out },
        } => bench::cmd_bench(&cli, root, out.as_deref()),
        Command::Bench {
            what:
                BenchCommand::Query {
                    chunks,
                    rounds,
                    source,
                    out,
                },
        } => bench::cmd_bench_query(&cli, *chunks, *rounds, source, out.as_deref()),
        Command::Bench {
            what:
                BenchCommand::Serve {
                    chunks,
                    clients,
                    requests,
                    source,
                    out,
                },
        } => bench::cmd_bench_serve(
            &cli,
            crate::bench::ServeLoad {
                chunks: *chunks,
                clients: (*clients).max(1),
                requests: *requests,
            },
            source,
            out.as_deref(),
        ),
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
        } => bench::cmd_bench_vectors(&cli, (*chunks, ann), (*queries, *k), source, out.as_deref()),
        Command::Bench {
            what: BenchCommand::Coverage { root, query, out },
        } => bench::cmd_bench_coverage(&cli, root, query, out),
        Command::Bench {
            what: BenchCommand::AnnBuild { ann, out },
        } => bench::cmd_bench_ann_build(&cli, *ann, out),
        Command::Bench {
            what:
                BenchCommand::Embed {
                    chunks,
                    batch,
                    max_length,
                    call_size,
                    source,
                },
        } => bench::cmd_bench_embed(&cli, *chunks, (batch, max_length, *call_size), source),
        Command::Bench {
            what:
                BenchCommand::Incremental {
                    trees,
                    copies,
                    seed,
                    work,
                },
        } => bench::cmd_bench_incremental(
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

/// What the global flags say about the index and the principal.
fn session_options(cli: &Cli) -> SessionOptions {
    SessionOptions {
        index_dir: cli.index_dir.clone(),
        start: None,
        model_dir: cli.model_dir.clone(),
        acl_file: cli.acl.clone(),
        principal: cli.as_user.clone(),
    }
}

/// Opens a session of the invocation's principal; `--as` without an ACL gets a note.
fn open_session(cli: &Cli) -> anyhow::Result<Session> {
    let session = Session::open(&session_options(cli))?;
    if cli.as_user.is_some() && matches!(session.access_mode(), AccessMode::SingleUser) {
        warn(
            "no access-control list is configured, so --as / CODEQ_USER has no effect (single-user mode)",
        );
    }
    Ok(session)
}

/// Loads the model named on the command line or in the configuration.
fn load_embedder(cli: &Cli, config: &Config) -> anyhow::Result<Box<dyn Embedder>> {
    Ok(embed::load_embedder(&model_config(cli, config))?)
}

/// The model settings of the configuration, with the folder the command line names.
fn model_config(cli: &Cli, config: &Config) -> ModelConfig {
    let mut model = config.model.clone();
    if let Some(dir) = &cli.model_dir {
        model.dir = Some(dir.clone());
    }
    model
}

/// The scope of `search` and `ask`: top `k`, optionally narrowed to some repositories or
/// a language.
fn query_scope(k: usize, repos: &[String], language: &Option<String>) -> QueryScope {
    QueryScope {
        k,
        repos: repos.to_vec(),
        language: language.clone(),
        per_file: false,
    }
}
