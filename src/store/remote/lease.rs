//! Leases: each process announces in the bucket the generation it reads or builds, so
//! that `codeq gc` on any machine keeps it while the lease lives.

use super::*;

/// The folder of lease objects below the prefix.
pub(super) const LEASES: &str = "leases";
/// Layout version of a lease object.
pub(super) const LEASE_FORMAT: u32 = 1;
/// How long a lease keeps its generation from `codeq gc` unless renewed. A holder renews it
/// once a third of it has passed, so two renewals in a row may fail (a network blip)
/// before it lapses; a holder killed without letting go (SIGKILL, power loss) keeps its
/// generation from gc for at most this long, which delays a cleanup by minutes, not days.
pub(super) const LEASE_TTL: Duration = Duration::from_secs(15 * 60);
/// Test knob: the lease TTL in seconds instead of [`LEASE_TTL`] (documented for tests only).
pub(super) const LEASE_TTL_VAR: &str = "CODEQ_LEASE_TTL_SECS";
/// The longest a lease keeps its generation after it was written, whatever it declares: a
/// crafted or misconfigured lease cannot keep a generation from gc for good.
pub(super) const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);
/// How long `codeq gc` keeps a generation numbered above the current one after its newest
/// object was written: a writer may be between its uploads, or between its listing and
/// the swap of CURRENT. A live writer is kept by its lease whatever its age; this covers a
/// writer whose lease could not be written, and one hour is far longer than any pause
/// between two uploads of one publish while abandoned claims still go at the next daily gc.
pub(super) const CLAIM_GRACE: Duration = Duration::from_secs(60 * 60);
/// Test knob: the grace period in seconds instead of [`CLAIM_GRACE`].
pub(super) const CLAIM_GRACE_VAR: &str = "CODEQ_CLAIM_GRACE_SECS";
/// How long letting a lease go may wait for its deletion (best effort: an undeleted lease
/// expires by itself).
pub(super) const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a lease holder does with its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeasePurpose {
    /// It answers queries from it (or downloads it to do so).
    Read,
    /// It claimed it and builds or uploads it.
    Write,
}

/// A lease object's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LeaseBody {
    pub(super) format: u32,
    pub(super) generation: String,
    pub(super) purpose: LeasePurpose,
    pub(super) host: String,
    pub(super) pid: u32,
    pub(super) written_unix: u64,
    pub(super) expires_unix: u64,
}

/// A lease this process holds: while any [`Lease`] of its slot lives, the object exists
/// in the bucket and is renewed.
struct HeldLease {
    store: Arc<dyn ObjectStore>,
    key: Key,
    /// [`Lease`] values of the slot alive now.
    holders: usize,
    /// When the object was last written (`None`: not yet, or the write failed).
    written: Option<Instant>,
}

/// The leases of this process, by index (its mirror folder), generation and purpose.
type LeaseSlot = (PathBuf, String, LeasePurpose);

fn held_leases() -> &'static Mutex<BTreeMap<LeaseSlot, HeldLease>> {
    static HELD: OnceLock<Mutex<BTreeMap<LeaseSlot, HeldLease>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// One holder of a lease; the lease object is deleted when the last one is dropped.
#[derive(Debug)]
pub(in crate::store) struct Lease {
    slot: LeaseSlot,
}

impl Lease {
    /// The generation it keeps.
    pub(super) fn generation(&self) -> &str {
        &self.slot.1
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let released = {
            let mut held = held_leases().lock().unwrap_or_else(PoisonError::into_inner);
            match held.get_mut(&self.slot) {
                Some(lease) if lease.holders > 1 => {
                    lease.holders -= 1;
                    None
                }
                Some(_) => held.remove(&self.slot),
                None => None,
            }
        };
        if let Some(lease) = released {
            delete_quietly(&lease.store, &lease.key);
        }
    }
}

impl Remote {
    /// Takes a lease on `generation`: writes its object now (one PUT) unless this process
    /// holds one for it already, and keeps it renewed until the last holder lets go. A
    /// lease that cannot be written is logged and the work goes on: `codeq gc` then does
    /// not know about it.
    pub(in crate::store) fn lease(&self, generation: &str, purpose: LeasePurpose) -> Lease {
        let slot = (self.mirror.clone(), generation.to_string(), purpose);
        {
            let mut held = held_leases().lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(lease) = held.get_mut(&slot) {
                lease.holders += 1;
                return Lease { slot };
            }
            static SEQUENCE: AtomicU64 = AtomicU64::new(0);
            let name = format!(
                "{generation}-{}-{}-{}-{:x}-{}.json",
                purpose_name(purpose),
                key_safe(&hostname()),
                std::process::id(),
                process_nonce(),
                SEQUENCE.fetch_add(1, Ordering::Relaxed)
            );
            held.insert(
                slot.clone(),
                HeldLease {
                    store: Arc::clone(&self.store),
                    key: self.key(&format!("{LEASES}/{name}")),
                    holders: 1,
                    written: None,
                },
            );
        }
        write_lease(&slot);
        start_renewing();
        Lease { slot }
    }
}

fn purpose_name(purpose: LeasePurpose) -> &'static str {
    match purpose {
        LeasePurpose::Read => "read",
        LeasePurpose::Write => "write",
    }
}

/// The TTL of the leases this process writes.
fn lease_ttl() -> Duration {
    static TTL: OnceLock<Duration> = OnceLock::new();
    *TTL.get_or_init(|| seconds_from_env(LEASE_TTL_VAR).unwrap_or(LEASE_TTL))
}

/// How long gc keeps a generation after its newest object was written.
pub(super) fn claim_grace() -> Duration {
    seconds_from_env(CLAIM_GRACE_VAR).unwrap_or(CLAIM_GRACE)
}

fn seconds_from_env(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            tracing::warn!("{name}={value:?} is not a number of seconds; ignored");
            None
        }
    }
}

/// Writes (or rewrites, renewed) the lease object of `slot`, if it is still held.
fn write_lease(slot: &LeaseSlot) {
    let Some((store, key)) = held_leases()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(slot)
        .map(|lease| (Arc::clone(&lease.store), lease.key.clone()))
    else {
        return;
    };
    let now = unix_now();
    let body = LeaseBody {
        format: LEASE_FORMAT,
        generation: slot.1.clone(),
        purpose: slot.2,
        host: hostname(),
        pid: std::process::id(),
        written_unix: now,
        expires_unix: now + lease_ttl().as_secs(),
    };
    let written = serde_json::to_vec(&body)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            block_on(store.put(&key, PutPayload::from(bytes)))
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    let mut held = held_leases().lock().unwrap_or_else(PoisonError::into_inner);
    match (written, held.get_mut(slot)) {
        (Ok(()), Some(lease)) if lease.key == key => lease.written = Some(Instant::now()),
        // Let go while it was written: the object must not outlive its holders.
        (Ok(()), _) => {
            drop(held);
            delete_quietly(&store, &key);
        }
        (Err(e), _) => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "cannot write the lease {key} ({e}); this process goes on, but until it is written `codeq gc` may delete the generation {} from the bucket",
                    slot.1
                );
            } else {
                tracing::debug!("cannot write the lease {key}: {e}");
            }
        }
    }
}

/// Starts the thread that renews this process's leases, once.
fn start_renewing() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("codeq-leases".into())
            .spawn(renew_leases);
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start renewing leases ({e}): they expire after {}s",
                lease_ttl().as_secs()
            );
        }
    });
}

/// Rewrites every held lease once a third of its TTL has passed since it was written
/// (and retries the ones that could not be written), for as long as the process runs.
fn renew_leases() {
    let ttl = lease_ttl();
    let tick = (ttl / 6).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        std::thread::sleep(tick);
        let due: Vec<LeaseSlot> = held_leases()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, lease)| lease.written.is_none_or(|at| at.elapsed() >= ttl / 3))
            .map(|(slot, _)| slot.clone())
            .collect();
        for slot in &due {
            write_lease(slot);
        }
    }
}

/// Deletes an object, waiting at most [`RELEASE_TIMEOUT`]; a failure is left to expiry.
fn delete_quietly(store: &Arc<dyn ObjectStore>, key: &Key) {
    // The timer is made inside the runtime, which it needs.
    let deleted =
        block_on(async { tokio::time::timeout(RELEASE_TIMEOUT, store.delete(key)).await });
    match deleted {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("cannot delete the lease {key}: {e}"),
        Err(_) => tracing::debug!("deleting the lease {key} timed out"),
    }
}

/// This machine's name, as claims and leases record it.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `text` with every character but ASCII letters, digits and `.` replaced by `_`.
pub(super) fn key_safe(text: &str) -> String {
    let safe: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' => c,
            _ => '_',
        })
        .collect();
    if safe.is_empty() { "host".into() } else { safe }
}

/// A number that tells this process from an earlier one with the same pid.
fn process_nonce() -> u64 {
    static NONCE: OnceLock<u64> = OnceLock::new();
    *NONCE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}
