//! Every way text, a path or an id enters codeq, attacked: a crafted manifest, citations
//! that try to leave what was indexed, the environment of a served process, repository
//! ids that could collide, control characters in indexed code, paths and repository
//! names, pathological input for every grammar, and the errors careless input gets. Each
//! must end in a clear error or a skip: never a file outside the index, another
//! principal's data, a driven terminal or a panic.

mod common;

use std::path::PathBuf;

use codeq::chunk::{self, ChunkLimits, Chunker, FileInput, MAX_SYMBOL_CHARS};
use common::mcp::Client;
use common::{codeq, codeq_json, commit_all, copy_tree, fixture, stderr, stdout};
use serde_json::{Value, json};

const ACL: &str = r#"
[[acl.grant]]
repos = ["payments*"]
read = ["alice"]

[[acl.grant]]
repos = ["search-service"]
read = ["carol"]
"#;

/// Text that lives outside the indexed root and must never be shown.
const OUTSIDE_SECRET: &str = "TOP-SECRET-OUTSIDE-4471";

/// A private copy of the fixture corpus, re-indexed at its new place, with a secret file
/// beside (not inside) the root.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new(acl: bool) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        copy_tree(&fixture().root, &root);
        std::fs::create_dir_all(dir.path().join("outside/src")).unwrap();
        std::fs::write(
            dir.path().join("outside/src/lib.rs"),
            format!("// {OUTSIDE_SECRET}\n").repeat(5),
        )
        .unwrap();
        let mut config = "[index]\nmax_file_bytes = 200000\nwrite_batch = 4\n".to_string();
        if acl {
            config.push_str(ACL);
        }
        std::fs::write(root.join("codeq.toml"), config).unwrap();
        let out = codeq(&root, &["index", "."]);
        assert!(out.status.success(), "{}", stderr(&out));
        Tree { _dir: dir, root }
    }

    fn manifest_path(&self) -> PathBuf {
        let current = std::fs::read_to_string(self.root.join(".codeq/CURRENT")).unwrap();
        self.root
            .join(".codeq/generations")
            .join(current.trim())
            .join("manifest.json")
    }
}

fn assert_never_shows(out: &std::process::Output, secrets: &[&str], context: &str) {
    let shown = format!("{}{}", stdout(out), stderr(out));
    for secret in secrets {
        assert!(
            !shown.contains(secret),
            "{context}: shows {secret:?}: {shown}"
        );
    }
    assert!(!shown.contains("panicked"), "{context}: {shown}");
}

#[test]
fn a_crafted_manifest_cannot_point_a_repository_outside_the_root() {
    let tree = Tree::new(false);
    let manifest = tree.manifest_path();
    let good: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let mut cases = 0;
    let crafted: Vec<(&str, Craft)> = vec![
        (
            "parent",
            Box::new(|m| set_repo_path(m, "payments", "../outside")),
        ),
        (
            "absolute",
            Box::new(|m| set_repo_path(m, "payments", "/etc")),
        ),
        (
            "absolute outside",
            Box::new(|m| set_repo_path(m, "payments", "/tmp")),
        ),
        (
            "inner parent",
            Box::new(|m| set_repo_path(m, "payments", "payments/../../outside")),
        ),
        (
            "dot",
            Box::new(|m| set_repo_path(m, "payments", "./payments")),
        ),
        (
            "empty segment",
            Box::new(|m| set_repo_path(m, "payments", "payments//src")),
        ),
        ("relative root", Box::new(|m| m["root"] = json!("corpus"))),
        (
            "duplicate id",
            Box::new(|m| {
                let first = m["repos"][0]["id"].clone();
                m["repos"][1]["id"] = first;
            }),
        ),
    ];
    for (name, craft) in &crafted {
        let mut m = good.clone();
        craft(&mut m);
        std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        for args in [
            &["search", "refund_payment"][..],
            &["ask", "refund_payment"],
            &["status"],
            &["mcp"],
        ] {
            cases += 1;
            let out = codeq(&tree.root, args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} {args:?}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("is damaged"),
                "{name}: {}",
                stderr(&out)
            );
            assert_never_shows(&out, &[OUTSIDE_SECRET], name);
        }
    }
    std::fs::write(&manifest, serde_json::to_vec(&good).unwrap()).unwrap();
    assert!(
        codeq(&tree.root, &["search", "refund_payment"])
            .status
            .success()
    );
    eprintln!("crafted-manifest suite: {cases} cases");
}

/// A change made to a manifest.
type Craft = Box<dyn Fn(&mut Value)>;

fn set_repo_path(manifest: &mut Value, id: &str, path: &str) {
    for repo in manifest["repos"].as_array_mut().unwrap() {
        if repo["id"] == id {
            repo["path"] = json!(path);
        }
    }
}

#[test]
fn citations_cannot_reach_past_what_the_principal_may_read() {
    let tree = Tree::new(true);
    let payments_line = "//! Invoices and payments.";
    // (citation, who, what must come back: Some(text in the lines) or None for an error)
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("payments:src/lib.rs:1-1", "alice", Some(payments_line)),
        ("payments:src/lib.rs:1", "alice", Some(payments_line)),
        ("payments:src/lib.rs:1-1", "carol", None),
        ("payments:src/../src/lib.rs:1-1", "alice", None),
        (
            "payments:../search-service/service/query.py:1-3",
            "alice",
            None,
        ),
        ("payments:../../outside/src/lib.rs:1-3", "alice", None),
        ("payments:/etc/passwd:1-1", "alice", None),
        ("payments://etc/passwd:1-1", "alice", None),
        (
            "payments:%2e%2e/search-service/service/query.py:1-1",
            "alice",
            None,
        ),
        ("payments:src/lib.rs\u{0}:1-1", "alice", None),
        (
            "payments/../search-service:service/query.py:1-3",
            "alice",
            None,
        ),
        ("payments/plugins:fraud/fraud/scoring.py:1-1", "carol", None),
        ("search-service:../payments/src/lib.rs:1-5", "carol", None),
        ("search-service:service/query.py:1-1", "alice", None),
        (".:notes/todo.md:1-1", "alice", None),
        ("corpus:notes/todo.md:1-1", "alice", None),
        (":src/lib.rs:1-1", "alice", None),
        ("payments:src/lib.rs:0-0", "alice", None),
        ("payments:src/lib.rs:2-1", "alice", None),
        ("payments:src/lib.rs:1-99999", "alice", None),
        ("payments:src/lib.rs:1-18446744073709551616", "alice", None),
        ("payments:src/lib.rs:-1-2", "alice", None),
        ("payments:src/lib.rs:a-b", "alice", None),
        ("payments:src/lib.rs", "alice", None),
        ("payments:src/legacy.txt:1-1", "carol", None),
        ("payments:loop/src/lib.rs:1-1", "alice", None),
        ("payments:dangling:1-1", "alice", None),
        ("payments:build/generated.rs:1-1", "alice", None),
        ("*:src/lib.rs:1-1", "alice", None),
        ("payments*:src/lib.rs:1-1", "carol", None),
    ];
    let mut clients = std::collections::HashMap::new();
    for principal in ["alice", "carol"] {
        let mut client = Client::start(&tree.root, &["--as", principal]);
        client.initialize("2025-06-18");
        clients.insert(principal, client);
    }
    for (citation, principal, expected) in &cases {
        let client = clients.get_mut(principal).unwrap();
        let (error, value) = client.call("read_citation", json!({"citation": citation}));
        let shown = value.to_string();
        assert!(!shown.contains(OUTSIDE_SECRET), "{citation}: {shown}");
        match expected {
            Some(text) => {
                assert!(!error, "{principal} {citation}: {shown}");
                assert!(value["text"].as_str().unwrap().contains(text), "{shown}");
            }
            None => {
                assert!(error, "{principal} {citation} was answered: {shown}");
                if *principal == "carol" {
                    assert!(!shown.contains("Invoices"), "{citation}: {shown}");
                }
            }
        }
    }
    // A reversed range is named as such, not as lines outside the file.
    let alice = clients.get_mut("alice").unwrap();
    let (_, value) = alice.call(
        "read_citation",
        json!({"citation": "payments:src/lib.rs:2-1"}),
    );
    assert!(
        value.as_str().unwrap().contains("may not be after END"),
        "{value}"
    );
    eprintln!("citation suite: {} cases", cases.len());
}

#[test]
fn a_served_process_takes_its_index_and_principal_from_flags_only() {
    let tree = Tree::new(true);
    let other = Tree::new(false);
    let other_index = other.root.join(".codeq");
    let env = [
        ("CODEQ_INDEX_DIR", other_index.to_str().unwrap()),
        ("CODEQ_USER", "alice"),
    ];
    let mut client = Client::start_with_env(&tree.root, &[], &env);
    client.initialize("2025-06-18");
    let (error, status) = client.call("status", json!({}));
    assert!(!error, "{status}");
    // The index found from the working folder, not the one the environment named, and the
    // OS user, not the environment's principal: under the ACL, not alice.
    assert_eq!(
        status["index_dir"].as_str().unwrap(),
        tree.root.join(".codeq").to_str().unwrap()
    );
    assert_ne!(status["access"]["principal"], "alice", "{status}");
    let (_, found) = client.call("search", json!({"query": "refund_payment"}));
    assert!(!found.to_string().contains("refund_payment("), "{found}");
    // Arguments that name a principal are refused.
    for key in ["as", "user", "principal", "as_user"] {
        let (error, text) = client.call("search", json!({"query": "x", key: "alice"}));
        assert!(error, "{key}: {text}");
    }
    drop(client);
    // Flags still choose them.
    let mut client = Client::start(&tree.root, &["--as", "alice"]);
    client.initialize("2025-06-18");
    let (_, status) = client.call("status", json!({}));
    assert_eq!(status["access"]["principal"], "alice", "{status}");
    // The note on stderr says what was ignored.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
        .arg("mcp")
        .current_dir(&tree.root)
        .envs(env)
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("CODEQ_INDEX_DIR is ignored")
            && stderr(&out).contains("CODEQ_USER is ignored"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn files_outside_any_repository_never_share_an_id_with_one() {
    // The root folder is called `corpus` and holds a repository at `corpus/`: before,
    // the loose files' id was the root's name, so both were `corpus`.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    std::fs::create_dir_all(root.join("corpus/src")).unwrap();
    std::fs::write(root.join("notes.md"), "# Notes\n\nloosemarker lives here\n").unwrap();
    std::fs::write(
        root.join("corpus/src/notes.md"),
        "# Nested\n\nnestedmarker lives here\n",
    )
    .unwrap();
    std::fs::write(
        root.join("corpus/notes.md"),
        "# Same path\n\nsamepathmarker\n",
    )
    .unwrap();
    commit_all(&root.join("corpus"), &[]);
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, status) = codeq_json(&root, &["status"]);
    let mut ids: Vec<&str> = status["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [".", "corpus"], "{status}");
    // notes.md of the root and notes.md of the nested repository are two files.
    for (query, citation) in [
        ("loosemarker", ".:notes.md:"),
        ("samepathmarker", "corpus:notes.md:"),
        ("nestedmarker", "corpus:src/notes.md:"),
    ] {
        let (_, found) = codeq_json(&root, &["search", query, "-k", "1"]);
        let first = found["results"][0]["citation"].as_str().unwrap_or_default();
        assert!(first.starts_with(citation), "{query}: {found}");
    }
    // A grant for the repository `corpus` does not hand out the loose files.
    std::fs::write(
        root.join("codeq.toml"),
        "[[acl.grant]]\nrepos = [\"corpus\"]\nread = [\"alice\"]\n",
    )
    .unwrap();
    assert!(codeq(&root, &["index", "."]).status.success());
    let out = codeq(&root, &["search", "loosemarker", "--as", "alice"]);
    assert!(
        !stdout(&out).contains("loosemarker lives"),
        "{}",
        stdout(&out)
    );

    // A root repository named like a nested one is refused, naming both folders.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(root.join("app/lib.rs"), "fn lib() {}\n").unwrap();
    commit_all(&root.join("app"), &[]);
    commit_all(&root, &["app"]);
    let out = codeq(&root, &["index", "."]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("would both have the id \"app\"") && err.contains("app/app"),
        "{err}"
    );
    assert!(!root.join(".codeq/CURRENT").exists());
}

/// Every character a terminal acts on: C0 but tab, newline and NUL (which makes a file
/// binary), DEL and C1.
fn terminal_controls() -> Vec<char> {
    (1u8..0x20)
        .filter(|b| *b != b'\t' && *b != b'\n')
        .map(char::from)
        .chain(std::iter::once('\u{7f}'))
        .chain((0x80u32..0xa0).filter_map(char::from_u32))
        .collect()
}

/// True when `text` holds a character a terminal would act on.
fn drives_a_terminal(text: &str) -> Option<char> {
    text.chars().find(|c| terminal_controls().contains(c))
}

#[test]
fn control_characters_in_code_paths_and_ids_never_reach_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let controls: String = terminal_controls().into_iter().collect();
    // One file per language with every control character on its first lines (comment,
    // string, docstring), one whose path holds an escape sequence, and a repository whose
    // folder name does.
    let mut languages: Vec<(String, String)> = chunk::grammar_languages()
        .into_iter()
        .map(|(name, ext)| (name.to_string(), ext.to_string()))
        .collect();
    languages.extend([
        ("markdown".into(), "md".into()),
        ("text".into(), "txt".into()),
    ]);
    for (name, ext) in &languages {
        let body = match name.as_str() {
            "python" => format!(
                "def ctlmark_{name}():\n    \"\"\"ctlmark {controls}\"\"\"\n    return \"{controls}\"\n"
            ),
            "rust" => format!(
                "/// ctlmark {controls}\nfn ctlmark_{name}() -> &'static str {{\n    \"{controls}\"\n}}\n"
            ),
            _ => format!("ctlmark_{name} {controls}\nctlmark {controls}\n"),
        };
        let path = root.join(format!("src/ctl_{name}.{ext}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    std::fs::write(
        root.join("src/evil\u{1b}[2J\u{9b}31m.md"),
        "ctlmark pathfile\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("repo\u{1b}]52;c;QUFB\u{7}")).unwrap();
    std::fs::write(
        root.join("repo\u{1b}]52;c;QUFB\u{7}/ctl.md"),
        "ctlmark repofile\n",
    )
    .unwrap();
    commit_all(&root.join("repo\u{1b}]52;c;QUFB\u{7}"), &[]);
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut outputs = Vec::new();
    for args in [
        vec!["search", "ctlmark", "-k", "50"],
        vec!["ask", "ctlmark", "-k", "50"],
        vec!["trace", "--last"],
        vec!["status"],
        vec!["search", "pathfile"],
        vec!["search", "repofile"],
        vec!["search", "zz", "--repo", "nope\u{1b}[2J"],
    ] {
        let out = codeq(&root, &args);
        for (stream, text) in [("stdout", stdout(&out)), ("stderr", stderr(&out))] {
            if let Some(c) = drives_a_terminal(&text) {
                panic!("{args:?} {stream} holds {c:?}:\n{text}");
            }
        }
        outputs.push(stdout(&out));
    }
    let all = outputs.join("\n");
    // What was escaped is still shown, visibly.
    for visible in ["\\x1b", "\\x07", "\\u{9b}", "\\x0d"] {
        assert!(all.contains(visible), "{visible} is not shown:\n{all}");
    }
    // --json keeps the exact text.
    let (_, found) = codeq_json(&root, &["search", "ctlmark", "-k", "50"]);
    let exact = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|hit| hit["snippet"].as_str().unwrap().contains(&controls))
        .count();
    let cases = languages.len() * terminal_controls().len();
    assert!(exact >= languages.len(), "{exact} exact snippets: {found}");
    let (_, found) = codeq_json(&root, &["search", "pathfile"]);
    assert!(found.to_string().contains("evil\\u001b[2J"), "{found}");
    eprintln!(
        "control-character suite: {cases} cases ({} languages x {} characters), 7 outputs",
        languages.len(),
        terminal_controls().len()
    );
}

/// Inputs that make parsers and chunkers work hardest, for one language: deep nesting,
/// one huge line, thousands of tiny definitions, unterminated constructs, long names.
fn pathological_inputs(language: &str) -> Vec<(&'static str, String)> {
    let depth = 5000;
    let nested = match language {
        "python" => {
            let mut s = String::new();
            for i in 0..400 {
                s.push_str(&" ".repeat(i * 2));
                s.push_str(&format!("class C{i}:\n"));
            }
            s.push_str(&" ".repeat(800));
            s.push_str("pass\n");
            s
        }
        "rust" => format!(
            "{}fn innermost() {{}}\n{}",
            (0..depth)
                .map(|i| format!("mod m{i} {{\n"))
                .collect::<String>(),
            "}\n".repeat(depth)
        ),
        _ => format!("{}x{}", "{".repeat(depth), "}".repeat(depth)),
    };
    let tiny = match language {
        "python" => (0..20_000).map(|i| format!("def f{i}(): pass\n")).collect(),
        "rust" => (0..20_000).map(|i| format!("fn f{i}() {{}}\n")).collect(),
        _ => (0..20_000).map(|i| format!("f{i}\n")).collect(),
    };
    let long_name = match language {
        "python" => format!("def {}():\n    pass\n", "a".repeat(100_000)),
        "rust" => format!("impl {}<T> {{ fn f() {{}} }}\n", "A".repeat(100_000)),
        _ => "a".repeat(100_000),
    };
    vec![
        ("deep nesting", nested),
        (
            "deep brackets",
            format!("x = {}1{}\n", "(".repeat(depth), ")".repeat(depth)),
        ),
        (
            "one huge line",
            format!("x = \"{}\"\n", "y".repeat(1_000_000)),
        ),
        ("tiny definitions", tiny),
        ("long name", long_name),
        (
            "unterminated",
            "fn f() { \" /* (( [[ \"\"\" '''".repeat(1000),
        ),
        ("only newlines", "\n".repeat(100_000)),
        ("invalid after recovery", "\u{fffd}".repeat(50_000)),
    ]
}

#[test]
fn pathological_input_for_every_grammar_is_chunked_without_a_panic() {
    let chunker = Chunker::new(ChunkLimits::default());
    let mut cases = 0;
    let mut languages: Vec<(&str, &str)> = chunk::grammar_languages();
    languages.push(("markdown", "md"));
    for (language, ext) in languages {
        for (name, text) in pathological_inputs(language) {
            cases += 1;
            let path = format!("src/case.{ext}");
            let input = FileInput {
                repo: "r",
                path: &path,
                commit: "c",
                file_hash: "h",
                text: &text,
            };
            let chunks = std::panic::catch_unwind(|| chunker.chunk(input))
                .unwrap_or_else(|_| panic!("{language} {name}: the chunker panicked"));
            let lines = text.lines().count().max(1) as u32;
            for c in &chunks {
                let at = format!(
                    "{language} {name}: {}-{} {:?}",
                    c.start_line, c.end_line, c.symbol
                );
                assert!(c.start_line >= 1 && c.start_line <= c.end_line, "{at}");
                assert!(c.end_line <= lines, "{at}: past line {lines}");
                assert!(c.symbol.chars().count() <= MAX_SYMBOL_CHARS, "{at}");
            }
        }
    }
    eprintln!("pathological-parse suite: {cases} cases");
    assert!(cases >= 24);

    // End to end: a tree holding them all indexes, and its ordinary file is found.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("codeq.toml"),
        "[index]\nmax_file_bytes = 2000000\n",
    )
    .unwrap();
    std::fs::write(
        root.join("src/normal.rs"),
        "/// Adds two numbers.\npub fn add_numbers(a: i64, b: i64) -> i64 { a + b }\n",
    )
    .unwrap();
    for (language, ext) in chunk::grammar_languages() {
        for (i, (_, text)) in pathological_inputs(language).into_iter().enumerate() {
            // Cases that would cost minutes of embedding stay out: the chunker met them above.
            if text.len() > 300_000 || text.lines().count() > 2_000 {
                continue;
            }
            std::fs::write(root.join(format!("src/case{i}.{ext}")), text).unwrap();
        }
    }
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, found) = codeq_json(&root, &["search", "add_numbers", "-k", "1"]);
    assert_eq!(found["results"][0]["symbol"], "add_numbers", "{found}");
}

#[test]
fn careless_input_gets_errors_that_say_what_happened_once() {
    let fx = fixture();
    // The OS error once, not twice.
    let out = codeq(&fx.root, &["eval", "/no/such/set.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).matches("os error 2").count(),
        1,
        "{}",
        stderr(&out)
    );
    // -k 0 would ask for nothing.
    for command in ["search", "ask"] {
        let out = codeq(&fx.root, &[command, "refund", "-k", "0"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(stderr(&out).contains("from 1"), "{}", stderr(&out));
    }
    // An ACL path glob that can never match is refused with its line.
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.toml");
    std::fs::write(
        &acl,
        "[[acl.grant]]\nrepos = [\"*\"]\npaths = [\"../**\"]\nread = [\"*\"]\n",
    )
    .unwrap();
    let out = codeq(
        &fx.root,
        &["search", "refund", "--acl", acl.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 3") && stderr(&out).contains("can never match"),
        "{}",
        stderr(&out)
    );
    // A chunk of one enormous line is shown as a short snippet.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("codeq.toml"),
        "[index]\nmax_file_bytes = 2000000\n",
    )
    .unwrap();
    std::fs::write(
        root.join("data.txt"),
        format!("minifiedmarker {}\n", "word ".repeat(200_000)),
    )
    .unwrap();
    assert!(codeq(&root, &["index", "."]).status.success());
    let out = codeq(&root, &["search", "minifiedmarker"]);
    let longest = stdout(&out).lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1000, "a {longest}-byte line was printed");
}
