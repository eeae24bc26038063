//! A JSON-RPC client for `codeq mcp` over its stdin/stdout, as a coding agent drives it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// A JSON-RPC client speaking to one `codeq mcp` process over its stdin/stdout.
pub struct Client {
    child: Child,
    pub input: ChildStdin,
    pub output: BufReader<ChildStdout>,
    next_id: u64,
}

impl Client {
    pub fn start(cwd: &Path, args: &[&str]) -> Client {
        Client::start_with_env(cwd, args, &[])
    }

    /// Starts the server with these environment variables set (its stderr is the test's).
    pub fn start_with_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codeq"))
            .args(args)
            .arg("mcp")
            .current_dir(cwd)
            .env_remove("CODEQ_INDEX_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start codeq mcp");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Client {
            child,
            input,
            output,
            next_id: 1,
        }
    }

    pub fn send_line(&mut self, line: &str) -> Value {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
        let mut reply = String::new();
        self.output.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
    }

    pub fn notify(&mut self, method: &str) {
        let line = json!({"jsonrpc": "2.0", "method": method}).to_string();
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let reply = self.send_line(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        assert_eq!(reply["jsonrpc"], "2.0");
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    pub fn initialize(&mut self, version: &str) -> Value {
        let reply = self.request(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "codeq-test", "version": "1"}}),
        );
        self.notify("notifications/initialized");
        reply
    }

    /// Calls a tool; returns (isError, structured content or the error text).
    pub fn call(&mut self, tool: &str, arguments: Value) -> (bool, Value) {
        let reply = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        let result = &reply["result"];
        let is_error = result["isError"].as_bool().expect("isError");
        let text = result["content"][0]["text"].as_str().expect("text content");
        if is_error {
            return (true, Value::String(text.to_string()));
        }
        let structured = result["structuredContent"].clone();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            structured,
            "text and structured content disagree"
        );
        (false, structured)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
