//! Which chunks a query may see: a set of repositories, each whole or restricted to path
//! globs. Both retrievers apply it before ranking (a LanceDB `WHERE` pre-filter and a
//! tantivy `MUST` clause), so a chunk outside it never enters scoring.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

use regex::Regex;

/// A path glob over repository-relative paths, compiled once to a regular expression that
/// LanceDB (`regexp_like`), tantivy (`RegexQuery`) and Rust all read the same way.
///
/// `*` matches within one path segment, `**` across segments, `?` one character; a glob
/// ending in `/` or without wildcards also covers everything below it (`docs` = `docs/**`).
#[derive(Debug, Clone)]
pub struct PathPattern {
    glob: String,
    body: String,
    matcher: Regex,
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body
    }
}

impl PathPattern {
    /// Compiles a glob; the error says which character is not supported.
    pub fn from_glob(glob: &str) -> Result<PathPattern, String> {
        let trimmed = glob.trim_start_matches("./").trim_start_matches('/');
        if trimmed.is_empty() {
            return Err(format!("path glob {glob:?} is empty"));
        }
        // Indexed paths are plain relative ones: a glob with a `..`, `.` or empty segment
        // could never match, and would grant nothing while looking as if it did.
        if trimmed
            .trim_end_matches('/')
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."))
        {
            return Err(format!(
                "path glob {glob:?} can never match: paths are relative to their repository, without `..`, `.` or empty segments"
            ));
        }
        let mut body = String::new();
        let chars: Vec<char> = trimmed.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    i += 1;
                    if chars.get(i + 1) == Some(&'/') {
                        i += 1;
                        body.push_str("(.*/)?");
                    } else {
                        body.push_str(".*");
                    }
                }
                '*' => body.push_str("[^/]*"),
                '?' => body.push_str("[^/]"),
                '.' => body.push_str("[.]"),
                '+' => body.push_str("[+]"),
                c if c.is_alphanumeric() || "_-/ @#%=,~:!".contains(c) => body.push(c),
                c => {
                    return Err(format!(
                        "path glob {glob:?}: the character {c:?} is not supported (use letters, digits, / . _ - and the wildcards *, ** and ?)"
                    ));
                }
            }
            i += 1;
        }
        if trimmed.ends_with('/') {
            body.push_str(".*");
        } else if !trimmed.contains(['*', '?']) {
            body.push_str("(/.*)?");
        }
        let matcher = Regex::new(&format!("^({body})$"))
            .map_err(|e| format!("path glob {glob:?} does not compile: {e}"))?;
        Ok(PathPattern {
            glob: glob.to_string(),
            body,
            matcher,
        })
    }

    /// The glob as written.
    pub fn glob(&self) -> &str {
        &self.glob
    }

    /// The regular expression without anchors (tantivy matches whole terms).
    pub(crate) fn regex_body(&self) -> &str {
        &self.body
    }

    /// True when `path` (repository-relative, `/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }
}

/// What a query may read of one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoScope {
    /// Repository id.
    pub repo: String,
    /// `None`: the whole repository; otherwise only paths matching one of these.
    pub paths: Option<Vec<PathPattern>>,
}

/// Restricts which chunks a query may see; applied inside both retrievers before ranking.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkFilter {
    /// `None`: everything; otherwise exactly these scopes (empty: nothing).
    scopes: Option<Vec<RepoScope>>,
    /// Per group of path globs (its combined regex): the index's paths that match, when a
    /// reader listed them (see [`ChunkFilter::with_listed_paths`]).
    listed_paths: BTreeMap<String, Vec<String>>,
    /// Chunks each path-restricted repository admits in the index the filter was
    /// prepared for (see [`ChunkFilter::with_restricted_chunks`]).
    restricted_chunks: BTreeMap<String, usize>,
}

impl ChunkFilter {
    /// Admits every chunk.
    pub fn everything() -> ChunkFilter {
        ChunkFilter::default()
    }

    /// Admits exactly these scopes (an empty list admits nothing).
    pub fn scoped(scopes: Vec<RepoScope>) -> ChunkFilter {
        ChunkFilter {
            scopes: Some(scopes),
            ..ChunkFilter::default()
        }
    }

    /// The same filter with the paths of `all_paths` (every path an index holds) that each
    /// group of globs admits, when a group admits at most `max` of them: LanceDB then reads
    /// `path IN (…)` from its index instead of matching a regex against every row.
    pub fn with_listed_paths(&self, all_paths: &BTreeSet<String>, max: usize) -> ChunkFilter {
        let mut listed = BTreeMap::new();
        for (regex, _) in self.groups().map(|g| g.by_paths).unwrap_or_default() {
            let Ok(matcher) = Regex::new(&format!("^({regex})$")) else {
                continue;
            };
            let paths: Vec<String> = all_paths
                .iter()
                .filter(|p| matcher.is_match(p))
                .take(max + 1)
                .cloned()
                .collect();
            if paths.len() <= max {
                listed.insert(regex, paths);
            }
        }
        ChunkFilter {
            listed_paths: listed,
            ..self.clone()
        }
    }

    /// The same filter knowing how many chunks each path-restricted repository admits
    /// (counted by a reader of the index it is for).
    pub fn with_restricted_chunks(&self, counts: BTreeMap<String, usize>) -> ChunkFilter {
        ChunkFilter {
            restricted_chunks: counts,
            ..self.clone()
        }
    }

    /// Chunks the filter admits, given the chunks of each whole repository; `None` when
    /// unrestricted or when a path-restricted repository's count is not known.
    pub(crate) fn admitted_chunks(&self, repo_chunks: impl Fn(&str) -> usize) -> Option<usize> {
        self.scopes.as_ref()?.iter().try_fold(0usize, |sum, scope| {
            let chunks = match scope.paths {
                None => repo_chunks(&scope.repo),
                Some(_) => *self.restricted_chunks.get(&scope.repo)?,
            };
            Some(sum + chunks)
        })
    }

    /// Admits these whole repositories.
    pub fn repos(repos: &[String]) -> ChunkFilter {
        ChunkFilter::scoped(
            repos
                .iter()
                .map(|repo| RepoScope {
                    repo: repo.clone(),
                    paths: None,
                })
                .collect(),
        )
    }

    /// True when nothing is restricted.
    pub fn is_unrestricted(&self) -> bool {
        self.scopes.is_none()
    }

    /// True when the filter admits nothing, so no query needs to run.
    pub fn is_empty_set(&self) -> bool {
        self.scopes.as_ref().is_some_and(Vec::is_empty)
    }

    /// The scopes, or `None` when unrestricted.
    pub fn scopes(&self) -> Option<&[RepoScope]> {
        self.scopes.as_deref()
    }

    /// True when a chunk of `repo` at `path` may be seen.
    pub fn admits(&self, repo: &str, path: &str) -> bool {
        match &self.scopes {
            None => true,
            Some(scopes) => scopes.iter().any(|s| {
                s.repo == repo
                    && s.paths
                        .as_ref()
                        .is_none_or(|globs| globs.iter().any(|g| g.matches(path)))
            }),
        }
    }

    /// True when some chunk of `repo` may be seen.
    pub fn admits_repo(&self, repo: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|scopes| scopes.iter().any(|s| s.repo == repo))
    }

    /// Only the path-restricted part of this filter (empty when there is none).
    pub fn path_restricted(&self) -> ChunkFilter {
        self.with_scopes(
            self.scopes
                .iter()
                .flatten()
                .filter(|s| s.paths.is_some())
                .cloned()
                .collect(),
        )
    }

    /// Other scopes, the same listed paths and counts (a group's paths depend only on its
    /// globs, a repository's count only on its own scope).
    fn with_scopes(&self, scopes: Vec<RepoScope>) -> ChunkFilter {
        ChunkFilter {
            scopes: Some(scopes),
            listed_paths: self.listed_paths.clone(),
            restricted_chunks: self.restricted_chunks.clone(),
        }
    }

    /// This filter without the path-restricted repositories `keep` rejects.
    pub fn retain_path_restricted(&self, keep: impl Fn(&str) -> bool) -> ChunkFilter {
        match &self.scopes {
            None => ChunkFilter::everything(),
            Some(scopes) => self.with_scopes(
                scopes
                    .iter()
                    .filter(|s| s.paths.is_none() || keep(&s.repo))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// This filter further limited to the named repositories (never widened).
    pub fn narrowed_to(&self, repos: &[String]) -> ChunkFilter {
        match &self.scopes {
            None => ChunkFilter::repos(repos),
            Some(scopes) => self.with_scopes(
                scopes
                    .iter()
                    .filter(|s| repos.contains(&s.repo))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// The scopes as the engines query them: whole repositories together, and
    /// path-restricted repositories grouped by identical globs, each group with one
    /// combined regular expression. `None` when unrestricted.
    pub(crate) fn groups(&self) -> Option<ScopeGroups<'_>> {
        let scopes = self.scopes.as_ref()?;
        let mut groups = ScopeGroups::default();
        let mut by_paths: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for scope in scopes {
            match &scope.paths {
                None => groups.whole.push(&scope.repo),
                Some(globs) => {
                    let alternatives: Vec<String> = globs
                        .iter()
                        .map(|g| format!("({})", g.regex_body()))
                        .collect();
                    by_paths
                        .entry(alternatives.join("|"))
                        .or_default()
                        .push(&scope.repo);
                }
            }
        }
        groups.by_paths = by_paths.into_iter().collect();
        Some(groups)
    }

    /// The index's paths a group of path globs (its combined regex) admits, when the
    /// filter was prepared with them (see [`ChunkFilter::with_listed_paths`]).
    pub(crate) fn listed_paths(&self, regex: &str) -> Option<&[String]> {
        self.listed_paths.get(regex).map(Vec::as_slice)
    }

    /// SQL predicate for LanceDB, or `None` when unrestricted.
    pub(crate) fn to_sql(&self) -> Option<String> {
        let groups = self.groups()?;
        let in_list = |repos: &[&str]| format!("repo IN ({})", sql_string_list(repos));
        let mut clauses = Vec::new();
        if !groups.whole.is_empty() {
            clauses.push(in_list(&groups.whole));
        }
        for (regex, repos) in &groups.by_paths {
            match self.listed_paths(regex) {
                // No path of the index matches: the group admits nothing.
                Some([]) => {}
                Some(paths) => clauses.push(format!(
                    "({} AND path IN ({}))",
                    in_list(repos),
                    sql_string_list(paths)
                )),
                None => clauses.push(format!(
                    "({} AND regexp_like(path, '^({regex})$'))",
                    in_list(repos)
                )),
            }
        }
        if clauses.is_empty() {
            // Never reached by queries (an empty set short-circuits), but stays closed.
            return Some("repo IS NULL AND repo IS NOT NULL".into());
        }
        Some(clauses.join(" OR "))
    }

    /// A text key, distinct for distinct filters, for caching statistics per filter.
    pub(crate) fn cache_key(&self) -> String {
        let scopes = self.scopes.as_ref().map(|scopes| {
            scopes
                .iter()
                .map(|s| {
                    let bodies = s.paths.as_ref().map(|globs| {
                        globs
                            .iter()
                            .map(PathPattern::regex_body)
                            .collect::<Vec<_>>()
                    });
                    (s.repo.as_str(), bodies)
                })
                .collect::<Vec<_>>()
        });
        // Debug output quotes and escapes every string, so no two filters share a key.
        format!("{scopes:?}")
    }
}

/// A filter's scopes grouped for querying (see [`ChunkFilter::groups`]).
#[derive(Debug, Default)]
pub(crate) struct ScopeGroups<'a> {
    /// Repositories readable whole.
    pub whole: Vec<&'a str>,
    /// (combined path regex without anchors, repositories it applies to).
    pub by_paths: Vec<(String, Vec<&'a str>)>,
}

/// `'a', 'b''c'`: SQL string literals with quotes doubled.
pub(crate) fn sql_string_list(values: &[impl AsRef<str>]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.as_ref().replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values a reader computes once per access filter (BM25 statistics, the admitted rows of
/// the vector table) and keeps for the next query. A process serves one principal, or a
/// handful in `codeq eval` and the access tests, so a few entries suffice; past that the
/// cache starts over.
pub(super) struct PerFilterCache<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K: Eq + Hash, V: Clone> PerFilterCache<K, V> {
    /// Entries kept before the cache starts over.
    const CAPACITY: usize = 8;

    /// The value kept for `key`, if any.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Keeps `value` for `key`.
    pub(super) fn insert(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(key, value);
        }
    }
}

impl<K, V> Default for PerFilterCache<K, V> {
    fn default() -> Self {
        PerFilterCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(g: &str) -> PathPattern {
        PathPattern::from_glob(g).unwrap()
    }

    #[test]
    fn globs_match_like_gitignore_paths() {
        let docs = glob("docs/**");
        assert!(docs.matches("docs/a.md") && docs.matches("docs/x/y.md"));
        assert!(
            !docs.matches("docs") && !docs.matches("src/docs/a.md") && !docs.matches("docsx/a")
        );
        let plain = glob("docs");
        assert!(plain.matches("docs") && plain.matches("docs/a.md") && !plain.matches("docs2/a"));
        let star = glob("src/*.rs");
        assert!(star.matches("src/lib.rs") && !star.matches("src/a/lib.rs"));
        assert!(!star.matches("src/librs"), "the dot is literal");
        let any_depth = glob("**/test_*.py");
        assert!(any_depth.matches("test_a.py") && any_depth.matches("a/b/test_c.py"));
        assert!(glob("api/").matches("api/v1/x.py"));
    }

    #[test]
    fn unsupported_glob_syntax_is_refused() {
        for bad in [
            "src/[ab].rs",
            "{a,b}",
            "a\\b",
            "a|b",
            "x'y",
            "(a)",
            "a$",
            "",
        ] {
            assert!(PathPattern::from_glob(bad).is_err(), "{bad}");
        }
    }

    /// Repository `a` whole, and `docs/**` of repository `b`.
    fn a_whole_and_docs_of_b() -> ChunkFilter {
        ChunkFilter::scoped(vec![
            RepoScope {
                repo: "a".into(),
                paths: None,
            },
            RepoScope {
                repo: "b".into(),
                paths: Some(vec![glob("docs/**")]),
            },
        ])
    }

    #[test]
    fn filters_narrow_and_admit() {
        let f = a_whole_and_docs_of_b();
        assert!(f.admits("a", "src/x.rs") && f.admits("b", "docs/x.md"));
        assert!(!f.admits("b", "src/x.rs") && !f.admits("c", "docs/x.md"));
        let narrowed = f.narrowed_to(&["b".into(), "c".into()]);
        assert!(!narrowed.admits("a", "x") && !narrowed.admits("c", "docs/x.md"));
        assert!(narrowed.admits("b", "docs/x.md"));
        assert!(ChunkFilter::everything().narrowed_to(&[]).is_empty_set());
        assert_eq!(
            f.to_sql().unwrap(),
            "repo IN ('a') OR (repo IN ('b') AND regexp_like(path, '^((docs/.*))$'))"
        );
        let paths: BTreeSet<String> = ["docs/a.md", "docs/x/b.md", "src/lib.rs", "docsx"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            f.with_listed_paths(&paths, 10).to_sql().unwrap(),
            "repo IN ('a') OR (repo IN ('b') AND path IN ('docs/a.md', 'docs/x/b.md'))"
        );
        assert_eq!(
            f.with_listed_paths(&paths, 1),
            f,
            "too many paths: keep the regex"
        );
        let none: BTreeSet<String> = ["src/lib.rs".to_string()].into();
        assert_eq!(
            f.with_listed_paths(&none, 10).to_sql().unwrap(),
            "repo IN ('a')"
        );
    }

    #[test]
    fn admitted_chunks_need_the_counts_of_path_restricted_repositories() {
        let f = a_whole_and_docs_of_b();
        let whole = |repo: &str| if repo == "a" { 70 } else { 30 };
        assert_eq!(f.admitted_chunks(whole), None, "b's share is not known");
        let counted = f.with_restricted_chunks([("b".to_string(), 4)].into());
        assert_eq!(counted.admitted_chunks(whole), Some(74));
        let narrowed = counted.narrowed_to(&["b".into()]);
        assert_eq!(
            narrowed.admitted_chunks(whole),
            Some(4),
            "counts survive narrowing"
        );
        assert_eq!(ChunkFilter::everything().admitted_chunks(whole), None);
    }
}
