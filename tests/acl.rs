//! Access control, tested as an attacker would: four principals query the fixture corpus
//! with identifiers, phrases, paths and repository names copied from repositories they may
//! not read, with glob- and SQL-like strings, and with empty and huge queries. No chunk,
//! path, snippet or count of a forbidden repository may appear in any output, and forbidden
//! chunks must not even shift the scores of the allowed ones.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use codeq::answer;
use codeq::bench::Corpus;
use codeq::config::Config;
use codeq::embed::Embedder;
use codeq::embed::FastEmbedder;
use codeq::search::{self, Lanes, QueryScope, SearchOptions};
use codeq::session::{Session, SessionOptions, SharedIndex, WholeIndex};
use codeq::store::{
    AnnIndex, AnnPolicy, ChunkFilter, IndexDir, IndexReader, PathPattern, RepoScope,
};
use codeq::trace::Surface;
use common::attack::{assert_no_marker, attack_queries, forbidden, truncate};
use common::{ACL, Fixture, codeq, codeq_json, fixture, stderr, stdout};

const PRINCIPALS: [&str; 4] = ["alice", "carol", "dave", "mallory"];

/// The fixture corpus with the ACL in its codeq.toml (written after indexing, as an
/// administrator would add it to an existing index).
fn acl_fixture() -> &'static Fixture {
    static DONE: OnceLock<()> = OnceLock::new();
    let fx = fixture();
    DONE.get_or_init(|| {
        let path = fx.root.join("codeq.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(ACL);
        std::fs::write(path, text).unwrap();
    });
    fx
}

fn open_reader(fx: &Fixture) -> (IndexReader, Config, FastEmbedder) {
    let reader = IndexDir::open(&fx.index_dir).unwrap().reader().unwrap();
    let config = Config::load_for_root(&fx.root).unwrap();
    let embedder = FastEmbedder::load(&config.model).unwrap();
    (reader, config, embedder)
}

fn repo_ids(reader: &IndexReader) -> Vec<String> {
    reader.manifest().repo_ids()
}

#[test]
fn no_query_shows_a_principal_anything_of_a_forbidden_repository() {
    let fx = acl_fixture();
    let (reader, config, mut embedder) = open_reader(fx);
    let acl = config
        .acl()
        .expect("the fixture's codeq.toml has an [acl] section");
    let repos = repo_ids(&reader);
    let queries = attack_queries();
    assert!(queries.len() >= 100, "only {} queries", queries.len());
    let mut answered = 0;
    for principal in PRINCIPALS {
        let filter = acl.filter_for(principal, &repos);
        let markers = forbidden(&filter);
        assert!(!markers.is_empty(), "{principal} may read everything");
        // k above both lanes' candidate counts: every candidate either lane produced is
        // in the answer, so a leak in one lane cannot hide below the cut.
        let options = SearchOptions {
            k: 200,
            filter: filter.clone(),
            ..SearchOptions::default()
        };
        for query in &queries {
            let context = format!("{principal} asking {:?}", truncate(query));
            let found = answer::ask(&reader, &mut embedder, None, query, &options)
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            for c in &found.citations {
                assert!(
                    filter.admits(&c.repo, &c.path),
                    "{context}: cited {}",
                    c.citation
                );
            }
            answered += usize::from(!found.citations.is_empty());
            let mut json = serde_json::to_value(&found).unwrap();
            json["question"] = serde_json::Value::Null;
            assert_no_marker(&json.to_string(), &markers, &context);
        }
    }
    assert!(
        answered > 50,
        "the queries found almost nothing ({answered})"
    );
}

#[test]
fn a_forbidden_repository_holding_the_only_lexical_match_yields_nothing_lexical() {
    let fx = acl_fixture();
    let (reader, config, _) = open_reader(fx);
    let carol = config
        .acl()
        .unwrap()
        .filter_for("carol", &repo_ids(&reader));
    for identifier in ["refund_payment", "FraudScorer", "SUSPICIOUS_COUNTRIES"] {
        let terms = search::query_terms(identifier);
        let everyone = reader.bm25(&terms, &ChunkFilter::everything(), 50).unwrap();
        assert!(!everyone.is_empty(), "{identifier} should match somewhere");
        let hits = reader.bm25(&terms, &carol, 50).unwrap();
        assert!(
            hits.is_empty(),
            "carol's BM25 lane matched {identifier}: {hits:?}"
        );
    }
}

/// Copies the fixture corpus without the repositories alice may not read.
fn alice_only_index(fx: &Fixture) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = fx.home.join("alice-only").join("corpus");
        common::build_corpus(&root);
        std::fs::remove_dir_all(root.join("search-service")).unwrap();
        std::fs::remove_dir_all(root.join("notes")).unwrap();
        let out = codeq(&root, &["index", "."]);
        assert!(out.status.success(), "{}", stderr(&out));
        root.join(".codeq")
    })
    .clone()
}

fn scores(hits: impl IntoIterator<Item = (String, f64)>) -> HashMap<String, f64> {
    hits.into_iter().collect()
}

fn assert_same_scores(a: &HashMap<String, f64>, b: &HashMap<String, f64>, context: &str) {
    assert_eq!(
        a.keys().collect::<std::collections::BTreeSet<_>>(),
        b.keys().collect::<std::collections::BTreeSet<_>>(),
        "{context}: different chunks"
    );
    for (id, score) in a {
        assert!(
            (score - b[id]).abs() < 1e-4,
            "{context}: chunk {id} scored {score} with forbidden repos in the index, {} without",
            b[id]
        );
    }
}

#[test]
fn forbidden_chunks_do_not_shift_the_scores_of_allowed_ones() {
    let fx = acl_fixture();
    let (full, config, mut embedder) = open_reader(fx);
    let alice = config.acl().unwrap().filter_for("alice", &repo_ids(&full));
    let alone = IndexDir::open(&alice_only_index(fx))
        .unwrap()
        .reader()
        .unwrap();
    // The same scoped path on both indexes: only the forbidden documents differ.
    let alone_filter = ChunkFilter::repos(&repo_ids(&alone));
    let mut native_differs = false;
    for query in [
        "score the documents of a query",
        "return a risk score for one transaction",
        "refund payment ledger",
        "self",
        "parse the query into terms and rank documents",
    ] {
        let terms = search::query_terms(query);
        let bm25 = |reader: &IndexReader, filter: &ChunkFilter| {
            scores(
                reader
                    .bm25(&terms, filter, 100)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.chunk.chunk_id, f64::from(h.score))),
            )
        };
        let scoped = bm25(&full, &alice);
        let reference = bm25(&alone, &alone_filter);
        assert_same_scores(&scoped, &reference, &format!("BM25 {query:?}"));
        // On the index that holds only the allowed repositories, the scoped path agrees
        // with tantivy's own scoring (up to its compressed field lengths): the filter
        // restricts and adds nothing to a score.
        let native = bm25(&alone, &ChunkFilter::everything());
        for (id, scoped) in &reference {
            let own = native[id];
            assert!(
                (scoped - own).abs() <= 0.05 * own,
                "BM25 {query:?}: chunk {id} scores {scoped} scoped, {own} unscoped"
            );
        }
        // Control: with the whole index's statistics the same chunks score differently,
        // so this test would catch statistics that ignore the filter.
        let unscoped = bm25(&full, &ChunkFilter::everything());
        native_differs |= reference
            .iter()
            .any(|(id, s)| unscoped.get(id).is_some_and(|u| (u - s).abs() > 1e-4));

        let options = |filter: &ChunkFilter| SearchOptions {
            k: 100,
            filter: filter.clone(),
            lanes: Lanes::Vector,
            ..SearchOptions::default()
        };
        let vectors = |reader: &IndexReader, filter: &ChunkFilter, e: &mut FastEmbedder| {
            scores(
                search::search(reader, e, None, query, &options(filter))
                    .unwrap()
                    .hits
                    .into_iter()
                    .map(|h| (h.chunk.chunk_id, f64::from(h.vector_distance.unwrap()))),
            )
        };
        let scoped = vectors(&full, &alice, &mut embedder);
        let reference = vectors(&alone, &alone_filter, &mut embedder);
        assert_same_scores(&scoped, &reference, &format!("vectors {query:?}"));

        // Both lanes fused, with every prior after fusion (for descriptions, how often
        // the code mentions a file's name): the final scores agree too.
        let hybrid = |reader: &IndexReader, filter: &ChunkFilter, e: &mut FastEmbedder| {
            let options = SearchOptions {
                k: 100,
                filter: filter.clone(),
                ..SearchOptions::default()
            };
            scores(
                search::search(reader, e, None, query, &options)
                    .unwrap()
                    .hits
                    .into_iter()
                    .map(|h| (h.chunk.chunk_id, h.score)),
            )
        };
        let scoped = hybrid(&full, &alice, &mut embedder);
        let reference = hybrid(&alone, &alone_filter, &mut embedder);
        assert_same_scores(&scoped, &reference, &format!("hybrid {query:?}"));
    }
    assert!(
        native_differs,
        "the control never differed: the queries do not exercise shared terms"
    );

    // The counts behind that prior come from the admitted chunks only.
    let words: Vec<String> = ["query", "scoring", "score", "ledger", "refund"]
        .map(String::from)
        .to_vec();
    let scoped = full.mentions(&words, &alice).unwrap();
    assert_eq!(scoped, alone.mentions(&words, &alone_filter).unwrap());
    assert_ne!(
        scoped.0,
        full.mentions(&words, &ChunkFilter::everything()).unwrap().0,
        "control: the forbidden repositories mention none of the words"
    );
    // And the prior is applied: a description's hits carry it where their file's name is
    // mentioned.
    let options = SearchOptions {
        k: 10,
        filter: alice.clone(),
        ..SearchOptions::default()
    };
    let found = search::search(
        &full,
        &mut embedder,
        None,
        "return a risk score for one transaction",
        &options,
    )
    .unwrap();
    assert!(
        found.hits.iter().any(|h| h
            .boosts
            .iter()
            .any(|b| b.reason.contains("mentions this file's name") && b.factor > 1.0)),
        "{:?}",
        found
            .hits
            .iter()
            .map(|h| (&h.chunk.path, &h.boosts))
            .collect::<Vec<_>>()
    );
}

/// Runs the binary as `principal` with `args`, human and JSON, and checks both outputs.
fn run_as(root: &Path, principal: &str, args: &[&str], markers: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--as", principal]);
    let human = codeq(root, &all);
    assert_no_marker(&stdout(&human), markers, &format!("{principal} {args:?}"));
    assert_no_marker(&stderr(&human), markers, &format!("{principal} {args:?}"));
    let (out, value) = codeq_json(root, &all);
    // The query itself is echoed (query, terms, analysis, question); everything else must
    // be free of forbidden text.
    let mut shown = value.clone();
    for echo in ["query", "terms", "analysis"] {
        shown[echo] = serde_json::Value::Null;
    }
    if shown.get("answer").is_some() {
        shown["answer"]["question"] = serde_json::Value::Null;
    }
    assert_no_marker(
        &shown.to_string(),
        markers,
        &format!("{principal} {args:?} --json"),
    );
    assert_no_marker(
        &stderr(&out),
        markers,
        &format!("{principal} {args:?} --json"),
    );
    value
}

#[test]
fn the_command_line_shows_each_principal_only_their_repositories() {
    let fx = acl_fixture();
    let (reader, config, _) = open_reader(fx);
    let acl = config.acl().unwrap();
    let repos = repo_ids(&reader);
    let expected: [(&str, &[&str]); 4] = [
        ("alice", &["payments", "payments/plugins/fraud"]),
        ("carol", &["search-service"]),
        ("dave", &["payments", "search-service"]),
        ("mallory", &[]),
    ];
    for (principal, visible) in expected {
        let filter = acl.filter_for(principal, &repos);
        let markers = forbidden(&filter);
        let status = run_as(&fx.root, principal, &["status"], &markers);
        let ids: Vec<&str> = status["repos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, visible, "{principal}");
        assert_eq!(status["access"]["principal"], principal);
        assert_eq!(status["lanes"]["consistent"], true, "{principal}: {status}");
        assert!(
            status.get("size_on_disk_bytes").is_none() && status.get("skipped").is_none(),
            "{principal} sees index-wide totals: {status}"
        );
        let visible_chunks: u64 = status["repos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["chunks"].as_u64().unwrap())
            .sum();
        assert_eq!(status["lanes"]["vectors"], visible_chunks, "{principal}");
        for query in ["refund_payment", "FraudScorer", "parse_query_string", "*"] {
            run_as(&fx.root, principal, &["ask", query], &markers);
            let found = run_as(&fx.root, principal, &["search", query], &markers);
            for hit in found["results"].as_array().unwrap() {
                let (repo, path) = (hit["repo"].as_str().unwrap(), hit["path"].as_str().unwrap());
                assert!(filter.admits(repo, path), "{principal}: {hit}");
            }
        }
    }
    // dave's grant covers README.md only: one file per repository, nothing else.
    let dave = run_as(&fx.root, "dave", &["status"], &[]);
    for repo in dave["repos"].as_array().unwrap() {
        assert_eq!(repo["files"], 1, "{repo}");
        assert_eq!(repo["paths"][0], "README.md");
    }
    let (_, found) = codeq_json(&fx.root, &["search", "payments invoices", "--as", "dave"]);
    for hit in found["results"].as_array().unwrap() {
        assert_eq!(hit["path"], "README.md", "{hit}");
    }
    // Nor the commits of the repositories he reads a file of; alice, who reads payments
    // whole, gets its indexed commit against HEAD.
    assert_eq!(found["index_state"], serde_json::json!({}), "{found}");
    let (_, found) = codeq_json(&fx.root, &["search", "refund_payment", "--as", "alice"]);
    assert_eq!(found["index_state"]["payments"]["stale"], false, "{found}");
}

#[test]
fn naming_a_forbidden_repository_reads_exactly_like_naming_a_missing_one() {
    let fx = acl_fixture();
    let forbidden = codeq(
        &fx.root,
        &["search", "refund", "--repo", "payments", "--as", "carol"],
    );
    let missing = codeq(
        &fx.root,
        &[
            "search",
            "refund",
            "--repo",
            "no-such-repo",
            "--as",
            "carol",
        ],
    );
    assert_eq!(forbidden.status.code(), Some(2));
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        stderr(&forbidden).replace("payments", "NAME"),
        stderr(&missing).replace("no-such-repo", "NAME")
    );
    assert!(stdout(&forbidden).is_empty());
    let allowed = codeq(
        &fx.root,
        &["search", "refund", "--repo", "payments", "--as", "alice"],
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
}

#[test]
fn a_broken_acl_stops_every_query_and_names_the_line() {
    let fx = acl_fixture();
    let scratch = tempfile::tempdir().unwrap();
    let bad = scratch.path().join("acl.toml");
    std::fs::write(
        &bad,
        "[[acl.grant]]\nrepos = [\"*\"]\nread = [\"group:admins\"]\n",
    )
    .unwrap();
    let bad_arg = bad.to_str().unwrap();
    for args in [
        vec!["search", "refund_payment"],
        vec!["ask", "refund_payment"],
        vec!["status"],
    ] {
        let mut all = args.clone();
        all.extend(["--acl", bad_arg, "--as", "alice"]);
        let out = codeq(&fx.root, &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("acl.toml") && err.contains("line 3") && err.contains("admins"),
            "{err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?} printed results");
    }
    let missing = codeq(
        &fx.root,
        &["status", "--acl", "/nonexistent/acl.toml", "--as", "alice"],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read the ACL file"));
    let no_section = scratch.path().join("empty.toml");
    std::fs::write(&no_section, "").unwrap();
    let out = codeq(&fx.root, &["status", "--acl", no_section.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no [acl] section"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_shipped_access_control_set_passes_with_no_leak() {
    let fx = acl_fixture();
    let set = format!(
        "{}/eval-questions/fixture-acl.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (out, report) = codeq_json(&fx.root, &["eval", &set, "--as", "admin"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{report}", stderr(&out));
    let overall = &report["report"]["overall"];
    assert_eq!(overall["acl_leaks"], 0);
    assert_eq!(overall["hit_at_1"], 1.0, "{overall}");
    assert_eq!(overall["refusals_honoured"], 1);
    // The same set without the ACL: every principal sees everything, and the gate fails
    // on the leaks, so the set can fail.
    let scratch = tempfile::tempdir().unwrap();
    let open_acl = scratch.path().join("open.toml");
    std::fs::write(
        &open_acl,
        "[[acl.grant]]\nrepos = [\"*\"]\nread = [\"*\"]\n",
    )
    .unwrap();
    let (out, report) = codeq_json(
        &fx.root,
        &["eval", &set, "--acl", open_acl.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report["report"]["overall"]["acl_leaks"].as_u64().unwrap() > 0);
    // Only a principal who may read everything may evaluate as someone else: otherwise a
    // set file would be a way around --as.
    let out = codeq(&fx.root, &["eval", &set, "--as", "carol"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot evaluate as someone else"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_compared_index_is_scoped_by_its_own_acl() {
    let fx = acl_fixture();
    // The alice-only copy has no ACL; the fixture index is protected by its codeq.toml.
    let open_index = alice_only_index(fx);
    let scratch = tempfile::tempdir().unwrap();
    let set = scratch.path().join("refund.toml");
    std::fs::write(
        &set,
        "name = \"refund\"\n\n[[question]]\nid = \"refund\"\nquestion = \"refund_payment\"\nrelevant = [\"payments:src/lib.rs\"]\n",
    )
    .unwrap();
    let protected = fx.index_dir.to_str().unwrap();
    let (out, report) = codeq_json(
        &fx.root,
        &[
            "eval",
            set.to_str().unwrap(),
            "--index-dir",
            open_index.to_str().unwrap(),
            "--compare-index",
            protected,
            "--as",
            "mallory",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}\n{report}", stderr(&out));
    assert_eq!(report["report"]["overall"]["hit_at_1"], 1.0, "{report}");
    let compared = &report["compare"]["report"]["sets"][0]["questions"][0];
    assert_eq!(compared["files"], serde_json::json!([]), "{compared}");
}

#[test]
fn copying_the_index_for_a_benchmark_needs_access_to_everything() {
    let fx = acl_fixture();
    let out = codeq(
        &fx.root,
        &["bench", "query", "--chunks", "10", "--as", "alice"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("every repository"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn repository_names_with_quotes_and_backslashes_cannot_widen_the_filter() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("odd");
    let odd = root.join("o'neil\\");
    let plain = root.join("plain");
    for (dir, body) in [
        (&odd, "pub fn zanzibar_ledger() -> u32 { 1 }\n"),
        (&plain, "pub fn plain_ledger() -> u32 { 2 }\n"),
    ] {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), body).unwrap();
        common::commit_all(dir, &[]);
    }
    std::fs::write(
        root.join("codeq.toml"),
        "[[acl.grant]]\nrepos = [\"plain\"]\nread = [\"x\"]\n\n[[acl.grant]]\nrepos = [\"o'neil*\"]\nread = [\"y\"]\n",
    )
    .unwrap();
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, x) = codeq_json(&root, &["search", "zanzibar_ledger", "--as", "x"]);
    for hit in x["results"].as_array().unwrap() {
        assert_eq!(hit["repo"], "plain", "{hit}");
    }
    let (out, y) = codeq_json(&root, &["search", "zanzibar_ledger", "--as", "y"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(y["results"][0]["repo"], "o'neil\\");
    let (_, status) = codeq_json(&root, &["status", "--as", "y"]);
    assert_eq!(status["repos"].as_array().unwrap().len(), 1, "{status}");

    // The index remembers it was built under an ACL: losing the ACL closes it, it does
    // not fall back to single-user mode.
    std::fs::write(root.join("codeq.toml"), "[index]\n").unwrap();
    for args in [vec!["status"], vec!["search", "zanzibar_ledger"]] {
        let out = codeq(&root, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("built under an access-control list"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
}

/// With an ANN index on the vector column, the access filter must stay a pre-filter: a
/// narrow grant still gets a full result list of admitted chunks only, close to what exact
/// search over the admitted chunks returns. (A post-filter would drop forbidden hits after
/// ranking and come back short, or empty.)
#[test]
fn an_ann_index_keeps_the_access_filter_a_pre_filter() {
    let fx = acl_fixture();
    let (reader, _, mut embedder) = open_reader(fx);
    let corpus = Corpus::of(&[&reader]).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let rows = corpus.len() * 40;
    // Four IVF partitions: the filter holds across the graphs a query probes.
    let hnsw = AnnPolicy {
        index: AnnIndex::IvfHnswSq,
        min_rows: 0,
        partition_rows: rows / 4,
    };
    let ann = corpus
        .replicate(&scratch.path().join("ann"), rows, hnsw)
        .unwrap();
    let exact = corpus
        .replicate(&scratch.path().join("exact"), rows, AnnPolicy::EXACT)
        .unwrap();
    assert_eq!(ann.manifest().ann_index, AnnIndex::IvfHnswSq);
    assert_eq!(exact.manifest().ann_index, AnnIndex::Off);

    let readme_only = PathPattern::from_glob("README.md").unwrap();
    let filters = [
        // One repository of forty copies: 1 row in ~120 is admitted.
        ChunkFilter::scoped(vec![RepoScope {
            repo: "c0017/search-service".into(),
            paths: None,
        }]),
        // Path-only grants in two copies, plus a whole nested repository.
        ChunkFilter::scoped(vec![
            RepoScope {
                repo: "c0003/payments".into(),
                paths: Some(vec![readme_only.clone()]),
            },
            RepoScope {
                repo: "c0031/search-service".into(),
                paths: Some(vec![readme_only]),
            },
            RepoScope {
                repo: "c0008/payments/plugins/fraud".into(),
                paths: None,
            },
        ]),
    ];
    let questions = [
        "refund a payment",
        "how is a search query parsed and ranked",
        "fraud score of a transaction",
        "what is this repository about",
        "total with tax",
    ];
    let (mut found, mut expected) = (0, 0);
    for filter in &filters {
        let filter = ann.prepare_filter(filter).unwrap();
        let admitted = exact.lane_counts(&filter).unwrap().vectors;
        assert!(admitted > 0 && admitted < rows / 20, "{admitted} of {rows}");
        for question in questions {
            let vector = embedder.embed(&[question.to_string()]).unwrap().remove(0);
            let approximate = ann.nearest(&vector, &filter, 10).unwrap();
            let truth = exact.nearest(&vector, &filter, 10).unwrap();
            assert_eq!(
                approximate.len(),
                truth.len(),
                "{question}: came back short"
            );
            assert_eq!(truth.len(), admitted.min(10));
            for (chunk, _) in &approximate {
                assert!(
                    filter.admits(&chunk.repo, &chunk.path),
                    "{question}: the ANN lane returned {}:{}",
                    chunk.repo,
                    chunk.path
                );
            }
            let ids: Vec<&str> = approximate
                .iter()
                .map(|(c, _)| c.chunk_id.as_str())
                .collect();
            found += truth
                .iter()
                .filter(|(c, _)| ids.contains(&c.chunk_id.as_str()))
                .count();
            expected += truth.len();
        }
    }
    let recall = found as f64 / expected as f64;
    assert!(
        recall >= 0.9,
        "recall@10 of the ANN lane under filters: {recall:.3}"
    );
}

/// Loading chunks by id (the step after the BM25 lane) fails closed when asked for a
/// chunk outside the filter, rather than returning it or silently dropping it.
#[test]
fn loading_a_forbidden_chunk_by_id_fails_closed() {
    let fx = acl_fixture();
    let (reader, config, _) = open_reader(fx);
    let acl = config.acl().unwrap();
    let carol = acl.filter_for("carol", &repo_ids(&reader));
    let everything = ChunkFilter::everything();
    let terms = codeq::search::query_terms("refund_payment");
    let forbidden: Vec<String> = reader
        .bm25(&terms, &everything, 5)
        .unwrap()
        .into_iter()
        .map(|h| h.chunk.chunk_id)
        .collect();
    assert!(!forbidden.is_empty());
    let loaded = reader.chunks_by_id(&forbidden, &everything).unwrap();
    assert!(loaded.iter().any(|c| c.repo == "payments"));
    let err = reader
        .chunks_by_id(&forbidden, &carol)
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the access filter"), "{err}");
    assert!(
        !err.contains("payments") && !err.contains("refund"),
        "{err}"
    );
}

/// A principal who may read only some paths of a repository does not see the state of the
/// whole repository (HEAD, branch, dirty flags move with files they cannot read).
#[test]
fn a_path_restricted_principal_does_not_see_repository_state() {
    let fx = acl_fixture();
    let (out, dave) = codeq_json(&fx.root, &["status", "--as", "dave"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let repos = dave["repos"].as_array().unwrap();
    assert!(!repos.is_empty());
    for repo in repos {
        assert!(repo["paths"].is_array(), "{repo}");
        for hidden in ["head", "indexed_commit", "branch", "remote_url"] {
            assert!(repo[hidden].is_null(), "{hidden}: {repo}");
        }
        assert_eq!(repo["dirty_now"], false);
    }
    let (_, alice) = codeq_json(&fx.root, &["status", "--as", "alice"]);
    assert!(
        alice["repos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["head"].is_string()),
        "{alice}"
    );
}

/// The library example (`examples/as_principal.rs`, built by `cargo test`) queries through
/// a session and is scoped exactly like the command line.
#[test]
fn the_library_example_sees_only_what_its_principal_may_read() {
    let fx = acl_fixture();
    let example = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/as_principal");
    let run = |principal: &str| {
        let out = std::process::Command::new(&example)
            .arg(&fx.index_dir)
            .args([principal, "refund_payment ledger"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", example.display()));
        (out.status.code(), stdout(&out), stderr(&out))
    };
    let (code, alice, err) = run("alice");
    assert_eq!(code, Some(0), "{alice}{err}");
    assert!(alice.contains("principal: \"alice\""), "{alice}");
    assert!(alice.contains("payments:src/lib.rs"), "{alice}");
    let (_, carol, err) = run("carol");
    assert!(carol.contains("principal: \"carol\""), "{carol}{err}");
    for marker in FORBIDDEN_TO_CAROL {
        assert!(!carol.contains(marker), "carol sees {marker}: {carol}");
    }
    assert!(
        !carol.contains("payments"),
        "carol sees a payments repository: {carol}"
    );
}

/// What carol's results must never name.
const FORBIDDEN_TO_CAROL: [&str; 3] = ["refund_payment", "FraudScorer", "notes/todo.md"];

/// The session holds every rule that guards a query: each of its methods answers a
/// principal only from what it may read, whatever library code calls it.
#[test]
fn every_session_method_is_scoped_to_its_principal() {
    let fx = acl_fixture();
    let options = |principal: &str| SessionOptions {
        index_dir: Some(fx.index_dir.clone()),
        principal: Some(principal.into()),
        ..SessionOptions::default()
    };
    let index = SharedIndex::open(&options("carol")).unwrap();
    assert!(index.has_acl());
    let carol = index.session(Some("carol")).unwrap();
    let scope = QueryScope {
        k: 50,
        ..QueryScope::default()
    };
    let found = carol
        .search(Surface::Search, "refund_payment ledger", &scope)
        .unwrap();
    assert!(!found.value.hits.is_empty());
    for hit in &found.value.hits {
        assert_eq!(hit.chunk.repo, "search-service", "{}", hit.chunk.citation());
    }
    let asked = carol
        .ask(Surface::Ask, "how is a payment refunded?", &scope)
        .unwrap();
    for c in &asked.value.citations {
        assert_eq!(c.repo, "search-service", "{c:?}");
    }
    let ids: Vec<String> = carol
        .status()
        .unwrap()
        .repos
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["search-service"]);
    let forbidden = carol.read_citation("payments:src/lib.rs:1-5").unwrap_err();
    let absent = carol.read_citation("nowhere:src/lib.rs:1-5").unwrap_err();
    assert_eq!(
        forbidden.to_string().replace("payments", "R"),
        absent.to_string().replace("nowhere", "R"),
        "a forbidden and a missing file read the same"
    );

    // Traces belong to who asked.
    let alice = index.session(Some("alice")).unwrap();
    let searched = alice
        .search(Surface::Search, "refund_payment", &scope)
        .unwrap();
    let id = searched.trace.unwrap();
    assert_eq!(alice.trace(Some(&id)).unwrap().id, id);
    assert!(carol.trace(Some(&id)).is_err(), "carol read alice's trace");

    // Asking as someone else is for a principal who reads everything, and scoped to them.
    assert!(carol.as_other("alice").is_err());
    let admin = index.session(Some("admin")).unwrap();
    let as_carol = admin.as_other("carol").unwrap();
    let found = as_carol
        .search(Surface::Eval, "refund_payment", &scope)
        .unwrap();
    assert!(
        found
            .value
            .hits
            .iter()
            .all(|h| h.chunk.repo == "search-service")
    );

    // Tools over the whole index open only for such a principal.
    assert!(WholeIndex::open(&options("carol")).is_err());
    assert!(WholeIndex::open(&options("admin")).is_ok());
}

/// The session blocks, and may be called from inside an async runtime (a server's handler)
/// without the runtime panicking.
#[test]
fn a_session_answers_from_inside_an_async_runtime() {
    let fx = acl_fixture();
    let session = Session::open(&SessionOptions {
        index_dir: Some(fx.index_dir.clone()),
        principal: Some("alice".into()),
        ..SessionOptions::default()
    })
    .unwrap();
    let scope = QueryScope {
        k: 5,
        ..QueryScope::default()
    };
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hits = current_thread
        .block_on(async { session.search(Surface::Search, "refund_payment", &scope) })
        .unwrap()
        .value
        .hits;
    assert!(hits.iter().any(|h| h.chunk.symbol == "refund_payment"));
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let worker_session = session.clone();
    let cited = multi_thread
        .block_on(async move {
            tokio::spawn(async move {
                worker_session.ask(Surface::Ask, "how is a payment refunded?", &scope)
            })
            .await
        })
        .unwrap()
        .unwrap()
        .value
        .citations;
    assert!(cited.iter().any(|c| c.repo == "payments"));
}
