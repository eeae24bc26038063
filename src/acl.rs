//! Access control: principals, groups and grants (repository globs, optional path globs),
//! default deny, compiled into the [`ChunkFilter`] that both retrievers apply before
//! ranking.
//!
//! ```toml
//! [acl.groups]
//! payments = ["alice", "bob"]
//!
//! [[acl.grant]]
//! repos = ["payments-*"]     # globs over repository ids; * and ? match any character
//! read  = ["group:payments"] # user names, group:NAME, or * for everyone
//!
//! [[acl.grant]]
//! repos = ["*"]
//! paths = ["docs/**"]        # optional: only these paths (* within a segment, ** across)
//! read  = ["*"]
//! ```
//!
//! Every mistake is an error that names its line, and no query runs with a broken ACL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::error::Result;
use crate::store::{ChunkFilter, PathPattern, RepoScope};

/// The `[acl]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSection {
    /// Group name → member user names.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<Spanned<String>>>,
    /// Grants, in file order.
    #[serde(default, rename = "grant")]
    pub grants: Vec<GrantSection>,
}

/// One `[[acl.grant]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSection {
    /// Repository id globs.
    pub repos: Spanned<Vec<Spanned<String>>>,
    /// Optional path globs inside those repositories.
    #[serde(default)]
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    /// Who may read: user names, `group:NAME`, or `*`.
    pub read: Spanned<Vec<Spanned<String>>>,
}

/// A file given with `--acl`: only an `[acl]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    acl: Option<AclSection>,
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq)]
enum Reader {
    Anyone,
    User(String),
    Group(String),
}

#[derive(Debug, Clone)]
struct Grant {
    repos: Vec<Regex>,
    paths: Option<Vec<PathPattern>>,
    readers: Vec<Reader>,
}

/// A validated access-control list.
#[derive(Debug, Clone)]
pub struct Acl {
    source: PathBuf,
    groups: BTreeMap<String, Vec<String>>,
    grants: Vec<Grant>,
}

/// Whether queries are scoped, and for whom.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AccessMode {
    /// No ACL is configured: one user sees everything.
    SingleUser,
    /// An ACL applies to this principal.
    Acl {
        /// The principal queries run as.
        principal: String,
        /// The file the ACL came from.
        source: PathBuf,
    },
}

/// What one principal may read of one index: the mode and the compiled filter. Built only
/// inside the crate (the session module hands them out), so a filter no ACL compiled never
/// reaches a query.
#[derive(Debug, Clone)]
pub struct Access {
    mode: AccessMode,
    filter: ChunkFilter,
}

impl Access {
    /// The principal under an ACL; `None` in single-user mode.
    pub fn principal(&self) -> Option<&str> {
        match &self.mode {
            AccessMode::SingleUser => None,
            AccessMode::Acl { principal, .. } => Some(principal),
        }
    }

    /// Single-user or ACL, and for whom.
    pub fn mode(&self) -> &AccessMode {
        &self.mode
    }

    /// The chunks the principal may see.
    pub fn filter(&self) -> &ChunkFilter {
        &self.filter
    }

    /// Single-user mode: everything is visible.
    pub(crate) fn single_user() -> Access {
        Access {
            mode: AccessMode::SingleUser,
            filter: ChunkFilter::everything(),
        }
    }

    /// The same access with its filter prepared for an index.
    pub(crate) fn with_filter(self, filter: ChunkFilter) -> Access {
        Access { filter, ..self }
    }

    /// True when the principal sees every chunk of the index.
    pub fn sees_everything(&self) -> bool {
        self.filter.is_unrestricted()
    }
}

impl Acl {
    /// Loads a file given with `--acl` (its `[acl]` section).
    pub fn load(path: &Path) -> Result<Acl> {
        crate::tomlfile::parse_file(path, "the ACL file ", |text| Acl::parse_section(text, path))
    }

    /// Number of groups defined.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of grants.
    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    /// Parses ACL text holding `[acl.groups]` / `[[acl.grant]]` tables (a whole ACL file)
    /// that came from `source`; errors name the line.
    pub fn parse_section(text: &str, source: &Path) -> Result<Acl, String> {
        let file: AclFile =
            toml::from_str(text).map_err(|e| crate::tomlfile::describe_toml_error(text, &e))?;
        let section = file.acl.ok_or_else(|| {
            "no [acl] section: an ACL file holds [acl.groups] and [[acl.grant]] tables".to_string()
        })?;
        Acl::compile(&section, text, source)
    }

    /// Validates a parsed `[acl]` section; errors name the line in `text`.
    pub fn compile(section: &AclSection, text: &str, source: &Path) -> Result<Acl, String> {
        let line = |span: std::ops::Range<usize>| crate::tomlfile::line_of(text, span.start);
        let mut groups = BTreeMap::new();
        for (name, members) in &section.groups {
            if !is_name(name) {
                return Err(format!("acl.groups: {name:?} is not a valid group name"));
            }
            let mut users = Vec::new();
            for member in members {
                let user = member.get_ref();
                if !is_name(user) {
                    return Err(format!(
                        "line {}: group {name:?} lists {user:?}, which is not a user name (groups hold user names only)",
                        line(member.span())
                    ));
                }
                users.push(user.clone());
            }
            groups.insert(name.clone(), users);
        }
        let mut grants = Vec::new();
        for grant in &section.grants {
            let at = line(grant.repos.span());
            if grant.repos.get_ref().is_empty() {
                return Err(format!("line {at}: a grant names no repos"));
            }
            let repos = grant
                .repos
                .get_ref()
                .iter()
                .map(|g| {
                    repo_glob(g.get_ref()).map_err(|e| format!("line {}: {e}", line(g.span())))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let paths = match &grant.paths {
                None => None,
                Some(list) if list.get_ref().is_empty() => {
                    return Err(format!(
                        "line {}: `paths = []` grants nothing; remove it to grant whole repositories",
                        line(list.span())
                    ));
                }
                Some(list) => Some(
                    list.get_ref()
                        .iter()
                        .map(|g| {
                            PathPattern::from_glob(g.get_ref())
                                .map_err(|e| format!("line {}: {e}", line(g.span())))
                        })
                        .collect::<Result<Vec<_>, String>>()?,
                ),
            };
            if grant.read.get_ref().is_empty() {
                return Err(format!(
                    "line {}: a grant with `read = []` grants nothing",
                    line(grant.read.span())
                ));
            }
            let mut readers = Vec::new();
            for who in grant.read.get_ref() {
                let at = line(who.span());
                let reader = match who.get_ref().as_str() {
                    "*" => Reader::Anyone,
                    w => match w.strip_prefix("group:") {
                        Some(group) if groups.contains_key(group) => Reader::Group(group.into()),
                        Some(group) => {
                            return Err(format!(
                                "line {at}: group {group:?} is not defined in [acl.groups]"
                            ));
                        }
                        None if is_name(w) => Reader::User(w.into()),
                        None => {
                            return Err(format!(
                                "line {at}: {w:?} is not a reader (write a user name, group:NAME or *)"
                            ));
                        }
                    },
                };
                readers.push(reader);
            }
            grants.push(Grant {
                repos,
                paths,
                readers,
            });
        }
        Ok(Acl {
            source: source.to_path_buf(),
            groups,
            grants,
        })
    }

    fn applies_to(&self, reader: &Reader, principal: &str) -> bool {
        match reader {
            Reader::Anyone => true,
            Reader::User(user) => user == principal,
            Reader::Group(group) => self
                .groups
                .get(group)
                .is_some_and(|members| members.iter().any(|m| m == principal)),
        }
    }

    /// The filter `principal`'s grants compile to over `repos` (the index's repository
    /// ids), for tools and tests that inspect it; queries get theirs through a session.
    pub fn filter_for(&self, principal: &str, repos: &[String]) -> ChunkFilter {
        self.access_for(principal, repos).filter
    }

    /// What `principal` may read among `repos` (the index's repository ids). What no
    /// grant allows is denied; a principal who may read everything gets no filter at all.
    pub(crate) fn access_for(&self, principal: &str, repos: &[String]) -> Access {
        // Which grants are the principal's does not depend on the repository.
        let mine: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.readers.iter().any(|r| self.applies_to(r, principal)))
            .collect();
        let mut scopes = Vec::new();
        for repo in repos {
            let mut whole = false;
            let mut paths: Vec<PathPattern> = Vec::new();
            for grant in &mine {
                if !grant.repos.iter().any(|g| g.is_match(repo)) {
                    continue;
                }
                match &grant.paths {
                    None => whole = true,
                    Some(globs) => paths.extend(globs.iter().cloned()),
                }
            }
            if whole {
                scopes.push(RepoScope {
                    repo: repo.clone(),
                    paths: None,
                });
            } else if !paths.is_empty() {
                scopes.push(RepoScope {
                    repo: repo.clone(),
                    paths: Some(paths),
                });
            }
        }
        let everything = scopes.len() == repos.len() && scopes.iter().all(|s| s.paths.is_none());
        Access {
            mode: AccessMode::Acl {
                principal: principal.to_string(),
                source: self.source.clone(),
            },
            filter: if everything {
                ChunkFilter::everything()
            } else {
                ChunkFilter::scoped(scopes)
            },
        }
    }
}

/// User and group names: letters, digits, `.`, `_`, `-`, `@`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || ".-_@".contains(c))
}

/// A repository-id glob: `*` matches any run of characters (ids may contain `/`), `?` one.
fn repo_glob(glob: &str) -> Result<Regex, String> {
    if glob.is_empty() {
        return Err("a repo glob is empty".into());
    }
    let mut pattern = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => pattern.push_str(".*"),
            '?' => pattern.push('.'),
            c => pattern.push_str(&regex::escape(&c.to_string())),
        }
    }
    pattern.push('$');
    Regex::new(&pattern).map_err(|e| format!("repo glob {glob:?} does not compile: {e}"))
}

/// The principal queries run as: `--as` (or `CODEQ_USER`, which clap folds into it), else
/// the operating-system user.
pub fn principal(explicit: Option<&str>) -> String {
    if let Some(p) = explicit.filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    for var in ["USER", "LOGNAME"] {
        if let Ok(user) = std::env::var(var)
            && !user.is_empty()
        {
            return user;
        }
    }
    os_user_name().unwrap_or_else(|| format!("uid-{}", current_uid()))
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn os_user_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both owned here and sized as passed.
    let rc = unsafe {
        libc::getpwuid_r(
            current_uid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Acl, String> {
        Acl::parse_section(text, Path::new("acl.toml"))
    }

    const ACL: &str = r#"
[acl.groups]
payments = ["alice", "bob"]

[[acl.grant]]
repos = ["payments*"]
read = ["group:payments"]

[[acl.grant]]
repos = ["*"]
paths = ["docs/**"]
read = ["*"]

[[acl.grant]]
repos = ["search-service"]
read = ["carol"]
"#;

    fn repos() -> Vec<String> {
        [
            "payments",
            "payments/plugins/fraud",
            "search-service",
            "corpus",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn grants_compile_to_scopes_and_deny_by_default() {
        let acl = parse(ACL).unwrap();
        let alice = acl.access_for("alice", &repos()).filter;
        assert!(alice.admits("payments", "src/lib.rs"));
        assert!(alice.admits("payments/plugins/fraud", "fraud/scoring.py"));
        assert!(!alice.admits("search-service", "service/query.py"));
        assert!(
            alice.admits("search-service", "docs/x.md"),
            "docs are for everyone"
        );
        let carol = acl.access_for("carol", &repos()).filter;
        assert!(carol.admits("search-service", "service/query.py"));
        assert!(!carol.admits("payments", "src/lib.rs"));
        let mallory = acl.access_for("mallory", &repos()).filter;
        assert!(!mallory.admits("payments", "src/lib.rs"));
        assert!(!mallory.admits("corpus", "notes/todo.md"));
        assert!(mallory.admits("corpus", "docs/readme.md"));
        // Names that look like patterns are only names.
        for odd in ["*", "group:payments", "payments*"] {
            let filter = acl.access_for(odd, &repos()).filter;
            assert!(!filter.admits("payments", "src/lib.rs"), "{odd}");
            assert!(
                filter.admits("corpus", "docs/x.md"),
                "{odd} is still anyone"
            );
        }
        // Somebody granted every repository whole gets no filter at all.
        let all = parse("[[acl.grant]]\nrepos = [\"*\"]\nread = [\"root\"]\n").unwrap();
        assert!(all.access_for("root", &repos()).sees_everything());
        assert!(all.access_for("rooted", &repos()).filter.is_empty_set());
    }

    #[test]
    fn mistakes_name_their_line() {
        let cases = [
            (
                "[[acl.grant]]\nrepos = [\"a\"]\nread = [\"group:nobody\"]\n",
                "line 3",
            ),
            (
                "[[acl.grant]]\nrepos = [\"a\"]\npaths = [\"src/[ab]\"]\nread = [\"*\"]\n",
                "line 3",
            ),
            ("[[acl.grant]]\nrepos = [\"a\"]\nreed = [\"*\"]\n", "reed"),
            ("[[acl.grant]]\nrepos = []\nread = [\"*\"]\n", "line 2"),
            ("[[acl.grant]]\nrepos = [\"a\"]\nread = []\n", "line 3"),
            (
                "[[acl.grant]]\nrepos = [\"a\"]\npaths = []\nread = [\"x\"]\n",
                "line 3",
            ),
            ("[acl.groups]\nops = [\"group:x\"]\n", "line 2"),
            (
                "[[acl.grant]]\nrepos = [\"a\"]\nread = [\"al ice\"]\n",
                "line 3",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn the_principal_comes_from_the_flag_first() {
        assert_eq!(principal(Some("alice")), "alice");
        assert!(!principal(None).is_empty());
    }
}
