//! A real S3-compatible server for the object-storage tests: SeaweedFS's `weed mini`, one
//! per test, on private ports, with a bucket and credentials of its own; stopped (SIGTERM)
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use super::commit_all;
use super::object_server::{ObjectServer, free_ports, start_on_free_ports, unique_secret};

/// The bucket every server has.
pub const BUCKET: &str = "codeq";
const ACCESS_KEY: &str = "codeq-tests";
/// How long a server may take to answer signed requests.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `weed mini`.
pub struct Seaweed {
    child: Child,
    /// `http://127.0.0.1:PORT` of its S3 API.
    pub endpoint: String,
    /// The secret key it accepts: unique, so that a test can look for it in any output.
    pub secret: String,
    dir: tempfile::TempDir,
}

/// The `weed` binary: `$CODEQ_WEED`, else the one `scripts/setup.sh` installs. Missing, the
/// test fails and says how to install it.
fn weed_binary() -> PathBuf {
    let weed = std::env::var_os("CODEQ_WEED")
        .map(PathBuf::from)
        .unwrap_or_else(|| codeq::paths::codeq_home().join("seaweedfs").join("weed"));
    assert!(
        weed.is_file(),
        "SeaweedFS is not installed at {}: run scripts/setup.sh (or set CODEQ_WEED to a weed binary)",
        weed.display()
    );
    weed
}

impl Seaweed {
    /// Starts a server with the bucket [`BUCKET`] and waits until it answers signed
    /// requests. Its ports were free when chosen, but another test may take one before
    /// it binds: then it starts again on other ports.
    pub fn start() -> Seaweed {
        start_on_free_ports("weed mini", Seaweed::spawn, Seaweed::wait_until_ready)
    }

    fn spawn() -> Seaweed {
        let weed = weed_binary();
        let dir = tempfile::tempdir().unwrap();
        let p = free_ports(11);
        let secret = unique_secret("s3cret");
        let log = std::fs::File::create(dir.path().join("weed.log")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-s3.port={}", p[0]))
            .arg(format!("-s3.port.grpc={}", p[1]))
            .arg(format!("-master.port={}", p[2]))
            .arg(format!("-master.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-volume.port={}", p[6]))
            .arg(format!("-volume.port.grpc={}", p[7]))
            .arg(format!("-debug.port={}", p[8]))
            .arg(format!("-admin.port={}", p[9]))
            .arg(format!("-admin.port.grpc={}", p[10]))
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-volume.max=2",
                "-master.telemetry=false",
            ])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start weed mini");
        Seaweed {
            child,
            endpoint: format!("http://127.0.0.1:{}", p[0]),
            secret,
            dir,
        }
    }

    /// Waits until the server answers; its log if it ended or timed out first.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let store = self.store();
        let started = Instant::now();
        let log = || std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        loop {
            let listed = codeq::runtime::block_on(store.list(None).try_collect::<Vec<_>>());
            match listed {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    return Err(format!(
                        "not serving within {START_TIMEOUT:?} ({e})\n{}",
                        log()
                    ));
                }
                Err(_) if self.child.try_wait().ok().flatten().is_some() => return Err(log()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl ObjectServer for Seaweed {
    fn index(&self) -> &'static str {
        INDEX
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
    }

    fn secret(&self) -> &str {
        &self.secret
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(&self.secret)
            .build()
            .unwrap();
        Arc::new(store)
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, whose pid we hold until `wait`.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// One machine: its own `CODEQ_HOME` (so its own mirrors), with the models and ONNX
/// Runtime `scripts/setup.sh` installed on this one.
pub struct Machine {
    home: tempfile::TempDir,
}

impl Machine {
    /// A machine with nothing mirrored yet.
    pub fn new() -> Machine {
        let home = tempfile::tempdir().unwrap();
        let installed = codeq::paths::codeq_home();
        for asset in ["models", "ort"] {
            std::os::unix::fs::symlink(installed.join(asset), home.path().join(asset)).unwrap();
        }
        Machine { home }
    }

    /// Its `CODEQ_HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `codeq ARGS` on this machine in `cwd`, with `env` as its only object-store variables
    /// (`AWS_*`, `AZURE_*`, `AZURITE_*`, `GOOGLE_*`).
    pub fn command(&self, cwd: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_codeq"));
        command
            .args(args)
            .current_dir(cwd)
            .env_remove("CODEQ_INDEX_DIR")
            .env("CODEQ_HOME", self.home.path());
        for (key, _) in std::env::vars() {
            if ["AWS_", "AZURE_", "AZURITE_", "GOOGLE_"]
                .iter()
                .any(|platform| key.starts_with(platform))
            {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().map(|(k, v)| (*k, v)));
        command
    }

    /// Runs `codeq ARGS` to the end.
    pub fn run(&self, cwd: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command(cwd, args, env).output().expect("run codeq")
    }
}

/// The index every object-storage test writes.
pub const INDEX: &str = "s3://codeq/team";

const LEDGER: &str = "/// Moves money between two accounts and records both entries.\npub fn transfer_funds(from: &mut i64, to: &mut i64, amount: i64) {\n    *from -= amount;\n    *to += amount;\n}\n";
/// The source of `src/audit.rs` in [`bank`].
pub const AUDIT: &str = "/// Writes an audit record for every balance change.\npub fn audit_balance_change(account: &str, delta: i64) -> String {\n    format!(\"{account}: {delta}\")\n}\n";
const RATES: &str = "\"\"\"Currency conversion.\"\"\"\n\n\ndef convert_currency(amount, rate):\n    \"\"\"Converts an amount with a fixed exchange rate.\"\"\"\n    return amount * rate\n";

/// A small git repository in `dir/bank`.
pub fn bank(dir: &Path) -> PathBuf {
    let root = dir.join("bank");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/ledger.rs"), LEDGER).unwrap();
    std::fs::write(root.join("src/audit.rs"), AUDIT).unwrap();
    std::fs::write(root.join("src/rates.py"), RATES).unwrap();
    commit_all(&root, &[]);
    root
}
