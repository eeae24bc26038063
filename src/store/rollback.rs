//! Kept generations and `codeq rollback`: a few complete earlier builds stay on disk, each
//! with the model and chunker it was built with, so a change the eval shows worse is undone
//! by republishing one of them — atomically, as a publish is.

use serde::Serialize;

use super::{IndexDir, IndexLock, Manifest};
use crate::error::{Error, Result};

/// Complete generations (every chunk with its vector) kept besides the current and the
/// previous one, as rollback points. Incremental generations share their unchanged files
/// through hard links, so a kept one costs only what changed; a rebuild with another model
/// costs a whole index, which is what a rollback to the old model needs.
pub const KEPT_BUILDS: usize = 2;

/// What one kept generation was built with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptGeneration {
    /// Its name (`gNNNNNN`).
    pub name: String,
    /// Whether `CURRENT` names it.
    pub current: bool,
    /// When it was published (Unix seconds).
    pub created_unix: u64,
    /// The embedding model's id.
    pub model: String,
    /// The chunker version that cut it.
    pub chunker_version: u32,
    /// Chunks of every repository (shown only to a principal who may read them all).
    pub chunks: usize,
    /// Chunks still waiting for their vector.
    pub pending: usize,
    /// Whether it was built under an access-control list.
    pub acl_required: bool,
    /// Whether this machine has it on disk; for an index on object storage, a generation
    /// only the bucket has is fetched when it is rolled back to.
    pub on_this_machine: bool,
}

impl KeptGeneration {
    fn new(name: String, current: bool, manifest: Manifest, on_this_machine: bool) -> Self {
        KeptGeneration {
            name,
            current,
            created_unix: manifest.created_unix,
            model: manifest.model.id,
            chunker_version: manifest.chunker_version,
            chunks: manifest.totals.chunks,
            pending: manifest.totals.pending,
            acl_required: manifest.acl_required,
            on_this_machine,
        }
    }

    /// Every chunk has its vector: a build that finished, not a round of background vectors.
    pub fn complete(&self) -> bool {
        self.pending == 0
    }
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    /// The generation that was current before.
    pub from: String,
    /// The generation that is current now.
    pub to: KeptGeneration,
}

impl IndexDir {
    /// Every generation on disk whose manifest can be read, oldest first (a half-written
    /// one has none and is left out).
    pub fn kept_generations(&self) -> Result<Vec<KeptGeneration>> {
        let current = self.current()?;
        Ok(self
            .generation_names()?
            .into_iter()
            .filter_map(|name| {
                let manifest = self.manifest(&name).ok()?;
                let current = current.as_deref() == Some(name.as_str());
                Some(KeptGeneration::new(name, current, manifest, true))
            })
            .collect())
    }

    /// The generations a rollback can choose, oldest first: those kept here and, for an
    /// index on object storage, every one the bucket still has.
    pub fn rollback_candidates(&self) -> Result<Vec<KeptGeneration>> {
        let mut kept = self.kept_generations()?;
        let Some(remote) = &self.remote else {
            return Ok(kept);
        };
        let current = self.current()?;
        for (name, manifest) in remote.published_generations()? {
            if !kept.iter().any(|g| g.name == name) {
                let current = current.as_deref() == Some(name.as_str());
                kept.push(KeptGeneration::new(name, current, manifest, false));
            }
        }
        kept.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(kept)
    }

    /// The generations a publish of `newest` keeps besides `newest` and the previous
    /// current one: the [`KEPT_BUILDS`] most recent complete generations older than it.
    pub(super) fn rollback_points(&self, newest: &str, previous: Option<&str>) -> Vec<String> {
        let mut points: Vec<String> = self
            .kept_generations()
            .unwrap_or_default()
            .into_iter()
            .filter(|g| {
                g.complete() && g.name.as_str() < newest && Some(g.name.as_str()) != previous
            })
            .map(|g| g.name)
            .collect();
        points.reverse();
        points.truncate(KEPT_BUILDS);
        points
    }

    /// Makes an earlier kept generation the current one again: `target`, or else the most
    /// recent complete generation older than the current one. It is checked against its
    /// seal first; nothing is deleted, so a rollback can itself be rolled forward.
    /// A generation built without an access-control list cannot replace one built under
    /// one: that would publish every repository to every principal. On object storage the
    /// bucket's CURRENT is swapped first, and only if no indexer published meanwhile.
    pub fn rollback(&self, _lock: &IndexLock, target: Option<&str>) -> Result<RolledBack> {
        let refuse = |why: String| Error::Rollback(why);
        let current = self
            .current()?
            .ok_or_else(|| Error::NoIndex(self.path.clone()))?;
        let kept = self.rollback_candidates()?;
        let chosen = match target {
            Some(name) => kept
                .iter()
                .find(|g| g.name == name)
                .ok_or_else(|| {
                    refuse(format!(
                        "no generation {name} is kept here or in the index's bucket; `codeq status` lists the kept ones"
                    ))
                })?
                .clone(),
            None => kept
                .iter()
                .rev()
                .find(|g| g.complete() && g.name < current)
                .ok_or_else(|| {
                    refuse(
                        "no complete generation older than the current one is kept (`codeq gc` removes them); rebuild with `codeq index ROOT --rebuild` instead".into(),
                    )
                })?
                .clone(),
        };
        if chosen.name == current {
            return Err(refuse(format!(
                "{current} is already the current generation"
            )));
        }
        let current_acl = kept.iter().any(|g| g.name == current && g.acl_required);
        if current_acl && !chosen.acl_required {
            return Err(refuse(format!(
                "{} was built without an access-control list and {current} under one; rolling back would show every repository to every principal",
                chosen.name
            )));
        }
        // A bucket index: held against gc, fetched when only the bucket has it, republished.
        let held = match &self.remote {
            Some(remote) => Some((remote, remote.hold_for_rollback(&chosen.name)?)),
            None => None,
        };
        if let Some((remote, _)) = &held
            && !chosen.on_this_machine
        {
            remote.fetch_generation(self, &chosen.name)?;
        }
        self.verify(&chosen.name, false)?;
        if let Some((remote, lease)) = held {
            remote.republish(&chosen.name, lease)?;
        }
        self.set_current(&chosen.name)?;
        Ok(RolledBack {
            from: current,
            to: KeptGeneration {
                current: true,
                on_this_machine: true,
                ..chosen
            },
        })
    }
}
