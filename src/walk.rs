//! Finds the git repositories under a root and lists their indexable files, with skip reasons.
//!
//! Every git repository found (at any depth) is its own repo, identified by its path
//! relative to the root (the root's own repository by the root folder's name); files that
//! belong to no repository belong to the pseudo-repo [`LOOSE_FILES_REPO`], an id no
//! relative path can take. Nested repositories and submodules are listed once, as their
//! own repos, never inside their parent.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The repository id of files outside any git repository: `.`, the root itself. No
/// repository's relative path can be `.`, so the id never collides with a real one.
pub const LOOSE_FILES_REPO: &str = ".";

/// What the walker lists and what it skips (from `[index]`).
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Files larger than this many bytes are skipped and counted.
    pub max_file_bytes: u64,
    /// Folder names never descended into (generated or vendored code).
    pub skip_dirs: Vec<String>,
    /// File-name globs that are skipped as generated (lock files, minified bundles).
    pub skip_files: Vec<String>,
}

/// Why a file was not indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Contains NUL bytes.
    Binary,
    /// Larger than `index.max_file_bytes`.
    TooLarge,
    /// Inside a generated or vendored folder, or a generated file name (lock files, bundles).
    Generated,
    /// A symbolic link (never followed: links can loop or leave the root).
    Symlink,
    /// Could not be read.
    Unreadable,
    /// The chunker failed on it (a bug or a grammar's limit); the rest of the run goes on.
    Unchunkable,
}

impl SkipReason {
    /// Human label used in summaries.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::Binary => "binary",
            SkipReason::TooLarge => "too large",
            SkipReason::Generated => "generated/vendored",
            SkipReason::Symlink => "symlink",
            SkipReason::Unreadable => "unreadable",
            SkipReason::Unchunkable => "could not be chunked",
        }
    }
}

/// Git facts about one repository.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    /// The commit HEAD points at; `None` for a repository without commits.
    pub head: Option<String>,
    /// The checked-out branch; `None` when HEAD is detached.
    pub branch: Option<String>,
    /// URL of `origin` (or the first remote).
    pub remote_url: Option<String>,
    /// Tracked files differ from HEAD (staged or not).
    pub dirty: bool,
    /// Top-level entries git ignores (an ignored folder counts once).
    pub ignored_entries: usize,
}

/// One repository found under the root.
#[derive(Debug, Clone)]
pub struct Repo {
    /// Stable id: the path relative to the root, the root folder's name for the root itself,
    /// or [`LOOSE_FILES_REPO`].
    pub id: String,
    /// Path relative to the root (empty for the root itself).
    pub rel_path: String,
    /// Absolute path.
    pub abs_path: PathBuf,
    /// Git facts; `None` for the pseudo-repo of files outside any repository.
    pub git: Option<GitState>,
}

/// A file to index.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Index into [`Scan::repos`].
    pub repo: usize,
    /// Path relative to its repository, with `/` separators.
    pub rel_path: String,
    /// Absolute path.
    pub abs_path: PathBuf,
    /// Size, modification time and inode when listed.
    pub stamp: FileStamp,
}

/// Size, modification time and inode: when all three are unchanged (and the time is not
/// too close to when it was read, see [`FileTable::trusts`]) the bytes are assumed
/// unchanged, as git assumes for its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileStamp {
    /// Bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number (a file replaced by another one with the same size and time).
    pub inode: u64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            inode: meta.ino(),
        }
    }
}

/// Counts of skipped files by reason, with a few example paths each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SkipCounts {
    /// Count per reason.
    pub counts: BTreeMap<SkipReason, usize>,
    /// Up to three example paths (relative to the root) per reason.
    pub examples: BTreeMap<SkipReason, Vec<String>>,
}

impl SkipCounts {
    /// Records one skipped path.
    pub fn add(&mut self, reason: SkipReason, path: String) {
        *self.counts.entry(reason).or_default() += 1;
        let examples = self.examples.entry(reason).or_default();
        if examples.len() < 3 {
            examples.push(path);
        }
    }

    /// Total skipped files.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Adds another set of counts into this one.
    pub fn merge(&mut self, other: SkipCounts) {
        for (reason, n) in other.counts {
            *self.counts.entry(reason).or_default() += n;
        }
        for (reason, paths) in other.examples {
            let examples = self.examples.entry(reason).or_default();
            for p in paths {
                if examples.len() < 3 {
                    examples.push(p);
                }
            }
        }
    }
}

/// The result of walking a root: repositories, files to index, and what was skipped.
#[derive(Debug)]
pub struct Scan {
    /// Absolute, canonical root.
    pub root: PathBuf,
    /// Repositories, in walk order.
    pub repos: Vec<Repo>,
    /// Files to read and chunk, in walk order.
    pub files: Vec<FileEntry>,
    /// Files skipped while listing (more are skipped when read: binary, unreadable).
    pub skipped: SkipCounts,
}

impl Scan {
    /// Keeps only the repositories `keep` accepts, and their files.
    pub fn retain_repos(&mut self, keep: impl Fn(&Repo) -> bool) {
        let mut renumbered = vec![None; self.repos.len()];
        let mut kept = 0;
        for (old, repo) in self.repos.iter().enumerate() {
            if keep(repo) {
                renumbered[old] = Some(kept);
                kept += 1;
            }
        }
        let mut old = 0;
        self.repos.retain(|_| {
            old += 1;
            renumbered[old - 1].is_some()
        });
        self.files.retain_mut(|file| match renumbered[file.repo] {
            Some(new) => {
                file.repo = new;
                true
            }
            None => false,
        });
    }
}

/// A file's text, ready for chunking.
#[derive(Debug)]
pub struct TextFile {
    /// The text (invalid UTF-8 replaced by U+FFFD).
    pub text: String,
    /// sha256 of the raw bytes, hex.
    pub hash: String,
    /// True when the bytes were not valid UTF-8 and were decoded lossily.
    pub lossy: bool,
}

/// Checks that `root` is a readable folder and returns its canonical path.
pub fn check_root(root: &Path) -> Result<PathBuf> {
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::RootMissing(root.to_path_buf()));
        }
        Err(e) => {
            return Err(Error::RootUnreadable {
                path: root.to_path_buf(),
                source: e,
            });
        }
    };
    if !meta.is_dir() {
        return Err(Error::RootNotDir(root.to_path_buf()));
    }
    std::fs::read_dir(root).map_err(|e| Error::RootUnreadable {
        path: root.to_path_buf(),
        source: e,
    })?;
    root.canonicalize()
        .map_err(|e| Error::io(format!("cannot resolve {}", root.display()), e))
}

/// Walks `root`, honouring .gitignore, .ignore, git excludes and hidden files.
///
/// `exclude` lists folders never to enter and files never to read: the index directory
/// when it lives inside the root, and configuration that must not become content (the
/// root's codeq.toml and an ACL file, which name every repository and principal).
pub fn scan(root: &Path, config: &WalkOptions, exclude: &[PathBuf]) -> Result<Scan> {
    let root = check_root(root)?;
    let skip_files = build_globset(&config.skip_files)?;

    let skipped_dirs: Arc<Mutex<Vec<PathBuf>>> = Arc::default();

    let mut builder = ignore::WalkBuilder::new(&root);
    builder
        .hidden(true)
        .parents(true)
        .ignore(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(true)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    {
        let skip_dirs = config.skip_dirs.clone();
        let exclude: Vec<PathBuf> = exclude
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        let skipped_dirs = Arc::clone(&skipped_dirs);
        builder.filter_entry(move |entry| {
            if exclude.iter().any(|p| p == entry.path()) {
                return false;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if !is_dir || entry.depth() == 0 {
                return true;
            }
            let named_skip = entry
                .file_name()
                .to_str()
                .is_some_and(|name| skip_dirs.iter().any(|d| d == name));
            if named_skip {
                if let Ok(mut dirs) = skipped_dirs.lock() {
                    dirs.push(entry.path().to_path_buf());
                }
                return false;
            }
            true
        });
    }

    let root_name = root
        .file_name()
        .map_or_else(|| "root".to_string(), |n| n.to_string_lossy().into_owned());
    let mut repos: Vec<Repo> = Vec::new();
    let mut repo_by_dir: HashMap<PathBuf, usize> = HashMap::new();
    if root.join(".git").exists() {
        repo_by_dir.insert(root.clone(), 0);
        repos.push(new_repo(&root, &root, root_name));
    }
    let mut outside_repo: Option<usize> = None;
    let mut files = Vec::new();
    let mut skipped = SkipCounts::default();

    for entry in builder.build() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path =
                    error_path(&err).map_or_else(|| err.to_string(), |p| rel_display(&root, &p));
                skipped.add(SkipReason::Unreadable, path);
                continue;
            }
        };
        let path = entry.path();
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if entry.depth() > 0 && path.join(".git").exists() {
                let rel = rel_display(&root, path);
                repo_by_dir.insert(path.to_path_buf(), repos.len());
                repos.push(new_repo(&root, path, rel));
            }
            continue;
        }
        let repo = match owning_repo(&repo_by_dir, &root, path) {
            Some(i) => i,
            None => *outside_repo.get_or_insert_with(|| {
                repos.push(Repo {
                    id: LOOSE_FILES_REPO.to_string(),
                    rel_path: String::new(),
                    abs_path: root.clone(),
                    git: None,
                });
                repos.len() - 1
            }),
        };
        let rel_to_root = rel_display(&root, path);
        if file_type.is_symlink() {
            skipped.add(SkipReason::Symlink, rel_to_root);
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if skip_files.is_match(name.as_ref()) {
            skipped.add(SkipReason::Generated, rel_to_root);
            continue;
        }
        let stamp = match entry.metadata() {
            Ok(m) => FileStamp::of(&m),
            Err(_) => {
                skipped.add(SkipReason::Unreadable, rel_to_root);
                continue;
            }
        };
        if stamp.size > config.max_file_bytes {
            skipped.add(SkipReason::TooLarge, rel_to_root);
            continue;
        }
        files.push(FileEntry {
            repo,
            rel_path: rel_display(&repos[repo].abs_path, path),
            abs_path: path.to_path_buf(),
            stamp,
        });
    }
    for dir in skipped_dirs.lock().map(|d| d.clone()).unwrap_or_default() {
        skipped.add(
            SkipReason::Generated,
            format!("{}/", rel_display(&root, &dir)),
        );
    }
    refuse_duplicate_ids(&repos)?;
    for repo in &mut repos {
        if repo.git.is_some() {
            repo.git = Some(git_state(&repo.abs_path));
        }
    }
    Ok(Scan {
        root,
        repos,
        files,
        skipped,
    })
}

/// Reads a listed file; binary and unreadable files come back as a skip reason.
pub fn read_text(entry: &FileEntry) -> std::result::Result<TextFile, SkipReason> {
    let mut file = std::fs::File::open(&entry.abs_path).map_err(|_| SkipReason::Unreadable)?;
    let mut bytes = Vec::with_capacity(entry.stamp.size as usize);
    file.read_to_end(&mut bytes)
        .map_err(|_| SkipReason::Unreadable)?;
    let sniff = &bytes[..bytes.len().min(8192)];
    if sniff.contains(&0) {
        return Err(SkipReason::Binary);
    }
    let hash = crate::hash::sha256_hex(&bytes);
    let (text, lossy) = match String::from_utf8(bytes) {
        Ok(text) => (text, false),
        Err(err) => (String::from_utf8_lossy(err.as_bytes()).into_owned(), true),
    };
    Ok(TextFile { text, hash, lossy })
}

/// The commit checked out in the repository at `path`, cheaply (no status scan).
pub fn git_head(path: &Path) -> Option<String> {
    let repo = git2::Repository::open(path).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    Some(head)
}

/// Reads the current git state of the repository at `path` (empty state when it cannot be opened).
pub fn git_state(path: &Path) -> GitState {
    let Ok(repo) = git2::Repository::open(path) else {
        return GitState::default();
    };
    let head_ref = repo.head().ok();
    let head = head_ref
        .as_ref()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let branch = head_ref
        .as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_string));
    let remote_url = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
        .or_else(|| {
            let names = repo.remotes().ok()?;
            let first = names.iter().flatten().flatten().next()?.to_string();
            repo.find_remote(&first)
                .ok()?
                .url()
                .ok()
                .map(str::to_string)
        });
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false)
        .include_ignored(true)
        .recurse_ignored_dirs(false)
        .exclude_submodules(true);
    let (dirty, ignored_entries) = match repo.statuses(Some(&mut opts)) {
        Ok(statuses) => {
            let ignored = statuses
                .iter()
                .filter(|s| s.status().contains(git2::Status::IGNORED))
                .count();
            let dirty = statuses.iter().any(|s| {
                let st = s.status();
                !st.contains(git2::Status::IGNORED) && !st.is_empty()
            });
            (dirty, ignored)
        }
        Err(_) => (false, 0),
    };
    GitState {
        head,
        branch,
        remote_url,
        dirty,
        ignored_entries,
    }
}

/// Two repositories with one id would share grants and file rows: refused, naming both.
fn refuse_duplicate_ids(repos: &[Repo]) -> Result<()> {
    let mut seen: HashMap<&str, &Repo> = HashMap::new();
    for repo in repos {
        if let Some(first) = seen.insert(repo.id.as_str(), repo) {
            return Err(Error::DuplicateRepoId {
                id: repo.id.clone(),
                first: first.abs_path.clone(),
                second: repo.abs_path.clone(),
            });
        }
    }
    Ok(())
}

fn new_repo(root: &Path, dir: &Path, id: String) -> Repo {
    Repo {
        id,
        rel_path: rel_display(root, dir),
        abs_path: dir.to_path_buf(),
        git: Some(GitState::default()),
    }
}

fn owning_repo(repo_by_dir: &HashMap<PathBuf, usize>, root: &Path, file: &Path) -> Option<usize> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if let Some(&i) = repo_by_dir.get(d) {
            return Some(i);
        }
        if d == root {
            return None;
        }
        dir = d.parent();
    }
    None
}

/// `path` relative to `base`, with `/` separators.
fn rel_display(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

fn build_globset(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| Error::Config {
            path: PathBuf::from(crate::paths::CONFIG_FILE),
            detail: format!("index.skip_files: {e}"),
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| Error::Config {
        path: PathBuf::from(crate::paths::CONFIG_FILE),
        detail: format!("index.skip_files: {e}"),
    })
}
