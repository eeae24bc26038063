//! `codeq serve` tried as a client and as an attacker would: a real server process over a
//! private copy of the indexed fixture, spoken to over TCP.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use codeq::hash::sha256_hex;
use common::{ACL, codeq, copy_tree, fixture, stderr};
use serde_json::{Value, json};

const ALICE: &str = "alice-token-7f3c";
const MALLORY: &str = "mallory-token-91ab";
const BOB: &str = "bob-token-22d0";

/// A private, ACL-guarded copy of the fixture corpus and its index.
struct Site {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("corpus");
        copy_tree(&fixture().root, &root);
        let config = root.join("codeq.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(ACL);
        std::fs::write(&config, text).unwrap();
        // The copy lives at another root: this run records it and embeds nothing.
        let out = codeq(&root, &["index", "."]);
        assert!(out.status.success(), "{}", stderr(&out));
        Site { dir, root }
    }

    fn tokens_file(&self, entries: &[(&str, &str)]) -> PathBuf {
        let path = self.dir.path().join("tokens.toml");
        let text: String = entries
            .iter()
            .map(|(principal, token)| {
                format!(
                    "[[token]]\nprincipal = \"{principal}\"\nsha256 = \"{}\"\n",
                    sha256_hex(token.as_bytes())
                )
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A running `codeq serve`, stopped when dropped; its standard error is collected.
struct Server {
    child: Child,
    address: String,
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Server {
    fn start(site: &Site, tokens: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codeq"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tokens"])
            .arg(tokens)
            .args(extra)
            .current_dir(&site.root)
            .env_remove("CODEQ_INDEX_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, log) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            address: String::new(),
            log,
            lines: Vec::new(),
        };
        let line = server.wait_for_log("listening on http://");
        server.address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_string();
        server
    }

    /// Waits (up to 60 s) for a log line containing `text`; returns it.
    fn wait_for_log(&mut self, text: &str) -> String {
        if let Some(line) = self.lines.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with {text:?}; got {:#?}", self.lines);
    }

    /// One HTTP/1.1 request; (status, headers, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, String) {
        http(&self.address, method, path, token, body)
    }

    /// A POST with a JSON body; (status, parsed body or Null).
    fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let (status, _, text) = self.request("POST", path, Some(token), Some(&body.to_string()));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

/// One HTTP/1.1 request to `address`; (status, headers, body).
fn http(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, headers.to_string(), body.to_string())
}

/// The head of the response to a search with `body`, sent as a keep-alive client sends
/// it (no `Connection: close` of its own), in lower case.
fn keep_alive_response_head(address: &str, token: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /v1/search HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and stop reading before the whole body is sent.
    let _ = stream.write_all(body.as_bytes());
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&raw).to_ascii_lowercase()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repos_of(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["repo"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn without_a_valid_token_a_request_learns_nothing() {
    let site = Site::new();
    let tokens = site.tokens_file(&[("alice", ALICE)]);
    let expired = site.dir.path().join("expired.toml");
    std::fs::write(
        &expired,
        format!(
            "[[token]]\nprincipal = \"alice\"\nsha256 = \"{}\"\nexpires = 2020-01-01\n",
            sha256_hex(ALICE.as_bytes())
        ),
    )
    .unwrap();
    let server = Server::start(&site, &tokens, &[]);
    let (status, _, body) = server.request("GET", "/healthz", None, None);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let query = r#"{"query": "refund payment"}"#;
    let sha = sha256_hex(ALICE.as_bytes());
    for (name, token) in [
        ("none", None),
        ("wrong", Some("alice-token-7f3d")),
        ("its hash", Some(sha.as_str())),
        ("empty", Some("")),
    ] {
        for (method, path, body) in [
            ("POST", "/v1/search", Some(query)),
            ("GET", "/v1/status", None),
            (
                "POST",
                "/mcp",
                Some(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            ),
        ] {
            let (status, headers, text) = server.request(method, path, token, body);
            assert_eq!(status, 401, "{name} token, {path}");
            assert!(
                headers
                    .to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{headers}"
            );
            assert!(
                text.is_empty(),
                "{name} token, {path}: a 401 says nothing: {text}"
            );
        }
    }
    // Another scheme with the right token is not a bearer token.
    let mut stream = TcpStream::connect(&server.address).unwrap();
    write!(
        stream,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {ALICE}\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    drop(server);

    let server = Server::start(&site, &expired, &[]);
    let (status, _, _) = server.request("GET", "/v1/status", Some(ALICE), None);
    assert_eq!(status, 401, "an expired token");
    drop(server);

    // The principal is the token's: --as is refused at start.
    let out = codeq(
        &site.root,
        &[
            "serve",
            "--tokens",
            tokens.to_str().unwrap(),
            "--as",
            "admin",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bearer token"), "{}", stderr(&out));
}

#[test]
fn each_token_sees_only_what_its_principal_may_read() {
    let site = Site::new();
    let tokens = site.tokens_file(&[("alice", ALICE), ("mallory", MALLORY)]);
    let mut server = Server::start(&site, &tokens, &["--requests-per-minute", "6000"]);

    // alice reads the payments repositories only.
    let (status, found) = server.post(
        "/v1/search",
        ALICE,
        &json!({"query": "query parsing ranking", "k": 20}),
    );
    assert_eq!(status, 200, "{found}");
    let repos = repos_of(&found);
    assert!(!repos.is_empty(), "{found}");
    assert!(repos.iter().all(|r| r.starts_with("payments")), "{repos:?}");
    assert!(!found.to_string().contains("search-service"), "{found}");
    let (status, found) = server.post(
        "/v1/search",
        ALICE,
        &json!({"query": "refund_payment", "repo": "payments", "lang": "rust"}),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"][0]["symbol"], "refund_payment", "{found}");

    let (status, _, text) = server.request("GET", "/v1/status", Some(ALICE), None);
    assert_eq!(status, 200);
    assert!(text.contains("payments"), "{text}");
    assert!(!text.contains("search-service"), "{text}");

    let (status, asked) = server.post(
        "/v1/ask",
        ALICE,
        &json!({"question": "how are payments refunded?"}),
    );
    assert_eq!(status, 200, "{asked}");
    assert!(asked.to_string().contains("refund_payment"), "{asked}");

    // mallory may read nothing: no results, no repository names, no counts.
    let (status, found) = server.post("/v1/search", MALLORY, &json!({"query": "refund payment"}));
    assert_eq!(status, 200, "{found}");
    assert_eq!(repos_of(&found), Vec::<String>::new(), "{found}");
    let (_, _, text) = server.request("GET", "/v1/status", Some(MALLORY), None);
    for name in ["payments", "search-service", "refund"] {
        assert!(
            !text.contains(name),
            "mallory's status names {name}: {text}"
        );
    }
    let (status, read) = server.post(
        "/v1/read_citation",
        MALLORY,
        &json!({"citation": "payments:src/lib.rs:1-5"}),
    );
    assert_eq!(status, 404, "{read}");
    assert!(!read.to_string().contains("Invoices"), "{read}");
    let (status, unknown) = server.post(
        "/v1/read_citation",
        MALLORY,
        &json!({"citation": "nowhere:src/none.rs:1-5"}),
    );
    assert_eq!(status, 404);
    assert_eq!(
        unknown["error"]
            .as_str()
            .map(|e| e.replace("nowhere:src/none.rs", "X")),
        read["error"]
            .as_str()
            .map(|e| e.replace("payments:src/lib.rs", "X")),
        "a forbidden file and a missing one get the same answer"
    );

    // A repository filter naming a repository alice may not read is answered as one
    // that does not exist.
    let (forbidden_status, forbidden) = server.post(
        "/v1/search",
        ALICE,
        &json!({"query": "query parsing", "repo": "search-service"}),
    );
    let (missing_status, missing) = server.post(
        "/v1/search",
        ALICE,
        &json!({"query": "query parsing", "repo": "no-such-repo"}),
    );
    assert_eq!(
        (forbidden_status, missing_status),
        (400, 400),
        "{forbidden} {missing}"
    );
    assert_eq!(
        forbidden["error"]
            .as_str()
            .map(|e| e.replace("search-service", "X")),
        missing["error"]
            .as_str()
            .map(|e| e.replace("no-such-repo", "X")),
    );

    // No field of a request chooses the principal.
    for field in ["as", "principal", "user"] {
        let (status, refused) = server.post(
            "/v1/search",
            MALLORY,
            &json!({"query": "refund payment", field: "alice"}),
        );
        assert_eq!(status, 400, "{field}: {refused}");
        assert!(
            refused["error"].as_str().unwrap().contains("bearer token"),
            "{refused}"
        );
    }
    // Limits: k, body size, a body that is not an object.
    let (status, _) = server.post("/v1/search", ALICE, &json!({"query": "x", "k": 500}));
    assert_eq!(status, 400);
    let huge = json!({"query": "x".repeat(100_000)}).to_string();
    let (status, _, _) = server.request("POST", "/v1/search", Some(ALICE), Some(&huge));
    assert_eq!(status, 413);
    // The unread body ends the connection: a keep-alive client is told so.
    let headers = keep_alive_response_head(&server.address, ALICE, &huge);
    assert!(headers.starts_with("http/1.1 413"), "{headers}");
    assert!(headers.contains("connection: close"), "{headers}");
    let (status, _, _) = server.request("POST", "/v1/search", Some(ALICE), Some("[1, 2]"));
    assert_eq!(status, 400);

    // MCP over HTTP: the same tools, the token's principal.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "search", "arguments": {"query": "query parsing ranking", "k": 20}}});
    let (status, reply) = server.post("/mcp", ALICE, &call);
    assert_eq!(status, 200, "{reply}");
    let results = &reply["result"]["structuredContent"];
    assert!(!repos_of(results).is_empty(), "{reply}");
    assert!(!reply.to_string().contains("search-service"), "{reply}");
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _) = server.post("/mcp", ALICE, &notification);
    assert_eq!(status, 202);
    let (status, _, _) = server.request("GET", "/mcp", Some(ALICE), None);
    assert_eq!(status, 405);

    // A question set through the server, unloaded and then by three clients at once.
    let set = site.dir.path().join("served.toml");
    std::fs::write(
        &set,
        "name = \"served\"\ntier = \"blocking\"\n\n\
         [[question]]\nid = \"refund\"\nquestion = \"how are payments refunded?\"\nrelevant = [\"payments:src/lib.rs\"]\n\n\
         [[question]]\nid = \"invoice\"\nquestion = \"invoice total with line items\"\nrelevant = [\"payments:src/lib.rs\"]\n\n\
         [[question]]\nid = \"ranking\"\nquestion = \"query parsing and ranking\"\nforbidden_repos = [\"search-service\"]\n",
    )
    .unwrap();
    let token_file = site.dir.path().join("alice.token");
    std::fs::write(&token_file, format!("{ALICE}\n")).unwrap();
    let url = format!("http://{}", server.address);
    let eval = |token_file: &Path| {
        codeq(
            &site.root,
            &[
                "eval",
                set.to_str().unwrap(),
                "--server",
                &url,
                "--token-file",
                token_file.to_str().unwrap(),
                "--concurrency",
                "3",
                "--json",
            ],
        )
    };
    let out = eval(&token_file);
    assert!(
        out.status.success(),
        "{} {}",
        stderr(&out),
        common::stdout(&out)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["report"]["overall"]["questions"], 2, "{run}");
    assert_eq!(run["report"]["overall"]["hit_at_5"], 1.0, "{run}");
    assert_eq!(run["report"]["overall"]["acl_leaks"], 0, "{run}");
    assert_eq!(run["load"]["requests"], 9, "{run}");
    assert_eq!(run["load"]["errors"], json!([]), "{run}");
    assert_eq!(run["load"]["differing"], json!([]), "{run}");
    let wrong = site.dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-a-token").unwrap();
    let out = eval(&wrong);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refused the token"),
        "{}",
        stderr(&out)
    );

    // The access log names principal, route and status, not the query text.
    let line = server.wait_for_log("\"route\":\"/v1/ask\"");
    assert!(line.contains("\"principal\":\"alice\""), "{line}");
    assert!(!line.contains("refunded"), "{line}");
}

#[test]
fn sighup_reloads_tokens_keeps_a_broken_file_out_and_new_generations_are_picked_up() {
    let site = Site::new();
    let tokens = site.tokens_file(&[("alice", ALICE)]);
    let mut server = Server::start(&site, &tokens, &["--requests-per-minute", "6000"]);
    let (status, _, _) = server.request("GET", "/v1/status", Some(BOB), None);
    assert_eq!(status, 401);

    site.tokens_file(&[("alice", ALICE), ("bob", BOB)]);
    server.signal(libc::SIGHUP);
    server.wait_for_log("\"event\":\"reload\"");
    let (status, _, _) = server.request("GET", "/v1/status", Some(BOB), None);
    assert_eq!(status, 200, "bob's token after the reload");

    std::fs::write(
        &tokens,
        "[[token]]\nprincipal = \"eve\"\nsha256 = \"nope\"\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log("kept the tokens loaded before");
    assert!(!line.contains("nope"), "{line}");
    for token in [ALICE, BOB] {
        let (status, _, _) = server.request("GET", "/v1/status", Some(token), None);
        assert_eq!(status, 200, "the old tokens still work");
    }

    // A new generation, published while the server runs, answers without a restart.
    std::fs::write(
        site.root.join("payments/src/settlement.rs"),
        "/// Settles the nightly batch of card captures with the acquirer.\npub fn settle_captures_with_acquirer() {}\n",
    )
    .unwrap();
    let out = codeq(&site.root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.wait_for_log("\"event\":\"new_generation\"");
    let (status, found) = server.post(
        "/v1/search",
        ALICE,
        &json!({"query": "settle_captures_with_acquirer"}),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["results"][0]["symbol"], "settle_captures_with_acquirer",
        "{found}"
    );

    // SIGTERM while questions are being answered: each is answered, then the server
    // stops. Sixteen questions are sent at once and queue on the one model; the signal
    // goes as soon as the first is answered, so the others are still in flight (the log
    // shows answers after "stopping").
    let sent = std::sync::Arc::new(std::sync::Barrier::new(17));
    let asking: Vec<_> = (0..16)
        .map(|i| {
            let address = server.address.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let body = json!({"question": format!("how are payments refunded? ({i})")}).to_string();
                let mut stream = TcpStream::connect(&address).unwrap();
                write!(
                    stream,
                    "POST /v1/ask HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAuthorization: Bearer {ALICE}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                sent.wait();
                let mut reply = String::new();
                stream.read_to_string(&mut reply).unwrap_or_default();
                reply.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0)
            })
        })
        .collect();
    sent.wait();
    server.wait_for_log("\"route\":\"/v1/ask\"");
    server.signal(libc::SIGTERM);
    let statuses: Vec<u16> = asking.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses, [200; 16],
        "requests in flight at SIGTERM are answered"
    );
    server.wait_for_log("\"event\":\"stopped\"");
    let stopping = server
        .lines
        .iter()
        .position(|l| l.contains("\"event\":\"stopping\""))
        .unwrap();
    assert!(
        server.lines[stopping..]
            .iter()
            .any(|l| l.contains("\"route\":\"/v1/ask\"")),
        "no question was still in flight at SIGTERM: {:#?}",
        server.lines
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
}

#[test]
fn a_token_over_its_rate_is_told_when_to_retry() {
    let site = Site::new();
    let tokens = site.tokens_file(&[("alice", ALICE), ("mallory", MALLORY)]);
    // Six a minute: a burst of one, then one every ten seconds.
    let server = Server::start(&site, &tokens, &["--requests-per-minute", "6"]);
    let (status, _, _) = server.request("GET", "/v1/status", Some(ALICE), None);
    assert_eq!(status, 200);
    let (status, headers, _) = server.request("GET", "/v1/status", Some(ALICE), None);
    assert_eq!(status, 429);
    assert!(
        headers.to_ascii_lowercase().contains("retry-after:"),
        "{headers}"
    );
    let (status, _, _) = server.request("GET", "/v1/status", Some(MALLORY), None);
    assert_eq!(status, 200, "another token has its own rate");
}
