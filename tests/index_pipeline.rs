//! End-to-end tests of `codeq index`, `status` and `search` on a real multi-repo corpus,
//! with the real embedding model, LanceDB and tantivy.

mod common;

use std::collections::BTreeSet;

use codeq::store::{ChunkFilter, IndexDir};
use common::{codeq, codeq_json, copy_tree, fixture, stderr, stdout};

fn repo_ids(status: &serde_json::Value) -> BTreeSet<String> {
    status["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn citations(results: &serde_json::Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["citation"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_repo_is_found_once_including_nested_ones() {
    let fx = fixture();
    let (out, status) = codeq_json(&fx.root, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        repo_ids(&status),
        [".", "payments", "payments/plugins/fraud", "search-service"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let repos = status["repos"].as_array().unwrap();
    let payments = repos.iter().find(|r| r["id"] == "payments").unwrap();
    // The nested repo's file is counted there, not in its parent.
    let fraud = repos
        .iter()
        .find(|r| r["id"] == "payments/plugins/fraud")
        .unwrap();
    assert_eq!(fraud["files"], 1);
    assert_eq!(payments["is_git"], true);
    assert_eq!(payments["stale"], false);
    assert_eq!(payments["indexed_commit"].as_str().unwrap().len(), 40);
    let notes = repos.iter().find(|r| r["id"] == ".").unwrap();
    assert_eq!(notes["is_git"], false);
    assert_eq!(
        notes["files"], 1,
        "notes/todo.md only: the root codeq.toml (which may hold the ACL) is never indexed"
    );
    assert_eq!(status["lanes"]["consistent"], true);
    assert_eq!(status["lanes"]["bm25_docs"], status["lanes"]["vectors"]);
}

#[test]
fn chunks_carry_qualified_symbols_and_exact_line_ranges() {
    let fx = fixture();
    let reader = IndexDir::open(&fx.index_dir).unwrap().reader().unwrap();
    let all = ChunkFilter::default();
    let lib = reader
        .chunks_in_file("payments", "src/lib.rs", &all)
        .unwrap();
    let summary: Vec<(String, String, u32, u32)> = lib
        .iter()
        .map(|c| (c.kind.clone(), c.symbol.clone(), c.start_line, c.end_line))
        .collect();
    let expected: Vec<(String, String, u32, u32)> = [
        ("module", "lib.rs", 1, 3),
        ("struct", "LineItem", 5, 10),
        ("struct", "Invoice", 12, 17),
        ("impl", "Invoice", 19, 19),
        ("method", "Invoice::total_with_tax", 20, 28),
        ("method", "Invoice::descriptions", 30, 33),
        ("function", "refund_payment", 36, 42),
    ]
    .iter()
    .map(|(k, s, a, b)| (k.to_string(), s.to_string(), *a, *b))
    .collect();
    assert_eq!(summary, expected);
    let total = &lib[4];
    let source_lines: Vec<&str> = common::PAYMENTS_LIB.lines().collect();
    assert_eq!(total.content, source_lines[19..28].join("\n"));
    assert_eq!(
        total.doc,
        "Adds up every line item and applies the tax rate."
    );
    assert_eq!(total.signature, "pub fn total_with_tax(&self) -> i64");
    assert_eq!(total.language, "rust");
    assert_eq!(total.commit.len(), 40);

    let scoring = reader
        .chunks_in_file("payments/plugins/fraud", "fraud/scoring.py", &all)
        .unwrap();
    let symbols: Vec<&str> = scoring.iter().map(|c| c.symbol.as_str()).collect();
    assert!(
        symbols.contains(&"fraud.scoring.FraudScorer.score_transaction"),
        "{symbols:?}"
    );
    let method = scoring
        .iter()
        .find(|c| c.symbol == "fraud.scoring.FraudScorer.score_transaction")
        .unwrap();
    assert_eq!((method.start_line, method.end_line), (12, 19));
    assert_eq!(method.kind, "method");

    // Files without a grammar are searchable through line windows.
    let readme = reader
        .chunks_in_file("payments", "README.md", &all)
        .unwrap();
    assert_eq!(readme.len(), 1);
    assert_eq!(readme[0].kind, "window");
    assert_eq!(readme[0].language, "markdown");
}

#[test]
fn skipped_files_are_reported_by_reason_and_never_indexed() {
    let fx = fixture();
    let totals = &fx.index_json["index"]["totals"];
    let counts = &totals["skipped"]["counts"];
    assert_eq!(counts["binary"], 1, "{totals}");
    assert_eq!(counts["too_large"], 1, "{totals}");
    assert_eq!(counts["symlink"], 2, "{totals}");
    assert_eq!(counts["generated"], 1, "{totals}");
    assert_eq!(totals["lossy_utf8"], 1, "{totals}");
    let examples = &totals["skipped"]["examples"];
    assert_eq!(examples["binary"][0], "payments/assets/logo.bin");
    assert_eq!(examples["too_large"][0], "payments/data/big.txt");
    assert_eq!(examples["generated"][0], "search-service/node_modules/");

    let reader = IndexDir::open(&fx.index_dir).unwrap().reader().unwrap();
    let all = ChunkFilter::default();
    for (repo, path) in [
        ("payments", "assets/logo.bin"),
        ("payments", "data/big.txt"),
        ("payments", "build/generated.rs"),
        ("search-service", "node_modules/leftpad/index.js"),
        ("payments", "plugins/fraud/fraud/scoring.py"),
    ] {
        assert!(
            reader.chunks_in_file(repo, path, &all).unwrap().is_empty(),
            "{repo}:{path} must not be indexed"
        );
    }
    // Latin-1 text is indexed with replacement characters rather than dropped.
    let legacy = reader
        .chunks_in_file("payments", "src/legacy.txt", &all)
        .unwrap();
    assert!(legacy[0].content.contains("Caf\u{fffd} receipts"));
    // The git-ignored folder is counted by git.
    let manifest = reader.manifest();
    let payments = manifest.repos.iter().find(|r| r.id == "payments").unwrap();
    assert!(payments.ignored_entries >= 1);

    let human = codeq(&fx.root, &["status"]);
    assert!(human.status.success());
}

#[test]
fn search_finds_a_function_by_description_and_by_identifier() {
    let fx = fixture();
    let (out, by_name) = codeq_json(&fx.root, &["search", "refund_payment", "-k", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(citations(&by_name)[0], "payments:src/lib.rs:36-42");
    assert_eq!(by_name["results"][0]["bm25_rank"], 1);

    let (_, by_meaning) = codeq_json(
        &fx.root,
        &[
            "search",
            "order documents by relevance to the user's query",
            "-k",
            "3",
        ],
    );
    let top = citations(&by_meaning);
    assert!(
        top.contains(&"search-service:service/query.py:12-22".to_string()),
        "{top:?}"
    );
    assert!(by_meaning["results"][0]["vector_rank"].is_number());

    let (_, fraud) = codeq_json(
        &fx.root,
        &["search", "how risky is a card transaction", "-k", "3"],
    );
    assert!(
        citations(&fraud)
            .iter()
            .any(|c| c.starts_with("payments/plugins/fraud:fraud/scoring.py:")),
        "{fraud}"
    );

    // Human output carries the citation and a snippet.
    let human = codeq(&fx.root, &["search", "refund_payment", "-k", "1"]);
    let text = stdout(&human);
    assert!(
        text.contains("payments:src/lib.rs:36-42  refund_payment (function)"),
        "{text}"
    );
    assert!(text.contains("| /// Refunds a payment"), "{text}");
}

#[test]
fn search_can_be_limited_to_repositories() {
    let fx = fixture();
    let (out, results) = codeq_json(
        &fx.root,
        &["search", "refund_payment", "--repo", "search-service"],
    );
    for citation in citations(&results) {
        assert!(citation.starts_with("search-service:"), "{citation}");
    }
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1));
    // A repository the index does not have is a usage error, not an empty result.
    let (out, _) = codeq_json(&fx.root, &["search", "refund_payment", "--repo", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no repository named nope"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn commands_find_the_index_from_a_subfolder() {
    let fx = fixture();
    let out = codeq(&fx.root.join("payments/src"), &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("generation g"));
}

#[test]
fn reindexing_unchanged_code_writes_nothing_and_embeds_nothing() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let index = scratch.path().join("index");
    copy_tree(&fx.index_dir, &index);
    let index_arg = index.to_str().unwrap();
    let (out, report) = codeq_json(&fx.root, &["index", ".", "--index-dir", index_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let index = &report["index"];
    assert_eq!(index["changes"]["up_to_date"], true, "{index}");
    assert_eq!(index["totals"]["embedded"], 0, "{index}");
    assert_eq!(
        index["totals"]["chunks"],
        fx.index_json["index"]["totals"]["chunks"]
    );
    assert!(
        stdout(&codeq(&fx.root, &["index", ".", "--index-dir", index_arg])).contains("up to date")
    );
    let (_, status) = codeq_json(&fx.root, &["status", "--index-dir", index_arg]);
    assert_eq!(status["generation"], "g000001");
    assert_eq!(status["lanes"]["consistent"], true);
}
