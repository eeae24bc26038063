//! `codeq mcp` as a coding agent sees it: a client spawns the server on the fixture index,
//! initializes, lists tools, calls search, ask, status and read_citation; and an agent
//! serving a restricted principal tries to reach what that principal may not read.

mod common;

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use common::fixture;
use common::mcp::Client;

#[test]
fn an_agent_initializes_lists_tools_and_gets_verified_citations() {
    let fx = fixture();
    let mut client = Client::start(&fx.root, &[]);
    let init = client.initialize("2025-11-25");
    let result = &init["result"];
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(result["serverInfo"]["name"], "codeq");
    assert!(result["capabilities"]["tools"].is_object(), "{init}");

    let tools = client.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["search", "ask", "status", "read_citation"]);
    for tool in tools["result"]["tools"].as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }

    let (error, search) = client.call("search", json!({"query": "total_with_tax", "k": 3}));
    assert!(!error, "{search}");
    common::assert_schema("search", &search);
    let results = search["results"].as_array().unwrap();
    assert!(results.len() <= 3);
    assert!(
        results[0]["citation"]
            .as_str()
            .unwrap()
            .starts_with("payments:src/lib.rs:"),
        "{search}"
    );

    let (error, asked) = client.call(
        "ask",
        json!({"question": "how is the invoice total with tax computed"}),
    );
    assert!(!error, "{asked}");
    let first = &asked["answer"]["citations"][0];
    assert_eq!(first["freshness"]["state"], "current", "{first}");
    let citation = first["citation"].as_str().unwrap().to_string();
    assert!(citation.starts_with("payments:src/lib.rs:"), "{citation}");

    let (error, read) = client.call("read_citation", json!({"citation": citation}));
    assert!(!error, "{read}");
    assert_eq!(read["stale"], false);
    common::assert_schema("read_citation", &read);
    assert!(
        read["text"].as_str().unwrap().contains("fn total_with_tax"),
        "{read}"
    );
    let (error, outside) = client.call(
        "read_citation",
        json!({"citation": "payments:src/lib.rs:1-100000"}),
    );
    assert!(
        error && outside.as_str().unwrap().contains("not inside the file"),
        "{outside}"
    );

    let (error, status) = client.call("status", json!({}));
    assert!(!error, "{status}");
    assert!(
        status["repos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "payments")
    );

    // Protocol hygiene: ping, unknown methods, unknown tools, garbage, older revisions.
    assert_eq!(client.request("ping", json!({}))["result"], json!({}));
    assert_eq!(
        client.request("no/such", json!({}))["error"]["code"],
        -32601
    );
    let unknown_tool = client.request("tools/call", json!({"name": "rm", "arguments": {}}));
    assert_eq!(unknown_tool["error"]["code"], -32602);
    let garbage = client.send_line("{not json");
    assert_eq!(garbage["error"]["code"], -32700);
    assert_eq!(garbage["id"], Value::Null);
    // Invalid UTF-8 and an oversized line are answered, and the server carries on.
    client
        .input
        .write_all(b"{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\": \"\xff\xfe\"}\n")
        .unwrap();
    let mut reply = String::new();
    client.output.read_line(&mut reply).unwrap();
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["error"]["code"], -32601, "{reply}");
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let reply = client.send_line(&huge);
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert_eq!(client.request("ping", json!({}))["result"], json!({}));
    let mut old = Client::start(&fx.root, &[]);
    assert_eq!(
        old.initialize("2025-03-26")["result"]["protocolVersion"],
        "2025-03-26"
    );
}

#[test]
fn a_restricted_principal_gets_nothing_of_other_repositories_whatever_the_arguments() {
    let fx = fixture();
    let acl = fx.home.join("mcp-acl.toml");
    std::fs::write(
        &acl,
        "[[acl.grant]]\nrepos = [\"search-service\"]\nread = [\"carol\"]\n\n[[acl.grant]]\nrepos = [\"*\"]\nread = [\"admin\"]\n",
    )
    .unwrap();
    let mut client = Client::start(&fx.root, &["--acl", acl.to_str().unwrap(), "--as", "carol"]);
    client.initialize("2025-11-25");
    let markers = [
        "total_with_tax",
        "refund_payment",
        "LineItem",
        "FraudScorer",
        "payments",
    ];

    // The best matches are in payments; carol gets only search-service chunks.
    let (error, search) = client.call(
        "search",
        json!({"query": "total_with_tax refund_payment LineItem FraudScorer invoice", "k": 50}),
    );
    assert!(!error, "{search}");
    let results = search["results"].to_string();
    for marker in markers {
        assert!(
            !results.contains(marker),
            "carol's results mention {marker}: {results}"
        );
    }
    let (error, asked) = client.call("ask", json!({"question": "how are refunds paid", "k": 50}));
    assert!(!error, "{asked}");
    let answer = asked["answer"]
        .to_string()
        .replace("how are refunds paid", "");
    for marker in markers {
        assert!(
            !answer.contains(marker),
            "carol's answer mentions {marker}: {answer}"
        );
    }

    // Tool arguments cannot change the principal.
    for key in ["as", "user", "principal"] {
        let (error, text) = client.call("search", json!({"query": "total_with_tax", key: "admin"}));
        assert!(error, "{key}: {text}");
        assert!(
            text.as_str()
                .unwrap()
                .contains("fixed when the server starts"),
            "{text}"
        );
    }

    // A forbidden repository or path fails exactly like one that does not exist.
    let (error, forbidden) = client.call("search", json!({"query": "x", "repos": ["payments"]}));
    let (_, missing) = client.call("search", json!({"query": "x", "repos": ["zzzzzzzz"]}));
    assert!(error);
    assert_eq!(
        forbidden.as_str().unwrap().replace("payments", "NAME"),
        missing.as_str().unwrap().replace("zzzzzzzz", "NAME")
    );
    for citation in [
        "payments:src/lib.rs:1-5",
        "payments/plugins/fraud:fraud/scoring.py:1-3",
        "search-service:../payments/src/lib.rs:1-5",
        "search-service:/etc/passwd:1-1",
        ".:notes/todo.md:1-1",
    ] {
        let (error, text) = client.call("read_citation", json!({"citation": citation}));
        assert!(error, "{citation}: {text}");
        let text = text.as_str().unwrap().replace(citation, "CITATION");
        assert_eq!(
            text,
            "CITATION: no indexed file of that name is visible to you; cite as repo:path:start-end, as search and ask print them"
        );
    }
    let (error, own) = client.call(
        "read_citation",
        json!({"citation": "search-service:README.md:1-1"}),
    );
    assert!(!error, "{own}");

    // Status lists only carol's repository and no index-wide totals.
    let (_, status) = client.call("status", json!({}));
    let repos: Vec<&str> = status["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["search-service"]);
    assert!(status.get("skipped").is_none() && status.get("size_on_disk_bytes").is_none());
}

/// The request examples of the MCP specification (revision 2025-11-25, "Lifecycle" and
/// "Tools"), sent verbatim.
#[test]
fn the_specification_s_examples_get_well_formed_replies() {
    let fx = fixture();
    let mut client = Client::start(&fx.root, &[]);
    let init = client.send_line(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"ExampleClient","title":"Example Client Display Name","version":"1.0.0"}}}"#,
    );
    assert_eq!(init["id"], 1);
    let result = &init["result"];
    for key in ["protocolVersion", "capabilities", "serverInfo"] {
        assert!(
            result.get(key).is_some(),
            "initialize result lacks {key}: {init}"
        );
    }
    client.notify("notifications/initialized");
    let list = client.send_line(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"optional-cursor-value"}}"#,
    );
    for tool in list["result"]["tools"].as_array().unwrap() {
        assert!(
            tool["name"].is_string() && tool["description"].is_string(),
            "{tool}"
        );
        assert_eq!(tool["inputSchema"]["type"], "object");
    }
    // The spec's tools/call example names a tool this server does not have: a protocol
    // error, as the spec's own error example shows.
    let call = client.send_line(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_weather","arguments":{"location":"New York"}}}"#,
    );
    assert_eq!(call["id"], 2);
    assert_eq!(call["error"]["code"], -32602, "{call}");
    let ping = client.send_line(r#"{"jsonrpc": "2.0", "id": "123", "method": "ping"}"#);
    assert_eq!(ping["id"], "123");
    assert_eq!(ping["result"], json!({}));
}

/// A cited file swapped for a symlink after indexing (to another repository, or outside
/// the root) is not followed: read_citation refuses it instead of returning the target.
#[test]
fn read_citation_does_not_follow_a_file_swapped_for_a_symlink() {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join("corpus");
    for (path, text) in [
        (
            "pub/docs/guide.md",
            "# Guide\n\nHow to publish a release.\n",
        ),
        ("secret/keys.py", "API_KEY = \"sk-SECRET-12345\"\n"),
    ] {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    common::commit_all(&root.join("pub"), &[]);
    common::commit_all(&root.join("secret"), &[]);
    let out = common::codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let acl = home.path().join("acl.toml");
    std::fs::write(
        &acl,
        "[[acl.grant]]\nrepos = [\"pub\"]\nread = [\"carol\"]\n",
    )
    .unwrap();
    let mut client = Client::start(&root, &["--acl", acl.to_str().unwrap(), "--as", "carol"]);
    client.initialize("2025-11-25");
    let (error, before) = client.call(
        "read_citation",
        json!({"citation": "pub:docs/guide.md:1-1"}),
    );
    assert!(!error, "{before}");

    let guide = root.join("pub/docs/guide.md");
    std::fs::remove_file(&guide).unwrap();
    std::os::unix::fs::symlink("../../secret/keys.py", &guide).unwrap();
    let (error, after) = client.call(
        "read_citation",
        json!({"citation": "pub:docs/guide.md:1-1"}),
    );
    assert!(error, "{after}");
    assert!(!after.to_string().contains("sk-SECRET"), "{after}");
    let (_, asked) = client.call("ask", json!({"question": "how to publish a release"}));
    assert!(!asked.to_string().contains("sk-SECRET"), "{asked}");
}
