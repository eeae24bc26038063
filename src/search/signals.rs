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

/// The symbols a chunk defines: every symbol a merged piece lists (`Class, Class.method`),
/// none for windows and module code, and not the type an `impl` block is for (its own
/// definition defines it).
pub(super) fn defined_symbols(chunk: &Chunk) -> impl Iterator<Item = &str> {
    let defines = !matches!(chunk.kind.as_str(), "window" | "module");
    chunk
        .symbol
        .split(", ")
        .skip(usize::from(chunk.kind == "impl"))
        .filter(move |_| defines)
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

/// Examples, demos and documentation sources kept beside the code.
pub(super) fn is_example_or_docs(path: &str) -> bool {
    in_folder(path, |dir| {
        matches!(
            dir,
            "examples"
                | "example"
                | "samples"
                | "sample"
                | "demo"
                | "demos"
                | "docs"
                | "doc"
                | "docs_src"
                | "website"
                | "tutorial"
        )
    })
}

/// A prose document (Markdown, reStructuredText, plain text): a language the registry cuts
/// into heading-aware windows.
pub(super) fn is_prose(chunk: &Chunk) -> bool {
    languages::by_name(&chunk.language).is_some_and(|spec| spec.heading_windows)
}

/// Code kept for old versions: legacy, deprecated or compatibility folders.
pub(super) fn is_legacy(path: &str) -> bool {
    in_folder(path, |dir| {
        matches!(
            dir,
            "legacy" | "deprecated" | "compat" | "_compat" | "backports" | "old" | "attic"
        )
    })
}

/// A package's index file (`__init__.py`, `mod.rs`, `index.ts`) outside any definition:
/// mostly imports and re-exports of what its siblings define.
pub(super) fn is_reexport_module(chunk: &Chunk) -> bool {
    is_package_index(&chunk.path) && !is_definition(&chunk.kind)
}

/// A package's index file: `__init__.py`, `mod.rs`, `index.ts` and its JavaScript kin.
/// The package is named by its folder, not by the file.
pub(super) fn is_package_index(path: &str) -> bool {
    let name = file_name(path);
    name == "__init__.py"
        || name == "mod.rs"
        || matches!(
            name.split_once('.'),
            Some(("index", "ts" | "js" | "mjs" | "tsx" | "jsx"))
        )
}

/// Whether any folder of `path` (not its file name) satisfies `test`.
fn in_folder(path: &str, test: impl Fn(&str) -> bool) -> bool {
    path.split('/').rev().skip(1).any(test)
}

/// Folders named for a version (`v1`, `v2`, …) among the candidates of a query, so that
/// an older copy kept beside a newer one (`pkg/v1/` next to `pkg/v2/`) can rank below it.
#[derive(Debug, Default)]
pub(super) struct VersionFolders {
    /// (repository, path before the folder) → the highest version seen there.
    newest: HashMap<(String, String), u32>,
}

impl VersionFolders {
    /// The version folders of these (repository, path) pairs.
    pub(super) fn of<'a>(paths: impl Iterator<Item = (&'a str, &'a str)>) -> VersionFolders {
        let mut folders = VersionFolders::default();
        for (repo, path) in paths {
            for (prefix, version) in version_folders(path) {
                let newest = folders
                    .newest
                    .entry((repo.to_string(), prefix.to_string()))
                    .or_insert(version);
                *newest = (*newest).max(version);
            }
        }
        folders
    }

    /// Whether `path` lies in a version folder with a newer sibling among the candidates.
    pub(super) fn superseded(&self, repo: &str, path: &str) -> bool {
        version_folders(path).any(|(prefix, version)| {
            self.newest
                .get(&(repo.to_string(), prefix.to_string()))
                .is_some_and(|&newest| newest > version)
        })
    }
}

/// Each folder of `path` named `v<N>`, with the path before it.
fn version_folders(path: &str) -> impl Iterator<Item = (&str, u32)> {
    let folders = path.rsplit_once('/').map_or("", |(dirs, _)| dirs);
    folders.split('/').enumerate().filter_map(move |(i, dir)| {
        let version = dir.strip_prefix('v')?.parse::<u32>().ok()?;
        let prefix_len = folders
            .split('/')
            .take(i)
            .map(|d| d.len() + 1)
            .sum::<usize>();
        Some((&folders[..prefix_len], version))
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
