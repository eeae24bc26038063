//! `codeq gc` in the bucket: what it keeps (the current and previous generations, the
//! rollback points, leased and recent generations) and what it deletes (every other object
//! under `generations/` that no kept listing references, and expired leases).

use super::lease::{LEASE_FORMAT, LEASE_TTL, LEASES, LeaseBody, MAX_LEASE, claim_grace, hostname};
use super::*;

/// Plans `codeq gc` makes when CURRENT or the leases change while it plans.
const GC_ATTEMPTS: usize = 3;

/// What `codeq gc` did in the bucket of an index on object storage.
#[derive(Debug, Clone, Serialize)]
pub struct BucketGc {
    /// `s3://BUCKET/PREFIX`.
    pub location: String,
    /// The generation CURRENT named.
    pub current: String,
    /// Generations whose listing and claim were deleted, with every file of theirs that no
    /// kept generation references.
    pub deleted_generations: Vec<String>,
    /// Objects deleted below `generations/`.
    pub deleted_objects: usize,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Expired leases deleted.
    pub expired_leases_deleted: usize,
    /// Objects of deleted generations kept because a kept listing references them.
    pub referenced_objects_kept: usize,
    /// Every generation kept, newest first, with why.
    pub kept: Vec<KeptInBucket>,
    /// How long a generation that is not otherwise kept stays after its newest object was
    /// written (seconds).
    pub grace_secs: u64,
}

/// A generation `codeq gc` kept in the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct KeptInBucket {
    /// Its name.
    pub generation: String,
    /// Why it was kept (at least one reason).
    pub reasons: Vec<KeptBecause>,
}

/// Why `codeq gc` kept a generation in the bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeptBecause {
    /// CURRENT names it.
    Current,
    /// It is the newest listed generation older than the current one (what a publish
    /// replaced: a reader may have opened it just before).
    Previous,
    /// One of the [`KEPT_BUILDS`] newest complete generations older than the current one
    /// besides the previous one: what `codeq rollback` goes back to.
    RollbackPoint,
    /// A process holds an unexpired lease on it.
    Lease {
        /// Reading it, or writing it.
        purpose: LeasePurpose,
        /// The holder's machine.
        host: String,
        /// The holder's process id.
        pid: u32,
        /// When the lease expires unless its holder renews it (Unix seconds).
        expires_unix: u64,
        /// The holder is the `codeq gc` that reports it.
        this_process: bool,
    },
    /// It is numbered above the current one and an object of it was written less than the
    /// grace period ago: a writer may still be uploading or publishing it.
    Recent {
        /// When its newest object was written (Unix seconds).
        last_written_unix: u64,
    },
}

/// A lease object as gc reads it.
pub(super) struct FoundLease {
    meta: ObjectMeta,
    /// `None`: not a lease this codeq reads.
    body: Option<LeaseBody>,
}

impl FoundLease {
    /// When the lease stops keeping its generation (Unix seconds): the bucket's time of its
    /// last write plus the TTL it declares, so that a holder whose clock is off does not
    /// matter, and never more than [`MAX_LEASE`] (a lease that claims longer is cut). One
    /// that cannot be read counts for [`LEASE_TTL`] after it was written.
    fn expires_unix(&self) -> u64 {
        let declared = match &self.body {
            Some(body) => body.expires_unix.saturating_sub(body.written_unix),
            None => LEASE_TTL.as_secs(),
        };
        unix_of(&self.meta) + declared.min(MAX_LEASE.as_secs())
    }

    /// Whether the lease still keeps its generation at `now`.
    fn live(&self, now: u64) -> bool {
        self.expires_unix() > now
    }
}

/// What one gc would delete, planned from one reading of the bucket.
struct GcPlan {
    current: String,
    kept: BTreeMap<String, Vec<KeptBecause>>,
    /// Objects to delete, in the order that keeps every step safe to stop at: listings
    /// first (a generation without one is unpublished), then files, then claims (a name
    /// becomes free last).
    doomed: Vec<ObjectMeta>,
    dropped: BTreeSet<String>,
    /// Generations marked as being deleted by an earlier gc that stopped.
    marked: BTreeSet<String>,
    referenced_kept: usize,
    expired_leases: Vec<ObjectMeta>,
}

impl Remote {
    /// Deletes from the bucket what no kept generation needs: every object below
    /// `generations/` of a generation that is not kept, unless a kept listing references
    /// it, and the expired leases. Kept: the current generation, the previous one, the
    /// rollback points, every generation an unexpired lease names, and every generation
    /// numbered above the current one with an object written within the grace period.
    /// CURRENT and the leases are read
    /// again before anything is deleted, and the plan made again if they changed.
    pub(in crate::store) fn collect_garbage(&self) -> Result<BucketGc> {
        let mut attempt = 0;
        let plan = loop {
            attempt += 1;
            let plan = self.plan_gc()?;
            // Marked before the last reading of the leases: a rollback that leased one of
            // them before finds the mark, one that leased it after is seen below.
            self.mark_deleting(&plan.dropped, true)?;
            if self.plan_still_holds(&plan)? {
                break plan;
            }
            self.mark_deleting(&plan.dropped, false)?;
            if attempt == GC_ATTEMPTS {
                return Err(self.error(
                    "the index kept changing while `codeq gc` planned (publishes, rollbacks or new readers): nothing was deleted; run it again",
                ));
            }
        };
        let mut deleted_objects = 0;
        let mut deleted_bytes = 0;
        let is_listing = |m: &ObjectMeta| m.location.filename() == Some(LISTING_FILE);
        let is_claim = |m: &ObjectMeta| m.location.filename() == Some(CLAIM_FILE);
        let (listings, rest): (Vec<_>, Vec<_>) = plan.doomed.iter().partition(|m| is_listing(m));
        let (claims, files): (Vec<_>, Vec<_>) = rest.into_iter().partition(|m| is_claim(m));
        for phase in [listings, files, claims] {
            let (objects, bytes) = self.delete_all(phase)?;
            deleted_objects += objects;
            deleted_bytes += bytes;
        }
        // Last, so that a generation never loses its mark while any of it is left.
        self.mark_deleting(&plan.dropped.union(&plan.marked).cloned().collect(), false)?;
        let (expired_leases_deleted, _) = self.delete_all(plan.expired_leases.iter().collect())?;
        let own = (hostname(), std::process::id());
        let kept: Vec<KeptInBucket> = plan
            .kept
            .into_iter()
            .rev()
            .map(|(generation, mut reasons)| {
                for reason in &mut reasons {
                    if let KeptBecause::Lease {
                        host,
                        pid,
                        this_process,
                        ..
                    } = reason
                    {
                        *this_process = (host.clone(), *pid) == own;
                    }
                }
                KeptInBucket {
                    generation,
                    reasons,
                }
            })
            .collect();
        tracing::info!(
            location = self.location,
            deleted_objects,
            deleted_bytes,
            "collected the bucket's garbage"
        );
        Ok(BucketGc {
            location: self.location.clone(),
            current: plan.current,
            deleted_generations: plan.dropped.into_iter().collect(),
            deleted_objects,
            deleted_bytes,
            expired_leases_deleted,
            referenced_objects_kept: plan.referenced_kept,
            kept,
            grace_secs: claim_grace().as_secs(),
        })
    }

    /// Reads the leases, CURRENT and every object below `generations/`, and decides.
    fn plan_gc(&self) -> Result<GcPlan> {
        let now = unix_now();
        // Leases before CURRENT: a rollback leases its target before swapping to it, so
        // one read in between is seen one way or the other.
        let leases = self.read_leases()?;
        let current = self
            .read_pointer()?
            .ok_or_else(|| nothing_published(&self.location))?
            .generation;
        let mut objects: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
        let mut marked = BTreeSet::new();
        let listed: Vec<ObjectMeta> = block_on(
            self.store
                .list(Some(&self.key(GENERATIONS)))
                .try_collect::<Vec<_>>(),
        )
        .map_err(|e| self.failed(&e))?;
        let below = self.key(GENERATIONS);
        for meta in listed {
            let name = meta
                .location
                .prefix_match(&below)
                .and_then(|mut parts| parts.next())
                .map(|part| part.as_ref().to_string());
            // Objects that are not a generation's are not codeq's to delete.
            let Some(name) = name.filter(|n| is_generation_name(n)) else {
                continue;
            };
            // A mark an earlier gc left when it stopped: taken off at the end of this one.
            if meta.location.filename() == Some(DELETING_FILE) {
                marked.insert(name);
            } else {
                objects.entry(name).or_default().push(meta);
            }
        }
        let has_listing = |name: &str| {
            objects.get(name).is_some_and(|metas| {
                metas
                    .iter()
                    .any(|m| m.location.filename() == Some(LISTING_FILE))
            })
        };

        let mut kept: BTreeMap<String, Vec<KeptBecause>> = BTreeMap::new();
        kept.entry(current.clone())
            .or_default()
            .push(KeptBecause::Current);
        let mut older = objects
            .keys()
            .filter(|name| name.as_str() < current.as_str() && has_listing(name))
            .rev();
        if let Some(previous) = older.next() {
            kept.entry(previous.clone())
                .or_default()
                .push(KeptBecause::Previous);
        }
        let mut points = 0;
        for name in older {
            if points == KEPT_BUILDS {
                break;
            }
            // A listing that cannot be read is no rollback point.
            if self.listing(name).is_ok_and(|l| l.is_complete()) {
                kept.entry(name.clone())
                    .or_default()
                    .push(KeptBecause::RollbackPoint);
                points += 1;
            }
        }
        for lease in &leases {
            if let Some(body) = lease.body.as_ref().filter(|_| lease.live(now))
                && objects.contains_key(&body.generation)
            {
                kept.entry(body.generation.clone())
                    .or_default()
                    .push(KeptBecause::Lease {
                        purpose: body.purpose,
                        host: body.host.clone(),
                        pid: body.pid,
                        expires_unix: lease.expires_unix(),
                        this_process: false,
                    });
            }
        }
        // A writer publishes only a generation numbered above the CURRENT it read, and only
        // if CURRENT did not change since: what may still become current is above it.
        let grace = claim_grace().as_secs();
        for (name, metas) in objects.iter().filter(|(name, _)| **name > current) {
            let newest = metas.iter().map(unix_of).max().unwrap_or(0);
            if newest + grace > now {
                kept.entry(name.clone())
                    .or_default()
                    .push(KeptBecause::Recent {
                        last_written_unix: newest,
                    });
            }
        }

        // Every key a kept listing names. A kept listing that cannot be read stops gc: what
        // it references is unknown.
        let mut referenced: HashSet<Key> = HashSet::new();
        for name in kept.keys().filter(|name| has_listing(name)) {
            let listing = self.listing(name).map_err(|e| {
                self.error(format!(
                    "cannot read the listing of {name}, which gc keeps, so what it references is unknown: nothing was deleted ({e})"
                ))
            })?;
            referenced.extend(listing.keys.values().map(|rel| self.key(rel)));
        }
        let mut doomed = Vec::new();
        let mut dropped = BTreeSet::new();
        let mut referenced_kept = 0;
        for (name, metas) in objects {
            if kept.contains_key(&name) {
                continue;
            }
            for meta in metas {
                if referenced.contains(&meta.location) {
                    referenced_kept += 1;
                } else {
                    dropped.insert(name.clone());
                    doomed.push(meta);
                }
            }
        }
        let expired_leases = leases
            .into_iter()
            .filter(|lease| !lease.live(now))
            .map(|lease| lease.meta)
            .collect();
        Ok(GcPlan {
            current,
            kept,
            doomed,
            dropped,
            marked,
            referenced_kept,
            expired_leases,
        })
    }

    /// Puts the mark of a generation being deleted on each of `generations`, or takes it
    /// off.
    fn mark_deleting(&self, generations: &BTreeSet<String>, on: bool) -> Result<()> {
        let keys: Vec<Key> = generations.iter().map(|g| self.deleting_key(g)).collect();
        block_on(
            futures::stream::iter(keys)
                .map(|key| async move {
                    match on {
                        true => self
                            .store
                            .put(&key, PutPayload::from_static(b"gc\n"))
                            .await
                            .map(|_| ()),
                        false => match self.store.delete(&key).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                            Err(e) => Err(e),
                        },
                    }
                })
                .buffer_unordered(TRANSFERS)
                .try_collect::<Vec<()>>(),
        )
        .map(|_| ())
        .map_err(|e| self.failed(&e))
    }

    /// Whether CURRENT and the live leases still name only generations `plan` keeps.
    fn plan_still_holds(&self, plan: &GcPlan) -> Result<bool> {
        let now = unix_now();
        let leases = self.read_leases()?;
        let current = self.read_pointer()?.map(|p| p.generation);
        if current.as_deref() != Some(plan.current.as_str()) {
            return Ok(false);
        }
        Ok(leases
            .iter()
            .filter(|lease| lease.live(now))
            .filter_map(|lease| lease.body.as_ref())
            .all(|body| {
                plan.kept.contains_key(&body.generation) || !plan.dropped.contains(&body.generation)
            }))
    }

    /// Every lease object of the index, read.
    fn read_leases(&self) -> Result<Vec<FoundLease>> {
        let metas: Vec<ObjectMeta> = block_on(
            self.store
                .list(Some(&self.key(LEASES)))
                .try_collect::<Vec<_>>(),
        )
        .map_err(|e| self.failed(&e))?;
        block_on(
            futures::stream::iter(metas)
                .map(|meta| async move {
                    let body = match self.store.get(&meta.location).await {
                        Ok(object) => object.bytes().await.map(Some),
                        // Let go since it was listed.
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }?;
                    Ok(FoundLease {
                        body: body.and_then(|bytes| {
                            serde_json::from_slice::<LeaseBody>(&bytes)
                                .ok()
                                .filter(|b| b.format == LEASE_FORMAT)
                        }),
                        meta,
                    })
                })
                .buffer_unordered(TRANSFERS)
                .try_collect::<Vec<_>>(),
        )
        .map_err(|e: object_store::Error| self.failed(&e))
    }

    /// Deletes `objects`; returns how many were deleted and their bytes (one already gone
    /// counts as deleted).
    fn delete_all(&self, objects: Vec<&ObjectMeta>) -> Result<(usize, u64)> {
        if objects.is_empty() {
            return Ok((0, 0));
        }
        let bytes = objects.iter().map(|m| m.size).sum();
        let count = objects.len();
        let keys: Vec<object_store::Result<Key>> =
            objects.iter().map(|m| Ok(m.location.clone())).collect();
        let outcome = block_on(
            self.store
                .delete_stream(futures::stream::iter(keys).boxed())
                .filter_map(|deleted| async move {
                    match deleted {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => None,
                        Err(e) => Some(e),
                    }
                })
                .collect::<Vec<_>>(),
        );
        match outcome.into_iter().next() {
            None => Ok((count, bytes)),
            Some(e) => Err(self.failed(&e)),
        }
    }
}

impl Listing {
    /// Every chunk of the generation has its vector (a finished build).
    fn is_complete(&self) -> bool {
        self.manifest["totals"]["pending"].as_u64() == Some(0)
    }
}

/// When an object was last written, in Unix seconds.
fn unix_of(meta: &ObjectMeta) -> u64 {
    meta.last_modified.timestamp().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::super::lease::key_safe;
    use super::*;

    #[test]
    fn a_lease_expires_by_the_buckets_clock_and_never_lasts_over_a_day() {
        // Written at the Unix epoch, by the bucket's clock.
        let lease = |body: Option<(u64, u64)>| FoundLease {
            meta: ObjectMeta {
                location: Key::from("team/leases/x.json"),
                last_modified: Default::default(),
                size: 1,
                e_tag: None,
                version: None,
            },
            body: body.map(|(written_unix, expires_unix)| LeaseBody {
                format: LEASE_FORMAT,
                generation: "g000001".into(),
                purpose: LeasePurpose::Read,
                host: "h".into(),
                pid: 1,
                written_unix,
                expires_unix,
            }),
        };
        // A holder whose clock is an hour ahead gets its 15 minutes, not 75.
        let ahead = lease(Some((3600, 3600 + 900)));
        assert_eq!(ahead.expires_unix(), 900);
        assert!(ahead.live(899) && !ahead.live(900));
        let forever = lease(Some((0, u64::MAX)));
        assert_eq!(forever.expires_unix(), MAX_LEASE.as_secs());
        assert_eq!(lease(None).expires_unix(), LEASE_TTL.as_secs());
        assert_eq!(key_safe("build-7.example/ü"), "build_7.example__");
        assert_eq!(key_safe(""), "host");
    }
}
