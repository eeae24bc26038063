//! `codeq bench serve`: a real `codeq serve` process on loopback, loaded by many clients
//! at once, beside the same queries asked in process on the same index — what a team's
//! shared server costs per request, and whether it answers as the engine does.
//!
//! The benchmark index is the query benchmark's (real rows replicated to `--chunks`), under
//! an ACL that gives each of two principals half the repositories, each with a token. The
//! same sample of queries is asked: in process by each principal (one warm-up round, then
//! timed), in process again by `clients` threads at once (the engine under the same load
//! as the server will get), once per query through the server by one client (round trip
//! without load), then by `clients` clients at once, alternating the two tokens,
//! `requests` each, every client starting at another point of the sample. A loaded
//! answer whose citations differ from the principal's in-process ones counts as
//! differing, one that cites a repository its principal may not read as a leak, and a
//! failed request as an error.
//!
//! Under load, a request's latency is mostly its wait for the requests ahead of it: with
//! more clients than cores, neither the server nor the engine alone can answer one in the
//! time of an unloaded query. What the server adds is therefore its loaded p50 over the
//! engine's loaded p50, both with `clients` callers at once.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::{Corpus, peak_rss_bytes, sample_queries};
use crate::error::{Error, Result};
use crate::eval::percentile;
use crate::hash::sha256_hex;
use crate::search::QueryScope;
use crate::session::{Session, SessionOptions, SharedIndex};
use crate::store::AnnPolicy;
use crate::trace::Surface;

/// Results asked for per query, as an agent's search would.
const K: usize = 10;
/// Longest wait for the server to say where it listens.
const STARTUP: Duration = Duration::from_secs(300);
/// The two principals of the benchmark's ACL: each reads every other repository.
const PRINCIPALS: [&str; 2] = ["alice", "bob"];

/// What the load run asks of the server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLoad {
    /// Chunks in the benchmark index.
    pub chunks: usize,
    /// Clients asking at once.
    pub clients: usize,
    /// Requests each client sends.
    pub requests: usize,
}

/// Figures of one server benchmark, milliseconds unless named otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct ServeBench {
    /// Chunks in the benchmark index.
    pub chunks: usize,
    /// Distinct queries in the sample.
    pub queries: usize,
    /// Time to write the benchmark index.
    pub build: Duration,
    /// `search` in process, p50 and p95 (the engine, as the server runs it).
    pub in_process_p50_ms: f64,
    /// In process, p95.
    pub in_process_p95_ms: f64,
    /// One client, one request at a time: round trip p50.
    pub unloaded_p50_ms: f64,
    /// One client: round trip p95.
    pub unloaded_p95_ms: f64,
    /// Clients asking at once.
    pub clients: usize,
    /// Requests sent under load.
    pub requests: usize,
    /// Under load: round trip p50.
    pub loaded_p50_ms: f64,
    /// Under load: round trip p95.
    pub loaded_p95_ms: f64,
    /// Requests answered per second under load.
    pub throughput_per_s: f64,
    /// In process, `clients` threads at once, `requests` each: p50.
    pub in_process_loaded_p50_ms: f64,
    /// In process under load: p95.
    pub in_process_loaded_p95_ms: f64,
    /// Loaded p50 over in-process p50 (both at once and one at a time).
    pub loaded_vs_in_process: f64,
    /// Loaded p50 through the server over in-process p50 with as many callers at once:
    /// what the server adds under equal load.
    pub loaded_vs_in_process_loaded: f64,
    /// Requests that failed, and the first few reasons.
    pub errors: usize,
    /// The first reasons of failed requests.
    pub first_errors: Vec<String>,
    /// Loaded answers whose citations differ from the principal's in-process ones.
    pub differing: usize,
    /// Loaded answers citing a repository the token's principal may not read.
    pub leaks: usize,
    /// Peak resident memory of this process (index build and in-process queries), bytes.
    pub peak_rss_bytes: u64,
}

/// Builds the benchmark index at `out_dir` from `corpus`, times the sample of queries in
/// process, then starts `codeq_exe serve` on it and loads it as `load` says.
pub fn serve_bench(
    corpus: &Corpus,
    out_dir: &Path,
    ann: AnnPolicy,
    load: ServeLoad,
    codeq_exe: &Path,
) -> Result<ServeBench> {
    let build_started = Instant::now();
    let reader = corpus.replicate(out_dir, load.chunks, ann)?;
    let build = build_started.elapsed();
    let chunks = reader.manifest().totals.chunks;
    let repos = reader.manifest().repo_ids();
    drop(reader);
    let readable: Vec<HashSet<String>> = (0..PRINCIPALS.len())
        .map(|p| {
            repos
                .iter()
                .skip(p)
                .step_by(PRINCIPALS.len())
                .cloned()
                .collect()
        })
        .collect();
    let files = BenchFiles::write(&readable)?;
    let queries = sample_queries(&corpus.rows);
    let shared = SharedIndex::open(&SessionOptions {
        index_dir: Some(out_dir.to_path_buf()),
        acl_file: Some(files.acl.clone()),
        ..SessionOptions::default()
    })?;
    let sessions = PRINCIPALS
        .iter()
        .map(|principal| shared.session(Some(principal)))
        .collect::<Result<Vec<_>>>()?;
    let mut expected = Vec::new();
    let mut in_process = Vec::new();
    for session in &sessions {
        let (answers, samples) = in_process_answers(session, &queries)?;
        expected.push(answers);
        in_process.extend(samples);
    }
    let mut in_process_loaded = in_process_under_load(&sessions, &queries, load)?;
    drop((sessions, shared));
    let server = Server::start(codeq_exe, out_dir, &files)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the benchmark's HTTP runtime", e))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build an HTTP client: {e}")))?;
    let (mut unloaded, outcomes, wall) = runtime.block_on(async {
        let mut unloaded = Vec::with_capacity(queries.len());
        for query in &queries {
            let started = Instant::now();
            // Failures show in the loaded run, which asks every query again.
            let _ = server.search(&client, &files.tokens[0], query).await;
            unloaded.push(elapsed_ms(started));
        }
        let started = Instant::now();
        let clients = (0..load.clients).map(|c| {
            let (server, client, queries, files) = (&server, &client, &queries, &files);
            async move {
                let principal = c % PRINCIPALS.len();
                let mut outcomes = Vec::with_capacity(load.requests);
                for index in client_schedule(c, load, queries.len()) {
                    let asked = Instant::now();
                    let token = &files.tokens[principal];
                    let answer = server.search(client, token, &queries[index]).await;
                    outcomes.push((principal, index, answer, elapsed_ms(asked)));
                }
                outcomes
            }
        });
        let outcomes: Vec<_> = futures::future::join_all(clients)
            .await
            .into_iter()
            .flatten()
            .collect();
        (unloaded, outcomes, started.elapsed())
    });
    server.stop();
    let mut loaded = Vec::with_capacity(outcomes.len());
    let mut first_errors = Vec::new();
    let (mut errors, mut differing, mut leaks) = (0, 0, 0);
    for (principal, index, answer, ms) in &outcomes {
        loaded.push(*ms);
        match answer {
            Err(why) => {
                errors += 1;
                if first_errors.len() < 5 {
                    first_errors.push(why.clone());
                }
            }
            Ok(hits) => {
                if hits
                    .iter()
                    .any(|(repo, _)| !readable[*principal].contains(repo))
                {
                    leaks += 1;
                }
                if hits
                    .iter()
                    .map(|(_, citation)| citation)
                    .ne(expected[*principal][*index].iter())
                {
                    differing += 1;
                }
            }
        }
    }
    for samples in [
        &mut in_process,
        &mut in_process_loaded,
        &mut unloaded,
        &mut loaded,
    ] {
        samples.sort_by(f64::total_cmp);
    }
    let in_process_p50_ms = percentile(&in_process, 0.50);
    let in_process_loaded_p50_ms = percentile(&in_process_loaded, 0.50);
    let loaded_p50_ms = percentile(&loaded, 0.50);
    Ok(ServeBench {
        chunks,
        queries: queries.len(),
        build,
        in_process_p50_ms,
        in_process_p95_ms: percentile(&in_process, 0.95),
        unloaded_p50_ms: percentile(&unloaded, 0.50),
        unloaded_p95_ms: percentile(&unloaded, 0.95),
        clients: load.clients,
        requests: outcomes.len(),
        loaded_p50_ms,
        loaded_p95_ms: percentile(&loaded, 0.95),
        throughput_per_s: outcomes.len() as f64 / wall.as_secs_f64().max(f64::EPSILON),
        in_process_loaded_p50_ms,
        in_process_loaded_p95_ms: percentile(&in_process_loaded, 0.95),
        loaded_vs_in_process: loaded_p50_ms / in_process_p50_ms.max(f64::EPSILON),
        loaded_vs_in_process_loaded: loaded_p50_ms / in_process_loaded_p50_ms.max(f64::EPSILON),
        errors,
        first_errors,
        differing,
        leaks,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// The citations of each query's in-process search in `session`, and the timed samples
/// (one warm-up round, then two timed ones).
fn in_process_answers(
    session: &Session,
    queries: &[String],
) -> Result<(Vec<Vec<String>>, Vec<f64>)> {
    let mut expected = Vec::with_capacity(queries.len());
    let mut samples = Vec::with_capacity(2 * queries.len());
    for round in 0..3 {
        for query in queries {
            let started = Instant::now();
            let results = session
                .search(Surface::Search, query, &query_scope())?
                .value;
            if round == 0 {
                expected.push(results.hits.iter().map(|h| h.chunk.citation()).collect());
            } else {
                samples.push(elapsed_ms(started));
            }
        }
    }
    Ok((expected, samples))
}

/// The in-process latencies of `load.clients` threads searching at once, each in the
/// session of its principal and on the schedule its HTTP client will follow.
fn in_process_under_load(
    sessions: &[Session],
    queries: &[String],
    load: ServeLoad,
) -> Result<Vec<f64>> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..load.clients)
            .map(|c| {
                let session = &sessions[c % sessions.len()];
                scope.spawn(move || {
                    client_schedule(c, load, queries.len())
                        .map(|index| {
                            let started = Instant::now();
                            session.search(Surface::Search, &queries[index], &query_scope())?;
                            Ok(elapsed_ms(started))
                        })
                        .collect::<Result<Vec<f64>>>()
                })
            })
            .collect();
        let mut samples = Vec::with_capacity(load.clients * load.requests);
        for thread in threads {
            let thread_samples = thread
                .join()
                .map_err(|_| Error::Internal("a benchmark thread panicked".into()))??;
            samples.extend(thread_samples);
        }
        Ok(samples)
    })
}

/// The sample indexes client `client` asks, in order: `load.requests` of them, starting
/// at its own point of the sample so that the clients do not ask in lockstep.
fn client_schedule(client: usize, load: ServeLoad, queries: usize) -> impl Iterator<Item = usize> {
    let start = client * queries / load.clients.max(1);
    (0..load.requests).map(move |i| (start + i) % queries)
}

/// The search every benchmark query runs: the top [`K`], no filters.
fn query_scope() -> QueryScope {
    QueryScope {
        k: K,
        ..QueryScope::default()
    }
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// The ACL and tokens files of a benchmark run, in the temporary folder, removed on drop.
struct BenchFiles {
    acl: PathBuf,
    tokens_file: PathBuf,
    /// Each principal's bearer token, in [`PRINCIPALS`] order.
    tokens: Vec<String>,
}

impl BenchFiles {
    /// An ACL giving principal `p` the repositories `readable[p]`, and a token for each.
    fn write(readable: &[HashSet<String>]) -> Result<BenchFiles> {
        let nonce = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let stem = std::env::temp_dir().join(format!("codeq-bench-serve-{}", std::process::id()));
        let files = BenchFiles {
            acl: stem.with_extension("acl.toml"),
            tokens_file: stem.with_extension("tokens.toml"),
            tokens: PRINCIPALS
                .iter()
                .map(|p| sha256_hex(format!("codeq bench serve {p} {nonce}").as_bytes()))
                .collect(),
        };
        let mut acl = String::new();
        let mut tokens = String::new();
        for ((principal, repos), token) in PRINCIPALS.iter().zip(readable).zip(&files.tokens) {
            let mut repos: Vec<&String> = repos.iter().collect();
            repos.sort();
            acl.push_str(&format!(
                "[[acl.grant]]\nrepos = {repos:?}\nread = [{principal:?}]\n"
            ));
            tokens.push_str(&format!(
                "[[token]]\nprincipal = {principal:?}\nsha256 = \"{}\"\n",
                sha256_hex(token.as_bytes())
            ));
        }
        for (path, text) in [(&files.acl, acl), (&files.tokens_file, tokens)] {
            std::fs::write(path, text)
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        Ok(files)
    }
}

impl Drop for BenchFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.acl);
        let _ = std::fs::remove_file(&self.tokens_file);
    }
}

/// A `codeq serve` child process on a free loopback port.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `codeq_exe serve` on `index_dir` with the benchmark's ACL and tokens, and
    /// waits until it listens. Its access log is read and dropped so that the pipe never
    /// fills.
    fn start(codeq_exe: &Path, index_dir: &Path, files: &BenchFiles) -> Result<Server> {
        let mut child = Command::new(codeq_exe)
            .arg("--index-dir")
            .arg(index_dir)
            .arg("--acl")
            .arg(&files.acl)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--requests-per-minute",
                "100000000",
            ])
            .arg("--tokens")
            .arg(&files.tokens_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {} serve", codeq_exe.display()), e))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::io::Result::ok)
            {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = address_tx.send(url);
                }
            }
        });
        let mut server = Server {
            child,
            url: String::new(),
        };
        match address_rx.recv_timeout(STARTUP) {
            Ok(url) => server.url = url,
            Err(_) => {
                server.stop();
                return Err(Error::Internal(
                    "the benchmark's codeq serve did not start listening (run it by hand to see why)"
                        .into(),
                ));
            }
        }
        Ok(server)
    }

    /// One search through the API with `token`: the repository and citation of each
    /// result, or why there are none.
    async fn search(
        &self,
        client: &reqwest::Client,
        token: &str,
        query: &str,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let response = client
            .post(format!("{}/v1/search", self.url))
            .bearer_auth(token)
            .json(&json!({"query": query, "k": K}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", body["error"]));
        }
        Ok(body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|hit| {
                let text = |field: &str| hit[field].as_str().unwrap_or_default().to_string();
                (text("repo"), text("citation"))
            })
            .collect())
    }

    /// Asks the server to stop (SIGTERM: requests in flight finish) and waits for it.
    fn stop(mut self) {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
