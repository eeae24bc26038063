//! What the object-storage tests need of a server, whichever it emulates: SeaweedFS for
//! `s3://` ([`super::seaweed`]), Azurite for `az://` ([`super::azurite`]).

use std::net::TcpListener;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as Key;

/// A running object-storage server with one bucket (container) for the tests.
pub trait ObjectServer {
    /// The `--index-dir` every test on this server writes (`PREFIX` is `team`).
    fn index(&self) -> &'static str;

    /// The variables that reach the server, as a user would set them.
    fn env(&self) -> Vec<(&'static str, String)>;

    /// The secret in [`ObjectServer::env`]: unique, so that a test can look for it in
    /// any output.
    fn secret(&self) -> &str;

    /// A client of the bucket, for tests that look at or damage what codeq stored.
    fn store(&self) -> Arc<dyn ObjectStore>;

    /// Every key below `prefix` in the bucket.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let store = self.store();
        let prefix = Key::from(prefix);
        let mut keys: Vec<String> =
            codeq::runtime::block_on(store.list(Some(&prefix)).try_collect::<Vec<_>>())
                .unwrap()
                .into_iter()
                .map(|meta| meta.location.to_string())
                .collect();
        keys.sort();
        keys
    }
}

/// Starts of a server whose port another process took before it bound it.
const START_ATTEMPTS: u32 = 3;

/// Starts a server with `spawn` and waits with `ready`, which returns the server's log
/// when it ended or timed out first. Its ports were free when chosen, but another test
/// may take one before it binds: then it starts again on other ports.
pub fn start_on_free_ports<S>(
    what: &str,
    spawn: impl Fn() -> S,
    ready: impl Fn(&mut S) -> Result<(), String>,
) -> S {
    for attempt in 1..=START_ATTEMPTS {
        let mut server = spawn();
        match ready(&mut server) {
            Ok(()) => return server,
            Err(log) if attempt < START_ATTEMPTS && port_taken(&log) => continue,
            Err(log) => panic!("{what} did not start; its log:\n{log}"),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// True when a server's log says it could not bind its port.
fn port_taken(log: &str) -> bool {
    log.contains("address already in use") || log.contains("EADDRINUSE")
}

/// A secret no other test or run uses (`PREFIX-PID-NANOS`), so that a test can look for it
/// in any output.
pub fn unique_secret(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// `n` ports free now on 127.0.0.1 (held together while chosen, so they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}
