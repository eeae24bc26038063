//! `codeq gc` on an index in an S3 bucket (a real SeaweedFS, started per test): old
//! generations go but every object the kept listings reference stays, so a fresh machine
//! answers as before; a generation a live reader holds a lease on is kept, and named, until
//! the lease expires; an unpublished claim is kept through its grace period.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::object_server::ObjectServer;
use common::seaweed::{INDEX, Machine, Seaweed, bank};
use common::{commit_all, stderr};
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;

/// Changes one file of `root` (a new small function in `src/extra.rs`) and publishes
/// the change from `writer`; returns the generation published.
fn publish_a_change(writer: &Machine, root: &Path, env: &[(&str, String)], n: usize) -> String {
    let extra: String = (0..n)
        .map(|i| format!("/// Rounds a balance to step {i}.\npub fn round_step_{i}(amount: i64) -> i64 {{\n    amount / {} * {}\n}}\n\n", i + 2, i + 2))
        .collect();
    std::fs::write(root.join("src/extra.rs"), extra).unwrap();
    commit_all(root, &[]);
    let out = ok(writer.run(root, &["index", ".", "--index-dir", INDEX, "--json"], env));
    json(&out)["index"]["generation"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The citations of a `search --json` document, in order.
fn citations(doc: &Value) -> Vec<String> {
    doc["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {doc}"))
        .iter()
        .map(|c| c["citation"].as_str().unwrap().to_string())
        .collect()
}

/// The citations `machine` finds for each query.
fn answers(machine: &Machine, cwd: &Path, env: &[(&str, String)]) -> Vec<Vec<String>> {
    [
        "transfer_funds",
        "audit record of a balance change",
        "currency conversion",
    ]
    .iter()
    .map(|query| {
        let out = ok(machine.run(cwd, &["search", query, "--index-dir", INDEX, "--json"], env));
        citations(&json(&out))
    })
    .collect()
}

/// `codeq gc --json` on `machine`: its `bucket` document.
fn gc(machine: &Machine, cwd: &Path, env: &[(&str, String)]) -> Value {
    let out = ok(machine.run(cwd, &["gc", "--index-dir", INDEX, "--json"], env));
    json(&out)["bucket"].clone()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The reasons gc gives for keeping `generation` (`None`: it was not kept).
fn kept_for(bucket: &Value, generation: &str) -> Option<Vec<Value>> {
    bucket["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["generation"] == generation)
        .map(|k| k["reasons"].as_array().unwrap().clone())
}

fn get(weed: &Seaweed, key: &str) -> Option<Vec<u8>> {
    let store = weed.store();
    let got = codeq::runtime::block_on(async { store.get(&key.into()).await?.bytes().await });
    match got {
        Ok(bytes) => Some(bytes.to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("{key}: {e}"),
    }
}

fn put(weed: &Seaweed, key: &str, bytes: Vec<u8>) {
    let store = weed.store();
    codeq::runtime::block_on(store.put(&key.into(), PutPayload::from(bytes))).unwrap();
}

/// The keys the listing of `generation` names, below the prefix `team/`.
fn listed_keys(weed: &Seaweed, generation: &str) -> BTreeSet<String> {
    let listing = get(weed, &format!("team/generations/{generation}/listing.json"))
        .unwrap_or_else(|| panic!("{generation} has no listing"));
    let listing: Value = serde_json::from_slice(&listing).unwrap();
    listing["keys"]
        .as_object()
        .unwrap()
        .values()
        .map(|key| format!("team/{}", key.as_str().unwrap()))
        .collect()
}

/// The lease objects in the bucket, read.
fn leases(weed: &Seaweed) -> Vec<Value> {
    weed.keys("team/leases")
        .iter()
        .filter_map(|key| get(weed, key))
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .collect()
}

/// A bank repository indexed into a fresh server's bucket as g000001 by `writer`;
/// `reader` is another machine.
struct Published {
    weed: Seaweed,
    env: Vec<(&'static str, String)>,
    writer: Machine,
    reader: Machine,
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Published {
    fn start() -> Published {
        let weed = Seaweed::start();
        let env = weed.env();
        let (writer, reader) = (Machine::new(), Machine::new());
        let dir = tempfile::tempdir().unwrap();
        let root = bank(dir.path());
        ok(writer.run(&root, &["index", ".", "--index-dir", INDEX], &env));
        Published {
            weed,
            env,
            writer,
            reader,
            dir,
            root,
        }
    }
}

#[test]
fn gc_deletes_old_generations_and_keeps_every_object_the_current_one_references() {
    let started = Instant::now();
    let Published {
        weed,
        env,
        writer,
        reader,
        dir,
        root,
    } = Published::start();
    let mut published = vec!["g000001".to_string()];
    for n in 1..=5 {
        published.push(publish_a_change(&writer, &root, &env, n));
    }
    let current = published.last().unwrap().clone();
    assert_eq!(current, "g000006", "{published:?}");
    let before = answers(&reader, dir.path(), &env);
    assert!(before.iter().all(|found| !found.is_empty()), "{before:?}");
    let referenced = listed_keys(&weed, &current);
    let everything: BTreeSet<String> = weed.keys("team/generations").into_iter().collect();

    let bucket = gc(&writer, dir.path(), &env);
    assert_eq!(bucket["current"], current.as_str(), "{bucket}");
    // Kept: the current one, the previous one and two complete rollback points.
    assert_eq!(
        strings(&bucket["deleted_generations"]),
        ["g000001", "g000002"],
        "{bucket}"
    );
    assert!(bucket["deleted_objects"].as_u64().unwrap() > 0, "{bucket}");
    assert!(bucket["deleted_bytes"].as_u64().unwrap() > 0, "{bucket}");
    for (generation, reason) in [
        ("g000006", "current"),
        ("g000005", "previous"),
        ("g000004", "rollback_point"),
        ("g000003", "rollback_point"),
    ] {
        let reasons = kept_for(&bucket, generation).unwrap_or_else(|| panic!("{bucket}"));
        assert!(reasons.iter().any(|r| r["reason"] == reason), "{bucket}");
    }
    let left: BTreeSet<String> = weed.keys("team/generations").into_iter().collect();
    let missing: Vec<&String> = referenced.difference(&left).collect();
    assert!(
        missing.is_empty(),
        "gc deleted referenced objects: {missing:?}"
    );
    for generation in ["g000001", "g000002"] {
        for file in ["listing.json", "CLAIM"] {
            let key = format!("team/generations/{generation}/{file}");
            assert!(!left.contains(&key), "{key} was kept");
        }
    }
    // What the deleted generations were the first to upload and the current one still
    // uses stays; the rest of them goes.
    let deleted = everything.difference(&left).count() as u64;
    assert_eq!(deleted, bucket["deleted_objects"].as_u64().unwrap());
    let inherited = referenced
        .iter()
        .filter(|k| {
            k.starts_with("team/generations/g000001/") || k.starts_with("team/generations/g000002/")
        })
        .count();
    assert_eq!(
        bucket["referenced_objects_kept"].as_u64().unwrap() as usize,
        everything
            .iter()
            .filter(|k| {
                (k.starts_with("team/generations/g000001/")
                    || k.starts_with("team/generations/g000002/"))
                    && left.contains(*k)
            })
            .count(),
        "{bucket}"
    );
    assert!(
        inherited > 0,
        "the current listing takes no object from g000001 or g000002, so nothing checks that gc keeps those"
    );

    // A machine with no mirror fetches the current generation and answers as before.
    let fresh = Machine::new();
    assert_eq!(answers(&fresh, dir.path(), &env), before);
    // Nothing more to collect.
    let again = gc(&writer, dir.path(), &env);
    assert_eq!(again["deleted_objects"], 0, "{again}");

    // That machine lists what the bucket keeps, though it has only the current one, and
    // rolls back to one it never had; one gc deleted is refused by name.
    let status = json(&ok(fresh.run(
        dir.path(),
        &["status", "--index-dir", INDEX, "--json"],
        &env,
    )));
    let listed: Vec<(String, bool)> = status["generations"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|g| {
            let name = g["name"].as_str().unwrap().to_string();
            (name, g["on_this_machine"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("g000003".to_string(), false),
            ("g000004".to_string(), false),
            ("g000005".to_string(), false),
            ("g000006".to_string(), true),
        ],
        "{status}"
    );
    let rollback = |target: &str| {
        fresh.run(
            dir.path(),
            &["rollback", target, "--index-dir", INDEX, "--json"],
            &env,
        )
    };
    let gone = rollback("g000001");
    assert_eq!(gone.status.code(), Some(2), "{}", stderr(&gone));
    assert!(
        stderr(&gone).contains("no generation g000001 is kept"),
        "{}",
        stderr(&gone)
    );
    let rolled = json(&ok(rollback("g000003")));
    assert_eq!(rolled["rollback"]["to"]["name"], "g000003", "{rolled}");
    let status = json(&ok(writer.run(
        dir.path(),
        &["status", "--index-dir", INDEX, "--json"],
        &env,
    )));
    assert_eq!(status["generation"], "g000003", "{status}");

    // A generation a gc is deleting (its mark, as a gc writes it before its last reading
    // of the leases) is refused; a gc that stopped before taking its marks off leaves them
    // to the next gc, which takes off those of generations it keeps.
    let mark = "team/generations/g000004/DELETING";
    put(&weed, mark, b"gc\n".to_vec());
    let marked = rollback("g000004");
    assert_eq!(marked.status.code(), Some(2), "{}", stderr(&marked));
    assert!(
        stderr(&marked).contains("`codeq gc` is deleting g000004"),
        "{}",
        stderr(&marked)
    );
    let bucket = gc(&writer, dir.path(), &env);
    assert!(kept_for(&bucket, "g000004").is_some(), "{bucket}");
    assert!(get(&weed, mark).is_none(), "the stale mark is still there");
    assert!(
        weed.keys("team/generations")
            .iter()
            .all(|k| !k.ends_with("/DELETING"))
    );
    let rolled = json(&ok(rollback("g000004")));
    assert_eq!(rolled["rollback"]["to"]["name"], "g000004", "{rolled}");
    eprintln!("took {:?}", started.elapsed());
}

/// `codeq mcp` on a machine: a long-running reader of the generation published when it
/// started; killed when dropped.
struct Reader {
    child: Child,
}

impl Reader {
    fn start(machine: &Machine, cwd: &Path, env: &[(&str, String)]) -> Reader {
        let child = machine
            .command(cwd, &["mcp", "--index-dir", INDEX], env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Reader { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_live_readers_generation_is_kept_and_named_until_its_lease_expires() {
    let started = Instant::now();
    let Published {
        weed,
        env,
        writer,
        reader,
        dir,
        root,
    } = Published::start();

    // A reader on g000001 whose lease lives a few seconds unless renewed.
    const TTL: u64 = 6;
    let mut reader_env = env.clone();
    reader_env.push(("CODEQ_LEASE_TTL_SECS", TTL.to_string()));
    let mut mcp = Reader::start(&reader, dir.path(), &reader_env);
    let deadline = Instant::now() + Duration::from_secs(60);
    let lease = loop {
        let found = leases(&weed)
            .into_iter()
            .find(|l| l["generation"] == "g000001" && l["purpose"] == "read");
        if let Some(lease) = found {
            break lease;
        }
        assert!(Instant::now() < deadline, "the reader wrote no lease");
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = lease["pid"].as_u64().unwrap();
    assert_eq!(pid, u64::from(mcp.child.id()), "{lease}");
    let opened = Instant::now();

    for n in 1..=4 {
        publish_a_change(&writer, &root, &env, n);
    }
    // Past the TTL: only renewals keep the lease alive now.
    if let Some(left) = Duration::from_secs(TTL + 1).checked_sub(opened.elapsed()) {
        std::thread::sleep(left);
    }
    let bucket = gc(&writer, dir.path(), &env);
    assert!(
        strings(&bucket["deleted_generations"]).is_empty(),
        "{bucket}"
    );
    let reasons = kept_for(&bucket, "g000001").unwrap_or_else(|| panic!("{bucket}"));
    let held = reasons
        .iter()
        .find(|r| r["reason"] == "lease")
        .unwrap_or_else(|| panic!("{bucket}"));
    assert_eq!(held["purpose"], "read");
    assert_eq!(held["pid"], pid);
    assert_eq!(held["this_process"], false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(held["expires_unix"].as_u64().unwrap() >= now, "{held}");
    assert!(get(&weed, "team/generations/g000001/listing.json").is_some());
    // The human output says why.
    let human = ok(writer.run(dir.path(), &["gc", "--index-dir", INDEX], &env));
    let text = String::from_utf8_lossy(&human.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("kept g000001: a live reader holds it")
            && text.contains(&format!("pid {pid}")),
        "{text}"
    );

    // Killed, the reader cannot let go: its lease lapses by itself.
    mcp.kill();
    std::thread::sleep(Duration::from_secs(TTL + 1));
    let bucket = gc(&writer, dir.path(), &env);
    assert_eq!(
        strings(&bucket["deleted_generations"]),
        ["g000001"],
        "{bucket}"
    );
    assert!(
        bucket["expired_leases_deleted"].as_u64().unwrap() >= 1,
        "{bucket}"
    );
    assert!(get(&weed, "team/generations/g000001/listing.json").is_none());
    assert!(
        !leases(&weed).iter().any(|l| l["pid"] == pid),
        "the expired lease is still there"
    );
    // Short commands let their leases go when they end.
    assert!(
        leases(&weed).is_empty(),
        "leases left behind: {:?}",
        leases(&weed)
    );
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn an_unpublished_claim_is_kept_through_its_grace_period_and_then_deleted() {
    let started = Instant::now();
    let weed = Seaweed::start();
    let env = weed.env();
    let writer = Machine::new();
    let dir = tempfile::tempdir().unwrap();
    let root = bank(dir.path());
    ok(writer.run(&root, &["index", ".", "--index-dir", INDEX], &env));
    // A writer elsewhere claimed g000002 and uploaded a file, then died.
    let claim = serde_json::json!({"host": "elsewhere", "pid": 1, "started_unix": 1});
    put(
        &weed,
        "team/generations/g000002/CLAIM",
        serde_json::to_vec(&claim).unwrap(),
    );
    put(
        &weed,
        "team/generations/g000002/files/lance/data/x.lance",
        vec![7; 1000],
    );

    let bucket = gc(&writer, dir.path(), &env);
    assert!(
        strings(&bucket["deleted_generations"]).is_empty(),
        "{bucket}"
    );
    let reasons = kept_for(&bucket, "g000002").unwrap_or_else(|| panic!("{bucket}"));
    assert!(reasons.iter().any(|r| r["reason"] == "recent"), "{bucket}");
    assert_eq!(weed.keys("team/generations/g000002").len(), 2);

    // Past the grace period (shortened for the test), it goes.
    std::thread::sleep(Duration::from_secs(2));
    let mut short = env.clone();
    short.push(("CODEQ_CLAIM_GRACE_SECS", "1".into()));
    let bucket = gc(&writer, dir.path(), &short);
    assert_eq!(
        strings(&bucket["deleted_generations"]),
        ["g000002"],
        "{bucket}"
    );
    assert_eq!(bucket["deleted_objects"], 2, "{bucket}");
    assert!(bucket["deleted_bytes"].as_u64().unwrap() > 1000, "{bucket}");
    assert!(weed.keys("team/generations/g000002").is_empty());
    assert_eq!(
        kept_for(&bucket, "g000001").unwrap()[0]["reason"],
        "current"
    );

    // The name is free again, and what is published under it answers.
    let generation = publish_a_change(&writer, &root, &env, 1);
    assert_eq!(generation, "g000002");
    let found = answers(&Machine::new(), dir.path(), &env);
    assert!(found[0][0].contains("src/ledger.rs"), "{found:?}");
    eprintln!("took {:?}", started.elapsed());
}
