//! Opening an index for queries, the one way every surface (command line, TUI, MCP, eval,
//! a server) gets something that answers them.
//!
//! [`SharedIndex::open`] finds the index, loads its configuration, the model it was built
//! with, the reranker and the LLM settings, and the access-control list, refusing an index
//! built under an ACL when none is configured now. [`SharedIndex::session`] then gives one
//! principal a [`Session`]: the only place an [`Access`] is built, so no caller can query
//! with a filter the ACL did not compile, or skip the step that hides repository names a
//! principal can read nothing of. [`Session::open`] does both for one principal.
//!
//! Every method blocks until its work is done: from async code call them on a blocking
//! pool (`spawn_blocking`). They are safe to call from a runtime thread too (storage work
//! then waits on a helper thread, see [`crate::runtime`]). A [`Session`] is cheap to clone
//! and can be shared across threads; queries through one [`SharedIndex`] take turns on its
//! model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::acl::{self, Access, AccessMode, Acl};
use crate::answer::{self, Answer, CitedLines};
use crate::backlog::{self, Verdict};
use crate::config::Config;
use crate::embed::{Embedder, load_embedder};
use crate::error::{Error, Result};
use crate::llm::{self, AnswerSettings};
use crate::paths;
use crate::report::{self, Status};
use crate::rerank::{self, Reranker};
use crate::search::{self, Lanes, QueryScope, SearchOptions, SearchResults};
use crate::store::{IndexDir, IndexReader, Manifest, RepoRecord};
use crate::trace::{self, Owner, Surface, Trace, TraceId, TraceInput};

/// Where the index is and who asks.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The index folder; `None`: the `.codeq` found by walking up from `start`.
    pub index_dir: Option<PathBuf>,
    /// Where to look for the index when `index_dir` is not given (default: the current
    /// folder).
    pub start: Option<PathBuf>,
    /// Another model folder than the one the index records.
    pub model_dir: Option<PathBuf>,
    /// An access-control file (`--acl`) instead of the root's `[acl]` section.
    pub acl_file: Option<PathBuf>,
    /// The principal (`--as`); `None`: the operating-system user. Without an ACL it has
    /// no effect ([`Session::access_mode`] then says single-user mode).
    pub principal: Option<String>,
}

/// A query's outcome with the id of its trace (or why the trace could not be written).
#[derive(Debug)]
pub struct Traced<T> {
    /// What the query returned.
    pub value: T,
    /// The trace's id.
    pub trace: TraceId,
}

/// What one opened index shares among sessions: the generation, its configuration and
/// access-control list, the model and reranker, and how answers are produced.
struct Shared {
    dir: IndexDir,
    reader: IndexReader,
    config: Config,
    acl: Option<Acl>,
    settings: AnswerSettings,
    /// Shared with the index reopened at a newer generation built with the same model.
    model: Arc<Mutex<Model>>,
}

/// The loaded models; a query holds them while it runs.
struct Model {
    embedder: Box<dyn Embedder>,
    reranker: Option<Box<dyn Reranker>>,
}

/// An index found and checked against the access-control list, before any model loads.
struct Located {
    dir: IndexDir,
    reader: IndexReader,
    config: Config,
    acl: Option<Acl>,
}

impl Located {
    /// Finds the index of `options`, loads its root's configuration and the ACL (`--acl`,
    /// else the root's `[acl]`), and refuses an index built under an ACL without one.
    fn find(options: &SessionOptions) -> Result<Located> {
        let path = match &options.index_dir {
            Some(dir) => dir.clone(),
            None => {
                let start = match &options.start {
                    Some(start) => start.clone(),
                    None => std::env::current_dir()
                        .map_err(|e| Error::io("cannot read the current folder", e))?,
                };
                paths::discover_index_dir(&start)?
            }
        };
        let dir = IndexDir::open(&path)?;
        let reader = dir.reader()?;
        let config = Config::load_for_root(&reader.manifest().root)?;
        let acl = match &options.acl_file {
            Some(file) => Some(Acl::load(file)?),
            None => config.acl().cloned(),
        };
        if acl.is_none() && reader.manifest().acl_required {
            return Err(Error::AclMissing {
                config: reader.manifest().root.join(paths::CONFIG_FILE),
            });
        }
        Ok(Located {
            dir,
            reader,
            config,
            acl,
        })
    }
}

/// A whole index for tools that copy, rebuild or clean it (benchmarks, `codeq gc`), opened
/// without loading a model: only for a principal who may read every repository of it.
pub struct WholeIndex {
    /// The index folder.
    pub dir: IndexDir,
    /// The published generation.
    pub reader: IndexReader,
    /// The configuration of the indexed root.
    pub config: Config,
}

impl WholeIndex {
    /// Opens the index of `options` for `options.principal`, refused unless that principal
    /// may read all of it (always so in single-user mode).
    pub fn open(options: &SessionOptions) -> Result<WholeIndex> {
        let Located {
            dir,
            reader,
            config,
            acl,
        } = Located::find(options)?;
        if let Some(acl) = &acl {
            let principal = acl::principal(options.principal.as_deref());
            if !acl
                .access_for(&principal, &reader.manifest().repo_ids())
                .sees_everything()
            {
                return Err(Error::Config {
                    path: dir.path().to_path_buf(),
                    detail: "this command works on the whole index, so it runs only as a principal who may read every repository of it".into(),
                });
            }
        }
        Ok(WholeIndex {
            dir,
            reader,
            config,
        })
    }
}

/// An index opened for queries, without a principal yet: what a server holds once and
/// hands a [`Session`] per principal from.
#[derive(Clone)]
pub struct SharedIndex {
    shared: Arc<Shared>,
}

impl SharedIndex {
    /// Finds and opens the index, its configuration, ACL and models. An index built under
    /// an access-control list is refused when none is configured now.
    pub fn open(options: &SessionOptions) -> Result<SharedIndex> {
        let located = Located::find(options)?;
        let embedder = index_embedder(
            options.model_dir.as_deref(),
            &located.config,
            &located.reader,
        )?;
        SharedIndex::with_located(located, embedder)
    }

    /// Like [`SharedIndex::open`], with `embedder` for query vectors instead of the model
    /// the index records (it must produce vectors like the index's: the same model id and
    /// dimension, or queries are refused).
    pub fn open_with_embedder(
        options: &SessionOptions,
        embedder: Box<dyn Embedder>,
    ) -> Result<SharedIndex> {
        SharedIndex::with_located(Located::find(options)?, embedder)
    }

    fn with_located(located: Located, embedder: Box<dyn Embedder>) -> Result<SharedIndex> {
        let Located {
            dir,
            reader,
            config,
            acl,
        } = located;
        let reranker = rerank::load_if_enabled(&config.rerank, &config.model)?;
        let model = Arc::new(Mutex::new(Model { embedder, reranker }));
        Ok(SharedIndex::with_model(
            Located {
                dir,
                reader,
                config,
                acl,
            },
            model,
        ))
    }

    fn with_model(located: Located, model: Arc<Mutex<Model>>) -> SharedIndex {
        let settings = located.config.answer_settings();
        SharedIndex {
            shared: Arc::new(Shared {
                dir: located.dir,
                reader: located.reader,
                config: located.config,
                acl: located.acl,
                settings,
                model,
            }),
        }
    }

    /// The generation this index answers from.
    pub fn generation(&self) -> &str {
        self.shared.reader.generation()
    }

    /// Whether a generation other than the one this index answers from is published now
    /// (on object storage, the bucket is asked, and a new generation is fetched).
    pub fn is_outdated(&self) -> Result<bool> {
        self.shared.dir.refresh()?;
        Ok(self.shared.dir.current()?.as_deref() != Some(self.generation()))
    }

    /// The index of `options` opened again: its newest generation, with its configuration
    /// and access-control list read anew. The models are this index's when the new
    /// generation was built with the same embedding model and the reranker settings are
    /// unchanged, else loaded anew. Sessions of this index keep answering from its
    /// generation until they are dropped.
    pub fn reopen(&self, options: &SessionOptions) -> Result<SharedIndex> {
        let located = Located::find(options)?;
        if located.config.rerank != self.shared.config.rerank {
            return SharedIndex::open(options);
        }
        let same_model = {
            let model = self
                .shared
                .model
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            model
                .embedder
                .info()
                .compatible_with(&located.reader.manifest().model)
        };
        if !same_model {
            return SharedIndex::open(options);
        }
        Ok(SharedIndex::with_model(located, self.shared.model.clone()))
    }

    /// A session of `principal` (`None`: the operating-system user): under an ACL, what no
    /// grant allows is denied; without one, single-user mode.
    pub fn session(&self, principal: Option<&str>) -> Result<Session> {
        let access = match &self.shared.acl {
            None => Access::single_user(),
            Some(acl) => {
                let principal = acl::principal(principal);
                self.scoped(acl, &principal)?
            }
        };
        Ok(Session {
            index: self.clone(),
            access,
            trace_owner: None,
        })
    }

    /// `principal`'s access under `acl`, its filter prepared for this index: repositories
    /// of which it may read nothing are dropped, so nobody learns their names.
    fn scoped(&self, acl: &Acl, principal: &str) -> Result<Access> {
        let reader = &self.shared.reader;
        let access = acl.access_for(principal, &reader.manifest().repo_ids());
        let filter = reader.prepare_filter(access.filter())?;
        Ok(access.with_filter(filter))
    }

    /// The configuration of the indexed root.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Whether an access-control list applies.
    pub fn has_acl(&self) -> bool {
        self.shared.acl.is_some()
    }
}

/// One principal's view of an opened index: every query, citation, status and trace goes
/// through it, scoped to what the principal may read.
#[derive(Clone)]
pub struct Session {
    index: SharedIndex,
    access: Access,
    /// For an eval question asked as someone else: the principal who runs the eval, who
    /// owns the trace (it holds their question text).
    trace_owner: Option<Option<String>>,
}

impl Session {
    /// Opens the index and a session of `options.principal` in one step.
    pub fn open(options: &SessionOptions) -> Result<Session> {
        SharedIndex::open(options)?.session(options.principal.as_deref())
    }

    /// A session of `other` for evaluating access control: allowed only to a principal who
    /// may read everything (otherwise a question set would be a way around `--as`), and
    /// only under an ACL. Its traces belong to this session's principal.
    pub fn as_other(&self, other: &str) -> Result<Session> {
        let Some(acl) = &self.index.shared.acl else {
            return Err(Error::Config {
                path: "question set".into(),
                detail: format!(
                    "a question asks as {other:?} but no access-control list is configured, so it cannot be scoped"
                ),
            });
        };
        if self.principal() == Some(other) {
            return Ok(self.clone());
        }
        if !self.sees_everything() {
            return Err(Error::Config {
                path: "question set".into(),
                detail: format!(
                    "a question asks as {other:?}, but {:?} may not read every repository and so cannot evaluate as someone else; run the set as a principal granted every repository",
                    self.principal().unwrap_or_default()
                ),
            });
        }
        Ok(Session {
            index: self.index.clone(),
            access: self.index.scoped(acl, other)?,
            trace_owner: Some(self.principal().map(str::to_string)),
        })
    }

    /// Hybrid search within `scope`, recorded as a trace.
    pub fn search(
        &self,
        surface: Surface,
        query: &str,
        scope: &QueryScope,
    ) -> Result<Traced<SearchResults>> {
        let started = Instant::now();
        let options = self.options(scope)?;
        let results = self.with_model(true, |reader, embedder, reranker| {
            search::search(reader, embedder, reranker, query, &options)
        })?;
        let input = self.trace_input(surface, query, scope, started);
        let trace = trace::record_search(self.dir(), &input, &results);
        Ok(Traced {
            value: results,
            trace,
        })
    }

    /// One lane alone (or both, fused), not reranked and not traced: what `codeq eval`
    /// measures each lane with.
    pub fn lane_search(
        &self,
        query: &str,
        scope: &QueryScope,
        lanes: Lanes,
    ) -> Result<SearchResults> {
        let options = SearchOptions {
            lanes,
            ..self.options(scope)?
        };
        self.with_model(false, |reader, embedder, _| {
            search::search(reader, embedder, None, query, &options)
        })
    }

    /// Answers `question` within `scope`: the extractive answer, then the LLM's when `[llm]`
    /// is configured (in what is left of the latency budget), recorded as a trace.
    pub fn ask(
        &self,
        surface: Surface,
        question: &str,
        scope: &QueryScope,
    ) -> Result<Traced<Answer>> {
        let started = Instant::now();
        let options = self.options(scope)?;
        let mut answer = self.with_model(true, |reader, embedder, reranker| {
            answer::ask(reader, embedder, reranker, question, &options)
        })?;
        let settings = self.settings();
        if let Some(config) = &settings.llm {
            let left = settings
                .budget
                .map(|budget| budget.saturating_sub(started.elapsed()));
            answer.generated = Some(llm::generate(config, &answer, left, settings.max_cost_usd));
        }
        let input = self.trace_input(surface, question, scope, started);
        let over_budget = settings.budget.is_some_and(|b| started.elapsed() > b);
        let trace = trace::record_answer(self.dir(), &input, &answer, over_budget);
        Ok(Traced {
            value: answer,
            trace,
        })
    }

    /// The current text of a cited line range (`repo:path:start-end`), if the principal
    /// may read it; a forbidden and a missing file read the same.
    pub fn read_citation(&self, citation: &str) -> Result<CitedLines> {
        answer::read_citation(self.reader(), self.access.filter(), citation)
    }

    /// What is indexed, how fresh it is and whether the lanes agree, as the principal may
    /// see it.
    pub fn status(&self) -> Result<Status> {
        Status::build(
            self.dir(),
            self.reader(),
            &self.access,
            &self.index.shared.config.index,
        )
    }

    /// The principal's trace `id`, or their latest; another's reads as missing.
    pub fn trace(&self, id: Option<&str>) -> Result<Trace> {
        trace::find(self.dir(), id, &self.access)
    }

    /// Records the principal's verdicts on citations of `answer` for the eval backlog.
    pub fn record_verdicts(
        &self,
        answer: &Answer,
        verdicts: &[(usize, Verdict)],
    ) -> Result<PathBuf> {
        backlog::record(
            self.dir(),
            self.reader().generation(),
            self.principal(),
            answer,
            verdicts,
        )
    }

    /// The principal's own backlog verdicts on what they may still read.
    pub fn backlog(&self) -> Vec<serde_json::Value> {
        backlog::read(self.dir(), &self.access)
    }

    /// `codeq search --json` of `searched`.
    pub fn search_json(&self, query: &str, searched: &Traced<SearchResults>) -> serde_json::Value {
        report::search_json(
            query,
            &searched.value,
            &self.access,
            self.manifest(),
            searched.trace.as_ref().ok().map(String::as_str),
        )
    }

    /// `codeq ask --json` of `asked`.
    pub fn ask_json(&self, asked: &Traced<Answer>) -> serde_json::Value {
        report::ask_json(
            &self.access,
            self.manifest(),
            &asked.value,
            asked.trace.as_ref().ok().map(String::as_str),
        )
    }

    /// The indexed commit against HEAD of the repositories of `repos` that the principal
    /// reads whole (for notes on stale citations).
    pub fn index_state<'r>(
        &self,
        repos: impl Iterator<Item = &'r str>,
    ) -> serde_json::Map<String, serde_json::Value> {
        report::index_state(self.manifest(), &self.access, repos)
    }

    /// The repositories the principal may read (whole or in part).
    pub fn visible_repos(&self) -> Vec<&RepoRecord> {
        self.manifest()
            .repos
            .iter()
            .filter(|r| self.access.filter().admits_repo(&r.id))
            .collect()
    }

    /// How many of the repositories the principal reads whole moved on since indexing
    /// (whole-repository state moves with files a partial reader cannot see, so those are
    /// not counted, as in `codeq status`).
    pub fn stale_repos(&self) -> usize {
        let partial = self.access.filter().path_restricted();
        self.visible_repos()
            .into_iter()
            .filter(|r| !partial.admits_repo(&r.id))
            .filter(|r| report::RepoStatus::of(r, &self.manifest().root).stale)
            .count()
    }

    /// Languages of the chunks the principal may see, most chunks first.
    pub fn languages(&self) -> Result<Vec<String>> {
        Ok(self
            .reader()
            .languages(self.access.filter())?
            .into_iter()
            .map(|(language, _)| language)
            .collect())
    }

    /// Single-user mode, or the principal under an ACL.
    pub fn access_mode(&self) -> &AccessMode {
        self.access.mode()
    }

    /// The principal (`None`: single-user mode).
    pub fn principal(&self) -> Option<&str> {
        self.access.principal()
    }

    /// True when the principal may read every chunk of the index.
    pub fn sees_everything(&self) -> bool {
        self.access.sees_everything()
    }

    /// The generation's manifest (root, model, repositories).
    pub fn manifest(&self) -> &Manifest {
        self.reader().manifest()
    }

    /// The generation that answers.
    pub fn generation(&self) -> &str {
        self.reader().generation()
    }

    /// The index folder (for an index on object storage, this machine's mirror of it,
    /// which keeps the traces and the eval history).
    pub fn index_dir(&self) -> &Path {
        self.dir().path()
    }

    /// Where the index lives, for people: its `s3://` location, or its folder.
    pub fn index_location(&self) -> String {
        self.dir().location()
    }

    /// The configuration of the indexed root.
    pub fn config(&self) -> &Config {
        &self.index.shared.config
    }

    /// How answers are produced (`[llm]`, `[budget]`).
    pub fn settings(&self) -> &AnswerSettings {
        &self.index.shared.settings
    }

    fn dir(&self) -> &IndexDir {
        &self.index.shared.dir
    }

    fn reader(&self) -> &IndexReader {
        &self.index.shared.reader
    }

    /// Runs `query` with the generation and the models (the reranker only when `rerank`),
    /// holding them until it returns; a query that panicked while holding them left them
    /// usable.
    fn with_model<T>(
        &self,
        rerank: bool,
        query: impl FnOnce(&IndexReader, &mut dyn Embedder, Option<&mut dyn Reranker>) -> Result<T>,
    ) -> Result<T> {
        let mut model = self
            .index
            .shared
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Model { embedder, reranker } = &mut *model;
        let reranker = if rerank {
            rerank::borrowed(reranker)
        } else {
            None
        };
        query(self.reader(), embedder.as_mut(), reranker)
    }

    fn options(&self, scope: &QueryScope) -> Result<SearchOptions> {
        scope.options(self.access.filter(), &self.manifest().repo_ids())
    }

    fn trace_input<'a>(
        &'a self,
        surface: Surface,
        query: &'a str,
        scope: &'a QueryScope,
        started: Instant,
    ) -> TraceInput<'a> {
        let owner = match &self.trace_owner {
            Some(runner) => Owner {
                principal: runner.as_deref(),
                asked_as: self.principal(),
            },
            None => Owner {
                principal: self.principal(),
                asked_as: None,
            },
        };
        TraceInput {
            surface,
            owner,
            reader: self.reader(),
            query,
            scope,
            total: started.elapsed(),
        }
    }
}

/// The model `reader`'s index was built with: `model_dir` (`--model-dir`,
/// `CODEQ_MODEL_DIR`) or `[model] dir` when given, else the folder the index records, with
/// the index's token limit, so that query vectors are comparable with the stored ones.
pub fn index_embedder(
    model_dir: Option<&Path>,
    config: &Config,
    reader: &IndexReader,
) -> Result<Box<dyn Embedder>> {
    let built_with = &reader.manifest().model;
    let mut model = config.model.clone();
    model.max_length = built_with.max_length;
    if model.dir.is_none() {
        model.dir = built_with.dir.clone().filter(|d| d.is_dir());
    }
    if let Some(dir) = model_dir {
        model.dir = Some(dir.to_path_buf());
    }
    load_embedder(&model)
}
