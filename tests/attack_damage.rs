//! Damage to every file of an index, as a failing disk, a careless `rm` or another user
//! would leave it: each file of the index folder is truncated, garbled, deleted and made
//! unreadable in turn. After each, a query and a `codeq index` run must end in the
//! results of the undamaged index or a clear error that says what to do — never a panic,
//! never different results presented as good ones, never "up to date" on a damaged
//! generation. The last good state survives: a later `codeq index` repairs the index.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use codeq::config::Config;
use codeq::embed::FastEmbedder;
use codeq::index::{self, IndexOptions, NoProgress};
use codeq::search::{self, SearchOptions};
use codeq::store::IndexDir;
use common::{codeq, commit_all, copy_tree, stderr, stdout};

const LIB: &str = r#"//! Refunds.

/// Refunds a payment by reversing its ledger entry.
pub fn refund_payment(ledger: &mut Vec<i64>, index: usize) -> Option<i64> {
    let amount = ledger.get(index).copied()?;
    ledger.push(-amount);
    Some(amount)
}

/// Sums the ledger.
pub fn balance(ledger: &[i64]) -> i64 {
    ledger.iter().sum()
}
"#;

/// A small corpus (a git repository and a loose file), indexed once, with a trace and a
/// backlog entry so that every kind of file an index holds exists.
struct Pristine {
    _home: tempfile::TempDir,
    root: PathBuf,
    index: PathBuf,
    /// Citations the undamaged index answers the probe query with.
    expected: Vec<String>,
}

const PROBE: &str = "refund a payment";

fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("tree");
        std::fs::create_dir_all(root.join("app/src")).unwrap();
        std::fs::write(root.join("app/src/lib.rs"), LIB).unwrap();
        std::fs::write(
            root.join("app/README.md"),
            "# App\n\nRefunds and balances.\n",
        )
        .unwrap();
        std::fs::write(
            root.join("notes.md"),
            "# Notes\n\n- refunds need a ledger\n",
        )
        .unwrap();
        commit_all(&root.join("app"), &[]);
        let out = codeq(&root, &["index", "."]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = codeq(&root, &["ask", PROBE, "--verdict", "1=good"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let index = root.join(".codeq");
        let expected = query(&index).expect("the undamaged index answers");
        assert!(!expected.is_empty());
        Pristine {
            _home: home,
            root,
            index,
            expected,
        }
    })
}

fn embedder() -> &'static Mutex<FastEmbedder> {
    static EMBEDDER: OnceLock<Mutex<FastEmbedder>> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        Mutex::new(FastEmbedder::load(&Config::default().model).expect("the default model"))
    })
}

/// The probe query's citations on the index at `index`, or the error's text.
fn query(index: &Path) -> Result<Vec<String>, String> {
    let dir = IndexDir::open(index).map_err(|e| e.to_string())?;
    let reader = dir.reader().map_err(|e| e.to_string())?;
    let mut embedder = embedder().lock().unwrap_or_else(|e| e.into_inner());
    let results = search::search(
        &reader,
        &mut *embedder,
        None,
        PROBE,
        &SearchOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(results.hits.iter().map(|h| h.chunk.citation()).collect())
}

/// Runs `codeq index` in-process on `root` into `index`; the report's up-to-date flag or
/// the error's text.
fn reindex(root: &Path, index: &Path) -> Result<bool, String> {
    let options = IndexOptions {
        index_dir: Some(index.to_path_buf()),
        ..Config::load_for_root(root)
            .map_err(|e| e.to_string())?
            .index_options(root.to_path_buf())
    };
    let mut embedder = embedder().lock().unwrap_or_else(|e| e.into_inner());
    index::run(&options, &mut *embedder, &NoProgress)
        .map(|report| report.changes.up_to_date)
        .map_err(|e| e.to_string())
}

/// An error a user can act on: it says the index is damaged and how to rebuild it, that it
/// is not an index, or that a file cannot be read for lack of permission.
fn is_clear(message: &str) -> bool {
    (message.contains("is damaged") && message.contains("--rebuild"))
        || message.contains("is not a codeq index")
        || message.contains("permission denied")
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate,
    Garble,
    Delete,
}

fn apply(damage: Damage, file: &Path) {
    match damage {
        Damage::Truncate => {
            let len = std::fs::metadata(file).unwrap().len();
            std::fs::File::options()
                .write(true)
                .open(file)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
        Damage::Garble => {
            let mut bytes = std::fs::read(file).unwrap();
            if bytes.is_empty() {
                bytes = b"\xff\xfe garbage".to_vec();
            }
            let middle = bytes.len() / 2;
            for i in (0..bytes.len().min(16)).chain(middle..(middle + 16).min(bytes.len())) {
                bytes[i] ^= 0xa5;
            }
            std::fs::write(file, bytes).unwrap();
        }
        Damage::Delete => std::fs::remove_file(file).unwrap(),
    }
}

/// One case: damage `rel` in a private copy of the pristine index, then query, then
/// re-index, then query again. Returns what went wrong, if anything.
fn run_case(p: &Pristine, rel: &Path, damage: Damage) -> Option<String> {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("tree");
    copy_tree(&p.root, &root);
    let index = root.join(".codeq");
    apply(damage, &index.join(rel));
    let case = format!("{damage:?} {}", rel.display());
    let outcome = std::panic::catch_unwind(|| {
        match query(&index) {
            Ok(found) if found != p.expected => {
                return Some(format!("the query silently answered {found:?}"));
            }
            Err(message) if !is_clear(&message) => {
                return Some(format!("the query failed unclearly: {message}"));
            }
            _ => {}
        }
        match reindex(&root, &index) {
            // A run that refuses must say why; the index must still be as it was.
            Err(message) if !is_clear(&message) => {
                Some(format!("codeq index failed unclearly: {message}"))
            }
            Err(_) => None,
            Ok(_) => match query(&index) {
                Ok(found) if found == p.expected => None,
                Ok(found) => Some(format!("after codeq index the query answered {found:?}")),
                Err(message) => Some(format!("after codeq index the query failed: {message}")),
            },
        }
    });
    match outcome {
        Ok(problem) => problem.map(|problem| format!("{case}: {problem}")),
        Err(_) => Some(format!("{case}: panicked")),
    }
}

#[test]
fn truncating_garbling_or_deleting_any_file_ends_in_the_same_answer_or_a_clear_error() {
    let p = pristine();
    let files = files_below(&p.index);
    let mut problems = Vec::new();
    let mut cases = 0;
    for rel in &files {
        for damage in [Damage::Truncate, Damage::Garble, Damage::Delete] {
            cases += 1;
            problems.extend(run_case(p, rel, damage));
        }
    }
    eprintln!("damage suite: {cases} cases over {} files", files.len());
    assert!(
        cases >= 75,
        "only {cases} cases: the index has fewer files than expected"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs `codeq` as this user without the power to read others' files: as root (tests in
/// containers often are), through setpriv without the capabilities that bypass file
/// permissions.
fn codeq_without_override(cwd: &Path, args: &[&str]) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set=-dac_override,-dac_read_search", "--"])
            .arg(env!("CARGO_BIN_EXE_codeq"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
    };
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CODEQ_INDEX_DIR")
        .output()
        .expect("run codeq")
}

#[test]
fn an_unreadable_file_is_named_as_a_permission_problem_never_as_damage() {
    use std::os::unix::fs::PermissionsExt;
    let p = pristine();
    let mut problems = Vec::new();
    let mut cases = 0;
    for rel in files_below(&p.index) {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().join("tree");
        copy_tree(&p.root, &root);
        let file = root.join(".codeq").join(&rel);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
        cases += 1;
        let out = codeq_without_override(&root, &["search", PROBE, "--json"]);
        let err = stderr(&out);
        let fine = match out.status.code() {
            Some(0) => {
                let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let found: Vec<String> = value["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["citation"].as_str().unwrap().to_string())
                    .collect();
                found == p.expected
            }
            Some(2) => err.contains("permission denied") && !err.contains("--rebuild"),
            _ => false,
        };
        if !fine || err.contains("panicked") {
            problems.push(format!(
                "{}: search exit {:?}: {err}{}",
                rel.display(),
                out.status.code(),
                stdout(&out)
            ));
        }
        // Indexing either works around the file or stops on the permission problem; it
        // never takes another user's index for a damaged one and builds over it.
        let out = codeq_without_override(&root, &["index", "."]);
        let err = stderr(&out);
        let fine = match out.status.code() {
            Some(0) => !err.contains("building a fresh one"),
            Some(2) => err.contains("permission denied") && !err.contains("--rebuild"),
            _ => false,
        };
        if !fine || err.contains("panicked") {
            problems.push(format!(
                "{}: index exit {:?}: {err}",
                rel.display(),
                out.status.code()
            ));
        }
    }
    eprintln!("permission suite: {cases} cases");
    assert!(cases >= 25, "only {cases} cases");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_damage_makes_the_command_line_print_a_panic_or_a_backtrace() {
    let p = pristine();
    let mut problems = Vec::new();
    let mut cases = 0;
    for rel in files_below(&p.index) {
        for damage in [Damage::Garble, Damage::Truncate] {
            let scratch = tempfile::tempdir().unwrap();
            let root = scratch.path().join("tree");
            copy_tree(&p.root, &root);
            apply(damage, &root.join(".codeq").join(&rel));
            cases += 1;
            let out = codeq(&root, &["search", PROBE]);
            let err = stderr(&out);
            let clean = !err.contains("panicked") && !err.contains("backtrace");
            let sane = match out.status.code() {
                Some(0) => true,
                Some(2) => is_clear(&err),
                _ => false,
            };
            if !clean || !sane {
                problems.push(format!(
                    "{damage:?} {}: exit {:?}: {err}",
                    rel.display(),
                    out.status.code()
                ));
            }
        }
    }
    eprintln!("command-line damage suite: {cases} cases");
    assert!(cases >= 50, "only {cases} cases");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
