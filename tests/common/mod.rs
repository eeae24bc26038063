//! Shared fixtures: a small multi-repo corpus built as real git repositories in a temp dir,
//! indexed once per test binary with the real model, LanceDB and tantivy.
#![allow(dead_code)]

pub mod attack;
pub mod azurite;
pub mod mcp;
pub mod object_server;
pub mod seaweed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use codeq::config::Config;
use codeq::embed::FastEmbedder;
use codeq::index::{self, IndexOptions, IndexReport, NoProgress};
use codeq::search::{self, SearchOptions};
use codeq::store::{ChunkFilter, IndexDir};
use std::sync::OnceLock;

/// The access-control list the adversarial and ACL suites put on the fixture corpus: alice
/// and bob read the payments repositories, carol the search service, dave only README.md of
/// every repository, mallory nothing, admin everything.
pub const ACL: &str = r#"
[acl.groups]
payments = ["alice", "bob"]

[[acl.grant]]
repos = ["payments*"]
read = ["group:payments"]

[[acl.grant]]
repos = ["search-service"]
read = ["carol"]

[[acl.grant]]
repos = ["*"]
paths = ["README.md"]
read = ["dave"]

[[acl.grant]]
repos = ["*"]
read = ["admin"]
"#;

/// The indexed fixture shared by the tests of one binary.
pub struct Fixture {
    /// Parent temp dir (kept alive for the whole test binary).
    pub home: PathBuf,
    /// The corpus root (`home/corpus`).
    pub root: PathBuf,
    /// The index folder (`root/.codeq`).
    pub index_dir: PathBuf,
    /// stdout of the `codeq index --json` run that built it.
    pub index_json: serde_json::Value,
}

/// Builds the corpus and indexes it once per process.
///
/// A static is never dropped, so the folder outlives the test binary; it is named after the
/// process, and each run removes the folders of processes that are gone.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        remove_fixtures_of_dead_processes();
        let home = tempfile::Builder::new()
            .prefix(&format!("{FIXTURE_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("temp dir")
            .keep();
        let root = home.join("corpus");
        build_corpus(&root);
        let out = codeq(&root, &["index", ".", "--json"]);
        assert!(
            out.status.success(),
            "fixture index failed: {}",
            stderr(&out)
        );
        let index_json = serde_json::from_slice(&out.stdout).expect("index --json output");
        Fixture {
            index_dir: root.join(".codeq"),
            home,
            root,
            index_json,
        }
    })
}

const FIXTURE_PREFIX: &str = "codeq-fixture-";

/// Deletes `codeq-fixture-PID-*` folders left by test processes that have exited.
fn remove_fixtures_of_dead_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(FIXTURE_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs the real `codeq` binary in `cwd`.
pub fn codeq(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CODEQ_INDEX_DIR")
        .output()
        .expect("run codeq")
}

/// Runs `codeq ARGS --json` and parses stdout.
/// Gives a child the default action for SIGINT, as a terminal's Ctrl-C meets it: a test
/// run started in the background by a non-interactive shell inherits SIGINT ignored, and
/// a test that stops codeq with SIGINT would then wait forever.
pub fn with_default_sigint(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        })
    }
}

pub fn codeq_json(cwd: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = codeq(cwd, &all);
    let value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, value)
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies a folder recursively (symlinks are recreated, not followed).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(link, &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub const PAYMENTS_LIB: &str = r#"//! Invoices and payments.

use std::collections::HashMap;

/// One line of an invoice.
pub struct LineItem {
    pub description: String,
    pub amount_cents: i64,
    pub quantity: u32,
}

/// An invoice sent to a customer.
pub struct Invoice {
    pub customer: String,
    pub items: Vec<LineItem>,
    pub tax_rate_percent: u32,
}

impl Invoice {
    /// Adds up every line item and applies the tax rate.
    pub fn total_with_tax(&self) -> i64 {
        let subtotal: i64 = self
            .items
            .iter()
            .map(|item| item.amount_cents * item.quantity as i64)
            .sum();
        subtotal + subtotal * self.tax_rate_percent as i64 / 100
    }

    /// Names of the customers' items, for the receipt.
    pub fn descriptions(&self) -> Vec<String> {
        self.items.iter().map(|i| i.description.clone()).collect()
    }
}

/// Refunds a payment by reversing the ledger entries of the original charge.
pub fn refund_payment(ledger: &mut HashMap<String, i64>, payment_id: &str) -> Option<i64> {
    let amount = ledger.remove(payment_id)?;
    let reversal = format!("{payment_id}-refund");
    ledger.insert(reversal, -amount);
    Some(amount)
}
"#;

pub const FRAUD_SCORING: &str = r#""""Fraud scoring for card transactions."""

SUSPICIOUS_COUNTRIES = {"XX", "YY"}


class FraudScorer:
    """Scores transactions by how likely they are fraudulent."""

    def __init__(self, threshold):
        self.threshold = threshold

    def score_transaction(self, transaction):
        """Return a risk score between 0 and 1 for one card transaction."""
        score = 0.0
        if transaction["country"] in SUSPICIOUS_COUNTRIES:
            score += 0.5
        if transaction["amount"] > 10_000:
            score += 0.3
        return min(score, 1.0)

    def is_fraud(self, transaction):
        return self.score_transaction(transaction) >= self.threshold
"#;

pub const SEARCH_QUERY: &str = r#""""Query parsing and ranking for the search service."""

import math


def parse_query_string(raw):
    """Split a user's query into lowercase terms, dropping punctuation."""
    cleaned = "".join(c if c.isalnum() else " " for c in raw)
    return [term.lower() for term in cleaned.split() if term]


def rank_documents(terms, documents):
    """Order documents by tf-idf similarity to the query terms."""
    scores = {}
    for doc_id, words in documents.items():
        score = 0.0
        for term in terms:
            tf = words.count(term)
            if tf:
                score += tf * math.log(1 + len(documents) / (1 + tf))
        scores[doc_id] = score
    return sorted(scores, key=scores.get, reverse=True)
"#;

/// Creates the corpus:
///
/// ```text
/// corpus/
///   codeq.toml                  max_file_bytes = 20000, write_batch = 4
///   payments/                   git repo (Rust)
///     src/lib.rs  src/legacy.txt (Latin-1)  assets/logo.bin (binary)
///     data/big.txt (oversized)  build/ (git-ignored)  loop -> . (symlink loop)
///     dangling -> missing (broken symlink)
///     plugins/fraud/            nested git repo (Python)
///   search-service/             git repo (Python) with node_modules/
///   notes/todo.md               outside any repo
/// ```
pub fn build_corpus(root: &Path) {
    let write = |rel: &str, bytes: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write(
        "codeq.toml",
        b"[index]\nmax_file_bytes = 20000\nwrite_batch = 4\n",
    );
    write("payments/src/lib.rs", PAYMENTS_LIB.as_bytes());
    write(
        "payments/src/legacy.txt",
        b"Caf\xe9 receipts are printed in Latin-1 by the old till.\n",
    );
    write(
        "payments/assets/logo.bin",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    );
    write(
        "payments/data/big.txt",
        "all work and no play\n".repeat(2000).as_bytes(),
    );
    write("payments/.gitignore", b"build/\n");
    write(
        "payments/build/generated.rs",
        b"pub fn generated_by_build_script() {}\n",
    );
    write(
        "payments/README.md",
        b"# Payments\n\nInvoices, refunds and the ledger.\n",
    );
    std::os::unix::fs::symlink(".", root.join("payments/loop")).unwrap();
    std::os::unix::fs::symlink("missing-target", root.join("payments/dangling")).unwrap();
    write(
        "payments/plugins/fraud/fraud/scoring.py",
        FRAUD_SCORING.as_bytes(),
    );
    write("search-service/service/query.py", SEARCH_QUERY.as_bytes());
    write(
        "search-service/README.md",
        b"# Search service\n\nQuery parsing and ranking.\n",
    );
    write(
        "search-service/node_modules/leftpad/index.js",
        b"module.exports = function leftpad() {};\n",
    );
    write(
        "notes/todo.md",
        b"# Todo\n\n- rotate the payment gateway keys\n",
    );

    commit_all(&root.join("payments/plugins/fraud"), &[]);
    commit_all(&root.join("payments"), &["plugins"]);
    commit_all(&root.join("search-service"), &["node_modules"]);
}

/// `git init` + commit of every file (except `skip` prefixes), with a fixed identity.
pub fn commit_all(dir: &Path, skip: &[&str]) {
    let repo = git2::Repository::init(dir).unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(
            ["*"],
            git2::IndexAddOption::DEFAULT,
            Some(&mut |path: &Path, _: &[u8]| {
                if skip.iter().any(|s| path.starts_with(s)) {
                    1
                } else {
                    0
                }
            }),
        )
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("codeq tests", "tests@codeq.invalid").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, "fixture", &tree, &parents)
        .unwrap();
}

/// A private copy of the indexed fixture (repositories and index), and the model.
pub struct Workspace {
    _dir: tempfile::TempDir,
    /// The corpus root.
    pub root: PathBuf,
    /// The real model.
    pub embedder: FastEmbedder,
}

impl Workspace {
    /// Copies the fixture and records it at its new root.
    pub fn new() -> Workspace {
        let fx = fixture();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        copy_tree(&fx.root, &root);
        let config = Config::load_for_root(&root).unwrap();
        let embedder = FastEmbedder::load(&config.model).unwrap();
        age_tree(&root, 120);
        let mut ws = Workspace {
            _dir: dir,
            root,
            embedder,
        };
        // The copy lives at another root: the first run records it (and embeds nothing).
        let relocated = ws.index(false);
        assert_eq!(
            relocated.changes.vectors_embedded, 0,
            "{:?}",
            relocated.changes
        );
        ws
    }

    /// The index folder.
    pub fn index_dir(&self) -> PathBuf {
        self.root.join(".codeq")
    }

    /// Runs `codeq index` in-process.
    pub fn index(&mut self, rebuild: bool) -> IndexReport {
        let options = IndexOptions {
            rebuild,
            ..Config::load_for_root(&self.root)
                .unwrap()
                .index_options(self.root.clone())
        };
        index::run(&options, &mut self.embedder, &NoProgress).unwrap()
    }

    /// Writes a file of the corpus.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Citations of the top hits for `query` in the current generation.
    pub fn search(&mut self, query: &str) -> Vec<String> {
        let reader = IndexDir::open(&self.index_dir()).unwrap().reader().unwrap();
        let results = search::search(
            &reader,
            &mut self.embedder,
            None,
            query,
            &SearchOptions::default(),
        )
        .unwrap();
        results.hits.iter().map(|h| h.chunk.citation()).collect()
    }

    /// Asserts both lanes hold the same chunks as the manifest says.
    pub fn assert_consistent(&self) {
        let reader = IndexDir::open(&self.index_dir()).unwrap().reader().unwrap();
        let counts = reader.lane_counts(&ChunkFilter::everything()).unwrap();
        assert_eq!(counts.bm25_docs, counts.vectors);
        assert_eq!(counts.vectors, reader.manifest().totals.chunks);
    }

    /// Runs git in one repository of the corpus.
    pub fn git(&self, repo: &str, args: &[&str]) {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .current_dir(self.root.join(repo))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sets a file's modification time `seconds` into the past (out of the racy window).
pub fn age_file(path: &Path, seconds: u64) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Ages every regular file below `dir` (not following symlinks).
pub fn age_tree(dir: &Path, seconds: u64) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            age_tree(&entry.path(), seconds);
        } else if kind.is_file() {
            age_file(&entry.path(), seconds);
        }
    }
}

/// Checks `value` against the subset of JSON Schema that `docs/schemas/*.schema.json` use
/// (type, const, enum, required, properties, items); returns every violation.
pub fn schema_violations(
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut out = Vec::new();
    let type_ok = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => out.push(format!("{at}: expected {t}, got {value}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""))) => {
            out.push(format!("{at}: expected one of {ts:?}, got {value}"))
        }
        _ => {}
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        out.push(format!("{at}: expected {c}, got {value}"));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            if !object.contains_key(key) {
                out.push(format!("{at}: missing {key}"));
            }
        }
        for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(v) = object.get(key) {
                out.extend(schema_violations(sub, v, &format!("{at}.{key}")));
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            out.extend(schema_violations(items, v, &format!("{at}[{i}]")));
        }
    }
    out
}

/// Asserts that `value` matches `docs/schemas/NAME.schema.json`.
pub fn assert_schema(name: &str, value: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schemas")
        .join(format!("{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let violations = schema_violations(&schema, value, name);
    assert!(
        violations.is_empty(),
        "{} does not match {}:\n{}",
        name,
        path.display(),
        violations.join("\n")
    );
}
