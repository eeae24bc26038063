//! `--index-dir s3://BUCKET/PREFIX` against a real S3-compatible server (SeaweedFS's
//! `weed mini`, started per test), and `az://CONTAINER/PREFIX` against Azure's emulator
//! (Azurite) for the same publish, race and error paths: an index published from one machine answers on
//! another as a local one does, a re-index uploads only what changed, a writer that lost
//! the race to publish is told so and nothing of it is published, credential and endpoint
//! mistakes are named without the secret, a damaged object is never served, and a server
//! of an ACL-guarded index shows each token only what its principal may read.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use codeq::acl::Acl;
use codeq::session::{SessionOptions, SharedIndex};
use codeq::store::ChunkFilter;
use common::attack::{self, assert_no_marker, attack_queries, truncate};
use common::azurite::Azurite;
use common::object_server::ObjectServer;
use common::seaweed::{AUDIT, INDEX, Machine, Seaweed, bank};
use common::{ACL, commit_all, stderr};
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

/// A Rust file of `n` small documented functions (`fee_tier_0` …).
fn fees(n: usize) -> String {
    (0..n)
        .map(|i| format!("/// Fee rule {i}: charges {i} cents per transfer of tier {i}.\npub fn fee_tier_{i}(amount: i64) -> i64 {{\n    amount * {i} / 1000\n}}\n\n"))
        .collect()
}

/// `out` succeeded, and the server's secret is nowhere in it.
fn ok(out: Output, server: &dyn ObjectServer) -> Output {
    assert_no_secret(&out, server.secret());
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

fn assert_no_secret(out: &Output, secret: &str) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(secret), "the secret was printed: {text}");
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The citations of a `search --json` or `ask --json` document, in order.
fn citations(doc: &Value) -> Vec<String> {
    let list = doc["results"]
        .as_array()
        .or_else(|| doc["answer"]["citations"].as_array())
        .unwrap_or_else(|| panic!("no citations in {doc}"));
    list.iter()
        .map(|c| c["citation"].as_str().unwrap().to_string())
        .collect()
}

/// `codeq ARGS --index-dir INDEX --json` on `machine`: succeeded, parsed.
fn on_bucket(
    machine: &Machine,
    cwd: &Path,
    args: &[&str],
    env: &[(&str, String)],
    server: &dyn ObjectServer,
) -> Value {
    let args = [args, &["--index-dir", server.index(), "--json"]].concat();
    json(&ok(machine.run(cwd, &args, env), server))
}

/// The one mirror folder a machine has.
fn mirror(machine: &Machine) -> PathBuf {
    let mut mirrors: Vec<PathBuf> = std::fs::read_dir(machine.home().join("remote"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    mirrors.pop().unwrap()
}

fn bucket_current(server: &dyn ObjectServer) -> String {
    let store = server.store();
    let object =
        codeq::runtime::block_on(async { store.get(&"team/CURRENT".into()).await?.bytes().await })
            .unwrap();
    String::from_utf8(object.to_vec())
        .unwrap()
        .trim()
        .to_string()
}

/// `codeq serve` on a machine, answering from INDEX; killed when dropped.
struct Served {
    child: Child,
    log: mpsc::Receiver<String>,
    /// `127.0.0.1:PORT`, where it listens.
    address: String,
}

impl Served {
    /// Serves alice's token `token-of-alice`.
    fn start(machine: &Machine, dir: &Path, env: &[(&str, String)]) -> Served {
        Served::with_tokens(machine, dir, env, &[("alice", "token-of-alice")], &[])
    }

    /// Serves the bearer tokens of `tokens` (principal, token), with `extra` arguments; the
    /// tokens file is written to `dir`, which is also the server's working directory.
    fn with_tokens(
        machine: &Machine,
        dir: &Path,
        env: &[(&str, String)],
        tokens: &[(&str, &str)],
        extra: &[&str],
    ) -> Served {
        let tokens_file = dir.join("tokens.toml");
        let text: String = tokens
            .iter()
            .map(|(principal, token)| {
                let digest = codeq::hash::sha256_hex(token.as_bytes());
                format!("[[token]]\nprincipal = \"{principal}\"\nsha256 = \"{digest}\"\n")
            })
            .collect();
        std::fs::write(&tokens_file, text).unwrap();
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            tokens_file.to_str().unwrap(),
            "--index-dir",
            INDEX,
        ];
        args.extend(extra);
        let mut child = machine
            .command(dir, &args, env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, log) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served {
            child,
            log,
            address: String::new(),
        };
        let line = served.wait_for(&["listening on http://"]);
        served.address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        served
    }

    /// Waits (up to 60 s) for a log line containing every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if texts.iter().all(|t| line.contains(t)) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no log line with {texts:?}; got {seen:#?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_index_published_to_s3_answers_on_another_machine_as_a_local_one_does() {
    published_index_answers_on_another_machine(&Seaweed::start());
}

#[test]
fn an_index_published_to_azure_answers_on_another_machine_as_a_local_one_does() {
    published_index_answers_on_another_machine(&Azurite::start());
}

fn published_index_answers_on_another_machine(server: &dyn ObjectServer) {
    let index = server.index();
    let env = server.env();
    let (writer, reader) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    let indexed = ok(
        writer.run(&root, &["index", ".", "--index-dir", index, "--json"], &env),
        server,
    );
    let generation = json(&indexed)["index"]["generation"].clone();
    let local = dir.path().join("local-index");
    let local = local.to_str().unwrap();
    ok(
        writer.run(&root, &["index", ".", "--index-dir", local], &[]),
        server,
    );

    // The citations of one command against the bucket (the other machine) and against
    // the local index of the same root.
    let on_both = |command: &[&str]| {
        let remote = [command, &["--index-dir", index, "--json"]].concat();
        let here = [command, &["--index-dir", local, "--json"]].concat();
        (
            citations(&json(&ok(reader.run(dir.path(), &remote, &env), server))),
            citations(&json(&ok(writer.run(dir.path(), &here, &[]), server))),
        )
    };
    for query in ["transfer_funds", "audit record of a balance change"] {
        let (found, here) = on_both(&["search", query]);
        assert!(!found.is_empty(), "{query}");
        assert_eq!(found, here, "{query}");
    }
    let (found, here) = on_both(&["ask", "how is money moved between two accounts?"]);
    assert_eq!(found, here);
    assert!(found[0].contains("src/ledger.rs"));

    // CODEQ_INDEX_DIR names the index as --index-dir does; status shows the bucket.
    let mut with_variable = env.clone();
    with_variable.push(("CODEQ_INDEX_DIR", index.into()));
    let status = json(&ok(
        reader.run(dir.path(), &["status", "--json"], &with_variable),
        server,
    ));
    assert_eq!(status["index_dir"], index);
    assert_eq!(status["generation"], generation);
    assert_eq!(status["lanes"]["consistent"], true, "{status}");
    let human = ok(
        reader.run(dir.path(), &["status", "--index-dir", index], &env),
        server,
    );
    assert!(String::from_utf8_lossy(&human.stdout).starts_with(&format!("index {index} ")));
    assert!(mirror(&reader).join("CURRENT").is_file());
}

#[test]
fn an_incremental_run_uploads_only_what_changed_and_readers_follow() {
    let weed = Seaweed::start();
    let env = weed.env();
    let (writer, reader) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    // Enough chunks that changing one file leaves most storage files as they were (a
    // large share of deleted rows would compact the table and merge the segments).
    std::fs::write(root.join("src/fees.rs"), fees(12)).unwrap();
    commit_all(&root, &[]);
    ok(
        writer.run(&root, &["index", ".", "--index-dir", INDEX], &env),
        &weed,
    );
    let first = on_bucket(&reader, dir.path(), &["status"], &env, &weed);
    let served = Served::start(&reader, dir.path(), &env);

    std::fs::write(
        root.join("src/audit.rs"),
        format!("{AUDIT}\n/// Flags a refund larger than the original charge.\npub fn flag_oversized_refund(charge: i64, refund: i64) -> bool {{\n    refund > charge\n}}\n"),
    )
    .unwrap();
    commit_all(&root, &[]);
    let second = json(&ok(
        writer.run(&root, &["index", ".", "--index-dir", INDEX, "--json"], &env),
        &weed,
    ));
    let generation = second["index"]["generation"].as_str().unwrap().to_string();
    assert_ne!(Value::from(generation.clone()), first["generation"]);
    assert_eq!(second["index"]["changes"]["files_modified"], 1, "{second}");

    let listing = weed.store();
    let listing: Value = codeq::runtime::block_on(async {
        let key = format!("team/generations/{generation}/listing.json");
        listing.get(&key.as_str().into()).await?.bytes().await
    })
    .map(|bytes| serde_json::from_slice(&bytes).unwrap())
    .unwrap();
    let files = listing["keys"].as_object().unwrap().len();
    let uploaded = weed
        .keys(&format!("team/generations/{generation}/files"))
        .len();
    assert!(
        0 < uploaded && uploaded < files,
        "uploaded {uploaded} objects for {files} files"
    );

    // A server follows the bucket: it fetches and answers from the new generation.
    served.wait_for(&["\"event\":\"new_generation\"", &generation]);
    drop(served);

    // The reader's next command fetches the new generation, linking what did not change.
    let found = json(&ok(
        reader.run(
            dir.path(),
            &[
                "search",
                "flag_oversized_refund",
                "--index-dir",
                INDEX,
                "--json",
            ],
            &env,
        ),
        &weed,
    ));
    assert!(citations(&found)[0].contains("src/audit.rs"), "{found}");
    let status = on_bucket(&reader, dir.path(), &["status"], &env, &weed);
    assert_eq!(status["generation"], generation.as_str());
    let pulled = mirror(&reader).join("generations").join(&generation);
    let linked = walk_files(&pulled)
        .iter()
        .filter(|f| std::fs::metadata(f).unwrap().nlink() > 1)
        .count();
    assert!(
        linked > 0,
        "no file of {generation} was linked from the previous one"
    );
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_writer_that_lost_the_race_is_told_to_run_again_and_its_rerun_succeeds() {
    lost_race_is_told_and_rerun_succeeds(&Seaweed::start());
}

/// Azurite answers a failed compare-and-swap as Azure does: the loser learns of the winner.
#[test]
fn a_writer_that_lost_the_race_to_an_azure_container_is_told_to_run_again() {
    lost_race_is_told_and_rerun_succeeds(&Azurite::start());
}

fn lost_race_is_told_and_rerun_succeeds(server: &dyn ObjectServer) {
    let index = server.index();
    let env = server.env();
    let (fast, slow) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    ok(
        fast.run(&root, &["index", ".", "--index-dir", index], &env),
        server,
    );
    // Enough new code that embedding it keeps the slow writer busy after it claimed its
    // generation, so it can be stopped there.
    std::fs::write(root.join("src/fees.rs"), fees(80)).unwrap();
    commit_all(&root, &[]);

    let mut child = slow
        .command(&root, &["index", ".", "--index-dir", index], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let claimed = loop {
        let building = slow
            .home()
            .join("remote")
            .read_dir()
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path().join("generations/g000002"))
            .find(|p| p.is_dir());
        if let Some(path) = building {
            break path;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the slow writer ended before it built: {}",
            stderr(&child.wait_with_output().unwrap())
        );
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(2));
    };
    // SAFETY: signals to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    assert!(!claimed.join("manifest.json").exists(), "stopped too late");

    let won = json(&ok(
        fast.run(&root, &["index", ".", "--index-dir", index, "--json"], &env),
        server,
    ));
    let winner = won["index"]["generation"].as_str().unwrap().to_string();
    assert_eq!(winner, "g000003", "g000002 is the slow writer's claim");

    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let lost = child.wait_with_output().unwrap();
    assert_no_secret(&lost, server.secret());
    assert_eq!(lost.status.code(), Some(2), "{}", stderr(&lost));
    let message = stderr(&lost);
    assert!(
        message.contains(&format!(
            "another run published {winner} to {index} before g000002"
        )),
        "{message}"
    );
    assert!(message.contains("Run the command again"), "{message}");
    assert_eq!(bucket_current(server), winner);

    let rerun = json(&ok(
        slow.run(&root, &["index", ".", "--index-dir", index, "--json"], &env),
        server,
    ));
    assert_eq!(rerun["index"]["changes"]["vectors_embedded"], 0, "{rerun}");
    let found = on_bucket(&slow, dir.path(), &["search", "fee_tier_42"], &env, server);
    assert!(citations(&found)[0].contains("src/fees.rs"), "{found}");
    // gc on the same store keeps what CURRENT needs: the index still answers.
    on_bucket(&slow, dir.path(), &["gc"], &env, server);
    let found = on_bucket(&fast, dir.path(), &["search", "fee_tier_7"], &env, server);
    assert!(citations(&found)[0].contains("src/fees.rs"), "{found}");
}

#[test]
fn credential_and_endpoint_mistakes_fail_clearly_without_printing_the_secret() {
    let weed = Seaweed::start();
    let wrong_secret = weed.secret.replace("s3cret", "wrong");
    let closed = format!("http://127.0.0.1:{}", closed_port());
    mistakes_fail_clearly(
        &weed,
        &[
            ("AWS_SECRET_ACCESS_KEY", Some(wrong_secret), "access denied"),
            ("AWS_ALLOW_HTTP", None, "set AWS_ALLOW_HTTP=true"),
            ("AWS_ENDPOINT_URL", Some(closed), "check AWS_ENDPOINT_URL"),
        ],
        &format!("s3://codeq-tests:{}@codeq/team", weed.secret),
    );
}

#[test]
fn azure_credential_and_endpoint_mistakes_fail_clearly_without_printing_the_key() {
    let azurite = Azurite::start();
    let wrong_key = STANDARD.encode("not the account key");
    let closed = format!("http://127.0.0.1:{}", closed_port());
    mistakes_fail_clearly(
        &azurite,
        &[
            (
                "AZURE_STORAGE_ACCOUNT_KEY",
                Some(wrong_key),
                "check AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
            ),
            (
                "AZURITE_BLOB_STORAGE_URL",
                Some(closed),
                "AZURITE_BLOB_STORAGE_URL",
            ),
        ],
        &format!("az://codeqtests:{}@codeq/team", azurite.secret()),
    );
}

/// gs:// goes through the same path as s3:// and az://; with no Google Cloud Storage
/// server to test against (docs/OBJECT-STORAGE.md says why), what can be checked here is
/// that its client is set up from the standard variables and that an endpoint that does
/// not answer fails clearly, without the key.
#[test]
fn a_gs_index_whose_endpoint_does_not_answer_fails_clearly_without_printing_the_key() {
    let machine = Machine::new();
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    let private_key = "gcs-private-key-that-must-not-be-printed";
    let key_file = dir.path().join("service-account.json");
    let account = json!({
        "private_key": private_key,
        "private_key_id": "codeq-tests",
        "client_email": "codeq-tests@example.invalid",
        "disable_oauth": true,
        "gcs_base_url": format!("http://127.0.0.1:{}", closed_port()),
    });
    std::fs::write(&key_file, account.to_string()).unwrap();
    let env = [("GOOGLE_SERVICE_ACCOUNT", key_file.display().to_string())];
    for args in [
        vec!["index", ".", "--index-dir", "gs://codeq/team"],
        vec!["status", "--index-dir", "gs://codeq/team"],
    ] {
        let out = machine.run(&root, &args, &env);
        assert_no_secret(&out, private_key);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("gs://codeq/team"), "{message}");
        assert!(message.contains("check GOOGLE_BASE_URL"), "{message}");
    }
    let out = machine.run(
        &root,
        &["status", "--index-dir", "gs://Not_A_Bucket/x"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not gs://BUCKET/PREFIX"),
        "{}",
        stderr(&out)
    );
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Each of `cases` — the server's variables with one set to a wrong value, or left out —
/// makes `index` and `status` fail with exit 2 and a message naming the index and
/// containing the case's text, printing neither secret; an index URL with the secret in
/// it (`leaky_url`) is refused without repeating it; nothing is written to the bucket.
fn mistakes_fail_clearly(
    server: &dyn ObjectServer,
    cases: &[(&str, Option<String>, &str)],
    leaky_url: &str,
) {
    let machine = Machine::new();
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    let index = server.index();
    for (key, value, expected) in cases {
        let env: Vec<(&str, String)> = server
            .env()
            .into_iter()
            .filter_map(|(k, v)| match k == *key {
                false => Some((k, v)),
                true => value.clone().map(|value| (k, value)),
            })
            .collect();
        for args in [
            vec!["index", ".", "--index-dir", index],
            vec!["status", "--index-dir", index],
        ] {
            let out = machine.run(&root, &args, &env);
            assert_no_secret(&out, server.secret());
            // A wrong key is a secret too; a wrong endpoint is named, as it should be.
            if let Some(wrong) = value.as_ref().filter(|_| key.ends_with("_KEY")) {
                assert_no_secret(&out, wrong);
            }
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let message = stderr(&out);
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(message.contains(index), "{args:?}: {message}");
        }
    }
    let out = machine.run(&root, &["status", "--index-dir", leaky_url], &server.env());
    assert_no_secret(&out, server.secret());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("never in the URL"),
        "{}",
        stderr(&out)
    );
    assert!(server.keys("team").is_empty());
}

#[test]
fn a_damaged_object_is_refused_by_a_fresh_mirror() {
    let weed = Seaweed::start();
    let env = weed.env();
    let (writer, fresh) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    ok(
        writer.run(&root, &["index", ".", "--index-dir", INDEX], &env),
        &weed,
    );
    // Same size, other bytes: only the checksum can tell.
    let store = weed.store();
    let key = weed
        .keys("team/generations/g000001/files/tantivy")
        .into_iter()
        .find(|k| k.ends_with(".store"))
        .expect("a tantivy store file");
    codeq::runtime::block_on(async {
        let mut bytes = store
            .get(&key.as_str().into())
            .await?
            .bytes()
            .await?
            .to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        store
            .put(&key.as_str().into(), PutPayload::from(bytes))
            .await
            .map(|_| ())
    })
    .unwrap();

    let out = fresh.run(
        dir.path(),
        &["search", "transfer_funds", "--index-dir", INDEX],
        &env,
    );
    assert_no_secret(&out, &weed.secret);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("is damaged"), "{message}");
    assert!(message.contains("checksum"), "{message}");
    assert!(
        !mirror(&fresh).join("CURRENT").exists(),
        "the damaged generation was installed"
    );
}

/// Four git repositories in `dir/org`, one documented function each; `payments` and
/// `rates` fall in shard 0/2, `ledger` and `audit` in shard 1/2.
fn org(dir: &Path) -> PathBuf {
    let root = dir.join("org");
    for (repo, function, doc) in [
        ("payments", "settle_card_payment", "Settles a card payment"),
        (
            "rates",
            "refresh_exchange_rates",
            "Refreshes exchange rates",
        ),
        ("ledger", "post_journal_entry", "Posts a journal entry"),
        ("audit", "export_audit_trail", "Exports the audit trail"),
    ] {
        let path = root.join(repo);
        std::fs::create_dir_all(path.join("src")).unwrap();
        let code = format!("/// {doc}.\npub fn {function}() -> u32 {{\n    7\n}}\n");
        std::fs::write(path.join("src/lib.rs"), code).unwrap();
        commit_all(&path, &[]);
    }
    root
}

/// The path of the generation `generation` once a machine's mirror builds it.
fn wait_for_build(machine: &Machine, child: &mut Child, generation: &str) -> PathBuf {
    let started = Instant::now();
    loop {
        let building = machine
            .home()
            .join("remote")
            .read_dir()
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path().join("generations").join(generation))
            .find(|p| p.is_dir());
        if let Some(path) = building {
            return path;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the indexer ended before it built {generation}"
        );
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn two_shard_workers_build_one_index_and_the_loser_builds_on_the_winner() {
    let weed = Seaweed::start();
    let env = weed.env();
    let (first, second, reader) = (Machine::new(), Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = org(dir.path());
    let halves: [codeq::index::Shard; 2] = ["0/2".parse().unwrap(), "1/2".parse().unwrap()];
    for (repo, shard) in [("payments", 0), ("rates", 0), ("ledger", 1), ("audit", 1)] {
        assert!(
            halves[shard].contains(repo),
            "{repo} is not in {}",
            halves[shard]
        );
    }
    fn shard_run(shard: &str) -> [&str; 7] {
        [
            "index",
            ".",
            "--index-dir",
            INDEX,
            "--shard",
            shard,
            "--json",
        ]
    }

    // The second worker starts first and is held once it claimed g000001, so the first
    // one publishes while it builds: its compare-and-swap must then fail.
    let mut held = second
        .command(&root, &shard_run("1/2"), &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let claimed = wait_for_build(&second, &mut held, "g000001");
    // SAFETY: signals to our own child.
    unsafe { libc::kill(held.id() as i32, libc::SIGSTOP) };
    assert!(!claimed.join("manifest.json").exists(), "stopped too late");
    let won = json(&ok(first.run(&root, &shard_run("0/2"), &env), &weed));
    assert_eq!(won["index"]["generation"], "g000002", "{won}");
    assert_eq!(bucket_current(&weed), "g000002");

    unsafe { libc::kill(held.id() as i32, libc::SIGCONT) };
    let report = json(&ok(held.wait_with_output().unwrap(), &weed));
    // Its g000001 lost to g000002; it built again on that, and published.
    assert_eq!(report["index"]["generation"], "g000003", "{report}");
    assert_eq!(bucket_current(&weed), "g000003");
    // The vectors of its first attempt came back from the embedding cache.
    assert_eq!(
        report["index"]["changes"]["vectors_embedded"], 0,
        "{report}"
    );

    // Another machine sees every repository of both shards.
    let status = on_bucket(&reader, dir.path(), &["status"], &env, &weed);
    let mut repos: Vec<&str> = status["repos"]
        .as_array()
        .unwrap_or_else(|| panic!("no repos in {status}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    repos.sort_unstable();
    assert_eq!(repos, ["audit", "ledger", "payments", "rates"], "{status}");
    assert_eq!(status["lanes"]["consistent"], true, "{status}");
    assert_eq!(status["lanes"]["chunks"], 4, "{status}");
    for (function, repo) in [
        ("settle_card_payment", "payments"),
        ("refresh_exchange_rates", "rates"),
        ("post_journal_entry", "ledger"),
        ("export_audit_trail", "audit"),
    ] {
        let found = on_bucket(&reader, dir.path(), &["search", function], &env, &weed);
        assert_eq!(found["results"][0]["repo"], repo, "{function}: {found}");
    }

    // A shard whose repositories did not change publishes nothing; the other shard's
    // repositories are left alone even when this worker's root lacks them.
    std::fs::remove_dir_all(root.join("payments")).unwrap();
    let again = json(&ok(first.run(&root, &shard_run("1/2"), &env), &weed));
    assert_eq!(again["index"]["changes"]["up_to_date"], true, "{again}");
    let shrunk = json(&ok(first.run(&root, &shard_run("0/2"), &env), &weed));
    assert_eq!(shrunk["index"]["repos"], 1, "{shrunk}");
    let status = on_bucket(&reader, dir.path(), &["status"], &env, &weed);
    assert_eq!(status["repos"].as_array().unwrap().len(), 3, "{status}");
}

#[test]
fn a_killed_shard_worker_leaves_the_published_index_and_its_rerun_embeds_nothing_twice() {
    let weed = Seaweed::start();
    let env = weed.env();
    let (worker, reader) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    let shard_run = [
        "index",
        ".",
        "--index-dir",
        INDEX,
        "--shard",
        "0/1",
        "--json",
    ];
    ok(worker.run(&root, &shard_run, &env), &weed);
    let published = bucket_current(&weed);
    // Committed versions only: Lance writes a manifest under a staging name
    // (`….manifest-<uuid>`) and renames it when the commit succeeds, so counting every
    // entry would see a version that a kill can still undo.
    let cache_versions = |machine: &Machine| {
        let versions = mirror(machine).join("embed-cache/evicted.lance/_versions");
        versions.read_dir().map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest"))
                .count()
        })
    };
    let versions_before = cache_versions(&worker);
    const NEW_FUNCTIONS: usize = 300;
    std::fs::write(root.join("src/fees.rs"), fees(NEW_FUNCTIONS)).unwrap();
    commit_all(&root, &[]);

    let mut child = worker
        .command(&root, &shard_run, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let building = wait_for_build(&worker, &mut child, "g000002");
    // Killed once the first new vectors are committed to the embedding cache (a new
    // version of its table), long before all are.
    let started = Instant::now();
    while cache_versions(&worker) == versions_before {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before it was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!building.join("manifest.json").exists(), "killed too late");

    // The last published index still answers, from another machine.
    assert_eq!(bucket_current(&weed), published);
    let found = on_bucket(
        &reader,
        dir.path(),
        &["search", "transfer_funds"],
        &env,
        &weed,
    );
    assert!(citations(&found)[0].contains("src/ledger.rs"), "{found}");

    let rerun = json(&ok(worker.run(&root, &shard_run, &env), &weed));
    let changes = &rerun["index"]["changes"];
    let embedded = changes["vectors_embedded"].as_u64().unwrap();
    let reused = changes["vectors_reused"].as_u64().unwrap();
    assert!(reused > 0, "{rerun}");
    assert!(embedded < NEW_FUNCTIONS as u64, "{rerun}");
    let found = on_bucket(
        &reader,
        dir.path(),
        &["search", "fee_tier_250"],
        &env,
        &weed,
    );
    assert!(citations(&found)[0].contains("src/fees.rs"), "{found}");
}

/// What `codeq serve` knows of a principal: nothing but its bearer token. The test knows
/// what its ACL grants it.
struct Principal {
    name: &'static str,
    token: String,
    /// What the ACL lets it read, computed by the library from the ACL text.
    filter: ChunkFilter,
    /// The markers of `common::attack` it may not see.
    forbidden: Vec<&'static str>,
    /// The repositories its status lists (id, files, chunks, paths), as the library shows
    /// them on the fixture's local index under the same ACL.
    visible: Vec<Value>,
}

/// The parts of a status's repositories that do not depend on where the index is.
fn repo_counts(status: &Value) -> Vec<Value> {
    status["repos"]
        .as_array()
        .unwrap_or_else(|| panic!("no repos in {status}"))
        .iter()
        .map(|r| json!({"id": r["id"], "files": r["files"], "chunks": r["chunks"], "paths": r["paths"]}))
        .collect()
}

/// Every principal the ACL names, and mallory, whom it does not.
const PRINCIPALS: [&str; 6] = ["alice", "bob", "carol", "dave", "admin", "mallory"];

/// Request fields and headers that claim to be someone else; none may change who asks.
const CLAIMED_FIELDS: [&str; 4] = ["as", "principal", "user", "as_user"];
const CLAIMED_HEADERS: [&str; 4] = [
    "x-codeq-principal",
    "x-codeq-user",
    "x-forwarded-user",
    "x-remote-user",
];

/// A keep-alive HTTP client of a served index. Every request also carries headers that
/// claim to be `admin`.
struct Api {
    /// Keeps its connections open between requests.
    http: reqwest::Client,
    /// One connection per request, for bodies the server refuses unread: the connection
    /// such a refusal leaves is not one to send the next request on.
    oversized: reqwest::Client,
    base: String,
    requests: std::sync::atomic::AtomicUsize,
}

impl Api {
    fn new(address: &str) -> Api {
        let mut claims = reqwest::header::HeaderMap::new();
        for name in CLAIMED_HEADERS {
            claims.insert(name, reqwest::header::HeaderValue::from_static("admin"));
        }
        let client = |pooled: bool| {
            let builder = reqwest::Client::builder()
                .default_headers(claims.clone())
                .timeout(Duration::from_secs(120));
            match pooled {
                true => builder,
                false => builder.pool_max_idle_per_host(0),
            }
            .build()
            .unwrap()
        };
        Api {
            http: client(true),
            oversized: client(false),
            base: format!("http://{address}"),
            requests: Default::default(),
        }
    }

    /// `POST route` with `body` (or `GET route` without) as `token`: (status, body). An
    /// oversized body whose connection the server closed before answering (it may refuse
    /// it before reading it) is status 0.
    fn call(&self, route: &str, token: &str, body: Option<&Value>) -> (u16, String) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{}{route}", self.base);
        let oversized = body_is_oversized(body);
        let client = if oversized {
            &self.oversized
        } else {
            &self.http
        };
        let request = match body {
            Some(body) => client.post(url).json(body),
            None => client.get(url),
        }
        .bearer_auth(token);
        codeq::runtime::block_on(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.text().await.unwrap_or_default())
                }
                Err(e) if oversized => (0, format!("{e}")),
                Err(e) => panic!("{route}: {e:?}"),
            }
        })
    }
}

/// More than `codeq serve` reads of a body (64 KiB).
fn body_is_oversized(body: Option<&Value>) -> bool {
    body.is_some_and(|b| b.to_string().len() > 64 * 1024)
}

/// What a `/v1/search` or `/v1/ask` answer showed: the (repo, path, citation) of its
/// results, and its text without the echo of the query.
#[derive(Default)]
struct Shown {
    results: Vec<[String; 3]>,
    text: String,
}

/// Checks one `/v1/search` or `/v1/ask` answer to `p`: no forbidden marker outside the
/// echo of the query, and every result or citation one `p` may read.
fn check_answer(p: &Principal, status: u16, body: &str, context: &str) -> Shown {
    let context = format!("{context} (HTTP {status})");
    if status != 200 {
        assert_no_marker(body, &p.forbidden, &context);
        return Shown::default();
    }
    let mut doc: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {body}"));
    // The query is echoed (query, terms, analysis; an answer's question): everything
    // else must be free of forbidden text.
    for echo in ["query", "terms", "analysis"] {
        doc[echo] = Value::Null;
    }
    if doc.get("answer").is_some() {
        doc["answer"]["question"] = Value::Null;
    }
    let text = doc.to_string();
    assert_no_marker(&text, &p.forbidden, &context);
    let listed = doc["results"]
        .as_array()
        .or_else(|| doc["answer"]["citations"].as_array())
        .unwrap_or_else(|| panic!("{context}: no results in {doc}"));
    let results = listed
        .iter()
        .map(|hit| {
            let field = |name: &str| hit[name].as_str().unwrap_or_default().to_string();
            let (repo, path) = (field("repo"), field("path"));
            assert!(
                p.filter.admits(&repo, &path),
                "{context}: {} was shown {repo}:{path}, which it may not read: {hit}",
                p.name
            );
            [repo, path, field("citation")]
        })
        .collect();
    Shown { results, text }
}

/// What one principal's attack found: (repo, path, citation) of every result, the markers
/// its answers held besides the echo of its query, and how many of its searches and
/// questions found something.
#[derive(Default)]
struct Findings {
    results: Vec<[String; 3]>,
    seen: std::collections::BTreeSet<&'static str>,
    answered: usize,
}

impl Findings {
    fn record(&mut self, shown: Shown) {
        self.seen.extend(
            attack::MARKERS
                .iter()
                .map(|(_, _, m)| *m)
                .filter(|m| shown.text.contains(m)),
        );
        self.answered += usize::from(!shown.results.is_empty());
        self.results.extend(shown.results);
    }
}

/// Every attack query through `/v1/search` (also with a body field claiming `admin`),
/// every fourth and a few questions through `/v1/ask`, restricted by each repository id
/// and a few patterns, and `/v1/status`, as `p`.
fn attack_as(api: &Api, p: &Principal, queries: &[String], repos: &[String]) -> Findings {
    let mut found = Findings::default();
    for (i, query) in queries.iter().enumerate() {
        let context = format!("{} searching {:?}", p.name, truncate(query));
        let body = json!({"query": query, "k": 20});
        let (status, text) = api.call("/v1/search", &p.token, Some(&body));
        match status {
            200 => {}
            0 | 413 => assert!(body_is_oversized(Some(&body)), "{context}: {status}"),
            400 => assert!(query.trim().is_empty(), "{context}: {text}"),
            other => panic!("{context}: HTTP {other}: {text}"),
        }
        found.record(check_answer(p, status, &text, &context));
        for field in CLAIMED_FIELDS {
            let mut claimed = body.clone();
            claimed[field] = json!("admin");
            let (status, text) = api.call("/v1/search", &p.token, Some(&claimed));
            let context = format!("{context} claiming {field}: admin");
            // Refused (400, or 413 for the huge body), or answered as p: never as admin.
            assert!(
                matches!(status, 200 | 400 | 413 | 0),
                "{context}: HTTP {status}: {text}"
            );
            check_answer(p, status, &text, &context);
        }
        if i % 4 == 0 {
            let (status, text) = api.call("/v1/ask", &p.token, Some(&json!({"question": query})));
            let context = format!("{} asking {:?}", p.name, truncate(query));
            assert!(
                status == 200
                    || body_is_oversized(Some(&json!({"question": query})))
                    || query.trim().is_empty(),
                "{context}: HTTP {status}: {text}"
            );
            found.record(check_answer(p, status, &text, &context));
        }
    }
    for question in [
        "how is a payment refunded?",
        "how is the fraud risk of a transaction scored?",
        "how are search results ranked?",
        "which keys must be rotated?",
    ] {
        let (status, text) = api.call("/v1/ask", &p.token, Some(&json!({"question": question})));
        let context = format!("{} asking {question:?}", p.name);
        assert_eq!(status, 200, "{context}: {text}");
        found.record(check_answer(p, status, &text, &context));
    }
    // A repository or language filter narrows what p reads, never widens it; a
    // repository p may not read is refused as a missing one is.
    let scoped = |repo: &str| {
        let body = json!({"query": "refund payment ranking query fraud", "k": 20, "repo": repo});
        let (status, text) = api.call("/v1/search", &p.token, Some(&body));
        let error = serde_json::from_str::<Value>(&text).ok().and_then(|doc| {
            let error = doc["error"].as_str()?;
            Some(error.replace(repo, "X"))
        });
        (status, text, error)
    };
    let (_, _, missing) = scoped("no-such-repo");
    assert!(
        missing.is_some(),
        "{}: no error for a missing repository",
        p.name
    );
    let patterns = [
        "*",
        "payments*",
        "..",
        "payments/plugins/fraud/..",
        "PAYMENTS",
    ];
    for repo in repos.iter().map(String::as_str).chain(patterns) {
        let context = format!("{} searching repo {repo:?}", p.name);
        let (status, text, error) = scoped(repo);
        if status == 200 {
            assert!(p.filter.admits_repo(repo), "{context}: {text}");
            check_answer(p, status, &text, &context);
        } else {
            assert_eq!(status, 400, "{context}: {text}");
            assert_eq!(
                error, missing,
                "{context}: refused unlike a missing repository"
            );
        }
    }
    for lang in ["rust", "python", "markdown", "text", "*"] {
        let body = json!({"query": "refund payment ranking query fraud", "k": 20, "lang": lang});
        let (status, text) = api.call("/v1/search", &p.token, Some(&body));
        let context = format!("{} searching lang {lang:?}", p.name);
        assert!(status == 200 || status == 400, "{context}: {status} {text}");
        check_answer(p, status, &text, &context);
    }
    let (status, text) = api.call("/v1/status", &p.token, None);
    let context = format!("{} status", p.name);
    assert_eq!(status, 200, "{context}: {text}");
    assert_no_marker(&text, &p.forbidden, &context);
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(repo_counts(&status), p.visible, "{context}: {status}");
    found
}

/// `/v1/read_citation` as `p` of every citation in `citations` it may not read, and of
/// crafted ones that climb out of a file it may read: refused as a missing file is,
/// without content.
fn read_forbidden_citations(api: &Api, p: &Principal, citations: &[[String; 3]]) {
    // The error of a citation (its echo replaced by X) and its status.
    let refusal = |citation: &str| {
        let (status, text) = api.call(
            "/v1/read_citation",
            &p.token,
            Some(&json!({"citation": citation})),
        );
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let error = doc["error"].as_str().map(|e| e.replace(citation, "X"));
        (status, text, error)
    };
    let (_, _, missing) = refusal("no-such-repo:no/such/file.rs:1-3");
    assert!(missing.is_some(), "{}: no error for a missing file", p.name);
    let mut crafted: Vec<String> = Vec::new();
    for [repo, path, citation] in citations {
        if p.filter.admits(repo, path) {
            continue;
        }
        crafted.push(citation.clone());
        let (_, range) = citation.rsplit_once(':').unwrap();
        crafted.push(format!("{repo}:{path}:1-200"));
        crafted.push(format!("{repo}:./{path}:{range}"));
        crafted.push(format!("{repo}:/{path}:{range}"));
        crafted.push(format!("{repo}/:{path}:{range}"));
        crafted.push(format!("{repo}:README.md/../{path}:{range}"));
        crafted.push(format!("{repo}:{path}\u{0}:{range}"));
        crafted.push(format!("{}:{path}:{range}", repo.to_uppercase()));
    }
    for repo in ["search-service", "payments", "payments/plugins/fraud", "."] {
        crafted.push(format!("{repo}:README.md/../service/query.py:1-5"));
        crafted.push(format!("{repo}:../payments/src/lib.rs:1-5"));
        crafted.push(format!("{repo}:../../notes/todo.md:1-3"));
    }
    crafted.sort();
    crafted.dedup();
    for citation in &crafted {
        let context = format!("{} reading {citation:?}", p.name);
        let (status, text, error) = refusal(citation);
        if status == 200 {
            // Only a citation that names a file p may read, read in place.
            let read: Value = serde_json::from_str(&text).unwrap();
            let (repo, path) = (
                read["repo"].as_str().unwrap(),
                read["path"].as_str().unwrap(),
            );
            assert!(p.filter.admits(repo, path), "{context}: {text}");
            assert_no_marker(&text, &p.forbidden, &context);
            continue;
        }
        // Refused exactly as a file that is not there: the same status and message, which
        // echoes the citation as given and nothing of the file.
        assert_eq!(status, 404, "{context}: {text}");
        assert_eq!(error, missing, "{context}: {text}");
    }
}

/// `tests/acl.rs`'s attack on an index in the bucket: one machine publishes the fixture
/// corpus under the ACL, another serves it to a token per principal without the corpus
/// (the ACL named with --acl), and every principal sends every attack query, claims to be
/// admin, narrows to each repository and reads citations it may not read. No answer holds
/// text the principal may not read, and each principal's status is the one the library
/// shows on a local index of the same corpus.
#[test]
fn an_acl_guarded_index_in_s3_serves_each_token_only_what_its_principal_may_read() {
    let started = Instant::now();
    // The same corpus indexed locally, to learn from the library what each principal may
    // read; built while the bucket's index is.
    let fixture = std::thread::spawn(common::fixture);
    let weed = Seaweed::start();
    let env = weed.env();
    let (writer, reader) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();

    // The fixture corpus with the ACL in its codeq.toml, published by the writer.
    let root = dir.path().join("corpus");
    common::build_corpus(&root);
    let config = root.join("codeq.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}{ACL}")).unwrap();
    ok(
        writer.run(&root, &["index", ".", "--index-dir", INDEX], &env),
        &weed,
    );
    let indexed = started.elapsed();

    // The reader has no corpus and no codeq.toml: it names the ACL with --acl.
    let served_dir = tempfile::tempdir().unwrap();
    let acl_file = served_dir.path().join("acl.toml");
    std::fs::write(&acl_file, ACL).unwrap();
    let tokens: Vec<(&str, String)> = PRINCIPALS
        .iter()
        .map(|p| (*p, format!("{p}-token-{}", std::process::id())))
        .collect();
    let token_refs: Vec<(&str, &str)> = tokens.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let served = Served::with_tokens(
        &reader,
        served_dir.path(),
        &env,
        &token_refs,
        &[
            "--acl",
            acl_file.to_str().unwrap(),
            "--requests-per-minute",
            "100000",
        ],
    );

    // What each principal may read: from the ACL, on the same corpus indexed locally.
    let acl = Acl::load(&acl_file).unwrap();
    let local = SessionOptions {
        index_dir: Some(fixture.join().unwrap().index_dir.clone()),
        acl_file: Some(acl_file.clone()),
        ..SessionOptions::default()
    };
    let local = SharedIndex::open(&local).unwrap();
    let repos = local.session(Some("admin")).unwrap().manifest().repo_ids();
    let principals: Vec<Principal> = tokens
        .into_iter()
        .map(|(name, token)| {
            let filter = acl.filter_for(name, &repos);
            let status = local.session(Some(name)).unwrap().status().unwrap();
            Principal {
                name,
                token,
                forbidden: attack::forbidden(&filter),
                filter,
                visible: repo_counts(&status.to_json()),
            }
        })
        .collect();
    assert!(
        principals
            .iter()
            .all(|p| p.forbidden.is_empty() == (p.name == "admin")),
        "only admin may read every marker"
    );

    let api = Api::new(&served.address);
    let mut queries = attack_queries();
    // The huge query is refused for its size; its first 60 000 bytes fit in a body.
    let huge = queries.last().unwrap();
    queries.push(huge.chars().take(60_000).collect());
    let attacked = Instant::now();
    let findings: Vec<Findings> = std::thread::scope(|scope| {
        let threads: Vec<_> = principals
            .iter()
            .map(|p| scope.spawn(|| attack_as(&api, p, &queries, &repos)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let searched = attacked.elapsed();

    // Controls: the server is not simply returning nothing. Everyone the ACL grants
    // something finds it; admin's answers hold every marker, so the checks above could
    // see one where it does not belong; mallory finds nothing.
    for (p, found) in principals.iter().zip(&findings) {
        let grants = repos.iter().any(|r| p.filter.admits_repo(r));
        if grants {
            assert!(
                found.answered > 10,
                "{}: only {} queries found anything",
                p.name,
                found.answered
            );
        } else {
            assert_eq!(found.answered, 0, "{}", p.name);
        }
    }
    let admin = &findings[PRINCIPALS.iter().position(|p| *p == "admin").unwrap()];
    let unseen: Vec<&str> = attack::MARKERS
        .iter()
        .map(|(_, _, m)| *m)
        .filter(|m| !admin.seen.contains(m))
        .collect();
    assert!(unseen.is_empty(), "admin never saw {unseen:?}");

    // Every citation anyone was shown, read by each principal who may not read it.
    let mut citations: Vec<[String; 3]> = findings.iter().flat_map(|f| f.results.clone()).collect();
    citations.sort();
    citations.dedup();
    std::thread::scope(|scope| {
        for p in &principals {
            let citations = &citations;
            let api = &api;
            scope.spawn(move || read_forbidden_citations(api, p, citations));
        }
    });
    // And one each may read is read.
    for (p, found) in principals.iter().zip(&findings) {
        let Some([_, _, citation]) = found.results.first() else {
            continue;
        };
        let (status, text) = api.call(
            "/v1/read_citation",
            &p.token,
            Some(&json!({"citation": citation})),
        );
        assert_eq!(status, 200, "{} reading {citation}: {text}", p.name);
        assert_no_marker(
            &text,
            &p.forbidden,
            &format!("{} reading {citation}", p.name),
        );
    }
    let requests = api.requests.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{requests} requests by {} principals, {} attack queries: indexed in {indexed:?}, attacked in {searched:?}, {:?} in all",
        principals.len(),
        queries.len(),
        started.elapsed()
    );
    drop(served);
}
