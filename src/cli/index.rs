//! `codeq index` and `codeq gc`: building, refreshing and cleaning an index.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use super::args::Cli;
use super::human::{age, human_bytes, human_duration};
use super::progress::TerminalProgress;
use super::{describe_error, load_embedder, output, session_options, warn};
use crate::config::Config;
use crate::index::{self, IndexOptions, IndexReport, Shard};
use crate::report::JSON_SCHEMA_VERSION;
use crate::session::WholeIndex;
use crate::store::{BucketGc, IndexDir, IndexLock, KeptBecause, LeasePurpose};
use crate::walk;

/// Indexes `root` once, then again on every change with `watch`.
pub(super) fn cmd_index(
    cli: &Cli,
    root: &Path,
    (rebuild, drop_acl, shard): (bool, bool, Option<Shard>),
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
        shard,
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

/// The index with its writer lock, for commands that change it as a whole (the principal
/// must see every repository of it).
fn locked_whole_index(cli: &Cli) -> anyhow::Result<(IndexDir, IndexLock)> {
    let WholeIndex { dir, reader, .. } = WholeIndex::open(&session_options(cli))?;
    drop(reader);
    let lock = dir.lock()?;
    Ok((dir, lock))
}

/// Frees older generations (and the embedding cache with `cache`) in this machine's index
/// folder or mirror, and, on object storage, in the bucket: what no kept generation needs,
/// keeping every generation a live reader or writer holds a lease on.
pub(super) fn cmd_gc(cli: &Cli, cache: bool) -> anyhow::Result<ExitCode> {
    let (dir, lock) = locked_whole_index(cli)?;
    let freed = dir.collect_garbage(&lock, cache)?;
    let bucket = dir.collect_bucket_garbage(&lock)?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "freed_bytes": freed,
                   "bucket": bucket})
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    match &bucket {
        None => writeln!(out, "freed {}", human_bytes(freed))?,
        Some(bucket) => {
            writeln!(
                out,
                "freed {} in this machine's mirror ({})",
                human_bytes(freed),
                dir.path().display()
            )?;
            write_bucket_gc(&mut out, bucket)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What gc deleted from the bucket and why each remaining generation stays.
fn write_bucket_gc(out: &mut impl Write, bucket: &BucketGc) -> std::io::Result<()> {
    let names = |list: &[String]| match list {
        [] => String::new(),
        [one] => format!(" ({one})"),
        [first, .., last] => format!(" ({first} … {last})"),
    };
    writeln!(
        out,
        "deleted from {}: {} generations{}, {} objects ({}), {} expired leases",
        bucket.location,
        bucket.deleted_generations.len(),
        names(&bucket.deleted_generations),
        bucket.deleted_objects,
        human_bytes(bucket.deleted_bytes),
        bucket.expired_leases_deleted,
    )?;
    if bucket.referenced_objects_kept > 0 {
        writeln!(
            out,
            "kept {} objects of deleted generations that kept generations still use",
            bucket.referenced_objects_kept
        )?;
    }
    let now = crate::store::unix_now();
    for kept in &bucket.kept {
        let reasons: Vec<String> = kept
            .reasons
            .iter()
            .filter_map(|reason| match reason {
                KeptBecause::Current => Some("current".into()),
                KeptBecause::Previous => Some("the previous generation".into()),
                KeptBecause::RollbackPoint => Some("a rollback point".into()),
                KeptBecause::Lease {
                    this_process: true, ..
                } => None,
                KeptBecause::Lease {
                    purpose,
                    host,
                    pid,
                    expires_unix,
                    ..
                } => Some(format!(
                    "a live {} holds it ({host}, pid {pid}; its lease expires in {} unless renewed)",
                    match purpose {
                        LeasePurpose::Read => "reader",
                        LeasePurpose::Write => "writer",
                    },
                    human_duration(Duration::from_secs(expires_unix.saturating_sub(now)))
                )),
                KeptBecause::Recent { last_written_unix } => Some(format!(
                    "written {} (a writer may still be publishing it; kept for {} after its last write)",
                    age(*last_written_unix),
                    human_duration(Duration::from_secs(bucket.grace_secs))
                )),
            })
            .collect();
        if !reasons.is_empty() {
            writeln!(out, "kept {}: {}", kept.generation, reasons.join("; "))?;
        }
    }
    Ok(())
}

/// Republishes an earlier kept generation. Needs the whole index (the writer lock, and
/// access to every repository when an ACL is configured).
pub(super) fn cmd_rollback(cli: &Cli, generation: Option<&str>) -> anyhow::Result<ExitCode> {
    let (dir, lock) = locked_whole_index(cli)?;
    let done = dir.rollback(&lock, generation)?;
    let mut out = output(cli.json);
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"schema_version": JSON_SCHEMA_VERSION, "rollback": done})
        )?;
    } else {
        let to = &done.to;
        writeln!(
            out,
            "rolled back from {} to {} (built {}, model {}, chunker v{}, {} chunks); queries use it now, and the next `codeq index` starts from it",
            done.from,
            to.name,
            age(to.created_unix),
            to.model,
            to.chunker_version,
            to.chunks
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What an indexing run did, in a few lines.
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
    if c.unparsed.count > 0 {
        writeln!(
            out,
            "{} files could not be parsed by their grammar: the definitions that parsed are chunks, the rest line windows (e.g. {})",
            c.unparsed.count,
            c.unparsed.examples.join(", ")
        )?;
    }
    for problem in &c.grammars_unavailable {
        writeln!(
            out,
            "grammar unavailable, its files were cut into line windows: {problem}"
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
