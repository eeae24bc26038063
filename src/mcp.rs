//! `codeq mcp`: a Model Context Protocol server over stdio for coding agents.
//!
//! JSON-RPC 2.0, one message per line (the MCP stdio transport), protocol revision
//! [`PROTOCOL_VERSION`] (older revisions a client asks for are accepted; the subset used
//! here did not change). Tools: `search`, `ask`, `status`, `read_citation`, answered by the
//! same engine calls and JSON shapes as the command line. The principal is fixed when the
//! server starts; tool arguments cannot name another one (unknown arguments are refused).

use std::io::{BufRead, Read, Write};
use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::report::JSON_SCHEMA_VERSION;
use crate::search::QueryScope;
use crate::session::Session;
use crate::trace::Surface;

/// The MCP revision this server implements.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// Revisions a client may ask for; the answer names the one the session uses.
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Most results a tool returns per call.
const MAX_K: u64 = 50;

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// Longest message accepted; a longer line is answered with an error and skipped, so a
/// runaway client cannot exhaust memory.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Serves requests from `input` until it closes, writing one reply per request to `output`.
/// Bad input (invalid UTF-8, oversized or malformed messages) gets a JSON-RPC error reply
/// and the server carries on.
pub fn serve(session: &Session, mut input: impl BufRead, mut output: impl Write) -> Result<()> {
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let read = (&mut input)
            .take(MAX_MESSAGE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| Error::io("cannot read the MCP client's input", e))?;
        if read == 0 {
            return Ok(());
        }
        let reply = if buffer.len() > MAX_MESSAGE_BYTES {
            skip_line(&mut input)?;
            Some(error_reply(
                Value::Null,
                INVALID_REQUEST,
                &format!("message longer than {MAX_MESSAGE_BYTES} bytes"),
            ))
        } else {
            let line = String::from_utf8_lossy(&buffer);
            if line.trim().is_empty() {
                continue;
            }
            handle(session, &line)
        };
        if let Some(reply) = reply {
            writeln!(output, "{reply}")
                .and_then(|_| output.flush())
                .map_err(|e| Error::io("cannot write to the MCP client", e))?;
        }
    }
}

/// Discards input up to and including the next newline without buffering it.
fn skip_line(input: &mut impl BufRead) -> Result<()> {
    loop {
        let chunk = input
            .fill_buf()
            .map_err(|e| Error::io("cannot read the MCP client's input", e))?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => {
                input.consume(end + 1);
                return Ok(());
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
}

/// The reply to one message (`None` for notifications).
pub fn handle(session: &Session, line: &str) -> Option<Value> {
    let message: Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => {
            return Some(error_reply(
                Value::Null,
                PARSE_ERROR,
                &format!("parse error: {e}"),
            ));
        }
    };
    let Some(object) = message.as_object() else {
        return Some(error_reply(
            Value::Null,
            INVALID_REQUEST,
            "expected one JSON-RPC request object per line (batches are not supported)",
        ));
    };
    let id = object.get("id").cloned();
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        // A response from the client (we send no requests) or garbage: nothing to answer
        // unless it carries an id.
        return id.map(|id| error_reply(id, INVALID_REQUEST, "a request needs a method"));
    };
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    let Some(id) = id else {
        // Notifications (initialized, cancelled, …) need no reply.
        return None;
    };
    let outcome = match method {
        "initialize" => Ok(initialize(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": *TOOLS })),
        "tools/call" => call_tool(session, &params),
        other => Err((METHOD_NOT_FOUND, format!("unknown method {other}"))),
    };
    Some(match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => error_reply(id, code, &message),
    })
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn initialize(params: &Value) -> Value {
    let asked = params["protocolVersion"]
        .as_str()
        .unwrap_or(PROTOCOL_VERSION);
    let version = if SUPPORTED_VERSIONS.contains(&asked) {
        asked
    } else {
        PROTOCOL_VERSION
    };
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "codeq", "title": "codeq code search", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Search and question-answering over an indexed codebase. Every result cites repo:path:start-end; pass a citation to read_citation for the current lines and whether they are stale. Results only cover what the server's principal may read.",
    })
}

/// The tools and their argument schemas, built once.
static TOOLS: LazyLock<Value> = LazyLock::new(tool_list);

fn tool_list() -> Value {
    let scope = |k_default: u64| {
        json!({
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": k_default,
                  "description": "number of results"},
            "repos": {"type": "array", "items": {"type": "string"},
                      "description": "only these repository ids (see status)"},
            "language": {"type": "string", "description": "only this language: rust, python, markdown, …"},
        })
    };
    let with = |mut props: Value, name: &str, description: &str| {
        props[name] = json!({"type": "string", "description": description});
        props
    };
    let one_per_file = |mut props: Value| {
        props["files"] = json!({"type": "boolean", "description": "one result per file (its best chunk), files in the order of their best chunks"});
        props
    };
    json!([
        {
            "name": "search",
            "title": "Hybrid code search",
            "description": "BM25 + vector search over the indexed code; ranked chunks with repo:path:lines citations, each lane's rank and the boosts applied.",
            "inputSchema": {"type": "object", "additionalProperties": false, "required": ["query"],
                            "properties": one_per_file(with(scope(10), "query", "an identifier or a plain-English description"))},
        },
        {
            "name": "ask",
            "title": "Answer with verified citations",
            "description": "Answers a question about the code with citations grouped by file, each verified against the working tree (freshness: current, moved, changed) with a confidence; says so when the evidence is weak.",
            "inputSchema": {"type": "object", "additionalProperties": false, "required": ["question"],
                            "properties": with(scope(8), "question", "the question")},
        },
        {
            "name": "status",
            "title": "Index status",
            "description": "The visible repositories, their indexed commit against HEAD (stale or current), and the index's model and lanes.",
            "inputSchema": {"type": "object", "additionalProperties": false, "properties": {}},
        },
        {
            "name": "read_citation",
            "title": "Read cited lines",
            "description": "The current text of a cited line range (repo:path:start-end from search or ask), checked against the index: it says whether the file changed since indexing.",
            "inputSchema": {"type": "object", "additionalProperties": false, "required": ["citation"],
                            "properties": {"citation": {"type": "string", "description": "repo:path:start-end"}}},
        },
    ])
}

fn call_tool(session: &Session, params: &Value) -> std::result::Result<Value, (i64, String)> {
    let name = params["name"].as_str().unwrap_or_default();
    let arguments = match &params["arguments"] {
        Value::Null => json!({}),
        Value::Object(_) => params["arguments"].clone(),
        _ => return Err((INVALID_PARAMS, "arguments must be an object".into())),
    };
    if !TOOL_NAMES.contains(&name) {
        return Err((INVALID_PARAMS, format!("unknown tool {name}")));
    }
    // Tool failures are results the model can read and act on, not protocol errors.
    Ok(match call(session, name, &arguments, Surface::Mcp) {
        Ok(value) => json!({
            "content": [{"type": "text", "text": value.to_string()}],
            "structuredContent": value,
            "isError": false,
        }),
        Err(
            ToolError::Arguments(message)
            | ToolError::NotFound(message)
            | ToolError::Engine(message),
        ) => json!({
            "content": [{"type": "text", "text": message}],
            "isError": true,
        }),
    })
}

/// The tools [`call`] runs.
pub const TOOL_NAMES: [&str; 4] = ["search", "ask", "status", "read_citation"];

/// Why a tool call failed.
#[derive(Debug)]
pub enum ToolError {
    /// The arguments are wrong (unknown, missing or of the wrong type or range).
    Arguments(String),
    /// What the arguments name is not there for this principal (a citation of a file
    /// that is not indexed and one the principal may not read get the same answer).
    NotFound(String),
    /// The engine failed to answer.
    Engine(String),
}

/// Runs tool `name` of [`TOOL_NAMES`] with `arguments` (checked against its schema) for
/// `session`, recording traces as `surface`; the same JSON as the command line's `--json`.
pub fn call(
    session: &Session,
    name: &str,
    arguments: &Value,
    surface: Surface,
) -> std::result::Result<Value, ToolError> {
    let arguments = checked(arguments, name).map_err(ToolError::Arguments)?;
    let engine = |e: Error| match e {
        Error::CitationNotVisible(_) => ToolError::NotFound(e.to_string()),
        Error::CitationLines { .. }
        | Error::RepoNotVisible(_)
        | Error::LanguageNotVisible { .. } => ToolError::Arguments(e.to_string()),
        _ => ToolError::Engine(e.to_string()),
    };
    match name {
        "search" => {
            let query = arguments["query"].as_str().unwrap_or_default();
            let scope = scope_of(arguments, 10).map_err(ToolError::Arguments)?;
            let searched = session.search(surface, query, &scope).map_err(engine)?;
            Ok(session.search_json(query, &searched))
        }
        "ask" => {
            let question = arguments["question"].as_str().unwrap_or_default();
            let scope = scope_of(arguments, 8).map_err(ToolError::Arguments)?;
            let asked = session.ask(surface, question, &scope).map_err(engine)?;
            Ok(session.ask_json(&asked))
        }
        "status" => session.status().map(|s| s.to_json()).map_err(engine),
        "read_citation" => {
            let citation = arguments["citation"].as_str().unwrap_or_default();
            let lines = session.read_citation(citation).map_err(engine)?;
            let mut value =
                serde_json::to_value(&lines).map_err(|e| ToolError::Engine(e.to_string()))?;
            value["schema_version"] = json!(JSON_SCHEMA_VERSION);
            Ok(value)
        }
        other => Err(ToolError::Arguments(format!("unknown tool {other}"))),
    }
}

/// Checks `arguments` against the tool's declared properties: unknown ones are refused
/// (so no argument can smuggle in a principal), and types are enforced.
fn checked<'a>(
    arguments: &'a Value,
    tool: &str,
) -> std::result::Result<&'a serde_json::Map<String, Value>, String> {
    let object = arguments
        .as_object()
        .ok_or_else(|| "arguments must be an object".to_string())?;
    let schema = TOOLS
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == tool))
        .map_or(&Value::Null, |t| &t["inputSchema"]);
    for key in object.keys() {
        if schema["properties"].get(key).is_none() {
            let hint = if ["as", "user", "principal", "as_user"].contains(&key.as_str()) {
                " (the principal is fixed when the server starts, or by the request's bearer token)"
            } else {
                ""
            };
            return Err(format!("{tool} takes no argument {key:?}{hint}"));
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().unwrap_or_default();
        if !object.get(key).is_some_and(Value::is_string) {
            return Err(format!("{tool} needs the string argument {key:?}"));
        }
    }
    Ok(object)
}

fn scope_of(
    arguments: &serde_json::Map<String, Value>,
    default_k: u64,
) -> std::result::Result<QueryScope, String> {
    let k = match arguments.get("k") {
        None => default_k,
        Some(v) => v
            .as_u64()
            .filter(|k| (1..=MAX_K).contains(k))
            .ok_or_else(|| format!("k must be an integer from 1 to {MAX_K}"))?,
    };
    let repos = match arguments.get("repos") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| r.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "repos must be a list of repository ids".to_string())?,
        Some(_) => return Err("repos must be a list of repository ids".into()),
    };
    let language = match arguments.get("language") {
        None => None,
        Some(v) => Some(v.as_str().ok_or("language must be a string")?.to_string()),
    };
    let per_file = match arguments.get("files") {
        None => false,
        Some(v) => v.as_bool().ok_or("files must be true or false")?,
    };
    Ok(QueryScope {
        k: k as usize,
        repos,
        language,
        per_file,
    })
}
