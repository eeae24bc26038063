//! codeq: index a codebase (one monorepo or a folder of git repositories) and answer
//! questions about it with citations to files and line ranges.
//!
//! The pipeline, one module per stage: [`walk`] → [`chunk`] → [`embed`] → [`store`],
//! orchestrated by [`index`]; queries go through [`search`] and [`answer`], scoped by
//! [`acl`] to what the principal may read; [`eval`] scores answers against question sets.
//! [`cli`] is the thin layer the binary calls.

pub mod acl;
pub mod answer;
pub mod backlog;
pub mod bench;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod display;
pub mod embed;
pub mod error;
pub mod eval;
pub mod hash;
pub mod index;
pub mod jsonl;
pub mod llm;
pub mod mcp;
pub mod panic_guard;
pub mod paths;
pub mod report;
pub mod rerank;
pub mod runtime;
pub mod search;
pub mod serve;
pub mod session;
mod stage;
pub mod store;
pub mod tomlfile;
pub mod trace;
pub mod tui;
pub mod walk;
pub mod working_tree;

pub use error::{Error, Result};
