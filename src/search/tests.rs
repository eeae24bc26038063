//! Unit tests of query analysis, boosts, overlap removal and reranking.

use super::*;

#[test]
fn query_terms_drop_stop_words_and_split_identifiers() {
    assert_eq!(
        query_terms("how does the parseConfig function work"),
        ["parseconfig", "parse", "config", "function", "work"]
    );
    assert!(query_terms("  ").is_empty());
}

pub(super) fn chunk(path: &str, kind: &str, symbol: &str, lines: (u32, u32)) -> Chunk {
    Chunk {
        chunk_id: format!("{path}:{}", lines.0),
        repo: "r".into(),
        path: path.into(),
        language: "rust".into(),
        kind: kind.into(),
        symbol: symbol.into(),
        signature: String::new(),
        doc: String::new(),
        content: String::new(),
        content_hash: String::new(),
        file_hash: String::new(),
        commit: String::new(),
        start_line: lines.0,
        end_line: lines.1,
    }
}

#[test]
fn embedding_goes_to_definitions_first_and_vendored_data_last() {
    let docs = Chunk {
        language: "markdown".into(),
        ..chunk("README.md", "window", "", (1, 9))
    };
    let data = Chunk {
        language: "json".into(),
        ..chunk("data/fixtures.json", "window", "", (1, 9))
    };
    let ordered = [
        chunk("src/lib.rs", "function", "parse", (1, 9)),
        chunk("src/lib.rs", "module", "lib", (10, 20)),
        docs,
        chunk("tests/parse.rs", "function", "parses", (1, 9)),
        data,
    ];
    let priorities: Vec<u32> = ordered.iter().map(embedding_priority).collect();
    assert!(priorities.windows(2).all(|w| w[0] < w[1]), "{priorities:?}");
    let vendored = chunk("vendor/zlib/lib.rs", "function", "inflate", (1, 9));
    assert_eq!(embedding_priority(&vendored), 4);
}

fn reasons(query: &str, c: &Chunk) -> Vec<&'static str> {
    QueryAnalysis::of(query)
        .boosts_for(c)
        .iter()
        .map(|b| b.reason)
        .collect()
}

#[test]
fn the_definition_of_a_named_symbol_is_boosted_unless_usages_are_asked_for() {
    let def = chunk("src/ledger.rs", "method", "Ledger::transfer_funds", (3, 9));
    let caller = chunk("src/api.rs", "function", "handle_transfer", (1, 5));
    let exact = [
        "defines the named symbol",
        "spelled exactly as in the query",
    ];
    assert_eq!(reasons("transfer_funds", &def), exact);
    assert_eq!(reasons("Ledger::transfer_funds", &def), exact);
    assert_eq!(
        reasons("TRANSFER_FUNDS", &def),
        ["defines the named symbol"]
    );
    assert!(reasons("transfer_funds", &caller).is_empty());
    assert!(reasons("where is transfer_funds called", &def).is_empty());
    assert!(reasons("move money between accounts", &def).is_empty());
    // A whole file is not a definition of the symbol.
    let window = chunk("docs/transfer_funds.md", "window", "transfer_funds", (1, 9));
    assert!(!reasons("transfer_funds", &window).contains(&"defines the named symbol"));
}

#[test]
fn a_piece_that_lists_several_symbols_defines_each_of_them() {
    let exact = [
        "defines the named symbol",
        "spelled exactly as in the query",
    ];
    // A class header that leads its first method, and a run of small functions.
    let header = chunk("billing.py", "class", "Ledger, Ledger.__init__", (4, 9));
    assert_eq!(reasons("Ledger", &header), exact);
    assert_eq!(reasons("__init__", &header), exact);
    let group = chunk("util.go", "group", "min, max, clamp", (1, 9));
    assert_eq!(reasons("max", &group), exact);
    // An `impl` block defines its methods, not the type its struct defines.
    let methods = chunk("src/stats.rs", "impl", "Counts, Counts::of", (9, 18));
    assert_eq!(reasons("of", &methods), exact);
    assert!(reasons("Counts", &methods).is_empty());
}

#[test]
fn a_description_that_spells_a_name_in_words_finds_its_definition_and_file() {
    let class = chunk("gson/JsonObject.java", "class", "JsonObject", (1, 40));
    assert_eq!(
        reasons("a JSON object with named fields", &class),
        [
            "defines the name the query spells in words",
            "file name matches the query",
            "words of the query name the file"
        ]
    );
    let module = chunk("src/equals_builder.py", "function", "append", (1, 9));
    assert_eq!(
        reasons("how the equals builder compares fields", &module),
        [
            "file name matches the query",
            "words of the query name the file"
        ]
    );
    // A stop word breaks the run; identifiers are names already, not spelled ones.
    assert_eq!(
        reasons("json of object", &class),
        ["words of the query name the file"]
    );
    assert!(QueryAnalysis::of("JsonObject").spelled_names.is_empty());
}

#[test]
fn examples_legacy_folders_and_reexport_modules_rank_lower_unless_asked_for() {
    let example = chunk("examples/app.py", "function", "serve", (1, 9));
    assert_eq!(
        reasons("start a server", &example),
        ["examples or documentation sources (the query does not ask for them)"]
    );
    assert!(reasons("an example server", &example).is_empty());
    let legacy = chunk("pkg/compat/io.py", "function", "read", (1, 9));
    assert_eq!(
        reasons("read a file", &legacy),
        ["legacy or compatibility code"]
    );
    assert!(reasons("legacy file reading", &legacy).is_empty());
    assert!(reasons("how v1 reads a file", &legacy).is_empty());
    let init = chunk("pkg/__init__.py", "module", "pkg", (1, 9));
    assert_eq!(
        reasons("what the package exports", &init),
        ["a package's re-export module, not the code it exports"]
    );
    let defined_there = chunk("pkg/__init__.py", "function", "setup", (10, 19));
    assert!(reasons("what the package exports", &defined_there).is_empty());
}

#[test]
fn an_older_version_folder_is_superseded_only_beside_a_newer_one() {
    let paths = [
        ("r", "api/v1/client.go"),
        ("r", "api/v2/client.go"),
        ("r", "tools/v1/cli.go"),
        ("other", "api/v3/client.go"),
    ];
    let versions = VersionFolders::of(paths.into_iter());
    assert!(versions.superseded("r", "api/v1/client.go"));
    assert!(!versions.superseded("r", "api/v2/client.go"));
    assert!(
        !versions.superseded("r", "tools/v1/cli.go"),
        "no newer sibling"
    );
    assert!(!versions.superseded("other", "api/v3/client.go"));
    assert!(
        !versions.superseded("r", "v1.go"),
        "a file name is not a folder"
    );
}

#[test]
fn the_exact_spelling_wins_and_only_the_first_piece_of_a_definition_counts_as_it() {
    assert_eq!(
        reasons(
            "Session",
            &chunk("sessions.py", "class", "Session", (356, 388))
        ),
        [
            "defines the named symbol",
            "spelled exactly as in the query"
        ]
    );
    assert_eq!(
        reasons(
            "Session",
            &chunk("sessions.py", "function", "session", (821, 833))
        ),
        ["defines the named symbol"]
    );
    let analysis = QueryAnalysis::of("Builder");
    let mut pieces: Vec<SearchHit> = [(127, 132), (36, 39), (295, 295)]
        .into_iter()
        .map(|lines| {
            let c = chunk("builder.rb", "class", "Rack::Builder", lines);
            let fused_score = if lines.0 == 127 { 2.0 } else { 1.0 };
            SearchHit {
                boosts: analysis.boosts_for(&c),
                fused_score,
                ..hit(c)
            }
        })
        .collect();
    keep_definition_boost_on_headers(&analysis, &mut pieces);
    let reasons: Vec<Vec<&str>> = pieces
        .iter()
        .map(|h| h.boosts.iter().map(|b| b.reason).collect())
        .collect();
    let later = "a later piece of the named symbol's definition";
    assert_eq!(
        reasons[1][..2],
        [
            "defines the named symbol",
            "spelled exactly as in the query"
        ]
    );
    assert_eq!(reasons[0][0], later);
    assert_eq!(reasons[2][0], later);
    assert!(!reasons[0].contains(&"spelled exactly as in the query"));
    // The header scores as the best of the pieces: 2.0 instead of its own 1.0.
    let inherited = pieces[1].boosts.last().unwrap();
    assert_eq!(
        (inherited.reason, inherited.factor),
        ("the best match among its definition's pieces", 2.0)
    );
}

#[test]
fn a_file_name_counts_fully_only_when_the_query_names_it() {
    let c = chunk("fraud/scoring.py", "function", "risk", (1, 3));
    assert_eq!(reasons("scoring", &c), ["file name matches the query"]);
    // A plain word of a description counts by its share of the description's words.
    let m = chunk("pkg/model.py", "function", "encode", (1, 3));
    let boosts = QueryAnalysis::of("how is a model saved to disk").boosts_for(&m);
    assert_eq!(boosts.len(), 1);
    assert_eq!(boosts[0].reason, "words of the query name the file");
    assert!((boosts[0].factor - (1.0 + PATH_WORDS_WEIGHT / 3.0)).abs() < 1e-9);
}

#[test]
fn tests_and_vendored_code_are_down_weighted_unless_asked_for() {
    let t = chunk("tests/test_ledger.py", "function", "test_refund", (1, 3));
    let unit = chunk("src/lib.rs", "function", "tests::refund_works", (1, 3));
    let v = chunk("vendor/lib/x.py", "function", "helper", (1, 3));
    for c in [&t, &unit] {
        assert_eq!(
            reasons("refund a payment", c),
            ["test code (the query does not ask for tests)"]
        );
        let asked = reasons("tests for refunds", c);
        assert!(!asked.contains(&"test code (the query does not ask for tests)"));
    }
    assert_eq!(
        reasons("a small helper", &v),
        ["vendored or generated code"]
    );
    assert!(reasons("vendored helper", &v).is_empty());
}

#[test]
fn prose_documents_rank_below_code_unless_docs_are_asked_for() {
    let readme = Chunk {
        language: "markdown".into(),
        ..chunk("README.md", "window", "README.md > Install", (1, 30))
    };
    let code = chunk("src/deploy.rs", "function", "install", (1, 30));
    let prose = "prose documentation (the query does not ask for docs)";
    assert_eq!(reasons("how is a release installed", &readme), [prose]);
    assert!(reasons("how is a release installed", &code).is_empty());
    assert!(!reasons("where does the readme explain installing", &readme).contains(&prose));
    assert!(reasons("installation guide", &readme).is_empty());
}

#[test]
fn words_of_a_description_that_name_the_file_lift_it_by_their_share() {
    let factor = |query: &str, path: &str| {
        QueryAnalysis::of(query)
            .boosts_for(&chunk(path, "function", "run", (1, 9)))
            .iter()
            .find(|b| b.reason == "words of the query name the file")
            .map_or(1.0, |b| b.factor)
    };
    // "store" and "creation" (as `create`) of three words; "and" is a stop word.
    let both = factor("store creation and dispatch", "src/createStore.ts");
    assert!(
        (both - (1.0 + PATH_WORDS_WEIGHT * 2.0 / 3.0)).abs() < 1e-9,
        "{both}"
    );
    let one = factor("store creation and dispatch", "src/store.ts");
    assert!(
        (one - (1.0 + PATH_WORDS_WEIGHT / 3.0)).abs() < 1e-9,
        "{one}"
    );
    assert_eq!(
        factor("store creation and dispatch", "src/dispatcher.ts"),
        1.0 + PATH_WORDS_WEIGHT / 3.0
    );
    assert_eq!(factor("store creation and dispatch", "src/reducer.ts"), 1.0);
    assert_eq!(
        factor("store creation and dispatch", "src/store/reducer.ts"),
        1.0,
        "a folder's name does not count"
    );
    assert_eq!(
        factor("connection pooling", "src/connector.rs"),
        1.0 + PATH_WORDS_WEIGHT / 2.0,
        "a word that begins with the other's stem is the same word"
    );
    assert_eq!(
        factor("connection pooling", "src/connect_timeout.rs"),
        1.0 + PATH_WORDS_WEIGHT / 2.0
    );
    assert_eq!(
        factor("content negotiation", "src/context.rs"),
        1.0,
        "neither begins with the other's stem"
    );
    assert_eq!(
        factor("createStore", "src/createStore.ts"),
        1.0,
        "a name has its own boost"
    );
}

/// A hit on `chunk` with a fused score of 1 and no lane details.
pub(super) fn hit(chunk: Chunk) -> SearchHit {
    SearchHit {
        chunk,
        score: 1.0,
        fused_score: 1.0,
        boosts: Vec::new(),
        bm25_rank: None,
        bm25_score: None,
        vector_rank: None,
        vector_distance: None,
        rerank_score: None,
    }
}

#[test]
fn a_chunk_overlapping_a_better_one_of_the_same_file_is_dropped() {
    let ranked = [
        hit(chunk("a.rs", "impl", "A", (1, 20))),
        hit(chunk("a.rs", "method", "A::f", (5, 9))),
        hit(chunk("b.rs", "method", "B::f", (5, 9))),
        hit(chunk("a.rs", "function", "g", (21, 30))),
    ];
    let kept = without_overlaps(&ranked);
    let symbols: Vec<&str> = kept.iter().map(|h| h.chunk.symbol.as_str()).collect();
    assert_eq!(symbols, ["A", "B::f", "g"]);
}

#[test]
fn queries_are_classified_as_identifiers_or_descriptions() {
    for q in [
        "refund_payment",
        "IndexDir::publish",
        "parseConfig",
        "Session.request",
        "FraudScorer",
        "where is parse_config called",
    ] {
        assert_eq!(QueryAnalysis::of(q).kind, QueryKind::Identifier, "{q}");
    }
    for q in [
        "how risky is a card transaction",
        "Split the query. Then rank it.",
    ] {
        assert_eq!(QueryAnalysis::of(q).kind, QueryKind::NaturalLanguage, "{q}");
    }
}

/// Scores a text by how often it names "refund": a stand-in for the cross-encoder
/// that makes the expected order obvious.
struct CountsRefunds;

impl Reranker for CountsRefunds {
    fn id(&self) -> &str {
        "counts-refunds"
    }
    fn candidates(&self) -> usize {
        2
    }
    fn score(&mut self, _query: &str, texts: &[String]) -> Result<Vec<f32>> {
        Ok(texts
            .iter()
            .map(|t| t.matches("refund").count() as f32)
            .collect())
    }
}

#[test]
fn reranking_orders_the_rescored_hits_by_the_model_and_keeps_ties_in_fused_order() {
    let hit = |symbol: &str, content: &str| {
        hit(Chunk {
            content: content.into(),
            ..chunk("a.rs", "function", symbol, (1, 2))
        })
    };
    let mut hits = [
        hit("first", "charge"),
        hit("second", "refund refund"),
        hit("third", "refund"),
    ];
    let best = CountsRefunds.candidates();
    rerank(&mut CountsRefunds, "refund", &mut hits[..best]).unwrap();
    let order: Vec<&str> = hits.iter().map(|h| h.chunk.symbol.as_str()).collect();
    assert_eq!(
        order,
        ["second", "first", "third"],
        "only the best two are re-scored"
    );
    assert_eq!(hits[0].rerank_score, Some(2.0));
    assert_eq!(hits[2].rerank_score, None);

    let mut tied = [hit("a", "refund"), hit("b", "refund")];
    rerank(&mut CountsRefunds, "refund", &mut tied).unwrap();
    assert_eq!(tied[0].chunk.symbol, "a");
}

#[test]
fn a_test_that_redefines_a_named_symbol_loses_the_definition_boost_to_the_code() {
    let analysis = QueryAnalysis::of("nvm_has");
    let scored = |chunks: Vec<Chunk>| -> Vec<SearchHit> {
        let mut hits: Vec<SearchHit> = chunks
            .into_iter()
            .map(|c| SearchHit {
                boosts: analysis.boosts_for(&c),
                ..hit(c)
            })
            .collect();
        prefer_definitions_outside_tests(&analysis, &mut hits);
        hits
    };
    let reasons = |h: &SearchHit| h.boosts.iter().map(|b| b.reason).collect::<Vec<_>>();
    let stub = chunk("test/fast/nvm_use", "function", "nvm_has", (1, 3));
    let real = chunk("nvm.sh", "function", "nvm_has", (10, 20));
    let hits = scored(vec![stub.clone(), real]);
    assert_eq!(
        reasons(&hits[0]),
        [
            "a test's stand-in for a symbol the code defines",
            "test code (the query does not ask for tests)"
        ]
    );
    assert_eq!(reasons(&hits[1])[0], "defines the named symbol");
    // Defined only in a test, the test's definition is the one there is.
    let hits = scored(vec![stub]);
    assert_eq!(reasons(&hits[0])[0], "defines the named symbol");
}

#[test]
fn a_capitalised_name_prefers_its_exact_case_and_a_lower_case_one_prefers_none() {
    let scored = |query: &str, chunks: &[Chunk]| -> Vec<Vec<&'static str>> {
        let analysis = QueryAnalysis::of(query);
        let mut hits: Vec<SearchHit> = chunks
            .iter()
            .map(|c| SearchHit {
                boosts: analysis.boosts_for(c),
                ..hit(c.clone())
            })
            .collect();
        prefer_the_exact_case(&analysis, &mut hits);
        hits.iter()
            .map(|h| h.boosts.iter().map(|b| b.reason).collect())
            .collect()
    };
    let class = chunk("httpx/_config.py", "class", "_config.Timeout", (72, 84));
    let property = chunk(
        "httpx/_client.py",
        "method",
        "_client.BaseClient.timeout",
        (253, 255),
    );
    let both = [property.clone(), class.clone()];

    let hits = scored("Timeout", &both);
    assert_eq!(
        hits[0],
        ["defines the name in another case than the query's"]
    );
    assert_eq!(
        hits[1],
        [
            "defines the named symbol",
            "spelled exactly as in the query"
        ]
    );
    // Without the exact spelling among the candidates, the other case is what there is.
    let hits = scored("Timeout", std::slice::from_ref(&property));
    assert_eq!(hits[0], ["defines the named symbol"]);
    // A name typed in lower case names no case: the class keeps its boost.
    let hits = scored("timeout", &both);
    assert_eq!(
        hits[0],
        [
            "defines the named symbol",
            "spelled exactly as in the query"
        ]
    );
    assert_eq!(hits[1], ["defines the named symbol"]);
}
