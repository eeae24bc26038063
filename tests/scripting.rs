//! The scripting surface: every `--json` document matches its published schema
//! (docs/schemas), exit codes follow ripgrep's convention, completions and the man page
//! come from the command definitions, and configuration layers with provenance.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_schema, codeq, codeq_json, fixture, stderr, stdout};

fn eval_set() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("eval-questions/fixture.toml")
        .display()
        .to_string()
}

#[test]
fn json_documents_match_their_schemas_and_exit_codes_follow_ripgrep() {
    let fx = fixture();
    let (out, search) = codeq_json(&fx.root, &["search", "total_with_tax"]);
    assert_eq!(out.status.code(), Some(0));
    assert_schema("search", &search);
    let (out, ask) = codeq_json(&fx.root, &["ask", "how are refunds paid"]);
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1));
    assert_schema("ask", &ask);
    let (out, status) = codeq_json(&fx.root, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_schema("status", &status);
    let (_, eval) = codeq_json(&fx.root, &["eval", &eval_set()]);
    assert_schema("eval", &eval);
    let id = ask["trace_id"].as_str().unwrap();
    let (out, trace) = codeq_json(&fx.root, &["trace", id]);
    assert_eq!(out.status.code(), Some(0));
    assert_schema("trace", &trace);
    let (out, config) = codeq_json(&fx.root, &["config"]);
    assert_eq!(out.status.code(), Some(0));
    assert_schema("config", &config);

    // 1: no results; 2: usage, configuration or index errors.
    let (out, empty) = codeq_json(&fx.root, &["search", " "]);
    assert_eq!(out.status.code(), Some(1), "{empty}");
    assert_schema("search", &empty);
    // A language nobody can see is a usage error that lists the ones there are.
    let out = codeq(&fx.root, &["search", "refund", "--lang", "cobol"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cobol")
            && stderr(&out).contains("python")
            && stderr(&out).contains("rust"),
        "{}",
        stderr(&out)
    );
    assert_eq!(codeq(&fx.root, &["search"]).status.code(), Some(2));
    assert_eq!(
        codeq(&fx.root, &["search", "x", "--repo", "nope"])
            .status
            .code(),
        Some(2)
    );
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(codeq(elsewhere.path(), &["status"]).status.code(), Some(2));
}

#[test]
fn completions_and_man_page_come_from_the_command_definitions() {
    let fx = fixture();
    for shell in ["bash", "zsh", "fish"] {
        let out = codeq(&fx.root, &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for command in ["index", "ask", "search", "tui", "mcp", "trace", "config"] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    let man = stdout(&codeq(&fx.root, &["man"]));
    assert!(man.starts_with(".ie") || man.contains(".TH codeq"), "{man}");
    assert!(
        man.contains("CODEQ_INDEX_DIR"),
        "environment variables are documented"
    );
}

fn config_json(root: &Path, xdg: &Path, vars: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_codeq"))
        .args(["config", "--json"])
        .arg(root)
        .env("XDG_CONFIG_HOME", xdg)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out, value)
}

#[test]
fn configuration_layers_user_file_root_file_and_environment_with_provenance() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let xdg = scratch.path().join("xdg");
    std::fs::create_dir_all(xdg.join("codeq")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    let user_file = xdg.join("codeq/config.toml");
    std::fs::write(&user_file, "[model]\nthreads = 1\nmax_length = 128\n").unwrap();
    std::fs::write(root.join("codeq.toml"), "[model]\nthreads = 2\n").unwrap();

    let (out, value) = config_json(&root, &xdg, &[("CODEQ_INDEX_ANN", "off")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sources = &value["sources"];
    assert_eq!(
        value["values"]["model"]["threads"], 2,
        "the root file beats the user's"
    );
    assert_eq!(
        sources["model.threads"],
        root.join("codeq.toml").display().to_string()
    );
    assert_eq!(value["values"]["model"]["max_length"], 128);
    assert_eq!(sources["model.max_length"], user_file.display().to_string());
    assert_eq!(value["values"]["index"]["ann"], "off");
    assert_eq!(sources["index.ann"], "env CODEQ_INDEX_ANN");
    assert_eq!(sources["index.write_batch"], "default");

    // A bad variable and an ACL in a user's own file are refused, naming the culprit.
    let (out, _) = config_json(&root, &xdg, &[("CODEQ_MODEL_BATCH_SIZE", "many")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("CODEQ_MODEL_BATCH_SIZE"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &user_file,
        "[[acl.grant]]\nrepos = [\"*\"]\nread = [\"me\"]\n",
    )
    .unwrap();
    let (out, _) = config_json(&root, &xdg, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("never from a user's own configuration"),
        "{}",
        stderr(&out)
    );
}

/// `codeq bench query` on the fixture: each access scenario is timed under its own filter
/// (the ACL ones see fewer chunks), and its overhead is paired with the unfiltered one.
#[test]
fn the_query_benchmark_times_each_access_scenario_against_the_unfiltered_one() {
    let fx = fixture();
    let scratch = tempfile::tempdir().unwrap();
    let out_dir = scratch.path().join("bench");
    let (out, report) = codeq_json(
        &fx.root,
        &[
            "bench",
            "query",
            "--chunks",
            "60",
            "--rounds",
            "1",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bench = &report["bench"];
    let chunks = bench["chunks"].as_u64().unwrap();
    assert!(chunks >= 60, "{bench}");
    let scenarios = bench["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 3, "{bench}");
    assert_eq!(scenarios[0]["visible_chunks"].as_u64(), Some(chunks));
    assert_eq!(scenarios[0]["search_overhead_p50"].as_f64(), Some(0.0));
    for s in scenarios {
        assert!(s["search_p50_ms"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["search_overhead_p50"].as_f64().unwrap() > -1.0, "{s}");
        assert_eq!(s["stage_p50_ms"].as_array().unwrap().len(), 4, "{s}");
    }
    for s in &scenarios[1..] {
        let visible = s["visible_chunks"].as_u64().unwrap();
        assert!(0 < visible && visible < chunks, "{s}");
    }
}
