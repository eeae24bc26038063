//! The library's error type: every variant says what went wrong and what to do about it.

use std::path::PathBuf;

/// A storage library's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside codeq, phrased for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The folder to index does not exist.
    #[error(
        "{0} does not exist: pass the folder that holds your code (a git repo or a folder of repos)"
    )]
    RootMissing(PathBuf),
    /// The folder to index is a file.
    #[error("{0} is a file, not a folder: pass the folder that holds your code")]
    RootNotDir(PathBuf),
    /// Two repositories under the root would get the same id.
    #[error(
        "the repositories at {} and {} would both have the id {id:?}: rename one of the folders (a repository's id is its path under the root, the root's own repository is named after the root folder)",
        .first.display(), .second.display()
    )]
    DuplicateRepoId {
        /// The shared id.
        id: String,
        /// The first repository's folder.
        first: PathBuf,
        /// The second repository's folder.
        second: PathBuf,
    },
    /// The folder to index cannot be listed.
    #[error("cannot read {path}: {source}; check its permissions")]
    RootUnreadable {
        /// The folder.
        path: PathBuf,
        /// Why the listing failed.
        source: std::io::Error,
    },
    /// No index was found for a query command.
    #[error(
        "no codeq index found in {0} or any parent folder: run `codeq index ROOT` first, or pass --index-dir"
    )]
    NoIndex(PathBuf),
    /// The index directory holds something that is not a codeq index.
    #[error(
        "{0} exists and is not a codeq index: choose an empty or new folder with --index-dir (nothing was changed)"
    )]
    ForeignIndexDir(PathBuf),
    /// The index directory is damaged.
    #[error(
        "the index in {dir} is damaged ({detail}): rebuild it with `codeq index ROOT --rebuild`"
    )]
    CorruptIndex {
        /// The index directory.
        dir: PathBuf,
        /// What was found to be wrong.
        detail: String,
    },
    /// A file of the index exists but this user may not read it.
    #[error(
        "cannot open {}: permission denied. The index was written by another user or with other permissions: run codeq as the user who built it, or give this user access to the index folder (nothing is damaged; rebuilding is not needed)",
        .path.display()
    )]
    IndexPermission {
        /// The first file found unreadable.
        path: PathBuf,
    },
    /// The index was written by another index format.
    #[error(
        "the index in {dir} has format {found}, this codeq reads format {expected}: rebuild it with `codeq index ROOT --rebuild`"
    )]
    IndexFormat {
        /// The index directory.
        dir: PathBuf,
        /// Format found on disk.
        found: u32,
        /// Format this build understands.
        expected: u32,
    },
    /// The index was written with another schema (an older or newer codeq).
    #[error(
        "the index in {dir} was written with schema {found}, this codeq reads schema {expected}: {}",
        if .found > .expected { "use the newer codeq that wrote it" } else { "run `codeq index ROOT` to rebuild it" }
    )]
    IndexSchema {
        /// The index directory.
        dir: PathBuf,
        /// Schema version found in the generation's manifest.
        found: u32,
        /// Schema version this build understands.
        expected: u32,
    },
    /// The index was built under an access-control list and none is configured now.
    #[error(
        "this index was built under an access-control list, but none is configured now (no [acl] in {} and no --acl): restore the ACL, or drop it on purpose with `codeq index ROOT --drop-acl` (every principal then sees every repository)",
        .config.display()
    )]
    AclMissing {
        /// The configuration file that would hold the `[acl]` section.
        config: PathBuf,
    },
    /// `codeq rollback` cannot republish the generation asked for.
    #[error("cannot roll back: {0}")]
    Rollback(String),
    /// Another `codeq index` holds the index lock.
    #[error(
        "another `codeq index` is writing {0} right now: wait for it to finish (queries keep working meanwhile)"
    )]
    IndexLocked(PathBuf),
    /// The object store holding an `s3://` index refused or failed a request, or holds
    /// no index there.
    #[error("{location}: {detail}")]
    Remote {
        /// The index's `s3://BUCKET/PREFIX`.
        location: String,
        /// What went wrong and what to do.
        detail: String,
    },
    /// Another run published to the same `s3://` index after this one read what was
    /// published; nothing of this run was published.
    #[error(
        "another run published {published} to {location} before {mine} could be: nothing was published by this run. Run the command again (`codeq index` then builds on {published} and reuses the vectors published there)"
    )]
    RemoteConflict {
        /// The index's `s3://BUCKET/PREFIX`.
        location: String,
        /// The generation the other run published.
        published: String,
        /// The generation this run would have published.
        mine: String,
    },
    /// A shard's run cannot build on the published index (why, in words): it would drop
    /// the other shards' repositories.
    #[error(
        "{0}; a run with --shard only re-lays its own repositories on the published index. Run `codeq index ROOT` once without --shard (with --rebuild if asked), then the shard workers again"
    )]
    ShardNeedsWholeRun(String),
    /// `codeq index --watch` could not watch the tree.
    #[error("{0}. On Linux, a large tree may need a higher fs.inotify.max_user_watches")]
    Watch(String),
    /// The embedding model files are missing or unreadable.
    #[error(
        "embedding model not usable in {dir}: {detail}. Run `scripts/setup.sh` to install the default model, or pass --model-dir / CODEQ_MODEL_DIR pointing at a folder with model.onnx, tokenizer.json, config.json, special_tokens_map.json and tokenizer_config.json"
    )]
    ModelMissing {
        /// The model directory that was tried.
        dir: PathBuf,
        /// What was missing or failed.
        detail: String,
    },
    /// The reranker's files are missing or unreadable while `[rerank]` is enabled.
    #[error(
        "reranker not usable in {dir}: {detail}. Run `scripts/setup.sh` to install the default reranker, point [rerank] dir (CODEQ_RERANK_DIR) at a folder with model.onnx, tokenizer.json, special_tokens_map.json and tokenizer_config.json, or set [rerank] enabled = false"
    )]
    RerankerMissing {
        /// The reranker directory that was tried.
        dir: PathBuf,
        /// What was missing or failed.
        detail: String,
    },
    /// ONNX Runtime could not be loaded.
    #[error(
        "ONNX Runtime not usable at {path}: {detail}. Run `scripts/setup.sh`, or set CODEQ_ORT_LIB to a libonnxruntime.so (version 1.24 or newer)"
    )]
    OrtMissing {
        /// The library path that was tried.
        path: PathBuf,
        /// The loader's complaint.
        detail: String,
    },
    /// The loaded model is not the one the index was built with (see
    /// `ModelInfo::refusal`, which words each part).
    #[error("the index was built with {built_with}, but the loaded model {differs}: {remedy}")]
    ModelMismatch {
        /// The index's model: id, dimension and token limit.
        built_with: String,
        /// What the loaded model does differently.
        differs: String,
        /// How to go on.
        remedy: String,
    },
    /// Embedding failed at run time.
    #[error("embedding failed: {0}")]
    Embed(String),
    /// A configuration file is invalid.
    #[error("invalid configuration in {path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line where known.
        detail: String,
    },
    /// A query names a repository the principal cannot see (or that does not exist: the
    /// two are not told apart).
    #[error(
        "no repository named {0} is visible to you in this index; `codeq status` lists the ones you can search"
    )]
    RepoNotVisible(String),
    /// A query is restricted to a language none of the visible chunks has.
    #[error(
        "no chunk in language {language:?} is visible to you here; the languages you can search are: {}",
        if .visible.is_empty() { "none".to_string() } else { .visible.join(", ") }
    )]
    LanguageNotVisible {
        /// The language asked for.
        language: String,
        /// Languages of the chunks the query may see.
        visible: Vec<String>,
    },
    /// A citation names no indexed file the principal may read (or none at all: the two
    /// are not told apart).
    #[error(
        "{0}: no indexed file of that name is visible to you; cite as repo:path:start-end, as search and ask print them"
    )]
    CitationNotVisible(String),
    /// A visible citation's lines cannot be read.
    #[error("{citation}: {detail}")]
    CitationLines {
        /// The citation as given.
        citation: String,
        /// What is wrong.
        detail: String,
    },
    /// No trace with that id is visible to the principal (missing and foreign traces are
    /// not told apart).
    #[error(
        "no trace {0} is visible to you in this index; search and ask print the ids of their traces (--json: trace_id)"
    )]
    TraceNotFound(String),
    /// `codeq trace --last` found no trace of the principal's.
    #[error(
        "no trace of yours is recorded in this index yet: search and ask record one each (`codeq trace ID` reads it)"
    )]
    NoTraceYet,
    /// A verdict names a citation the answer does not have.
    #[error("there is no citation {number}: the answer has {count}, numbered from 1")]
    NoSuchCitation {
        /// The number given.
        number: usize,
        /// Citations in the answer.
        count: usize,
    },
    /// Reading or writing the LanceDB table or the tantivy index failed (the storage
    /// library's error is the source).
    #[error("index storage error: {0}")]
    Storage(#[source] BoxError),
    /// A tree-sitter query shipped in `grammars/` does not work with its grammar.
    #[error(
        "grammars/{language}.scm cannot be used: {detail}. This build of codeq is broken: reinstall it or report the problem"
    )]
    Grammar {
        /// The language whose query failed.
        language: String,
        /// What the grammar or the query check said.
        detail: String,
    },
    /// A thread codeq started stopped before its work was done (it panicked or its
    /// channel closed).
    #[error("{0} stopped before it finished; run the command again (the index is unchanged)")]
    WorkerStopped(&'static str),
    /// A rule codeq keeps itself was broken: a bug, reported without the data involved.
    #[error("internal error: {0}. This is a bug in codeq; please report it")]
    Internal(String),
    /// A benchmark could not run as asked.
    #[error("benchmark: {0}")]
    Bench(String),
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What codeq was doing.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what codeq was doing when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a storage library's error (LanceDB, Lance, Arrow, tantivy).
    pub fn store(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Storage(Box::new(err))
    }

    /// A storage problem found by codeq itself (a missing column, a row without an id).
    pub fn storage(detail: impl Into<String>) -> Self {
        Error::Storage(detail.into().into())
    }
}
