//! A real Azure Blob Storage emulator for the object-storage tests: Azurite, one per test,
//! on a private port, with an account whose key is unique to the test and a container
//! made before codeq runs; stopped (SIGTERM) when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;

use super::object_server::{ObjectServer, free_ports, start_on_free_ports, unique_secret};

/// The account every emulator has.
const ACCOUNT: &str = "codeqtests";
/// The container every emulator has (the tests' "bucket").
const CONTAINER: &str = "codeq";
/// The REST API version of the one request made here.
const API_VERSION: &str = "2021-08-06";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Azurite blob service.
pub struct Azurite {
    child: Child,
    /// `http://127.0.0.1:PORT` of its blob API.
    endpoint: String,
    /// The account key it accepts (base64): unique, so that a test can look for it in any
    /// output.
    key: String,
    dir: tempfile::TempDir,
}

/// Azurite's blob service as `scripts/setup.sh` installs it. Missing, the test fails and
/// says how to install it.
fn azurite_script() -> PathBuf {
    let script =
        codeq::paths::codeq_home().join("azurite/node_modules/azurite/dist/src/blob/main.js");
    assert!(
        script.is_file(),
        "Azurite is not installed at {}: run scripts/setup.sh",
        script.display()
    );
    script
}

impl Azurite {
    /// Starts an emulator with the container `codeq` and waits until it answers; on other
    /// ports again if another test took its port before it bound it.
    pub fn start() -> Azurite {
        start_on_free_ports("Azurite", Azurite::spawn, Azurite::create_container)
    }

    fn spawn() -> Azurite {
        let script = azurite_script();
        let dir = tempfile::tempdir().unwrap();
        let port = free_ports(1)[0];
        let key = STANDARD.encode(unique_secret("azure-secret"));
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let child = Command::new("node")
            .arg(script)
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(port.to_string())
            .arg("--location")
            .arg(&data)
            .args(["--disableTelemetry", "--skipApiVersionCheck"])
            .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{key}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start Azurite (node)");
        Azurite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            key,
            dir,
        }
    }

    /// Creates the container (object_store reads and writes blobs but makes no
    /// containers), retrying until the emulator listens; its log if it ended or timed out
    /// first.
    fn create_container(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let log =
            || std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default();
        loop {
            match codeq::runtime::block_on(self.put_container()) {
                Ok(201) => return Ok(()),
                Ok(status) => panic!("Azurite refused to create the container: HTTP {status}"),
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    return Err(format!(
                        "no answer within {START_TIMEOUT:?} ({e})\n{}",
                        log()
                    ));
                }
                Err(_) if self.child.try_wait().ok().flatten().is_some() => return Err(log()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// `PUT /ACCOUNT/CONTAINER?restype=container`, signed with the account key (Shared Key).
    async fn put_container(&self) -> Result<u16, reqwest::Error> {
        let date = httpdate_now();
        // The emulator's path-style URLs carry the account twice in the signed resource.
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n/{ACCOUNT}/{ACCOUNT}/{CONTAINER}\nrestype:container"
        );
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &STANDARD.decode(&self.key).unwrap(),
        );
        let signature = STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()));
        let response = reqwest::Client::new()
            .put(format!(
                "{}/{ACCOUNT}/{CONTAINER}?restype=container",
                self.endpoint
            ))
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("content-length", "0")
            .header("authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .send()
            .await?;
        Ok(response.status().as_u16())
    }
}

/// The time now as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_now() -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

impl ObjectServer for Azurite {
    fn index(&self) -> &'static str {
        "az://codeq/team"
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
            ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", self.key.clone()),
        ]
    }

    fn secret(&self) -> &str {
        &self.key
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The emulator mode takes its address from a variable; the account's own
        // (path-style) URL reaches the same service without one.
        let store = MicrosoftAzureBuilder::new()
            .with_endpoint(format!("{}/{ACCOUNT}", self.endpoint))
            .with_allow_http(true)
            .with_account(ACCOUNT)
            .with_access_key(&self.key)
            .with_container_name(CONTAINER)
            .build()
            .unwrap();
        Arc::new(store)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, whose pid we hold until `wait`.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
