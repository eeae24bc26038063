//! Query traces: search and ask results carry a trace id, `codeq trace` explains the
//! ranking, and a principal reads only their own traces, minus whatever the current ACL
//! no longer lets them read.

mod common;

use std::path::Path;

use common::{codeq, codeq_json, fixture, stderr, stdout};

#[test]
fn an_answer_s_trace_explains_its_citations() {
    let fx = fixture();
    let (out, asked) = codeq_json(
        &fx.root,
        &["ask", "how is the invoice total with tax computed"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = asked["trace_id"]
        .as_str()
        .expect("ask --json carries trace_id");
    let (out, traced) = codeq_json(&fx.root, &["trace", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = &traced["trace"];
    assert_eq!(t["id"], id);
    assert_eq!(t["surface"], "ask");
    assert_eq!(t["query"], "how is the invoice total with tax computed");
    let shown: Vec<&str> = asked["answer"]["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["citation"].as_str().unwrap())
        .collect();
    let traced_citations: Vec<&str> = t["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["citation"].as_str().unwrap())
        .collect();
    assert_eq!(shown, traced_citations);
    // The whole fused pool is kept, the cited part marked.
    let candidates = t["candidates"].as_array().unwrap();
    assert!(candidates.len() > shown.len(), "{}", candidates.len());
    let kept = candidates.iter().filter(|c| c["kept"] == true).count();
    assert_eq!(kept, shown.len());
    assert!(t["timings_ms"]["total"].as_f64().unwrap() > 0.0);

    // (--last is checked in the ACL test: tests of this binary trace in parallel.)
    let out = codeq(&fx.root, &["trace", id]);
    let text = stdout(&out);
    assert!(text.contains(id), "{text}");
    assert!(text.contains("payments:src/lib.rs:"), "{text}");
    assert!(
        text.contains("BM25 #") || text.contains("vector #"),
        "{text}"
    );

    let (out, search) = codeq_json(&fx.root, &["search", "refund_payment"]);
    assert!(out.status.success());
    let search_id = search["trace_id"].as_str().unwrap();
    let (_, traced) = codeq_json(&fx.root, &["trace", search_id]);
    assert_eq!(traced["trace"]["surface"], "search");
    assert!(traced["trace"]["candidates"][0]["bm25_rank"].is_number());
}

fn write_acl(path: &Path, carol_reads: &str, alice_reads: &str) {
    std::fs::write(
        path,
        format!(
            "[[acl.grant]]\nrepos = [{carol_reads}]\nread = [\"carol\"]\n\n\
             [[acl.grant]]\nrepos = [{alice_reads}]\nread = [\"alice\"]\n\n\
             [[acl.grant]]\nrepos = [\"*\"]\nread = [\"admin\"]\n"
        ),
    )
    .unwrap();
}

#[test]
fn traces_stay_with_their_principal_and_follow_acl_changes() {
    // (eval traces belong to whoever ran the eval: see every_eval_question_leaves_a_trace)
    let fx = fixture();
    let acl = fx.home.join("trace-acl.toml");
    let acl_arg = acl.to_str().unwrap();
    write_acl(
        &acl,
        "\"search-service\"",
        "\"payments*\", \"search-service\"",
    );
    let as_user = |user: &str, args: &[&str]| {
        let mut all = vec!["--acl", acl_arg, "--as", user];
        all.extend(args);
        codeq_json(&fx.root, &all)
    };
    let (_, carol) = as_user("carol", &["ask", "how are search queries parsed"]);
    let carol_id = carol["trace_id"].as_str().unwrap().to_string();
    let (_, alice) = as_user(
        "alice",
        &[
            "ask",
            "how are refunds paid to the customer",
            "--repo",
            "payments",
        ],
    );
    let alice_id = alice["trace_id"].as_str().unwrap().to_string();

    // alice cannot read carol's trace, and cannot tell it from a missing one.
    let (out, _) = as_user("alice", &["trace", &carol_id]);
    assert_eq!(out.status.code(), Some(2));
    let foreign = stderr(&out).replace(&carol_id, "ID");
    let (_, _) = as_user("alice", &["trace", "nosuchid"]);
    let missing = stderr(&as_user("alice", &["trace", "nosuchid"]).0).replace("nosuchid", "ID");
    assert_eq!(foreign, missing);
    // --last is alice's own latest, not carol's more recent one.
    as_user("carol", &["search", "rank documents"]);
    let (_, last) = as_user("alice", &["trace", "--last"]);
    assert_eq!(last["trace"]["id"], alice_id.as_str());
    // Not even a principal who reads everything reads carol's trace (audit rights judged
    // against today's repositories could outlive a repository's removal).
    let (out, _) = as_user("admin", &["trace", &carol_id]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).replace(&carol_id, "ID"), missing);

    // alice loses payments: her old trace no longer shows it.
    let (_, before) = as_user("alice", &["trace", &alice_id]);
    assert!(before["trace"].to_string().contains("payments"), "{before}");
    write_acl(&acl, "\"search-service\"", "\"search-service\"");
    let (out, after) = as_user("alice", &["trace", &alice_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = after["trace"]["candidates"].to_string() + &after["trace"]["citations"].to_string();
    assert!(!text.contains("payments"), "{after}");
    assert!(after["trace"]["withheld"].as_u64().unwrap() > 0, "{after}");
    assert_eq!(
        after["trace"]["repos"],
        serde_json::json!([]),
        "the restriction named payments"
    );
}

#[test]
fn every_eval_question_leaves_a_trace() {
    let fx = fixture();
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval-questions/fixture.toml");
    let (out, eval) = codeq_json(&fx.root, &["eval", set.to_str().unwrap()]);
    assert!(out.status.code().is_some_and(|c| c < 2), "{}", stderr(&out));
    let questions = eval["report"]["sets"][0]["questions"].as_array().unwrap();
    assert!(!questions.is_empty());
    for q in questions {
        let id = q["trace_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no trace id: {q}"));
        let (out, traced) = codeq_json(&fx.root, &["trace", id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(traced["trace"]["surface"], "eval");
        let files: Vec<&str> = q["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let first_cited = traced["trace"]["citations"][0]["citation"]
            .as_str()
            .unwrap_or_default();
        assert!(
            files.is_empty()
                || files
                    .iter()
                    .any(|f| first_cited.starts_with(&format!("{f}:"))),
            "{first_cited} vs {files:?}"
        );
    }
}

/// An eval question asked `as` someone is traced for whoever ran the eval: the question
/// text (which may quote what that someone may not read) never reaches their traces.
#[test]
fn eval_questions_asked_as_someone_are_traced_for_the_one_who_ran_them() {
    let fx = fixture();
    let acl = fx.home.join("eval-trace-acl.toml");
    std::fs::write(
        &acl,
        "[[acl.grant]]\nrepos = [\"search-service\"]\nread = [\"erin\"]\n\n[[acl.grant]]\nrepos = [\"*\"]\nread = [\"auditor\"]\n",
    )
    .unwrap();
    let set = fx.home.join("eval-as-erin.toml");
    std::fs::write(
        &set,
        "name = \"as-erin\"\ntier = \"monitoring\"\n\n[[question]]\nid = \"quote\"\nquestion = \"refund_payment reverses the ledger entries TOPSECRET_PHRASE\"\nas = \"erin\"\nforbidden_repos = [\"payments\"]\n",
    )
    .unwrap();
    let acl = acl.to_str().unwrap();
    let (out, eval) = codeq_json(
        &fx.root,
        &[
            "--acl",
            acl,
            "--as",
            "auditor",
            "eval",
            set.to_str().unwrap(),
        ],
    );
    assert!(out.status.code().is_some_and(|c| c < 2), "{}", stderr(&out));
    let id = eval["report"]["sets"][0]["questions"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (out, mine) = codeq_json(&fx.root, &["--acl", acl, "--as", "auditor", "trace", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mine["trace"]["principal"], "auditor");
    assert_eq!(mine["trace"]["asked_as"], "erin");
    let (out, _) = codeq_json(&fx.root, &["--acl", acl, "--as", "erin", "trace", &id]);
    assert_eq!(out.status.code(), Some(2));
    let out = codeq(&fx.root, &["--acl", acl, "--as", "erin", "trace", "--last"]);
    assert!(
        !stdout(&out).contains("TOPSECRET_PHRASE"),
        "{}",
        stdout(&out)
    );
}

/// Every pipeline stage is a tracing span: with `RUST_LOG=codeq=debug` each one reports
/// closing, for a query and for an indexing run.
#[test]
fn each_pipeline_stage_is_a_tracing_span() {
    let closed = |out: &std::process::Output| -> Vec<String> {
        stderr(out)
            .lines()
            .filter(|line| line.contains("close"))
            .filter_map(|line| {
                let rest = &line[line.find("stage{stage=\"")? + "stage{stage=\"".len()..];
                Some(rest[..rest.find('"')?].to_string())
            })
            .collect()
    };
    let debug_run = |cwd: &Path, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_codeq"))
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "codeq=debug")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let fx = fixture();
    let out = debug_run(&fx.root, &["ask", "how is a payment refunded?"]);
    let stages = closed(&out);
    for stage in ["analyze", "bm25", "embed", "vector", "fuse", "answer"] {
        assert!(stages.iter().any(|s| s == stage), "{stage}: {stages:?}");
    }

    let tree = tempfile::tempdir().unwrap();
    std::fs::write(
        tree.path().join("shapes.py"),
        "def area(width, height):\n    return width * height\n",
    )
    .unwrap();
    let index_dir = tree.path().join("index");
    let out = debug_run(
        tree.path(),
        &["index", ".", "--index-dir", index_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stages = closed(&out);
    for stage in ["walk", "chunk", "embed", "store", "publish"] {
        assert!(stages.iter().any(|s| s == stage), "{stage}: {stages:?}");
    }
}
