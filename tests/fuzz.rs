//! Property-based fuzzing of the parsers that take untrusted input: the chunker (any bytes
//! under a Rust, Python, Markdown or unknown file name), the configuration parser and the
//! ACL parser. None may panic; each case finishes within a generous time limit (a hang,
//! not a speed target); the chunker's output stays inside its input and within a bounded
//! multiple of its size.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use codeq::acl::Acl;
use codeq::chunk::{ChunkLimits, Chunker, FileInput};
use codeq::config::Config;
use proptest::prelude::*;

/// Pieces of Rust and Python syntax (and of what breaks parsers: unbalanced brackets,
/// unterminated strings and comments, odd whitespace, BOMs, NULs, non-ASCII).
const FRAGMENTS: &[&str] = &[
    "fn ", "pub ", "impl ", "struct ", "trait ", "mod ", "def ", "class ", "async ", "lambda ",
    "return ", "self", "x", "_y1", "{", "}", "(", ")", "[", "]", "<", ">", ":", ";", ",", "=",
    "->", "::", "\"", "'", "\"\"\"", "r#\"", "/*", "*/", "//", "///", "#", "@", "\n", "\r\n", "\r",
    "    ", "\t", "\u{feff}", "\0", "é", "日本", "\u{200b}", "\\",
];

fn code_like() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..600).prop_map(|parts| parts.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        code_like(),
        prop::collection::vec(any::<u8>(), 0..4096)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        any::<String>(),
    ]
}

/// Longest a single case may take before it counts as a hang: far above the milliseconds
/// a case takes, even in a debug build on a loaded machine.
const HANG: Duration = Duration::from_secs(60);

/// Runs `work` on its own thread and returns its result, or `None` if it is still running
/// after [`HANG`] (the thread is then left behind and the case fails).
fn within_hang_limit<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    match result.recv_timeout(HANG) {
        Ok(value) => Some(value),
        Err(mpsc::RecvTimeoutError::Timeout) => None,
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the case panicked"),
    }
}

/// One file name per registered grammar, plus Markdown, plain text and a name without an
/// extension (so the shebang and window paths are fuzzed too).
fn file_names() -> Vec<String> {
    let mut names: Vec<String> = codeq::chunk::grammar_languages()
        .into_iter()
        .map(|(_, ext)| format!("src/case.{ext}"))
        .collect();
    names.extend(["README.md", "data.txt", "Makefile"].map(String::from));
    names
}

fn chunker() -> &'static Chunker {
    static CHUNKER: std::sync::OnceLock<Chunker> = std::sync::OnceLock::new();
    CHUNKER.get_or_init(|| Chunker::new(ChunkLimits::default()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn the_chunker_never_panics_and_stays_inside_its_input(
        text in any_text(),
        name in prop::sample::select(file_names()),
    ) {
        let input = text.clone();
        let path = name.clone();
        let chunks = within_hang_limit(move || {
            chunker().chunk(FileInput {
                repo: "r",
                path: &path,
                commit: "c",
                file_hash: "h",
                text: &input,
            })
        });
        prop_assert!(chunks.is_some(), "chunking {} bytes as {name} hung", text.len());
        let chunks = chunks.unwrap();
        let lines = text.split('\n').count() as u32;
        let mut total = 0;
        for chunk in &chunks {
            prop_assert!(chunk.start_line >= 1 && chunk.start_line <= chunk.end_line);
            prop_assert!(chunk.end_line <= lines, "{}..{} of {lines}", chunk.start_line, chunk.end_line);
            prop_assert!(text.contains(&chunk.content), "a chunk holds text its file does not");
            total += chunk.content.len();
        }
        prop_assert!(total <= 2 * text.len() + 1024, "{total} bytes of chunks from {}", text.len());
    }

    #[test]
    fn the_config_parser_never_panics(text in prop_oneof![any::<String>(), toml_like()]) {
        let parsed = within_hang_limit(move || Config::parse(&text).err());
        prop_assert!(parsed.is_some(), "parsing the configuration hung");
        if let Some(Some(message)) = parsed {
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn the_acl_parser_never_panics_and_a_parsed_acl_grants_without_panicking(
        text in prop_oneof![any::<String>(), acl_like()],
        principal in "[a-z*]{0,6}",
    ) {
        let outcome = within_hang_limit(move || {
            match Acl::parse_section(&text, Path::new("acl.toml")) {
                Ok(acl) => {
                    let repos = vec!["payments".to_string(), "search/service".to_string()];
                    let filter = acl.filter_for(&principal, &repos);
                    for path in ["src/lib.rs", "", "a/../b", "[x]/*"] {
                        let _ = filter.admits("payments", path);
                    }
                    None
                }
                Err(message) => Some(message),
            }
        });
        prop_assert!(outcome.is_some(), "parsing or applying the ACL hung");
        if let Some(Some(message)) = outcome {
            prop_assert!(!message.is_empty());
        }
    }
}

/// Configuration-shaped TOML with random keys and values.
fn toml_like() -> impl Strategy<Value = String> {
    let section =
        prop::sample::select(&["[index]", "[model]", "[llm]", "[budget]", "[acl]", "[x]"][..]);
    let key = prop::sample::select(
        &[
            "max_file_bytes",
            "write_batch",
            "ann",
            "ann_min_chunks",
            "dir",
            "max_length",
            "query_ms",
            "skip_dirs",
            "embed_cache_vectors",
            "k",
        ][..],
    );
    let value = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"ivf_pq\"".to_string()),
        Just("[\"a\", 1]".to_string()),
        Just("{ a = 1 }".to_string()),
        "\"[^\"\\\\]{0,12}\"".prop_map(|s| s),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    prop::collection::vec((section, key, value), 0..8).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(s, k, v)| format!("{s}\n{k} = {v}\n"))
            .collect()
    })
}

/// ACL-shaped TOML: groups, grants with repo and path globs, odd principals.
fn acl_like() -> impl Strategy<Value = String> {
    let name = "[a-z*\\-]{0,6}";
    let glob = "[a-z/*?\\[\\]{}!.]{0,10}";
    let group = (name, prop::collection::vec(name, 0..3));
    let grant = (
        prop::collection::vec(name, 0..3),
        glob,
        prop::collection::vec(glob, 0..3),
    );
    (
        prop::collection::vec(group, 0..3),
        prop::collection::vec(grant, 0..4),
    )
        .prop_map(|(groups, grants)| {
            let quote = |items: &[String]| {
                items
                    .iter()
                    .map(|i| format!("{i:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut text = String::from("[acl.groups]\n");
            for (name, members) in &groups {
                text.push_str(&format!("{name:?} = [{}]\n", quote(members)));
            }
            for (who, repo, paths) in &grants {
                text.push_str(&format!(
                    "[[acl.grant]]\nread = [{}]\nrepos = [{repo:?}]\npaths = [{}]\n",
                    quote(who),
                    quote(paths)
                ));
            }
            text
        })
}
