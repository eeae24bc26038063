//! The attacker's material for the access-control suites: text only the readers of one
//! file or repository of the fixture corpus may see, and the queries an attacker would try
//! to reach it with. `tests/acl.rs` runs them through the library and the command line,
//! `tests/remote.rs` through `codeq serve` over an index in object storage.

use codeq::store::ChunkFilter;

/// Text that only a reader of (repo, path) may ever see; `None` as path: anything of repo.
pub const MARKERS: &[(&str, Option<&str>, &str)] = &[
    ("payments", Some("src/lib.rs"), "refund_payment"),
    ("payments", Some("src/lib.rs"), "total_with_tax"),
    ("payments", Some("src/lib.rs"), "LineItem"),
    ("payments", Some("src/lib.rs"), "tax_rate_percent"),
    ("payments", Some("src/lib.rs"), "src/lib.rs"),
    ("payments", Some("src/legacy.txt"), "legacy.txt"),
    ("payments", Some("src/legacy.txt"), "old till"),
    ("payments", Some("README.md"), "Invoices, refunds"),
    ("payments/plugins/fraud", None, "payments/plugins/fraud"),
    (
        "payments/plugins/fraud",
        Some("fraud/scoring.py"),
        "FraudScorer",
    ),
    (
        "payments/plugins/fraud",
        Some("fraud/scoring.py"),
        "score_transaction",
    ),
    (
        "payments/plugins/fraud",
        Some("fraud/scoring.py"),
        "SUSPICIOUS_COUNTRIES",
    ),
    (
        "payments/plugins/fraud",
        Some("fraud/scoring.py"),
        "scoring.py",
    ),
    ("search-service", None, "search-service"),
    (
        "search-service",
        Some("service/query.py"),
        "parse_query_string",
    ),
    ("search-service", Some("service/query.py"), "rank_documents"),
    (
        "search-service",
        Some("service/query.py"),
        "service/query.py",
    ),
    ("search-service", Some("service/query.py"), "math.log"),
    (
        "search-service",
        Some("README.md"),
        "Query parsing and ranking",
    ),
    (".", Some("notes/todo.md"), "todo.md"),
    (".", Some("notes/todo.md"), "gateway keys"),
];

/// The markers `filter` forbids: what its principal may not see.
pub fn forbidden(filter: &ChunkFilter) -> Vec<&'static str> {
    MARKERS
        .iter()
        .filter(|(repo, path, _)| match path {
            Some(p) => !filter.admits(repo, p),
            None => !filter.admits_repo(repo),
        })
        .map(|(_, _, marker)| *marker)
        .collect()
}

/// Fails, naming `context`, when `output` contains one of `markers`.
pub fn assert_no_marker(output: &str, markers: &[&str], context: &str) {
    for marker in markers {
        assert!(
            !output.contains(marker),
            "{context}: output mentions {marker:?}, which the principal may not read:\n{output}"
        );
    }
}

/// Queries an attacker would try: copied identifiers, lines, paths and repo names, glob-,
/// SQL- and path-traversal-like strings, empty and huge input.
pub fn attack_queries() -> Vec<String> {
    let mut queries: Vec<String> = MARKERS.iter().map(|(_, _, m)| m.to_string()).collect();
    for source in [
        super::PAYMENTS_LIB,
        super::FRAUD_SCORING,
        super::SEARCH_QUERY,
    ] {
        queries.extend(
            source
                .lines()
                .map(str::trim)
                .filter(|l| l.len() > 3)
                .map(str::to_string),
        );
    }
    for q in [
        "payments",
        "corpus",
        "payments:src/lib.rs",
        "fraud/scoring.py",
        "notes/todo.md",
        "rotate the payment gateway keys",
        "*",
        "**",
        "payments*",
        "search-*",
        "*:*",
        "%",
        "_",
        "?",
        "' OR '1'='1",
        "repo = 'payments' OR repo IS NOT NULL",
        "regexp_like(path, '.*')",
        "repo:payments path:*",
        "../payments/src/lib.rs",
        "group:payments",
        "\\",
        "",
        "   ",
    ] {
        queries.push(q.to_string());
    }
    let huge: String = MARKERS
        .iter()
        .map(|(_, _, m)| *m)
        .collect::<Vec<_>>()
        .join(" ")
        .repeat(2000);
    queries.push(huge);
    queries
}

/// The first 60 characters of a query, to name it in a failure.
pub fn truncate(query: &str) -> String {
    query.chars().take(60).collect()
}
