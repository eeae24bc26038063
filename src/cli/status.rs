//! `codeq status` and `codeq config`: what is indexed, how fresh, and which configuration
//! applies.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::args::Cli;
use super::human::{age, human_bytes, human_duration};
use super::{open_session, output};
use crate::acl::{AccessMode, Acl};
use crate::config::Config;
use crate::paths;
use crate::report::JSON_SCHEMA_VERSION;
use crate::store::{IndexDir, KeptGeneration};
use crate::walk;

/// What is indexed and how fresh, as the principal may see it; exit 2 when the lanes
/// disagree.
pub(super) fn cmd_status(cli: &Cli) -> anyhow::Result<ExitCode> {
    let session = open_session(cli)?;
    let status = session.status()?;
    let manifest = session.manifest();
    let everything = session.sees_everything();
    let mut out = output(cli.json);
    if cli.json {
        let value = status.to_json();
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "index {} (generation {}, built {})",
            session.index_location(),
            session.generation(),
            age(manifest.created_unix)
        )?;
        writeln!(out, "root  {}", manifest.root.display())?;
        match session.access_mode() {
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
        write_generations(&mut out, &status.generations)?;
    }
    Ok(if status.lanes.consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The kept generations, newest first, with what each was built with.
fn write_generations(out: &mut impl Write, generations: &[KeptGeneration]) -> std::io::Result<()> {
    if generations.len() < 2 {
        return Ok(());
    }
    writeln!(
        out,
        "generations (`codeq rollback GENERATION` republishes one):"
    )?;
    for g in generations.iter().rev() {
        let state = match (g.current, g.complete()) {
            (true, _) => "current",
            (false, true) => "complete",
            (false, false) => "vectors pending",
        };
        writeln!(
            out,
            "  {}  {:<15} built {:<10} model {}, chunker v{}, {} chunks{}",
            g.name,
            state,
            age(g.created_unix),
            g.model,
            g.chunker_version,
            g.chunks,
            if g.on_this_machine {
                ""
            } else {
                " (in the bucket only)"
            }
        )?;
    }
    Ok(())
}

/// The effective configuration of a root and where each value comes from.
pub(super) fn cmd_config(cli: &Cli, root: Option<&Path>) -> anyhow::Result<ExitCode> {
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
