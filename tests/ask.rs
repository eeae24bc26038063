//! `codeq ask`: citations are verified against the working tree before they are shown, and
//! verdicts feed the eval backlog.

mod common;

use common::{codeq, codeq_json, stderr, stdout};

const LEDGER: &str = "/// Moves money between two accounts and records both entries.\npub fn transfer_funds(from: &mut i64, to: &mut i64, amount: i64) {\n    *from -= amount;\n    *to += amount;\n}\n";
const AUDIT: &str = "/// Writes an audit record for every balance change.\npub fn audit_balance_change(account: &str, delta: i64) -> String {\n    format!(\"{account}: {delta}\")\n}\n";
const RATES: &str = "/// Converts an amount between currencies with a fixed exchange rate table.\npub fn convert_currency(amount: f64, rate: f64) -> f64 {\n    amount * rate\n}\n";

fn citation<'a>(answer: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    answer["answer"]["citations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no citation of {path} in {answer}"))
}

#[test]
fn citations_are_marked_moved_changed_or_dropped_after_edits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bank");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/ledger.rs"), LEDGER).unwrap();
    std::fs::write(root.join("src/audit.rs"), AUDIT).unwrap();
    std::fs::write(root.join("src/rates.rs"), RATES).unwrap();
    common::commit_all(&root, &[]);
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (out, fresh) = codeq_json(&root, &["ask", "transfer_funds"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fresh["answer"]["confident"], true);
    let c = citation(&fresh, "src/ledger.rs");
    assert_eq!(c["freshness"]["state"], "current");
    assert_eq!(
        (c["start_line"].as_u64(), c["end_line"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(c["symbol"], "transfer_funds");
    assert!(c["why"].as_str().unwrap().contains("symbol matches"), "{c}");

    // ledger.rs: same code two lines lower; audit.rs: rewritten; rates.rs: deleted.
    std::fs::write(
        root.join("src/ledger.rs"),
        format!("use std::fmt;\n\n{LEDGER}"),
    )
    .unwrap();
    std::fs::write(
        root.join("src/audit.rs"),
        "pub fn audit_balance_change(account: &str) -> String {\n    account.to_string()\n}\n",
    )
    .unwrap();
    std::fs::remove_file(root.join("src/rates.rs")).unwrap();

    let (_, moved) = codeq_json(&root, &["ask", "transfer_funds"]);
    let c = citation(&moved, "src/ledger.rs");
    assert_eq!(c["freshness"]["state"], "moved");
    assert_eq!(c["freshness"]["start_line"], 3);
    assert_eq!(c["freshness"]["end_line"], 7);

    let (_, changed) = codeq_json(&root, &["ask", "audit_balance_change"]);
    assert_eq!(
        citation(&changed, "src/audit.rs")["freshness"]["state"],
        "changed"
    );

    let (_, dropped) = codeq_json(&root, &["ask", "convert_currency"]);
    let notes = dropped["answer"]["dropped"].to_string();
    assert!(
        notes.contains("src/rates.rs") && notes.contains("no longer exists"),
        "{notes}"
    );
    assert!(
        dropped["answer"]["citations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["path"] != "src/rates.rs")
    );

    let human = stdout(&codeq(&root, &["ask", "transfer_funds"]));
    assert!(
        human.contains("[STALE: file changed; this code is now at lines 3-7]"),
        "{human}"
    );
}

#[test]
fn weak_evidence_is_not_presented_as_an_answer_and_verdicts_reach_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bank");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/ledger.rs"), LEDGER).unwrap();
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = codeq(&root, &["ask", "kubernetes helm chart ingress annotations"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("No confident answer"),
        "{}",
        stdout(&out)
    );

    let out = codeq(&root, &["ask", "transfer_funds", "--verdict", "1=good"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let backlog = std::fs::read_to_string(root.join(".codeq/backlog.jsonl")).unwrap();
    assert!(backlog.contains("\"verdict\":\"good\""), "{backlog}");
    assert!(backlog.contains("\".:src/ledger.rs:1-5\""), "{backlog}");

    let out = codeq(&root, &["ask", "transfer_funds", "--verdict", "9=bad"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the answer has"), "{}", stderr(&out));
    let out = codeq(&root, &["ask", "transfer_funds", "--verdict", "1=meh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_defining_chunk_outranks_its_callers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bank");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("tests")).unwrap();
    std::fs::write(root.join("src/ledger.rs"), LEDGER).unwrap();
    // Callers mention transfer_funds more often than its definition does.
    let caller = |name: &str| {
        format!(
            "/// Calls transfer_funds for {name}.\npub fn {name}(a: &mut i64, b: &mut i64) {{\n    transfer_funds(a, b, 1);\n    transfer_funds(b, a, 1);\n    transfer_funds(a, b, 2);\n}}\n"
        )
    };
    std::fs::write(
        root.join("src/payroll.rs"),
        caller("pay_salaries") + &caller("pay_bonuses"),
    )
    .unwrap();
    std::fs::write(
        root.join("tests/transfers.rs"),
        caller("transfer_funds_test"),
    )
    .unwrap();
    common::commit_all(&root, &[]);
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));

    let (out, found) = codeq_json(&root, &["search", "transfer_funds"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = &found["results"][0];
    assert_eq!(first["path"], "src/ledger.rs", "{found}");
    assert_eq!(first["boosts"][0]["reason"], "defines the named symbol");
    assert!(first["fused_score"].as_f64().unwrap() < first["score"].as_f64().unwrap());
    let test_hit = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"] == "tests/transfers.rs")
        .expect("the test caller is still listed");
    assert!(
        test_hit["boosts"].to_string().contains("test code"),
        "{test_hit}"
    );

    // Asking for callers does not boost the definition.
    let (_, usages) = codeq_json(&root, &["search", "where is transfer_funds called"]);
    for hit in usages["results"].as_array().unwrap() {
        assert!(!hit["boosts"].to_string().contains("defines"), "{hit}");
    }
    assert_eq!(usages["analysis"]["asks_for_usages"], true);
}
