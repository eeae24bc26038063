//! `--index-dir s3://BUCKET/PREFIX` against a real S3-compatible server (SeaweedFS's
//! `weed mini`, started per test): an index published from one machine answers on
//! another as a local one does, a re-index uploads only what changed, a writer that lost
//! the race to publish is told so and nothing of it is published, credential and endpoint
//! mistakes are named without the secret, and a damaged object is never served.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::seaweed::{Machine, Seaweed};
use common::{commit_all, stderr};
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;

const INDEX: &str = "s3://codeq/team";

const LEDGER: &str = "/// Moves money between two accounts and records both entries.\npub fn transfer_funds(from: &mut i64, to: &mut i64, amount: i64) {\n    *from -= amount;\n    *to += amount;\n}\n";
const AUDIT: &str = "/// Writes an audit record for every balance change.\npub fn audit_balance_change(account: &str, delta: i64) -> String {\n    format!(\"{account}: {delta}\")\n}\n";
const RATES: &str = "\"\"\"Currency conversion.\"\"\"\n\n\ndef convert_currency(amount, rate):\n    \"\"\"Converts an amount with a fixed exchange rate.\"\"\"\n    return amount * rate\n";

/// A small git repository in `dir/bank`.
fn bank(dir: &Path) -> PathBuf {
    let root = dir.join("bank");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/ledger.rs"), LEDGER).unwrap();
    std::fs::write(root.join("src/audit.rs"), AUDIT).unwrap();
    std::fs::write(root.join("src/rates.py"), RATES).unwrap();
    commit_all(&root, &[]);
    root
}

/// A Rust file of `n` small documented functions (`fee_tier_0` …).
fn fees(n: usize) -> String {
    (0..n)
        .map(|i| format!("/// Fee rule {i}: charges {i} cents per transfer of tier {i}.\npub fn fee_tier_{i}(amount: i64) -> i64 {{\n    amount * {i} / 1000\n}}\n\n"))
        .collect()
}

/// `out` succeeded, and the server's secret is nowhere in it.
fn ok(out: Output, weed: &Seaweed) -> Output {
    assert_no_secret(&out, &weed.secret);
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

/// The one mirror folder a machine has.
fn mirror(machine: &Machine) -> PathBuf {
    let mut mirrors: Vec<PathBuf> = std::fs::read_dir(machine.home().join("remote"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    mirrors.pop().unwrap()
}

fn bucket_current(weed: &Seaweed) -> String {
    let store = weed.store();
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
}

impl Served {
    fn start(machine: &Machine, dir: &Path, env: &[(&str, String)]) -> Served {
        let tokens = dir.join("tokens.toml");
        let digest = codeq::hash::sha256_hex(b"token-of-alice");
        std::fs::write(
            &tokens,
            format!("[[token]]\nprincipal = \"alice\"\nsha256 = \"{digest}\"\n"),
        )
        .unwrap();
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            tokens.to_str().unwrap(),
            "--index-dir",
            INDEX,
        ];
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
        let served = Served { child, log };
        served.wait_for(&["listening on http://"]);
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
    let weed = Seaweed::start();
    let env = weed.env();
    let (writer, reader) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    let indexed = ok(
        writer.run(&root, &["index", ".", "--index-dir", INDEX, "--json"], &env),
        &weed,
    );
    let generation = json(&indexed)["index"]["generation"].clone();
    let local = dir.path().join("local-index");
    let local = local.to_str().unwrap();
    ok(
        writer.run(&root, &["index", ".", "--index-dir", local], &[]),
        &weed,
    );

    // The citations of one command against the bucket (the other machine) and against
    // the local index of the same root.
    let on_both = |command: &[&str]| {
        let remote = [command, &["--index-dir", INDEX, "--json"]].concat();
        let here = [command, &["--index-dir", local, "--json"]].concat();
        (
            citations(&json(&ok(reader.run(dir.path(), &remote, &env), &weed))),
            citations(&json(&ok(writer.run(dir.path(), &here, &[]), &weed))),
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
    with_variable.push(("CODEQ_INDEX_DIR", INDEX.into()));
    let status = json(&ok(
        reader.run(dir.path(), &["status", "--json"], &with_variable),
        &weed,
    ));
    assert_eq!(status["index_dir"], INDEX);
    assert_eq!(status["generation"], generation);
    assert_eq!(status["lanes"]["consistent"], true, "{status}");
    let human = ok(
        reader.run(dir.path(), &["status", "--index-dir", INDEX], &env),
        &weed,
    );
    assert!(String::from_utf8_lossy(&human.stdout).starts_with(&format!("index {INDEX} ")));
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
    let first = json(&ok(
        reader.run(
            dir.path(),
            &["status", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
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
    let status = json(&ok(
        reader.run(
            dir.path(),
            &["status", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
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
    let weed = Seaweed::start();
    let env = weed.env();
    let (fast, slow) = (Machine::new(), Machine::new());
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    ok(
        fast.run(&root, &["index", ".", "--index-dir", INDEX], &env),
        &weed,
    );
    // Enough new code that embedding it keeps the slow writer busy after it claimed its
    // generation, so it can be stopped there.
    std::fs::write(root.join("src/fees.rs"), fees(80)).unwrap();
    commit_all(&root, &[]);

    let mut child = slow
        .command(&root, &["index", ".", "--index-dir", INDEX], &env)
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
        fast.run(&root, &["index", ".", "--index-dir", INDEX, "--json"], &env),
        &weed,
    ));
    let winner = won["index"]["generation"].as_str().unwrap().to_string();
    assert_eq!(winner, "g000003", "g000002 is the slow writer's claim");

    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let lost = child.wait_with_output().unwrap();
    assert_no_secret(&lost, &weed.secret);
    assert_eq!(lost.status.code(), Some(2), "{}", stderr(&lost));
    let message = stderr(&lost);
    assert!(
        message.contains(&format!(
            "another run published {winner} to {INDEX} before g000002"
        )),
        "{message}"
    );
    assert!(message.contains("Run the command again"), "{message}");
    assert_eq!(bucket_current(&weed), winner);

    let rerun = json(&ok(
        slow.run(&root, &["index", ".", "--index-dir", INDEX, "--json"], &env),
        &weed,
    ));
    assert_eq!(rerun["index"]["changes"]["vectors_embedded"], 0, "{rerun}");
    let found = json(&ok(
        slow.run(
            dir.path(),
            &["search", "fee_tier_42", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
    assert!(citations(&found)[0].contains("src/fees.rs"), "{found}");
}

#[test]
fn credential_and_endpoint_mistakes_fail_clearly_without_printing_the_secret() {
    let weed = Seaweed::start();
    let machine = Machine::new();
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    // The server's variables with `key` set to `value`, or left out.
    let with = |key: &str, value: Option<String>| -> Vec<(&'static str, String)> {
        weed.env()
            .into_iter()
            .filter_map(|(k, v)| match k == key {
                false => Some((k, v)),
                true => value.clone().map(|value| (k, value)),
            })
            .collect()
    };
    let wrong_secret = weed.secret.replace("s3cret", "wrong");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            with("AWS_SECRET_ACCESS_KEY", Some(wrong_secret.clone())),
            "access denied",
        ),
        (with("AWS_ALLOW_HTTP", None), "set AWS_ALLOW_HTTP=true"),
        (
            with(
                "AWS_ENDPOINT_URL",
                Some(format!("http://127.0.0.1:{closed_port}")),
            ),
            "check AWS_ENDPOINT_URL",
        ),
    ];
    for (env, expected) in &cases {
        for args in [
            vec!["index", ".", "--index-dir", INDEX],
            vec!["status", "--index-dir", INDEX],
        ] {
            let out = machine.run(&root, &args, env);
            assert_no_secret(&out, &weed.secret);
            assert_no_secret(&out, &wrong_secret);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let message = stderr(&out);
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(message.contains(INDEX), "{args:?}: {message}");
        }
    }
    // Credentials put in the URL are refused, and not repeated.
    let url = format!("s3://codeq-tests:{}@codeq/team", weed.secret);
    let out = machine.run(&root, &["status", "--index-dir", &url], &weed.env());
    assert_no_secret(&out, &weed.secret);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("never in the URL"),
        "{}",
        stderr(&out)
    );
    // Nothing was written to the bucket by any of them.
    assert!(weed.keys("team").is_empty());
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
    let status = json(&ok(
        reader.run(
            dir.path(),
            &["status", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
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
        let found = json(&ok(
            reader.run(
                dir.path(),
                &["search", function, "--index-dir", INDEX, "--json"],
                &env,
            ),
            &weed,
        ));
        assert_eq!(found["results"][0]["repo"], repo, "{function}: {found}");
    }

    // A shard whose repositories did not change publishes nothing; the other shard's
    // repositories are left alone even when this worker's root lacks them.
    std::fs::remove_dir_all(root.join("payments")).unwrap();
    let again = json(&ok(first.run(&root, &shard_run("1/2"), &env), &weed));
    assert_eq!(again["index"]["changes"]["up_to_date"], true, "{again}");
    let shrunk = json(&ok(first.run(&root, &shard_run("0/2"), &env), &weed));
    assert_eq!(shrunk["index"]["repos"], 1, "{shrunk}");
    let status = json(&ok(
        reader.run(
            dir.path(),
            &["status", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
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
    let cache_versions = |machine: &Machine| {
        let versions = mirror(machine).join("embed-cache/evicted.lance/_versions");
        versions.read_dir().map_or(0, |d| d.count())
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
    let found = json(&ok(
        reader.run(
            dir.path(),
            &["search", "transfer_funds", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
    assert!(citations(&found)[0].contains("src/ledger.rs"), "{found}");

    let rerun = json(&ok(worker.run(&root, &shard_run, &env), &weed));
    let changes = &rerun["index"]["changes"];
    let embedded = changes["vectors_embedded"].as_u64().unwrap();
    let reused = changes["vectors_reused"].as_u64().unwrap();
    assert!(reused > 0, "{rerun}");
    assert!(embedded < NEW_FUNCTIONS as u64, "{rerun}");
    let found = json(&ok(
        reader.run(
            dir.path(),
            &["search", "fee_tier_250", "--index-dir", INDEX, "--json"],
            &env,
        ),
        &weed,
    ));
    assert!(citations(&found)[0].contains("src/fees.rs"), "{found}");
}
