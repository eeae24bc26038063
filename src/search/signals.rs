//! What a chunk says about itself to the ranker: definition or not, file name, test or
//! vendored code, and how early it deserves a vector.

use super::*;
use crate::chunk::languages;

/// `Type::method` → `method`, `pkg.mod.func` → `func`.
pub(super) fn last_segment(symbol: &str) -> &str {
    symbol
        .rsplit("::")
        .next()
        .unwrap_or(symbol)
        .rsplit('.')
        .next()
        .unwrap_or(symbol)
}

/// Chunk kinds that define a named symbol.
pub(super) fn is_definition(kind: &str) -> bool {
    !matches!(kind, "window" | "module" | "group" | "impl")
}

/// File names too common to say anything about the query.
pub(super) const GENERIC_STEMS: &[&str] = &[
    "__init__", "main", "index", "utils", "util", "common", "types",
];

pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(super) fn file_stem(path: &str) -> &str {
    let name = file_name(path);
    name.split('.').next().unwrap_or(name)
}

/// Tests, fixtures and benchmarks: by folder, by the file-name conventions of the chunk's
/// language (from the language registry), or by a `tests` module in its symbol.
pub(super) fn is_test_code(chunk: &Chunk) -> bool {
    let path = chunk.path.as_str();
    let in_test_dir = path.split('/').rev().skip(1).any(|dir| {
        matches!(
            dir,
            "test" | "tests" | "testing" | "__tests__" | "spec" | "fixtures" | "benches"
        )
    });
    let name = file_name(path);
    let test_file = languages::by_name(&chunk.language).is_some_and(|spec| {
        spec.files.test_prefixes.iter().any(|p| name.starts_with(p))
            || spec.files.test_suffixes.iter().any(|s| name.ends_with(s))
    });
    let test_module = chunk
        .symbol
        .split("::")
        .any(|segment| segment == "tests" || segment == "test");
    in_test_dir || test_file || test_module
}

/// Vendored or generated code that the walker still indexed: by folder, or by the
/// generated-file suffixes of any registered language.
pub(super) fn is_vendored(path: &str) -> bool {
    let name = file_name(path);
    path.split('/').rev().skip(1).any(|dir| {
        matches!(
            dir,
            "vendor" | "vendored" | "third_party" | "generated" | "_vendor"
        )
    }) || name.contains(".generated.")
        || languages::LANGUAGES.iter().any(|spec| {
            spec.files
                .generated_suffixes
                .iter()
                .any(|s| name.ends_with(s))
        })
}

/// How soon a chunk's vector is worth computing when embedding runs behind the lexical
/// index, lowest first: definitions in source, other source, documentation, tests, then
/// vendored code and data files — the order in which queries tend to want them.
pub fn embedding_priority(chunk: &Chunk) -> u32 {
    let data = matches!(chunk.language.as_str(), "json" | "yaml" | "toml" | "text");
    if is_vendored(&chunk.path) || data {
        4
    } else if is_test_code(chunk) {
        3
    } else if chunk.language == "markdown" {
        2
    } else if chunk.kind == "window" || chunk.kind == "module" {
        1
    } else {
        0
    }
}
