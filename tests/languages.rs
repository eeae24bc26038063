//! One fixture per registered grammar language (`tests/fixtures/languages/`), each with a
//! type, a method, a free function and doc comments: the exact chunks, qualified symbols
//! and doc lines the chunker makes of it, and that every grammar loads.

mod common;

use codeq::chunk::{ChunkLimits, ChunkMode, Chunker, FileInput, grammar_languages};
use common::{codeq, codeq_json, stderr, stdout};

type Row<'a> = (&'a str, &'a str, u32, u32, &'a str);

fn fixture_dir() -> String {
    format!("{}/tests/fixtures/languages", env!("CARGO_MANIFEST_DIR"))
}

fn chunker() -> &'static Chunker {
    static CHUNKER: std::sync::OnceLock<Chunker> = std::sync::OnceLock::new();
    CHUNKER.get_or_init(|| Chunker::new(ChunkLimits::default()))
}

/// Asserts the (kind, symbol, first line, last line, doc) of every chunk of `file`, and
/// that it was chunked at definitions.
fn expect_chunks(file: &str, expected: &[Row<'_>]) {
    let text = std::fs::read_to_string(format!("{}/{file}", fixture_dir())).unwrap();
    let chunked = chunker().chunk_file(FileInput {
        repo: "r",
        path: file,
        commit: "c",
        file_hash: "h",
        text: &text,
    });
    assert_eq!(chunked.mode, ChunkMode::Definitions, "{file}");
    let actual: Vec<Row<'_>> = chunked
        .chunks
        .iter()
        .map(|c| {
            (
                c.kind.as_str(),
                c.symbol.as_str(),
                c.start_line,
                c.end_line,
                c.doc.as_str(),
            )
        })
        .collect();
    assert_eq!(actual, expected, "{file}");
    for chunk in &chunked.chunks {
        let is_code = !matches!(chunk.kind.as_str(), "module" | "window");
        assert!(
            !is_code || !chunk.signature.is_empty(),
            "{file}: {} has no signature",
            chunk.symbol
        );
    }
}

#[test]
fn every_registered_grammar_loads_and_has_a_fixture() {
    assert!(
        chunker().unavailable().is_empty(),
        "{:?}",
        chunker().unavailable()
    );
    let languages = grammar_languages();
    assert!(languages.len() >= 17, "{languages:?}");
    let fixtures: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    for (language, _) in languages {
        let covered = fixtures.iter().any(|f| {
            let text = std::fs::read_to_string(format!("{}/{f}", fixture_dir())).unwrap();
            codeq::chunk::language_name(f, &text) == language
        });
        assert!(covered, "no fixture for {language}");
    }
}

#[test]
fn files_are_recognised_by_shebang_file_name_and_header_content() {
    use codeq::chunk::language_name;
    assert_eq!(
        language_name("bin/deploy", "#!/usr/bin/env bash\necho hi\n"),
        "bash"
    );
    assert_eq!(
        language_name("tool", "#!/usr/bin/python3 -u\nprint(1)\n"),
        "python"
    );
    assert_eq!(
        language_name("scripts/run", "#!/usr/bin/env -S node\n"),
        "javascript"
    );
    assert_eq!(language_name("Rakefile", "task :default\n"), "ruby");
    assert_eq!(
        language_name("include/list.h", "struct list { int n; };\n"),
        "c"
    );
    assert_eq!(
        language_name("absl/str.h", "namespace absl {\nclass Str {};\n}\n"),
        "cpp"
    );
    assert_eq!(language_name("notes", "just words\n"), "text");
}

#[test]
fn a_tree_of_every_language_is_indexed_and_its_methods_are_found_by_qualified_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    common::copy_tree(std::path::Path::new(&fixture_dir()), &root.join("src"));
    std::fs::write(
        root.join("src/broken.go"),
        "}}}} ))) ]]] {{ (( ;; ::: }}}} ))) ]]]\n".repeat(40),
    )
    .unwrap();
    let out = codeq(&root, &["index", "."]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "1 files could not be parsed by their grammar: the definitions that parsed are \
             chunks, the rest line windows (e.g. src/broken.go)"
        ),
        "{}",
        stdout(&out)
    );
    for (query, symbol) in [
        ("store.Store.Put", "store.Store.Put"),
        (
            "Shop.Billing.Invoice.AddLine",
            "Shop.Billing.Invoice.AddLine",
        ),
        ("JobQueue.offer", "JobQueue.offer"),
        ("Config::Loader::settings", "Config::Loader::settings"),
    ] {
        let (_, found) = codeq_json(&root, &["search", query, "-k", "3"]);
        let symbols: Vec<&str> = found["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["symbol"].as_str())
            .collect();
        assert_eq!(symbols.first(), Some(&symbol), "{query}: {symbols:?}");
    }
    for language in ["go", "kotlin", "csharp", "zig", "swift"] {
        let (_, found) = codeq_json(&root, &["search", "value", "--lang", language, "-k", "2"]);
        let results = found["results"].as_array().unwrap();
        assert!(!results.is_empty(), "{language}: {found}");
        assert!(
            results.iter().all(|r| r["language"] == language),
            "{language}: {found}"
        );
    }
}

#[test]
fn a_file_its_grammar_cannot_parse_is_cut_into_windows_and_says_so() {
    let text = "}}}} ))) ]]] {{ (( ;; ::: }}}} ))) ]]]\n".repeat(40);
    let chunked = chunker().chunk_file(FileInput {
        repo: "r",
        path: "broken.go",
        commit: "c",
        file_hash: "h",
        text: &text,
    });
    assert_eq!(chunked.mode, ChunkMode::WindowsAfterParseFailure);
    assert!(chunked.chunks.iter().all(|c| c.kind == "window"));
    assert_eq!(chunked.chunks.first().map(|c| c.start_line), Some(1));
}

#[test]
fn the_intact_definitions_of_a_file_its_grammar_mostly_cannot_parse_stay_chunks() {
    // Macros a grammar does not know (`FMT_BEGIN_NAMESPACE`, libuv's) can leave most of a
    // header in parse errors; the functions that parsed still get their own chunks.
    let mut text =
        String::from("/* Adds two numbers. */\nint add(int a, int b) {\n    return a + b;\n}\n\n");
    text.push_str(&"}}}} ))) ]]] {{ (( ;; ::: macro }}}} ))) ]]]\n".repeat(40));
    let chunked = chunker().chunk_file(FileInput {
        repo: "r",
        path: "broken.c",
        commit: "c",
        file_hash: "h",
        text: &text,
    });
    assert_eq!(chunked.mode, ChunkMode::IntactDefinitions);
    let first = &chunked.chunks[0];
    assert_eq!(
        (
            first.kind.as_str(),
            first.symbol.as_str(),
            first.start_line,
            first.end_line
        ),
        ("function", "add", 1, 4)
    );
    assert!(chunked.chunks[1..].iter().all(|c| c.kind == "module"));
    assert_eq!(chunked.chunks.last().map(|c| c.end_line), Some(45));
}

#[test]
fn bash_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.sh",
        &[
            ("module", "sample.sh", 1, 2, ""),
            (
                "function",
                "log",
                4,
                9,
                "Prints a message to stderr with a timestamp.",
            ),
            (
                "function",
                "backup_file",
                11,
                17,
                "Downloads nothing; copies a file into the backup folder with a dated name.",
            ),
            ("module", "sample.sh", 19, 19, ""),
        ],
    );
}

#[test]
fn c_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.c",
        &[
            ("module", "sample.c", 1, 2, ""),
            ("struct", "buffer", 4, 9, "A growable byte buffer."),
            (
                "function",
                "buffer_append",
                11,
                24,
                "Appends bytes to the buffer, doubling its capacity when needed.",
            ),
            (
                "function",
                "buffer_new",
                26,
                30,
                "Makes an empty buffer; free it with free(b->data).",
            ),
        ],
    );
}

#[test]
fn cpp_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.cpp",
        &[
            ("module", "sample.cpp", 1, 2, ""),
            ("namespace", "text", 4, 4, ""),
            (
                "class",
                "text::Splitter",
                6,
                8,
                "Splits strings at a separator character.",
            ),
            ("method", "text::Splitter::Splitter", 9, 9, ""),
            (
                "method",
                "text::Splitter::split",
                11,
                20,
                "Returns the pieces of `s` between separators.",
            ),
            (
                "class",
                "text::Splitter",
                22,
                24,
                "Splits strings at a separator character.",
            ),
            (
                "function",
                "text::join",
                26,
                36,
                "Joins pieces with a separator between them.",
            ),
        ],
    );
}

#[test]
fn csharp_definitions_and_qualified_symbols() {
    expect_chunks(
        "Sample.cs",
        &[
            ("module", "Sample.cs", 1, 2, ""),
            ("namespace", "Shop.Billing", 4, 5, ""),
            (
                "class",
                "Shop.Billing.Invoice",
                6,
                9,
                "An invoice with its lines and total.",
            ),
            (
                "method",
                "Shop.Billing.Invoice.AddLine",
                11,
                17,
                "Adds a line and returns the new total.",
            ),
            ("method", "Shop.Billing.Invoice.Total", 19, 24, ""),
        ],
    );
}

#[test]
fn go_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.go",
        &[
            ("module", "sample.go", 1, 3, ""),
            (
                "struct",
                "store.Store",
                5,
                9,
                "Store keeps named values in memory.",
            ),
            (
                "method",
                "store.Store.Put",
                11,
                18,
                "Put saves a value under a name, refusing once the store is full.",
            ),
            (
                "function",
                "store.NewStore",
                20,
                24,
                "NewStore makes an empty store that holds at most limit values.",
            ),
        ],
    );
}

#[test]
fn java_definitions_and_qualified_symbols() {
    expect_chunks(
        "Sample.java",
        &[
            ("module", "Sample.java", 1, 4, ""),
            (
                "class",
                "LruCache",
                6,
                9,
                "A cache that forgets its oldest entry when full.",
            ),
            ("method", "LruCache.LruCache", 11, 14, ""),
            (
                "method",
                "LruCache.put",
                16,
                22,
                "Stores a value, evicting the oldest entry when the cache is full.",
            ),
            (
                "interface",
                "EvictionPolicy",
                25,
                26,
                "Ways a cache can decide what to forget.",
            ),
            ("method", "EvictionPolicy.choose", 27, 27, ""),
        ],
    );
}

#[test]
fn javascript_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.js",
        &[
            ("module", "sample.js", 1, 1, ""),
            (
                "class",
                "Router",
                3,
                4,
                "Resolves a route to a handler file under a root folder.",
            ),
            ("method", "Router.constructor", 5, 8, ""),
            (
                "method",
                "Router.add",
                10,
                15,
                "Registers a handler file for a route pattern.",
            ),
            (
                "function",
                "routeKey",
                18,
                22,
                "Turns a URL path into its route key, without query or trailing slash.",
            ),
            (
                "function",
                "Router.prototype.lookup",
                24,
                27,
                "Finds the handler file of a route, if one is registered.",
            ),
            ("function", "legacyKey", 29, 31, ""),
            ("module", "sample.js", 33, 33, ""),
        ],
    );
}

#[test]
fn kotlin_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.kt",
        &[
            ("module", "sample.kt", 1, 1, ""),
            ("class", "JobQueue", 3, 5, "A bounded queue of jobs."),
            (
                "method",
                "JobQueue.offer",
                7,
                14,
                "Adds a job, or returns false when the queue is full.",
            ),
            (
                "function",
                "queueOf",
                17,
                22,
                "Builds a queue pre-filled with the given jobs.",
            ),
        ],
    );
}

#[test]
fn lua_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.lua",
        &[
            ("module", "sample.lua", 1, 4, ""),
            (
                "function",
                "M.setup",
                6,
                11,
                "Merges user options over the defaults and stores them.",
            ),
            (
                "function",
                "pad",
                13,
                18,
                "Pads a string on the right to the given width.",
            ),
            ("module", "sample.lua", 20, 21, ""),
        ],
    );
}

#[test]
fn php_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.php",
        &[
            ("module", "sample.php", 1, 3, ""),
            (
                "class",
                "Mailer",
                5,
                10,
                "Sends messages through an SMTP relay.",
            ),
            ("method", "Mailer::__construct", 12, 15, ""),
            (
                "method",
                "Mailer::send",
                17,
                25,
                "Sends one message and returns whether the relay accepted it.",
            ),
            (
                "function",
                "format_address",
                28,
                34,
                "Formats an address with its display name.",
            ),
        ],
    );
}

#[test]
fn python_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.py",
        &[
            ("module", "sample", 1, 1, ""),
            (
                "class",
                "sample.Ledger",
                4,
                5,
                "Money in and out of one account.",
            ),
            ("method", "sample.Ledger.__init__", 7, 9, ""),
            (
                "method",
                "sample.Ledger.record",
                11,
                14,
                "Adds an entry and returns the new balance.",
            ),
            (
                "function",
                "sample.load_ledger",
                17,
                24,
                "Reads a ledger saved as JSON.",
            ),
        ],
    );
}

#[test]
fn ruby_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.rb",
        &[
            ("module", "sample.rb", 1, 1, ""),
            (
                "module",
                "Config",
                3,
                5,
                "Helpers for reading configuration.",
            ),
            ("class", "Config::Loader", 6, 6, ""),
            ("method", "Config::Loader::initialize", 7, 10, ""),
            (
                "method",
                "Config::Loader::settings",
                12,
                17,
                "Reads the file once and returns its settings.",
            ),
            (
                "function",
                "Config::merge",
                19,
                23,
                "Merges two settings hashes, the second winning.",
            ),
        ],
    );
}

#[test]
fn rust_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.rs",
        &[
            ("module", "sample.rs", 1, 1, ""),
            ("struct", "Counts", 3, 7, "Word counts of a text."),
            ("impl", "Counts", 9, 9, ""),
            (
                "method",
                "Counts::of",
                10,
                18,
                "Counts the words of `text`, ignoring case.",
            ),
            (
                "function",
                "most_common",
                21,
                25,
                "The most frequent word, if any.",
            ),
        ],
    );
}

#[test]
fn scala_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.scala",
        &[
            ("module", "sample.scala", 1, 1, ""),
            (
                "class",
                "Summary",
                3,
                4,
                "Running statistics over a stream of numbers.",
            ),
            (
                "method",
                "Summary.mean",
                6,
                10,
                "The arithmetic mean, or zero for no values.",
            ),
            ("object", "Summary", 13, 14, "Constructors for summaries."),
            (
                "method",
                "Summary.parse",
                15,
                19,
                "A summary of the numbers in a comma-separated line.",
            ),
        ],
    );
}

#[test]
fn swift_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.swift",
        &[
            ("module", "sample.swift", 1, 1, ""),
            (
                "struct",
                "Reading",
                3,
                6,
                "A temperature reading with its unit.",
            ),
            (
                "method",
                "Reading.fahrenheit",
                8,
                14,
                "The reading converted to degrees Fahrenheit.",
            ),
            (
                "function",
                "average",
                17,
                22,
                "Averages readings, all converted to Fahrenheit first.",
            ),
        ],
    );
}

#[test]
fn tsx_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.tsx",
        &[
            ("module", "sample.tsx", 1, 1, ""),
            ("type", "BannerProps", 3, 4, "Props of the greeting banner."),
            (
                "function",
                "Banner",
                6,
                10,
                "A banner that greets the user by name.",
            ),
            (
                "class",
                "Counter",
                12,
                14,
                "Counts clicks and shows the total.",
            ),
            ("method", "Counter.render", 16, 19, ""),
        ],
    );
}

#[test]
fn typescript_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.ts",
        &[
            ("module", "sample.ts", 1, 1, ""),
            (
                "interface",
                "Settings",
                3,
                7,
                "Settings read from a JSON file on disk.",
            ),
            (
                "class",
                "SettingsLoader",
                9,
                10,
                "Loads and validates settings, with defaults for what is missing.",
            ),
            ("method", "SettingsLoader.constructor", 11, 11, ""),
            (
                "method",
                "SettingsLoader.load",
                13,
                17,
                "Reads the file and fills in defaults.",
            ),
            (
                "function",
                "parseRetries",
                20,
                24,
                "Parses a retry count from user input, clamped to a sane range.",
            ),
        ],
    );
}

#[test]
fn zig_definitions_and_qualified_symbols() {
    expect_chunks(
        "sample.zig",
        &[
            ("module", "sample.zig", 1, 1, ""),
            (
                "struct",
                "Stack",
                3,
                6,
                "A fixed-capacity stack of integers.",
            ),
            (
                "method",
                "Stack.push",
                8,
                13,
                "Pushes a value, failing when the stack is full.",
            ),
            ("function", "sum", 16, 21, "Sums a slice of integers."),
            ("test", "push then sum", 23, 27, ""),
        ],
    );
}

#[test]
fn haskell_functions_join_their_signature_and_clauses() {
    expect_chunks(
        "Sample.hs",
        &[
            ("module", "Sample.hs", 1, 7, ""),
            (
                "type",
                "Data.Sample.Stack",
                8,
                8,
                "A stack of integers, top first.",
            ),
            (
                "class",
                "Data.Sample.Sized",
                10,
                12,
                "Things that have a size.",
            ),
            (
                "method",
                "Data.Sample.Sized.size",
                13,
                14,
                "How many elements it holds.",
            ),
            ("impl", "Data.Sample.Sized", 16, 16, ""),
            ("method", "Data.Sample.Sized.size", 17, 17, ""),
            (
                "function",
                "Data.Sample.push",
                19,
                21,
                "Pushes a value on top.",
            ),
            (
                "function",
                "Data.Sample.total",
                23,
                26,
                "Sums a list, counting an empty one as zero.",
            ),
        ],
    );
}

#[test]
fn elixir_functions_join_their_clauses_under_their_module() {
    expect_chunks(
        "sample.ex",
        &[
            (
                "module",
                "Sample.Stack",
                1,
                6,
                "A fixed-capacity stack of integers.",
            ),
            (
                "function",
                "Sample.Stack.push",
                8,
                15,
                "Pushes a value, failing when the stack is full.",
            ),
            (
                "function",
                "Sample.Stack.total",
                17,
                21,
                "Sums the stack's values.",
            ),
        ],
    );
}
