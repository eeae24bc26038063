//! `codeq eval --server`: question sets asked through a running `codeq serve`, once one
//! question at a time and then by several clients at once, to show that the service
//! answers correctly under load.
//!
//! The quality report comes from the unloaded run, scored exactly as in process (the lanes
//! alone are not measured: the API answers with the fused ranking only). The loaded run
//! asks every question once per client, each client starting at another point of the set,
//! and counts answers that differ from the unloaded one (other citations, or confidence)
//! and requests that failed; either fails the run. A request over the token's rate waits
//! as the server says and is sent again.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::metrics::percentile;
use super::{AnswerView, EvalReport, Question, QuestionSet, report_of, score};
use crate::error::{Error, Result};

/// Longest a single request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Times a request turned away for load (429, 503) is sent again.
const RATE_RETRIES: usize = 5;

/// Where the server is and how to load it.
#[derive(Clone)]
pub struct ServerRun {
    /// Base URL (`http://127.0.0.1:8080`).
    pub url: String,
    /// The bearer token (read from a file, never from the command line).
    pub token: String,
    /// Clients asking at once in the loaded run.
    pub concurrency: usize,
}

impl std::fmt::Debug for ServerRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRun")
            .field("url", &self.url)
            .field("token", &"(redacted)")
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// What the loaded run saw.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Clients asking at once.
    pub concurrency: usize,
    /// Questions asked in all.
    pub requests: usize,
    /// Requests that failed: `set/question: why`.
    pub errors: Vec<String>,
    /// Answers that differ from the unloaded run's: `set/question`.
    pub differing: Vec<String>,
    /// Median request latency under load, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile request latency under load, ms.
    pub latency_p95_ms: f64,
}

impl LoadReport {
    /// Whether every loaded request succeeded with the unloaded answer.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.differing.is_empty()
    }
}

/// Runs `sets` against the server of `run`, asking for `k` citations per question.
pub fn run_on_server(
    sets: &[QuestionSet],
    k: usize,
    run: &ServerRun,
) -> Result<(EvalReport, LoadReport)> {
    if let Some(q) = sets
        .iter()
        .flat_map(|s| &s.questions)
        .find(|q| q.principal.is_some())
    {
        return Err(Error::Config {
            path: "question set".into(),
            detail: format!(
                "question {} asks as {:?}, but through a server every question is asked as the token's principal; run it with that principal's token in a set of its own",
                q.id,
                q.principal.as_deref().unwrap_or_default()
            ),
        });
    }
    let questions: Vec<(&QuestionSet, &Question)> = sets
        .iter()
        .flat_map(|s| s.questions.iter().map(move |q| (s, q)))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Error::Internal(format!("cannot build an HTTP client: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the eval's HTTP runtime", e))?;
    runtime.block_on(async {
        let status = get_status(&client, run).await?;
        let mut unloaded = Vec::with_capacity(questions.len());
        for (set, q) in &questions {
            let started = Instant::now();
            let view = ask(&client, run, &q.question, k).await.map_err(|why| {
                Error::Internal(format!("{}/{} failed without load: {why}", set.name, q.id))
            })?;
            unloaded.push((view, started.elapsed()));
        }
        let load = loaded_run(&client, run, &questions, &unloaded, k).await;
        let mut answers = unloaded.into_iter();
        let report = report_of(sets, status.0, status.1, |set, q| {
            let (view, latency) = answers.next().expect("one answer per question");
            let mut result = score(q, &view, k);
            result.tier = q.tier.unwrap_or(set.tier);
            result.latency_ms = latency.as_secs_f64() * 1e3;
            Ok(result)
        })?;
        Ok((report, load))
    })
}

/// Every question asked once by each of `run.concurrency` clients at the same time.
async fn loaded_run(
    client: &reqwest::Client,
    run: &ServerRun,
    questions: &[(&QuestionSet, &Question)],
    unloaded: &[(AnswerView, Duration)],
    k: usize,
) -> LoadReport {
    let clients = run.concurrency.max(1);
    let n = questions.len();
    let asks = (0..clients).map(|c| async move {
        let mut outcomes = Vec::with_capacity(n);
        for i in 0..n {
            let index = (i + c * n / clients) % n;
            let started = Instant::now();
            let answer = ask(client, run, &questions[index].1.question, k).await;
            outcomes.push((index, answer, started.elapsed()));
        }
        outcomes
    });
    let mut report = LoadReport {
        concurrency: clients,
        requests: clients * n,
        errors: Vec::new(),
        differing: Vec::new(),
        latency_p50_ms: 0.0,
        latency_p95_ms: 0.0,
    };
    let mut latencies = Vec::with_capacity(clients * n);
    for (index, answer, latency) in futures::future::join_all(asks).await.into_iter().flatten() {
        latencies.push(latency.as_secs_f64() * 1e3);
        let (set, q) = questions[index];
        let name = format!("{}/{}", set.name, q.id);
        match answer {
            Err(why) => report.errors.push(format!("{name}: {why}")),
            Ok(view) if view != unloaded[index].0 => {
                if !report.differing.contains(&name) {
                    report.differing.push(name);
                }
            }
            Ok(_) => {}
        }
    }
    latencies.sort_by(f64::total_cmp);
    report.latency_p50_ms = percentile(&latencies, 0.50);
    report.latency_p95_ms = percentile(&latencies, 0.95);
    report
}

/// The generation and model id the server answers from; a refused token is an error
/// that says so.
async fn get_status(client: &reqwest::Client, run: &ServerRun) -> Result<(String, String)> {
    let url = format!("{}/v1/status", run.url.trim_end_matches('/'));
    let status = send(client.get(&url).bearer_auth(&run.token))
        .await
        .map_err(|why| Error::Internal(format!("cannot read the server's status: {why}")))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok((text(&status["generation"]), text(&status["model"]["id"])))
}

/// Asks one question; the view of the answer, or why there is none.
async fn ask(
    client: &reqwest::Client,
    run: &ServerRun,
    question: &str,
    k: usize,
) -> std::result::Result<AnswerView, String> {
    let url = format!("{}/v1/ask", run.url.trim_end_matches('/'));
    let request = client
        .post(&url)
        .bearer_auth(&run.token)
        .json(&json!({"question": question, "k": k}));
    let document = send(request).await?;
    AnswerView::from_json(&document["answer"])
}

/// Sends a request; its JSON body, or why it failed (the status and the server's error).
/// A request over the token's rate (429) or refused while the server is at its limit of
/// queries in flight (503) is sent again after the wait the server names (else a
/// second), up to [`RATE_RETRIES`] times.
async fn send(request: reqwest::RequestBuilder) -> std::result::Result<Value, String> {
    let mut retries = 0;
    loop {
        let attempt = request
            .try_clone()
            .ok_or("the request cannot be sent again")?;
        let response = attempt.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if matches!(status.as_u16(), 429 | 503) && retries < RATE_RETRIES {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 60);
            retries += 1;
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let hint = if status.as_u16() == 401 {
            ": the server refused the token (check --token-file)"
        } else {
            ""
        };
        return Err(match body["error"].as_str() {
            Some(message) => format!("HTTP {status}{hint}: {message}"),
            None => format!("HTTP {status}{hint}"),
        });
    }
}
