//! Generated answers from a real local model: llama.cpp's server (the xllamacpp wheel) on
//! SmolLM2-135M-Instruct, both installed by `scripts/setup.sh --llm-small` (which `make
//! test` runs). Whatever the model writes, what `codeq ask` shows is verified: every
//! citation names a source it was sent, or the extractive answer stands and says why. When
//! the server goes away, `ask` says so and answers extractively; `codeq eval --llm` scores
//! the generated answers. Skipped, with the command that installs them, when the server or
//! the model is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use common::{codeq, codeq_json, commit_all, stderr, stdout};

/// llama.cpp's server on 127.0.0.1 with the smallest model; stopped when dropped.
struct LocalModel {
    child: Child,
    base_url: String,
}

impl LocalModel {
    /// Starts the server, or says why it cannot and returns `None`.
    fn start() -> Option<LocalModel> {
        let home = codeq::paths::codeq_home();
        let python = home.join("llm/venv/bin/python");
        let model = home.join("models/smollm2-135m-instruct-q4_1/model.gguf");
        if !python.is_file() || !model.is_file() {
            eprintln!(
                "skipped: no local model ({} or {} is missing); `scripts/setup.sh --llm-small` installs them",
                python.display(),
                model.display()
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/llm-server.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([
                "--model",
                model.to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .args(["--ctx", "4096", "--threads", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/llm-server.py");
        // The server prints one line once the model is loaded (or exits on failure).
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening http://127.0.0.1:"),
            "the local model server did not start: {line:?}"
        );
        Some(LocalModel {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
        })
    }
}

impl Drop for LocalModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BILLING: &str = r#""""Invoices for the billing service."""


def invoice_total(lines, tax_rate):
    """Add up the invoice lines and apply the tax rate."""
    subtotal = sum(price * quantity for price, quantity in lines)
    return subtotal * (1 + tax_rate)


def refund(invoice, amount):
    """Record a refund against an invoice; refunds never exceed the total."""
    invoice.refunded = min(invoice.total, invoice.refunded + amount)
    return invoice
"#;

const SET: &str = r#"name = "local-llm"
tier = "monitoring"

[[question]]
id = "total"
question = "how is the invoice total computed with tax?"
relevant = ["app:billing.py"]

[[question]]
id = "refund"
question = "can a refund exceed the invoice total?"
relevant = ["app:billing.py"]
"#;

/// A one-repository corpus, indexed with the real embedding model, whose `[llm]` points at
/// `base_url`.
fn corpus(home: &Path, base_url: &str) -> PathBuf {
    let root = home.join("corpus");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("app/billing.py"), BILLING).unwrap();
    commit_all(&root.join("app"), &[]);
    std::fs::write(
        root.join("codeq.toml"),
        format!(
            "[llm]\nbase_url = \"{base_url}\"\nmodel = \"smollm2-135m-instruct\"\ntimeout_ms = 120000\nmax_context_tokens = 1500\nmax_answer_tokens = 200\n"
        ),
    )
    .unwrap();
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(root.join("set.toml"), SET).unwrap();
    root
}

/// Every `[n]` or `[n:a-b]` left in `text` names a source that was sent.
fn assert_citations_verified(g: &Value, citations: usize) {
    let text = g["text"].as_str().unwrap_or_default();
    let sent = g["sources_sent"].as_u64().unwrap() as usize;
    assert!(sent >= 1 && sent <= citations, "{g}");
    for n in g["cited_sources"].as_array().unwrap() {
        let n = n.as_u64().unwrap() as usize;
        assert!(
            (1..=sent).contains(&n),
            "cited source {n} was not sent: {g}"
        );
        assert!(text.contains(&format!("[{n}")), "{g}");
    }
}

#[test]
fn a_real_local_model_answers_with_verified_citations_or_falls_back() {
    let Some(model) = LocalModel::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let root = corpus(home.path(), &model.base_url);

    let (out, value) = codeq_json(
        &root,
        &["ask", "how is the invoice total computed with tax?"],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    common::assert_schema("ask", &value);
    let g = &value["answer"]["generated"];
    assert_eq!(g["prompt_version"], "codeq-answer-v2", "{g}");
    // The model answered: tokens counted by the server itself, and no transport failure.
    assert!(g["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{g}");
    assert!(g["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{g}");
    match g["fallback"].as_str() {
        None => {
            assert_citations_verified(g, value["answer"]["citations"].as_array().unwrap().len())
        }
        Some(reason) => assert_eq!(reason, "the model's reply cites no valid source", "{g}"),
    }

    // codeq eval --llm scores the generated answers beside the extractive ones.
    let (out, eval) = codeq_json(&root, &["eval", "set.toml", "--llm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    common::assert_schema("eval", &eval);
    let generated = &eval["report"]["overall"]["generated"];
    assert_eq!(generated["questions"], 2, "{generated}");
    assert_eq!(generated["endpoint_failures"], 0, "{generated}");
    assert_eq!(generated["prompt_versions"][0], "codeq-answer-v2");
    assert!(
        generated["prompt_tokens"].as_f64().unwrap() > 0.0,
        "{generated}"
    );
    let out = codeq(&root, &["eval", "set.toml", "--llm"]);
    let table = stdout(&out);
    assert!(
        table.contains("generated answers (model smollm2-135m-instruct, prompt codeq-answer-v2)")
            && table.contains("extractive"),
        "{table}"
    );

    // The server goes away: ask says so and the extractive answer stands.
    drop(model);
    let out = codeq(
        &root,
        &["ask", "how is the invoice total computed with tax?"],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("note: no generated answer (cannot connect to the endpoint"),
        "{text}"
    );
    assert!(text.contains("billing.py"), "{text}");
    // And eval --llm counts the replies that never came.
    let (_, eval) = codeq_json(&root, &["eval", "set.toml", "--llm"]);
    assert!(
        eval["report"]["overall"]["generated"]["endpoint_failures"] == 2,
        "{eval}"
    );
}
