//! Incremental runs: only changed files are chunked, only new embedding inputs are
//! embedded (across branch switches too), nothing-changed runs write nothing, and the index
//! does not grow with the number of runs.

mod common;

use codeq::embed::Embedder;
use codeq::store::{AnnIndex, ChunkFilter, IndexDir, RepoScope};
use common::{Workspace, age_file};

#[test]
fn a_run_chunks_only_what_changed_and_removes_what_went() {
    let mut ws = Workspace::new();
    let before = ws.index(false);
    assert!(before.changes.up_to_date, "{:?}", before.changes);
    let total_files = before.totals.files;

    ws.write(
        "payments/src/lib.rs",
        &common::PAYMENTS_LIB.replace(
            "Refunds a payment",
            "Refunds a payment through the zanzibar_gateway",
        ),
    );
    ws.write(
        "search-service/service/spelling.py",
        "def suggest_quokka_spelling(term):\n    return term\n",
    );
    std::fs::remove_file(ws.root.join("notes/todo.md")).unwrap();
    std::fs::rename(
        ws.root.join("payments/plugins/fraud/fraud/scoring.py"),
        ws.root.join("payments/plugins/fraud/fraud/risk.py"),
    )
    .unwrap();

    // Status sees the same changes before the run, per repository, and nothing after it.
    let changed = |status: &serde_json::Value, repo: &str| {
        let repo = status["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == repo)
            .unwrap_or_else(|| panic!("no {repo} in {status}"));
        let c = &repo["changed_since_indexed"];
        (
            c["modified"].clone(),
            c["added"].clone(),
            c["removed"].clone(),
        )
    };
    let (_, status) = common::codeq_json(&ws.root, &["status"]);
    assert_eq!(changed(&status, "payments"), (1.into(), 0.into(), 0.into()));
    assert_eq!(
        changed(&status, "search-service"),
        (0.into(), 1.into(), 0.into())
    );
    assert_eq!(
        changed(&status, "payments/plugins/fraud"),
        (0.into(), 1.into(), 1.into())
    );
    let human = common::stdout(&common::codeq(&ws.root, &["status"]));
    assert!(
        human.contains("changed since indexing: 1 modified, 0 added, 0 removed"),
        "{human}"
    );

    let report = ws.index(false);
    let c = &report.changes;
    assert!(c.incremental && !c.up_to_date, "{c:?}");
    assert_eq!(
        (c.files_modified, c.files_added, c.files_removed),
        (1, 2, 2),
        "{c:?}"
    );
    assert_eq!(c.files_unchanged, total_files - 3, "{c:?}");
    assert!(
        c.vectors_embedded < c.chunks_written,
        "unchanged chunks of the modified file reuse their vectors: {c:?}"
    );
    assert_eq!(report.totals.files, total_files);
    ws.assert_consistent();

    let hits = ws.search("zanzibar_gateway");
    assert!(hits[0].starts_with("payments:src/lib.rs:"), "{hits:?}");
    let hits = ws.search("suggest_quokka_spelling");
    assert_eq!(hits[0], "search-service:service/spelling.py:1-2");
    let hits = ws.search("score_transaction");
    assert!(
        hits[0].starts_with("payments/plugins/fraud:fraud/risk.py:"),
        "{hits:?}"
    );
    let all = ws.search("rotate the payment gateway keys").join(" ");
    assert!(
        !all.contains("todo.md") && !all.contains("scoring.py"),
        "{all}"
    );
    let (_, status) = common::codeq_json(&ws.root, &["status"]);
    for repo in status["repos"].as_array().unwrap() {
        let c = &repo["changed_since_indexed"];
        assert_eq!(
            (&c["modified"], &c["added"], &c["removed"]),
            (&0.into(), &0.into(), &0.into()),
            "{repo}"
        );
    }
}

#[test]
fn a_run_with_nothing_changed_writes_nothing() {
    let mut ws = Workspace::new();
    let first = ws.index(false);
    let generation = first.generation.clone();
    assert!(first.changes.up_to_date, "{:?}", first.changes);

    // A touched file (same bytes, new time) is hashed, not chunked.
    let lib = ws.root.join("payments/src/lib.rs");
    age_file(&lib, 60);
    let touched = ws.index(false);
    assert!(touched.changes.up_to_date, "{:?}", touched.changes);
    assert_eq!(touched.changes.files_rehashed, 1);
    assert_eq!(touched.generation, generation);

    // A new commit with no file change is news: answers say the index is behind HEAD
    // until a run records it.
    ws.git("payments", &["commit", "--allow-empty", "-m", "empty"]);
    let (_, found) = common::codeq_json(&ws.root, &["search", "refund_payment"]);
    let state = &found["index_state"]["payments"];
    assert_eq!(state["stale"], true, "{found}");
    assert_ne!(state["head"], state["indexed_commit"]);
    let out = common::codeq(&ws.root, &["ask", "how is a payment refunded"]);
    assert!(
        common::stdout(&out).contains("note: payments is at"),
        "{}",
        common::stdout(&out)
    );
    let committed = ws.index(false);
    assert!(!committed.changes.up_to_date);
    assert_eq!(committed.changes.chunks_written, 0);
    assert_ne!(committed.generation, generation);
    ws.assert_consistent();
    let (_, found) = common::codeq_json(&ws.root, &["search", "refund_payment"]);
    assert_eq!(found["index_state"]["payments"]["stale"], false, "{found}");
}

#[test]
fn switching_branches_back_and_forth_reuses_every_vector() {
    let mut ws = Workspace::new();
    ws.git("payments", &["checkout", "-q", "-b", "feature"]);
    ws.write(
        "payments/src/lib.rs",
        &format!(
            "{}\n/// Voids an invoice before it is paid.\npub fn void_invoice(id: u64) -> bool {{ id > 0 }}\n",
            common::PAYMENTS_LIB
        ),
    );
    ws.write(
        "payments/src/ledger.rs",
        "/// Balances the ledger at the end of the day.\npub fn close_day() {}\n",
    );
    ws.git("payments", &["add", "-A"]);
    ws.git("payments", &["commit", "-q", "-m", "feature"]);
    let feature = ws.index(false);
    assert!(
        feature.changes.vectors_embedded > 0,
        "{:?}",
        feature.changes
    );

    ws.git("payments", &["checkout", "-q", "-"]);
    let back = ws.index(false);
    assert_eq!(back.changes.files_modified, 1, "{:?}", back.changes);
    assert_eq!(back.changes.files_removed, 1, "{:?}", back.changes);
    assert_eq!(back.changes.vectors_embedded, 0, "{:?}", back.changes);
    assert_eq!(back.changes.reuse_rate(), 1.0);
    assert!(
        ws.search("close_day")
            .iter()
            .all(|c| !c.contains("ledger.rs"))
    );

    ws.git("payments", &["checkout", "-q", "feature"]);
    let again = ws.index(false);
    assert_eq!(again.changes.vectors_embedded, 0, "{:?}", again.changes);
    assert!(again.changes.chunks_written > 0);
    assert!(ws.search("close_day")[0].starts_with("payments:src/ledger.rs:"));
    ws.assert_consistent();
}

#[test]
fn a_hundred_incremental_runs_stay_within_a_fifth_of_a_fresh_build() {
    let mut ws = Workspace::new();
    let lib = ws.root.join("payments/src/lib.rs");
    for run in 0..100 {
        let text = format!(
            "{}\n/// Revision {run} of the fee schedule.\npub fn fee_schedule_{run}() -> u32 {{ {run} }}\n",
            common::PAYMENTS_LIB
        );
        std::fs::write(&lib, text).unwrap();
        let report = ws.index(false);
        assert_eq!(report.changes.files_modified, 1, "run {run}");
    }
    ws.assert_consistent();
    assert!(ws.search("fee_schedule_99")[0].starts_with("payments:src/lib.rs:"));
    let after_runs = IndexDir::open(&ws.index_dir())
        .unwrap()
        .disk_usage()
        .unwrap();
    let (out, _) = common::codeq_json(&ws.root, &["gc"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let after_gc = IndexDir::open(&ws.index_dir())
        .unwrap()
        .disk_usage()
        .unwrap();

    std::fs::remove_dir_all(ws.index_dir()).unwrap();
    let fresh_report = ws.index(false);
    assert!(!fresh_report.changes.incremental);
    let fresh = IndexDir::open(&ws.index_dir())
        .unwrap()
        .disk_usage()
        .unwrap();
    println!("after 100 runs: {after_runs:?}\nand gc: {after_gc:?}\nfresh build: {fresh:?}");
    // The published generation against a fresh build's. Beside it stay the files that it
    // does not share of the previous generation (kept for readers) and of the rollback
    // points (`KEPT_BUILDS` earlier builds) — one generation's worth each at most, freed by
    // `codeq gc` — and the bounded cache of evicted vectors.
    assert!(
        after_runs.current_generation as f64 <= 1.2 * fresh.current_generation as f64,
        "after 100 runs {after_runs:?}, a fresh build {fresh:?}"
    );
    let kept = 1 + codeq::store::KEPT_BUILDS as u64;
    assert!(
        after_runs.older_generations <= kept * fresh.current_generation,
        "after 100 runs {after_runs:?}, a fresh build {fresh:?}"
    );
    // The whole folder once `codeq gc` freed the previous generation, leaving out the
    // embedding cache: it holds the 99 evicted revisions on purpose (an undone edit or a
    // branch switch reuses them), is bounded by `embed_cache_vectors`, and on this tiny
    // fixture outweighs the index itself (at 100k chunks it is 5% of it: docs/BENCH.md).
    assert_eq!(after_gc.older_generations, 0, "{after_gc:?}");
    assert!(
        (after_gc.total - after_gc.embed_cache) as f64
            <= 1.2 * (fresh.total - fresh.embed_cache) as f64,
        "after 100 runs and gc {after_gc:?}, a fresh build {fresh:?}"
    );
}

#[test]
fn two_runs_at_once_are_serialized_by_the_lock() {
    let ws = Workspace::new();
    ws.write(
        "payments/src/fees.rs",
        "/// Late fees.\npub fn late_fee_pelican() -> u32 { 5 }\n",
    );
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
            .args(["index", "."])
            .current_dir(&ws.root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The test holds the lock; both runs start meanwhile and must say they wait.
    let lock = IndexDir::open(&ws.index_dir()).unwrap().lock().unwrap();
    let (notices, waiting) = std::sync::mpsc::channel();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut child = spawn();
            let stderr = child.stderr.take().unwrap();
            let notices = notices.clone();
            let lines = std::thread::spawn(move || {
                use std::io::{BufRead, BufReader};
                let mut text = String::new();
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("waiting for it to finish") {
                        let _ = notices.send(());
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            });
            (child, lines)
        })
        .collect();
    for _ in 0..2 {
        waiting
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("both runs say they wait for the lock");
    }
    drop(lock);
    let mut summaries = Vec::new();
    for (child, lines) in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", lines.join().unwrap());
        summaries.push(common::stdout(&out));
    }
    assert_eq!(
        summaries
            .iter()
            .filter(|s| s.contains("up to date"))
            .count(),
        1,
        "one run indexes the change, the other finds nothing left to do: {summaries:?}"
    );
    ws.assert_consistent();
}

#[test]
fn watch_reindexes_when_a_file_changes() {
    use std::io::{BufRead, BufReader};
    let mut ws = Workspace::new();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_codeq"));
    command
        .args(["index", ".", "--watch"])
        .current_dir(&ws.root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = common::with_default_sigint(&mut command).spawn().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = std::time::Duration::from_secs(60);
        loop {
            let line = lines
                .recv_timeout(deadline)
                .unwrap_or_else(|_| panic!("no line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    wait_for("up to date");
    ws.write(
        "search-service/service/cache.py",
        "def evict_walrus_entries(cache):\n    cache.clear()\n",
    );
    let line = wait_for("files:");
    assert!(line.contains("1 added"), "{line}");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().unwrap();
    assert_eq!(
        ws.search("evict_walrus_entries")[0],
        "search-service:service/cache.py:1-2"
    );
}

#[test]
fn gc_frees_older_generations_and_status_shows_them() {
    let mut ws = Workspace::new();
    for step in 0..3 {
        ws.write(
            "payments/src/lib.rs",
            &format!("{}\npub fn gc_step_{step}() {{}}\n", common::PAYMENTS_LIB),
        );
        ws.index(false);
    }
    let (out, status) = common::codeq_json(&ws.root, &["status"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        status["disk"]["older_generations"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert_eq!(status["disk"]["total"], status["size_on_disk_bytes"]);
    assert_eq!(status["upkeep"]["table_versions"], 1, "{status}");

    let (out, gc) = common::codeq_json(&ws.root, &["gc"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(gc["freed_bytes"].as_u64().unwrap() > 0, "{gc}");
    let (_, status) = common::codeq_json(&ws.root, &["status"]);
    assert_eq!(status["disk"]["older_generations"], 0, "{status}");
    assert!(ws.search("gc_step_2")[0].starts_with("payments:src/lib.rs:"));
}

#[test]
fn a_large_change_is_searchable_before_its_vectors_and_a_stopped_run_resumes() {
    let mut ws = Workspace::new();
    // Publish BM25 first for any change, and a generation every 4 vectors.
    let config = ws.root.join("codeq.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("lexical_first_files = 0\nembed_round = 4\n");
    std::fs::write(&config, text).unwrap();
    for n in 0..20 {
        ws.write(
            &format!("search-service/service/plugin_{n}.py"),
            &format!(
                "def ocelot_handler_{n}(event):\n    return event\n\n\ndef ocelot_cleanup_{n}():\n    pass\n"
            ),
        );
    }
    // A function defined twice, word for word: two chunks with the same symbol and text,
    // which must stay two rows in both lanes when their vectors come in a later round.
    let twin = "def ocelot_twin(event):\n    \"\"\"Forwards the event to every subscriber of the ocelot feed.\"\"\"\n    return event\n";
    ws.write(
        "search-service/service/twins.py",
        &format!("{twin}\n\n{twin}"),
    );
    let notice = kill_once_queryable(&ws);
    assert!(notice.contains("computing the vectors of"), "{notice}");

    let (_, status) = common::codeq_json(&ws.root, &["status"]);
    let lanes = &status["lanes"];
    let waiting = lanes["pending"].as_u64().unwrap();
    assert!(
        waiting > 0,
        "the kill came after embedding finished: {status}"
    );
    assert_eq!(lanes["consistent"], true, "{status}");
    let (out, found) = common::codeq_json(&ws.root, &["search", "ocelot_handler_17"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let top = &found["results"][0];
    assert_eq!(top["path"], "service/plugin_17.py", "{found}");
    assert!(top["bm25_rank"].is_u64(), "{top}");
    let coverage = found["vector_coverage"].as_f64().unwrap();
    assert!(coverage < 1.0, "{found}");

    let resumed = ws.index(false);
    let c = &resumed.changes;
    assert!(c.lexical_first && !c.up_to_date, "{c:?}");
    assert_eq!(
        c.vectors_embedded as u64, waiting,
        "it resumes, never restarts: {c:?}"
    );
    assert_eq!(c.vectors_pending, 0);
    ws.assert_consistent();
    let (_, found) = common::codeq_json(&ws.root, &["search", "ocelot_handler_17"]);
    assert!(found["vector_coverage"].is_null(), "{found}");
    assert!(found["results"][0]["vector_rank"].is_u64(), "{found}");
    assert!(ws.index(false).changes.up_to_date);

    // Stopped again; this time files whose chunks still wait change before the next run.
    for n in 0..20 {
        ws.write(
            &format!("search-service/service/hook_{n}.py"),
            &format!("def lynx_hook_{n}(event):\n    return event\n"),
        );
    }
    kill_once_queryable(&ws);
    ws.write(
        "search-service/service/hook_19.py",
        "def lynx_hook_renamed(event):\n    return None\n",
    );
    std::fs::remove_file(ws.root.join("search-service/service/hook_18.py")).unwrap();
    let finished = ws.index(false);
    assert_eq!(
        finished.changes.vectors_pending, 0,
        "{:?}",
        finished.changes
    );
    ws.assert_consistent();
    assert_eq!(
        ws.search("lynx_hook_renamed")[0],
        "search-service:service/hook_19.py:1-2"
    );
    assert!(
        ws.search("lynx_hook_18")
            .iter()
            .all(|c| !c.contains("hook_18.py"))
    );
}

/// Runs `codeq index` and kills it as soon as it says BM25 is published; returns that line.
fn kill_once_queryable(ws: &Workspace) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(["index", "."])
        .current_dir(&ws.root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let notice = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.contains("queryable now"))
        .expect("a notice that BM25 is published first");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    notice
}

#[test]
fn a_reader_keeps_its_generation_through_later_publishes() {
    use codeq::store::ChunkFilter;
    let mut ws = Workspace::new();
    let held = IndexDir::open(&ws.index_dir()).unwrap().reader().unwrap();
    let generation = held.generation().to_string();
    let lib = ws.root.join("payments/src/lib.rs");
    let publish = |ws: &mut Workspace, step: usize| {
        let text = format!("{}\npub fn held_step_{step}() {{}}\n", common::PAYMENTS_LIB);
        std::fs::write(&lib, text).unwrap();
        assert!(!ws.index(false).changes.up_to_date);
    };
    for step in 0..3 {
        publish(&mut ws, step);
    }
    // A long-lived reader (a TUI, an MCP server) still searches both lanes of its
    // generation, three publishes later.
    let path = ws.index_dir().join("generations").join(&generation);
    assert!(path.is_dir());
    let everything = ChunkFilter::everything();
    let terms = codeq::search::query_terms("refund_payment");
    let hits = held.bm25(&terms, &everything, 3).unwrap();
    let ids: Vec<String> = hits.iter().map(|h| h.chunk.chunk_id.clone()).collect();
    assert_eq!(
        held.chunks_by_id(&ids, &everything).unwrap().len(),
        ids.len()
    );
    let (_, _, vector) = held.all_rows().unwrap().remove(0);
    assert!(!held.nearest(&vector, &everything, 3).unwrap().is_empty());
    drop(held);
    publish(&mut ws, 3);
    assert!(
        !path.exists(),
        "an unread old generation is deleted at the next publish"
    );
}

#[test]
fn bm25_scores_after_incremental_runs_match_a_fresh_build() {
    use codeq::store::ChunkFilter;
    let mut ws = Workspace::new();
    // Thirty small files land in one segment; re-indexing one of them leaves its old
    // chunks there as deleted documents (a thirtieth: too few to trigger a merge).
    let module = |i: usize, note: &str| {
        format!(
            "/// Ledger helper {i}{note}.\npub fn ledger_refund_step_{i}(cents: i64) -> i64 {{ cents - {i} }}\n"
        )
    };
    for i in 0..30 {
        ws.write(&format!("payments/src/step_{i}.rs"), &module(i, ""));
    }
    ws.index(false);
    ws.write(
        "payments/src/step_0.rs",
        &module(0, " for the refund ledger of every payment"),
    );
    assert_eq!(ws.index(false).changes.files_modified, 1);
    let queries = [
        "refund payment ledger",
        "ledger helper cents",
        "total_with_tax invoice items",
        "descriptions receipt",
        "tax rate percent",
    ];
    let scores = |ws: &Workspace| {
        let reader = IndexDir::open(&ws.index_dir()).unwrap().reader().unwrap();
        let everything = ChunkFilter::everything();
        let hits: Vec<Vec<(String, f32)>> = queries
            .iter()
            .map(|q| {
                let terms = codeq::search::query_terms(q);
                let hits = reader.bm25(&terms, &everything, 10).unwrap();
                hits.into_iter()
                    .map(|h| (h.chunk.chunk_id, h.score))
                    .collect()
            })
            .collect();
        // How often the code mentions a word (a ranking prior) counts live chunks only.
        let words = ["ledger", "refund", "payment"].map(String::from);
        let mentions = reader.mentions(&words, &everything).unwrap();
        (hits, reader.upkeep().unwrap().deleted_docs, mentions)
    };
    let (updated, deleted, updated_mentions) = scores(&ws);
    assert!(
        deleted > 0,
        "the runs left no deleted documents to test with"
    );

    std::fs::remove_dir_all(ws.index_dir()).unwrap();
    ws.index(false);
    let (fresh, deleted, fresh_mentions) = scores(&ws);
    assert_eq!(deleted, 0);
    assert_eq!(updated_mentions, fresh_mentions);
    for ((query, updated), fresh) in queries.iter().zip(&updated).zip(&fresh) {
        let ids = |hits: &[(String, f32)]| hits.iter().map(|h| h.0.clone()).collect::<Vec<_>>();
        assert_eq!(ids(updated), ids(fresh), "{query}");
        for ((id, a), (_, b)) in updated.iter().zip(fresh) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{query}: {id} {a} vs {b}");
        }
    }
}

/// With an ANN index, an incremental run adds rows to the table the index was built over
/// and deletes others: the vector lane must still find what was added, with and without an
/// access filter, and never return a chunk of a file that went.
#[test]
fn the_vector_lane_sees_an_incremental_run_through_an_ann_index() {
    let mut ws = Workspace::new();
    // The fixture's codeq.toml ends in its [index] section: the ANN keys go there.
    let config = std::fs::read_to_string(ws.root.join("codeq.toml")).unwrap();
    ws.write(
        "codeq.toml",
        &format!("{config}ann = \"ivf_hnsw_sq\"\nann_min_chunks = 0\n"),
    );
    ws.index(true);
    let built = IndexDir::open(&ws.index_dir()).unwrap().reader().unwrap();
    assert_eq!(built.manifest().ann_index, AnnIndex::IvfHnswSq);

    ws.write(
        "search-service/service/spelling.py",
        "def suggest_quokka_spelling(term):\n    \
         \"\"\"Suggests the correct spelling of a misspelt search term.\"\"\"\n    \
         return term.strip().lower()\n",
    );
    std::fs::remove_file(ws.root.join("payments/plugins/fraud/fraud/scoring.py")).unwrap();
    let report = ws.index(false);
    assert!(report.changes.vectors_embedded > 0, "{:?}", report.changes);

    let reader = IndexDir::open(&ws.index_dir()).unwrap().reader().unwrap();
    assert_eq!(reader.manifest().ann_index, AnnIndex::IvfHnswSq);
    let vector = ws
        .embedder
        .embed(&["suggest the correct spelling of a misspelt search term".to_string()])
        .unwrap()
        .remove(0);
    let search_service = reader
        .prepare_filter(&ChunkFilter::scoped(vec![RepoScope {
            repo: "search-service".into(),
            paths: None,
        }]))
        .unwrap();
    for filter in [ChunkFilter::everything(), search_service] {
        let hits = reader.nearest(&vector, &filter, 10).unwrap();
        assert_eq!(
            hits.first().map(|(chunk, _)| chunk.path.as_str()),
            Some("service/spelling.py"),
            "{hits:?}"
        );
        for (chunk, _) in &hits {
            assert!(
                filter.admits(&chunk.repo, &chunk.path),
                "{}",
                chunk.citation()
            );
            assert_ne!(chunk.path, "fraud/scoring.py", "a deleted file came back");
        }
    }
}

/// Symbols of the top chunks `codeq search QUERY` returns.
fn searched_symbols(ws: &Workspace, query: &str) -> Vec<String> {
    let (out, found) = common::codeq_json(&ws.root, &["search", query]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn current_generation(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.index_dir().join("CURRENT"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn rollback_republishes_an_earlier_build_and_eval_keeps_a_history_of_runs() {
    let mut ws = Workspace::new();
    let set = ws.root.join("rollback-set.toml");
    std::fs::write(
        &set,
        "name = \"rollback\"\ntier = \"monitoring\"\n\n[[question]]\nid = \"refund\"\n\
         question = \"refund_payment\"\nrelevant = [\"payments:src/lib.rs\"]\n",
    )
    .unwrap();
    let mut built = Vec::new();
    for step in 0..4 {
        ws.write(
            "payments/src/lib.rs",
            &format!(
                "{}\npub fn rollback_step_{step}() {{}}\n",
                common::PAYMENTS_LIB
            ),
        );
        ws.index(false);
        built.push(current_generation(&ws));
        let out = common::codeq(&ws.root, &["eval", set.to_str().unwrap()]);
        assert!(out.status.success(), "{}", common::stderr(&out));
    }

    // Kept: the current build, the previous one and KEPT_BUILDS earlier ones; the
    // generation the workspace started with is gone.
    assert_eq!(codeq::store::KEPT_BUILDS, 2);
    let (_, status) = common::codeq_json(&ws.root, &["status"]);
    let kept: Vec<&str> = status["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        built.iter().map(String::as_str).collect::<Vec<_>>(),
        "{status}"
    );
    let text = common::stdout(&common::codeq(&ws.root, &["status"]));
    assert!(text.contains("codeq rollback GENERATION"), "{text}");

    // Back one build: its function is found, the newer one is not.
    let (out, rolled) = common::codeq_json(&ws.root, &["rollback"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(rolled["rollback"]["from"], built[3].as_str());
    assert_eq!(rolled["rollback"]["to"]["name"], built[2].as_str());
    assert_eq!(current_generation(&ws), built[2]);
    assert!(searched_symbols(&ws, "rollback_step_2").contains(&"rollback_step_2".into()));
    assert!(!searched_symbols(&ws, "rollback_step_3").contains(&"rollback_step_3".into()));

    // Refusals say why and change nothing.
    for (args, why) in [
        (
            vec!["rollback", "g999999"],
            "no generation g999999 is kept here",
        ),
        (
            vec!["rollback", built[2].as_str()],
            "already the current generation",
        ),
    ] {
        let out = common::codeq(&ws.root, &args);
        assert!(!out.status.success());
        assert!(
            common::stderr(&out).contains(why),
            "{}",
            common::stderr(&out)
        );
        assert_eq!(current_generation(&ws), built[2]);
    }

    // Forward again by name, then a new run starts from the generation it finds current.
    let out = common::codeq(&ws.root, &["rollback", built[3].as_str()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(searched_symbols(&ws, "rollback_step_3").contains(&"rollback_step_3".into()));
    let out = common::codeq(&ws.root, &["rollback", built[2].as_str()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    ws.write(
        "payments/src/lib.rs",
        &format!("{}\npub fn rollback_step_4() {{}}\n", common::PAYMENTS_LIB),
    );
    ws.index(false);
    let newest = current_generation(&ws);
    assert!(newest > built[3], "{newest} is named after every kept one");
    assert!(searched_symbols(&ws, "rollback_step_4").contains(&"rollback_step_4".into()));
    ws.assert_consistent();

    // Every eval run is in the history, with the generation it scored.
    let (out, history) = common::codeq_json(&ws.root, &["eval", "--history"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let runs = history["history"].as_array().unwrap();
    let generations: Vec<&str> = runs
        .iter()
        .map(|r| r["generation"].as_str().unwrap())
        .collect();
    assert_eq!(
        generations,
        built.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let overall = runs[0]["sets"].as_array().unwrap().last().unwrap();
    assert_eq!(overall["name"], "overall");
    assert_eq!(overall["questions"], 1);
    let table = common::stdout(&common::codeq(&ws.root, &["eval", "--history"]));
    assert!(
        table.contains(built[3].as_str()) && table.contains("NDCG@10"),
        "{table}"
    );
}

/// In this binary the shared fixture never gets an ACL (tests/acl.rs adds one to its own).
#[test]
fn a_rollback_cannot_return_an_acl_guarded_index_to_a_generation_built_without_one() {
    let mut ws = common::Workspace::new();
    let before = std::fs::read_to_string(ws.index_dir().join("CURRENT")).unwrap();
    let config = ws.root.join("codeq.toml");
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str(common::ACL);
    std::fs::write(&config, text).unwrap();
    ws.write("payments/src/extra.rs", "pub fn guarded_extra() {}\n");
    ws.index(false);
    let guarded = std::fs::read_to_string(ws.index_dir().join("CURRENT")).unwrap();
    assert_ne!(before, guarded);

    // Only a principal who reads everything may try, and even they are refused.
    let out = common::codeq(&ws.root, &["rollback", before.trim(), "--as", "alice"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("every repository"),
        "{}",
        common::stderr(&out)
    );
    let out = common::codeq(&ws.root, &["rollback", "--as", "admin"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("built without an access-control list"),
        "{}",
        common::stderr(&out)
    );
    let now = std::fs::read_to_string(ws.index_dir().join("CURRENT")).unwrap();
    assert_eq!(now, guarded, "a refused rollback changes nothing");
}

#[test]
fn a_shard_run_indexes_only_its_repositories_and_keeps_the_others() {
    let ws = Workspace::new();
    let (_, status) = common::codeq_json(&ws.root, &["status"]);
    let shards: [codeq::index::Shard; 2] = ["0/2".parse().unwrap(), "1/2".parse().unwrap()];
    // (id, path) of a repository of the shard.
    let repo_in = |shard: &codeq::index::Shard| {
        status["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["is_git"] == true && shard.contains(r["id"].as_str().unwrap()))
            .map(|r| (r["id"].as_str().unwrap(), r["path"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no repository of the fixture falls in {shard}: {status}"))
    };
    let probed: Vec<&str> = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            let (id, path) = repo_in(shard);
            let probe = format!("{path}/shard_probe.py");
            ws.write(
                &probe,
                &format!("def quokka_probe_{i}():\n    return {i}\n"),
            );
            id
        })
        .collect();
    let indexed = |shard: &str| {
        let (out, report) = common::codeq_json(&ws.root, &["index", ".", "--shard", shard]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        report["index"].clone()
    };
    // Whether the probe function of shard i is the top hit for its name.
    let found = |i: usize| {
        let probe = format!("quokka_probe_{i}");
        let (out, found) = common::codeq_json(&ws.root, &["search", &probe]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let top = &found["results"][0];
        top["repo"] == probed[i] && top["citation"].as_str().unwrap().contains("shard_probe.py")
    };
    // Shard 0 takes its new file only; the other shard's repositories stay as they were.
    let first = indexed("0/2");
    assert_eq!(first["changes"]["files_added"], 1, "{first}");
    assert_eq!(first["changes"]["files_removed"], 0, "{first}");
    assert!(found(0) && !found(1));
    let second = indexed("1/2");
    assert_eq!(second["changes"]["files_added"], 1, "{second}");
    assert!(found(0) && found(1));
    let files = |report: &serde_json::Value| report["totals"]["files"].as_u64().unwrap();
    assert_eq!(files(&second), files(&first) + 1, "{second}");
    assert_eq!(indexed("0/2")["changes"]["up_to_date"], true);

    // A rebuild would drop the other shards' repositories: refused, nothing published.
    let (out, _) = common::codeq_json(&ws.root, &["index", ".", "--shard", "0/2", "--rebuild"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("once without --shard"),
        "{}",
        common::stderr(&out)
    );
    assert!(found(0) && found(1));
}
