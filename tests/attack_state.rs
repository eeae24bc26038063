//! State that outlives one command, attacked: what a run leaves for the next (the ACL
//! requirement, across runs, flags, damage and watch mode) and what one principal's
//! queries leave in the index folder (backlog verdicts, traces, status, the TUI's status
//! bar, coverage notes) must never open the index up or show one principal what another
//! could read. (The model and the schema carried across runs are attacked in
//! tests/bad_input.rs: a different model or a newer schema is refused until --rebuild.)

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codeq::session::{SessionOptions, SharedIndex};
use codeq::store::IndexDir;
use codeq::tui::SessionInfo;
use common::{ACL, codeq, codeq_json, copy_tree, fixture, stderr, stdout};

const BASE_CONFIG: &str = "[index]\nmax_file_bytes = 20000\nwrite_batch = 4\n";

/// A private copy of the indexed fixture corpus.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        copy_tree(&fixture().root, &root);
        let tree = Tree { _dir: dir, root };
        tree.configure(BASE_CONFIG, false);
        tree
    }

    /// Writes codeq.toml: `base` and, with `acl`, the ACL.
    fn configure(&self, base: &str, acl: bool) {
        let text = if acl {
            format!("{base}{ACL}")
        } else {
            base.to_string()
        };
        std::fs::write(self.root.join("codeq.toml"), text).unwrap();
    }

    fn index_dir(&self) -> PathBuf {
        self.root.join(".codeq")
    }

    fn current(&self) -> String {
        std::fs::read_to_string(self.index_dir().join("CURRENT")).unwrap()
    }

    fn acl_required(&self) -> bool {
        let reader = IndexDir::open(&self.index_dir()).unwrap().reader().unwrap();
        reader.manifest().acl_required
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        codeq(&self.root, args)
    }
}

/// The question set about the fixture corpus.
fn fixture_set() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("eval-questions/fixture.toml")
        .to_string_lossy()
        .into_owned()
}

/// Runs `codeq ARGS` and waits at most `limit` for it to exit on its own.
fn run_with_deadline(root: &Path, args: &[&str], limit: Duration) -> Option<std::process::Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// One refused run: exit 2, the ACL message naming --drop-acl, nothing published.
fn assert_refused(tree: &Tree, out: &std::process::Output, context: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{context}: {err}");
    assert!(
        err.contains("built under an access-control list") && err.contains("--drop-acl"),
        "{context}: {err}"
    );
    assert!(!err.contains("panicked"), "{context}: {err}");
    let _ = tree;
}

#[test]
fn the_acl_requirement_carries_over_every_run_until_dropped_on_purpose() {
    let tree = Tree::new();
    let mut cases = 0;

    tree.configure(BASE_CONFIG, true);
    let out = tree.run(&["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tree.acl_required());
    let published = tree.current();

    // The ACL goes missing: no run and no query opens the index up.
    tree.configure(BASE_CONFIG, false);
    let set = fixture_set();
    for args in [
        &["index", "."][..],
        &["search", "refund_payment", "--as", "mallory"],
        &["ask", "refund_payment", "--as", "mallory"],
        &["status", "--as", "mallory"],
        &["eval", &set],
        &["trace", "--last"],
    ] {
        cases += 1;
        let out = tree.run(args);
        assert_refused(&tree, &out, &format!("{args:?}"));
        assert_eq!(tree.current(), published, "{args:?} published");
    }
    // A real change does not make a way around it either, nor does watch mode.
    std::fs::write(tree.root.join("notes/todo.md"), "# Todo\n\n- changed\n").unwrap();
    cases += 1;
    assert_refused(&tree, &tree.run(&["index", "."]), "index after a change");
    cases += 1;
    let watched = run_with_deadline(
        &tree.root,
        &["index", ".", "--watch"],
        Duration::from_secs(120),
    )
    .expect("index --watch kept running although its first run must be refused");
    assert_refused(&tree, &watched, "index --watch");
    assert_eq!(tree.current(), published);
    // An MCP server without the ACL does not start.
    cases += 1;
    let out = tree.run(&["mcp"]);
    assert_refused(&tree, &out, "mcp");

    // The ACL in a file given with --acl counts the same; forgetting the flag is refused.
    let acl_file = tree.root.join("access.toml");
    std::fs::write(&acl_file, ACL).unwrap();
    cases += 1;
    let out = tree.run(&["index", ".", "--acl", acl_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tree.acl_required());
    cases += 1;
    assert_refused(&tree, &tree.run(&["index", "."]), "index without --acl");

    // A damaged current manifest cannot hide that an earlier generation required the ACL.
    let current = tree.current();
    let manifest = tree
        .index_dir()
        .join("generations")
        .join(current.trim())
        .join("manifest.json");
    let good = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, b"{ damaged").unwrap();
    cases += 1;
    let out = tree.run(&["index", "."]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("access-control list"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&manifest, good).unwrap();

    // Only an explicit --rebuild or --drop-acl opens it, and says what that means.
    cases += 1;
    let out = tree.run(&["index", ".", "--rebuild"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("every principal will see every repository"),
        "{}",
        stderr(&out)
    );
    assert!(!tree.acl_required());
    tree.configure(BASE_CONFIG, true);
    cases += 1;
    assert!(tree.run(&["index", "."]).status.success());
    assert!(tree.acl_required());
    tree.configure(BASE_CONFIG, false);
    cases += 1;
    let out = tree.run(&["index", ".", "--drop-acl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!tree.acl_required());
    cases += 1;
    let (out, found) = codeq_json(&tree.root, &["search", "refund_payment", "--as", "mallory"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(found["access"]["mode"], "single_user", "{found}");
    assert!(stderr(&out).contains("has no effect"), "{}", stderr(&out));
    eprintln!("ACL carry-over suite: {cases} cases");
}

#[test]
fn what_one_principal_leaves_behind_no_other_can_read() {
    let tree = Tree::new();
    tree.configure(BASE_CONFIG, true);
    assert!(tree.run(&["index", "."]).status.success());
    let marker = "alice-marker-7731";
    let question = format!("refund_payment for the {marker} ledger");
    let out = tree.run(&["ask", &question, "--verdict", "1=good", "--as", "alice"]);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        stderr(&out)
    );
    let (_, alice_search) = codeq_json(&tree.root, &["search", &question, "--as", "alice"]);
    let alice_trace = alice_search["trace_id"].as_str().unwrap().to_string();
    // A verdict from before verdicts carried their principal belongs to nobody.
    let backlog = tree.index_dir().join("backlog.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&backlog)
        .unwrap();
    writeln!(
        file,
        "{{\"question\":\"legacy-marker-5512\",\"repo\":\"payments\",\"path\":\"src/lib.rs\",\"citation\":\"payments:src/lib.rs:1-2\",\"verdict\":\"good\"}}"
    )
    .unwrap();
    drop(file);
    // One damaged line in the trace log hides nothing else.
    let traces = tree.index_dir().join("traces.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&traces)
        .unwrap();
    file.write_all(b"{\"id\": \"\xff\xfe\"}\n").unwrap();
    drop(file);

    let set = fixture_set();
    let set = set.as_str();
    let mut cases = 0;
    for principal in ["carol", "dave", "mallory", "bob"] {
        for args in [
            vec!["eval", set],
            vec!["eval", set, "--json"],
            vec!["trace", "--last"],
            vec!["trace", "--last", "--json"],
            vec!["trace", &alice_trace],
            vec!["status"],
            vec!["status", "--json"],
        ] {
            cases += 1;
            let mut args = args.clone();
            args.extend(["--as", principal]);
            let out = tree.run(&args);
            let shown = format!("{}{}", stdout(&out), stderr(&out));
            for secret in [marker, "legacy-marker-5512"] {
                assert!(!shown.contains(secret), "{principal} {args:?}: {shown}");
            }
            assert!(!shown.contains("panicked"), "{principal} {args:?}: {shown}");
        }
    }
    // bob shares alice's access but not her questions; alice sees her own, and her trace
    // survives the damaged line.
    let out = tree.run(&["eval", set, "--as", "alice"]);
    assert!(stdout(&out).contains(marker), "{}", stdout(&out));
    assert!(!stdout(&out).contains("legacy-marker-5512"));
    let (out, _) = codeq_json(&tree.root, &["trace", "--last", "--as", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, trace) = codeq_json(&tree.root, &["trace", &alice_trace, "--as", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(trace["trace"]["id"], alice_trace.as_str());
    let out = tree.run(&["trace", "--last", "--as", "erin"]);
    assert!(
        stderr(&out).contains("no trace of yours"),
        "{}",
        stderr(&out)
    );

    // The TUI's status bar: staleness only of repositories read whole.
    std::fs::write(tree.root.join("payments/CHANGELOG.md"), "moved on\n").unwrap();
    common::commit_all(&tree.root.join("payments"), &["plugins"]);
    let index = SharedIndex::open(&SessionOptions {
        index_dir: Some(tree.index_dir()),
        ..SessionOptions::default()
    })
    .unwrap();
    let bar = |principal: &str| SessionInfo::of(&index.session(Some(principal)).unwrap());
    cases += 2;
    assert_eq!(bar("alice").stale_repos, 1, "alice reads payments whole");
    assert_eq!(
        bar("dave").stale_repos,
        0,
        "dave reads only README.md of payments"
    );
    eprintln!("leftover-artefact suite: {cases} cases");
}

#[test]
fn pending_vectors_are_reported_only_where_the_principal_sees_them() {
    let tree = Tree::new();
    // Every run publishes BM25 first and embeds one chunk per round behind it.
    let slow = format!("{BASE_CONFIG}lexical_first_files = 0\nembed_round = 1\n");
    tree.configure(&slow, true);
    assert!(tree.run(&["index", "."]).status.success());
    let mut extra = String::new();
    for i in 0..150 {
        extra.push_str(&format!("def helper_{i}(x):\n    return x + {i}\n\n\n"));
    }
    std::fs::write(tree.root.join("search-service/service/extra.py"), extra).unwrap();
    // Stop the run as soon as the lexical generation is queryable: the new chunks, all in
    // the search service, wait for their vectors.
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(["index", "."])
        .current_dir(&tree.root)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap());
    for line in lines.lines() {
        if line.unwrap().contains("queryable now") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let (_, carol) = codeq_json(&tree.root, &["search", "helper", "--as", "carol"]);
    let coverage = carol["vector_coverage"]
        .as_f64()
        .expect("carol waits for vectors");
    assert!(coverage < 1.0, "{carol}");
    for principal in ["alice", "bob"] {
        for command in ["search", "ask"] {
            let (out, value) = codeq_json(&tree.root, &[command, "refund", "--as", principal]);
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "{}",
                stderr(&out)
            );
            let coverage = match command {
                "search" => &value["vector_coverage"],
                _ => &value["answer"]["vector_coverage"],
            };
            assert!(coverage.is_null(), "{principal} {command}: {value}");
            let human = stdout(&codeq(&tree.root, &[command, "refund", "--as", principal]));
            assert!(!human.contains("vectors cover"), "{principal}: {human}");
        }
    }
}
