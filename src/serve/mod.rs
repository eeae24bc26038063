//! `codeq serve`: one index shared by a team and its coding agents over HTTP.
//!
//! Every request but `GET /healthz` carries `Authorization: Bearer TOKEN`; the tokens file
//! ([`tokens`]) maps the token's sha256 to a principal, and that principal's [`Session`]
//! answers, so a request sees exactly what the principal may read. No field of a request
//! can name another principal: the tools refuse unknown arguments, `as` and `principal`
//! included. A missing, unknown or expired token gets a bare 401.
//!
//! Endpoints (JSON in and out, the shapes of `--json`): `POST /v1/search`, `POST /v1/ask`,
//! `GET /v1/status`, `POST /v1/read_citation`, `GET /healthz`, and MCP over streamable HTTP
//! at `POST /mcp` (one JSON-RPC message per request, answered as JSON; no server-sent
//! event stream, so `GET /mcp` is 405).
//!
//! Queries run on the blocking pool, at most [`MAX_IN_FLIGHT`] at once (then 503), each
//! under a timeout derived from the query budget (504 when it passes; a query already in
//! the engine runs to its end and keeps its place in the limit, one still waiting for the
//! blocking pool is not started). Each token has a request rate ([`rate`]). Bodies over
//! [`MAX_BODY_BYTES`] get 413. One JSON line per request goes to standard error (principal,
//! route, status, time; the query text only with `--log-queries`; an engine failure's
//! detail, which the client gets only as a generic message). SIGHUP reloads the
//! tokens file and the ACL (a broken file keeps the old one, and the log says why); a newly
//! published generation is picked up within [`GENERATION_POLL`], while requests already
//! running finish on theirs. SIGTERM or Ctrl-C stops accepting connections and lets
//! requests in flight finish. No TLS: put a TLS-terminating proxy in front for anything
//! beyond loopback.

pub mod rate;
pub mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::hash::sha256_hex;
use crate::mcp::{self, ToolError};
use crate::session::{Session, SessionOptions, SharedIndex};
use crate::trace::Surface;
use rate::RateLimiter;
use tokens::Tokens;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Queries running at once; more get 503 at once rather than queueing without bound.
pub const MAX_IN_FLIGHT: usize = 64;
/// How often the server looks for a newly published generation.
pub const GENERATION_POLL: Duration = Duration::from_secs(1);
/// Request timeout when the root's `[budget] query_ms` sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to `[budget] query_ms`: the engine keeps its own budget and answers within it,
/// the timeout only stops a request that went past it anyway.
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// What `codeq serve` serves and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The index (its folder, model folder and ACL file); no principal: each request's
    /// comes from its token.
    pub index: SessionOptions,
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: String,
    /// The tokens file.
    pub tokens_file: PathBuf,
    /// Requests per minute each token may make.
    pub requests_per_minute: u32,
    /// Write each request's query text into the access log.
    pub log_queries: bool,
}

/// Runs the server until SIGTERM or Ctrl-C, then waits for the requests in flight.
pub fn run(options: ServeOptions) -> Result<()> {
    let tokens = Tokens::load(&options.tokens_file)?;
    let index = SharedIndex::open(&options.index)?;
    if !index.has_acl() {
        log_event(
            "warning",
            json!({"message": "no access-control list: every token's principal reads every repository"}),
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("codeq-serve")
        .build()
        .map_err(|e| Error::io("cannot start the server's runtime", e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", options.listen), e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        let state = Arc::new(Server {
            live: Mutex::new(Live::new(index)),
            tokens: Mutex::new(Arc::new(tokens)),
            limiter: RateLimiter::per_minute(options.requests_per_minute),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            swap: Mutex::new(()),
            last_generation_error: Mutex::new(None),
            options,
        });
        announce(&state, address);
        tokio::spawn(follow_generations(state.clone()));
        tokio::spawn(reload_on_hangup(state.clone()));
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| Error::io("the server stopped", e))?;
        log_event("stopped", json!({}));
        Ok(())
    })
}

/// The routes of the server over `state`.
fn router(state: Arc<Server>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/search", post(search))
        .route("/v1/ask", post(ask))
        .route("/v1/status", get(status))
        .route("/v1/read_citation", post(read_citation))
        .route("/mcp", post(mcp_message).get(mcp_stream))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(close_after_oversized_body))
        .with_state(state)
}

/// A body refused for its size is left unread on the connection, which the server then
/// drops: the response says so, or a keep-alive client would send its next request into
/// a closed connection.
async fn close_after_oversized_body(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The server's state, shared by every request.
struct Server {
    options: ServeOptions,
    live: Mutex<Live>,
    tokens: Mutex<Arc<Tokens>>,
    limiter: RateLimiter,
    in_flight: Arc<Semaphore>,
    /// Held from reopening the index to installing it, so that a generation poll that
    /// read the old ACL cannot install it after a SIGHUP reload installed the new one.
    swap: Mutex<()>,
    /// The last reason a newer generation could not be opened (logged once, not per poll).
    last_generation_error: Mutex<Option<String>>,
}

/// The index that answers now, the sessions opened on it (one per principal) and the
/// request timeout its configuration sets.
struct Live {
    index: SharedIndex,
    sessions: HashMap<String, Session>,
    timeout: Duration,
}

impl Live {
    fn new(index: SharedIndex) -> Live {
        let timeout = index
            .config()
            .budget
            .query_ms
            .map_or(DEFAULT_TIMEOUT, |ms| {
                Duration::from_millis(ms) + TIMEOUT_GRACE
            });
        Live {
            index,
            sessions: HashMap::new(),
            timeout,
        }
    }
}

impl Server {
    /// The principal of the request's bearer token and the token's key for the rate limit.
    fn authenticate(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let digest = sha256_hex(token.as_bytes());
        let principal = tokens.principal_of_digest(&digest, unix_now())?.to_string();
        Some((principal, digest))
    }

    /// `principal`'s session on the index that answers now, and the request timeout.
    fn session(&self, principal: &str) -> Result<(Session, Duration)> {
        if principal.trim().is_empty() {
            // Never reached through a loaded tokens file; an empty principal would be
            // the operating-system user's.
            return Err(Error::Internal("a token without a principal".into()));
        }
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let timeout = live.timeout;
        if let Some(session) = live.sessions.get(principal) {
            return Ok((session.clone(), timeout));
        }
        let session = live.index.session(Some(principal))?;
        live.sessions.insert(principal.to_string(), session.clone());
        Ok((session, timeout))
    }

    /// Reopens the index (when `only_if_outdated`, only if a newer generation was
    /// published) and answers from it from now on, logging `event`. The swap lock is held
    /// throughout, so swaps happen one at a time, each installing what it read last.
    fn swap_index(&self, only_if_outdated: bool, event: &str) -> Result<()> {
        let _swapping = self.swap.lock().unwrap_or_else(PoisonError::into_inner);
        let index = self.current_index();
        if only_if_outdated && !index.is_outdated()? {
            return Ok(());
        }
        let reopened = index.reopen(&self.options.index)?;
        self.replace_index(reopened, event);
        Ok(())
    }

    /// Answers from `index` from now on (sessions are opened anew); logs `event`.
    fn replace_index(&self, index: SharedIndex, event: &str) {
        let generation = index.generation().to_string();
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) = Live::new(index);
        log_event(event, json!({"generation": generation}));
    }

    fn current_index(&self) -> SharedIndex {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .index
            .clone()
    }
}

/// Picks up newly published generations; a generation that cannot be opened is logged
/// once, not at every poll.
async fn follow_generations(server: Arc<Server>) {
    let mut ticks = tokio::time::interval(GENERATION_POLL);
    loop {
        ticks.tick().await;
        let worker = server.clone();
        let outcome =
            tokio::task::spawn_blocking(move || worker.swap_index(true, "new_generation")).await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let mut last = server
            .last_generation_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(message) = &failure
            && last.as_ref() != Some(message)
        {
            log_event(
                "generation_error",
                json!({"message": format!("still answering from the generation opened before: {message}")}),
            );
        }
        *last = failure;
    }
}

/// On SIGHUP: reads the tokens file and the index's configuration and ACL again; what
/// does not load is kept as it was, and the log says why.
async fn reload_on_hangup(server: Arc<Server>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        log_event(
            "warning",
            json!({"message": "cannot listen for SIGHUP: reloading needs a restart"}),
        );
        return;
    };
    while hangups.recv().await.is_some() {
        let worker = server.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let tokens = Tokens::load(&worker.options.tokens_file);
            let index = worker.swap_index(false, "reload_index");
            (tokens, index)
        })
        .await;
        let Ok((tokens, index)) = outcome else {
            continue;
        };
        match tokens {
            Ok(tokens) => {
                let count = tokens.len();
                *server.tokens.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(tokens);
                log_event("reload", json!({"tokens": count}));
            }
            Err(e) => log_event(
                "reload_error",
                json!({"message": format!("kept the tokens loaded before: {e}")}),
            ),
        }
        match index {
            Ok(()) => {}
            Err(e) => log_event(
                "reload_error",
                json!({"message": format!("kept the index, configuration and access-control list loaded before: {e}")}),
            ),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    log_event(
        "stopping",
        json!({"message": "no new connections; requests in flight finish"}),
    );
}

fn announce(server: &Server, address: SocketAddr) {
    let index = server.current_index();
    eprintln!(
        "codeq serve: listening on http://{address} (generation {}, {} tokens)",
        index.generation(),
        server
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    );
    if !address.ip().is_loopback() {
        log_event(
            "warning",
            json!({"message": "listening beyond loopback without TLS: bearer tokens travel in clear unless a TLS proxy is in front"}),
        );
    }
}

async fn search(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    api_call(&server, &headers, "/v1/search", "search", Some(body)).await
}

async fn ask(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    api_call(&server, &headers, "/v1/ask", "ask", Some(body)).await
}

async fn status(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    api_call(&server, &headers, "/v1/status", "status", None).await
}

async fn read_citation(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api_call(
        &server,
        &headers,
        "/v1/read_citation",
        "read_citation",
        Some(body),
    )
    .await
}

/// One API request: authenticated, rate-limited, its body turned into the tool's
/// arguments, run on the blocking pool under the timeout, logged.
async fn api_call(
    server: &Arc<Server>,
    headers: &HeaderMap,
    route: &'static str,
    tool: &'static str,
    body: Option<Bytes>,
) -> Response {
    let started = Instant::now();
    let mut log = AccessLog::new(route);
    let response = match admit(server, headers, &mut log) {
        Err(refused) => refused.into_response(),
        Ok(principal) => match body.as_deref().map_or(Ok(json!({})), api_arguments) {
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
            Ok(arguments) => {
                if server.options.log_queries {
                    log.query = arguments
                        .get("query")
                        .or_else(|| arguments.get("question"))
                        .cloned();
                }
                let asker = principal.clone();
                run_query(server, &principal, move |session| {
                    match mcp::call(&session, tool, &arguments, Surface::Serve) {
                        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
                        Err(ToolError::Arguments(message)) => {
                            error(StatusCode::BAD_REQUEST, &message)
                        }
                        Err(ToolError::NotFound(message)) => error(StatusCode::NOT_FOUND, &message),
                        Err(ToolError::Engine(message)) => {
                            log_event(
                                "engine_error",
                                json!({"route": route, "principal": asker, "message": message}),
                            );
                            engine_failed()
                        }
                    }
                })
                .await
            }
        },
    };
    log.finish(response.status(), started);
    response
}

/// Why a request was turned away before any query ran.
enum Refusal {
    /// No valid token: a bare 401.
    Unauthenticated,
    /// The token is over its rate; one request would be admitted after this long.
    OverRate(Duration),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
            )
                .into_response(),
            Refusal::OverRate(wait) => {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests for this token; retry later",
                );
                let seconds = HeaderValue::from((wait.as_secs_f64().ceil() as u64).max(1));
                response.headers_mut().insert(header::RETRY_AFTER, seconds);
                response
            }
        }
    }
}

/// The principal of an authenticated request within its rate.
fn admit(
    server: &Server,
    headers: &HeaderMap,
    log: &mut AccessLog,
) -> std::result::Result<String, Refusal> {
    let (principal, key) = server
        .authenticate(headers)
        .ok_or(Refusal::Unauthenticated)?;
    log.principal = Some(principal.clone());
    server.limiter.admit(&key).map_err(Refusal::OverRate)?;
    Ok(principal)
}

/// Runs `query` with `principal`'s session on the blocking pool, within the in-flight
/// limit and the timeout. The permit goes with the work: a query the timeout gave up on
/// still counts until the engine is done with it, and one that had not started by then
/// is not started.
async fn run_query(
    server: &Arc<Server>,
    principal: &str,
    query: impl FnOnce(Session) -> Response + Send + 'static,
) -> Response {
    let Ok(permit) = server.in_flight.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is answering as many queries as it can; retry shortly",
        );
    };
    let (session, timeout) = match server.session(principal) {
        Ok(found) => found,
        Err(e) => {
            log_event(
                "engine_error",
                json!({"principal": principal, "message": e.to_string()}),
            );
            return engine_failed();
        }
    };
    let deadline = Instant::now() + timeout;
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if Instant::now() >= deadline {
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        query(session)
    });
    match tokio::time::timeout(timeout, task).await {
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("the query took longer than {} ms", timeout.as_millis()),
        ),
        Ok(Err(_)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the query failed unexpectedly",
        ),
        Ok(Ok(response)) => response,
    }
}

/// What a client learns of an engine failure: that it happened. The detail (which may
/// name server paths) goes to the server's log.
fn engine_failed() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the query failed on the server; the server's log says why",
    )
}

/// The tool arguments of an API body: a JSON object, with the API's `repo` (one id or a
/// list) and `lang` spelled as the tools' `repos` and `language`. Every other field goes
/// to the tool as it is, which refuses what it does not take (`as`, `principal`, …).
fn api_arguments(body: &[u8]) -> std::result::Result<Value, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body must be a JSON object: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the body must be a JSON object".into());
    };
    if let Some(repo) = object.remove("repo") {
        let repos = match repo {
            Value::String(one) => json!([one]),
            list => list,
        };
        if object.insert("repos".into(), repos).is_some() {
            return Err("give repo or repos, not both".into());
        }
    }
    if let Some(lang) = object.remove("lang")
        && object.insert("language".into(), lang).is_some()
    {
        return Err("give lang or language, not both".into());
    }
    Ok(Value::Object(object))
}

/// `POST /mcp`: one JSON-RPC message of the MCP streamable HTTP transport, answered as
/// JSON (202 with no body for a notification).
async fn mcp_message(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let mut log = AccessLog::new("/mcp");
    let response = match admit(&server, &headers, &mut log) {
        Err(refused) => refused.into_response(),
        Ok(principal) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            run_query(&server, &principal, move |session| {
                match mcp::handle(&session, &text) {
                    Some(reply) => (StatusCode::OK, axum::Json(reply)).into_response(),
                    None => StatusCode::ACCEPTED.into_response(),
                }
            })
            .await
        }
    };
    log.finish(response.status(), started);
    response
}

/// `GET /mcp`: this server opens no server-sent event stream.
async fn mcp_stream(_method: Method, _uri: Uri) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        "this server answers each MCP message in its POST response\n",
    )
        .into_response()
}

/// A JSON error response.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// One access-log line, written when the request is answered.
struct AccessLog {
    route: &'static str,
    principal: Option<String>,
    query: Option<Value>,
}

impl AccessLog {
    fn new(route: &'static str) -> AccessLog {
        AccessLog {
            route,
            principal: None,
            query: None,
        }
    }

    fn finish(self, status: StatusCode, started: Instant) {
        let mut line = json!({
            "event": "request",
            "time_ms": unix_millis(),
            "route": self.route,
            "principal": self.principal,
            "status": status.as_u16(),
            "ms": started.elapsed().as_secs_f64() * 1000.0,
        });
        if let Some(query) = self.query {
            line["query"] = query;
        }
        eprintln!("{line}");
    }
}

/// One JSON line on standard error about the server itself.
fn log_event(event: &str, mut fields: Value) {
    fields["event"] = json!(event);
    fields["time_ms"] = json!(unix_millis());
    eprintln!("{fields}");
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_bodies_become_tool_arguments() {
        let args =
            api_arguments(br#"{"query": "q", "repo": "app", "lang": "rust", "k": 3}"#).unwrap();
        assert_eq!(
            args,
            json!({"query": "q", "repos": ["app"], "language": "rust", "k": 3})
        );
        let args = api_arguments(br#"{"query": "q", "repo": ["a", "b"]}"#).unwrap();
        assert_eq!(args["repos"], json!(["a", "b"]));
        // A principal field is passed on, for the tool to refuse.
        let args = api_arguments(br#"{"query": "q", "as": "root"}"#).unwrap();
        assert_eq!(args["as"], "root");
        for bad in [
            &b"[1]"[..],
            b"not json",
            br#"{"repo": "a", "repos": ["b"]}"#,
        ] {
            assert!(
                api_arguments(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
