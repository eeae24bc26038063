//! The command line's grammar: every command, flag and argument codeq takes (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::backlog::Verdict;
use crate::index::Shard;
use crate::store::AnnIndex;

#[derive(Parser, Debug)]
#[command(
    name = "codeq",
    version,
    about = "Index a codebase and find code with cited files and line ranges"
)]
pub(super) struct Cli {
    /// Index folder (default: .codeq in the indexed root, found by walking up from here).
    #[arg(long, global = true, env = "CODEQ_INDEX_DIR")]
    pub(super) index_dir: Option<PathBuf>,
    /// Folder with the embedding model (default: the one scripts/setup.sh installs).
    #[arg(long, global = true, env = "CODEQ_MODEL_DIR")]
    pub(super) model_dir: Option<PathBuf>,
    /// Access-control list (an [acl] section); default: the [acl] of the root's codeq.toml.
    /// (A flag only, deliberately not an environment variable: a server process may pass
    /// its clients' environment through, and the ACL must stay the operator's choice.)
    #[arg(long, global = true)]
    pub(super) acl: Option<PathBuf>,
    /// Run queries as this principal (default: CODEQ_USER, else the OS user).
    #[arg(long = "as", global = true, env = "CODEQ_USER", value_name = "USER")]
    pub(super) as_user: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub(super) json: bool,
    /// Without a command: the TUI when an index is found from here, else this help.
    #[command(subcommand)]
    pub(super) command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
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
        /// Index only shard I of N (I/N, from 0): the repositories whose path hashes into
        /// it. The index's other repositories stay as published, so N indexers, on one
        /// machine or several, build one index together; on object storage a worker that
        /// loses the race to publish builds again on the winner's generation.
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
    },
    /// Show what is indexed, how fresh it is, and whether both lanes agree.
    Status,
    /// Republish an earlier kept generation (default: the last complete build before the
    /// current one), with the model and chunker it was built with; `codeq status` lists them.
    Rollback {
        /// The generation to return to (`g000012`).
        generation: Option<String>,
    },
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
        /// One result per file (its best chunk), files in the order of their best chunks;
        /// a file's other chunks among the first k results support it (`ask` counts them
        /// over its larger pool, so its order can differ).
        #[arg(long)]
        files: bool,
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
    /// Serve the index to a team over HTTP (search, ask, status, read_citation and MCP at
    /// /mcp): each request's principal comes from its bearer token, never from the request.
    Serve {
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Tokens file: `[[token]]` entries of `principal` and `sha256` (the sha256 of the
        /// token, never the token itself), optionally `expires`.
        #[arg(long)]
        tokens: PathBuf,
        /// Requests per minute each token may make (with a burst of ten seconds' worth).
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
        requests_per_minute: u32,
        /// Also write each request's query text into the access log.
        #[arg(long)]
        log_queries: bool,
    },
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
        #[arg(required_unless_present = "history")]
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
        /// Print the summaries of earlier runs on this index (every run appends one)
        /// instead of running sets.
        #[arg(long, conflicts_with_all = ["sets", "baseline", "save_baseline", "compare_index"])]
        history: bool,
        /// Score the answers `[llm]` generates too (their verified citations against the
        /// expected files, refusals, latency, tokens), beside the extractive answers; an
        /// error when no generated answer comes back (no `[llm]` configured).
        #[arg(long, conflicts_with = "history")]
        llm: bool,
        /// Ask through a running `codeq serve` at this URL instead of opening the index:
        /// once unloaded, then by --concurrency clients at once; fails when a request
        /// fails or an answer under load differs from the unloaded one.
        #[arg(long, value_name = "URL", requires = "token_file", conflicts_with_all = ["compare_index", "history"])]
        server: Option<String>,
        /// File holding the bearer token for --server (the token never goes on the
        /// command line, where other users can read it).
        #[arg(long, requires = "server")]
        token_file: Option<PathBuf>,
        /// Clients asking at once in the loaded run of --server.
        #[arg(long, default_value_t = 4, requires = "server", value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
    /// Benchmarks (build with --release): indexing throughput or query latency.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum BenchCommand {
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
    /// A `codeq serve` process on loopback under --clients clients sending --requests
    /// searches each, beside the same queries in process, on the query benchmark's index
    /// (the current index or --source indexes replicated to --chunks chunks) under an ACL
    /// of two principals: latency p50/p95, throughput, errors, leaks and answers that
    /// differ from the in-process ones.
    Serve {
        /// Chunks in the benchmark index.
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        /// Clients sending at once.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Searches each client sends.
        #[arg(long, default_value_t = 200)]
        requests: usize,
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

/// Most results a command-line query returns.
const MAX_K: usize = 1000;

/// `-k`: from 1 to [`MAX_K`] (0 would ask for nothing and always answer "no results").
pub(super) fn parse_k(raw: &str) -> Result<usize, String> {
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

/// `--verdict N=good|bad`: a verdict on citation N (numbered from 1).
pub(super) fn parse_verdict(raw: &str) -> Result<(usize, Verdict), String> {
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
