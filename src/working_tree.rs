//! What queries read back from the working tree: indexed files, to verify a citation or
//! show its lines, by the walker's rules (a regular file reached without following a
//! symlink, within a size limit), and repositories' HEAD commits, to say whether an index
//! is stale. A file's sha256 and a repository's HEAD are remembered against what `stat`
//! says of the files they come from, so that a long-running process (MCP, the TUI, a
//! server) does not read, hash and resolve the same unchanged files for every query.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{Error as IoError, ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::hash::sha256_hex;
use crate::walk;

/// Largest working-tree file read back for verification or display.
pub const MAX_WORKING_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Files whose hash is remembered; past that the memory starts over.
const REMEMBERED_FILES: usize = 4096;

/// A file modified less than this long before it was hashed is not remembered: file times
/// move in coarse ticks (milliseconds), so a second write within the same tick could leave
/// the stamp as it was ("racy git"). Once a file is older, any write moves its time.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What `stat` says of a file that changes whenever its bytes do: a write moves the
/// modification and change times (nanoseconds), a replacement by rename (what editors and
/// git do) gives another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    /// The stamp of a file with this metadata.
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            device: meta.dev(),
            inode: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// True when the file `meta` describes was last written long enough before `read_at` for
/// any later write to move its stamp (see [`RACY_WINDOW`]).
fn settled(meta: &Metadata, read_at: SystemTime) -> bool {
    meta.modified().is_ok_and(|modified| {
        read_at
            .duration_since(modified)
            .is_ok_and(|age| age >= RACY_WINDOW)
    })
}

/// The stamps of the files a value was derived from (`None`: the file did not exist).
type Stamps = Vec<Option<Stamp>>;

/// Values derived from files, by path, with the stamps of the files they came from; past
/// [`REMEMBERED_FILES`] entries the memory starts over.
struct Remembered<V> {
    entries: LazyLock<Mutex<HashMap<PathBuf, (Stamps, V)>>>,
}

impl<V: Clone> Remembered<V> {
    const fn new() -> Remembered<V> {
        Remembered {
            entries: LazyLock::new(Mutex::default),
        }
    }

    fn get(&self, path: &Path, stamps: &[Option<Stamp>]) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, value) = entries.get(path)?;
        (seen == stamps).then(|| value.clone())
    }

    fn insert(&self, path: PathBuf, stamps: Stamps, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= REMEMBERED_FILES {
            entries.clear();
        }
        entries.insert(path, (stamps, value));
    }
}

/// sha256 of working files.
static HASHES: Remembered<String> = Remembered::new();
/// HEAD commits of repositories (`None`: no commit).
static HEADS: Remembered<Option<String>> = Remembered::new();

/// Reads the working-tree file `rel` (a path as indexed) of the repository at `repo_root`,
/// the way the walker saw it: a regular file reached without following any symlink, at most
/// [`MAX_WORKING_FILE_BYTES`]. A file swapped for a symlink (to another repository, to
/// `/etc/shadow`, to a FIFO) is refused rather than followed, so nothing outside what was
/// indexed can be read back through a citation. A `rel` with `..` or `.` segments, and a
/// `repo_root` that is not canonical, are refused the same way.
pub fn read(repo_root: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    let (path, meta) = checked(repo_root, rel)?;
    read_checked(&path, &meta)
}

/// sha256 (hex) of what [`read`] would return, without reading a file again while its
/// stamp (device, inode, size, modification and change times) stays the same. The rules
/// of [`read`] are checked on every call.
pub fn sha256(repo_root: &Path, rel: &str) -> std::io::Result<String> {
    let (path, meta) = checked(repo_root, rel)?;
    let stamps = vec![Some(Stamp::of(&meta))];
    if let Some(hash) = HASHES.get(&path, &stamps) {
        return Ok(hash);
    }
    // Stamped before reading: a write during the read leaves a newer stamp on the file, so
    // the next call reads it again.
    let read_at = SystemTime::now();
    let hash = sha256_hex(&read_checked(&path, &meta)?);
    if settled(&meta, read_at) {
        HASHES.insert(path, stamps, hash.clone());
    }
    Ok(hash)
}

/// The path of `rel` under `repo_root` and its metadata, if [`read`]'s rules allow it.
fn checked(repo_root: &Path, rel: &str) -> std::io::Result<(PathBuf, Metadata)> {
    let path = repo_root.join(rel);
    let meta = std::fs::symlink_metadata(&path)?;
    if !meta.file_type().is_file() {
        return Err(IoError::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    // No component may be a symlink or `..` either: the resolved path must be the literal
    // one, which also keeps it below the repository's folder (itself canonical: the root
    // is recorded canonical and repository paths are plain relative ones).
    if path.canonicalize()? != path {
        return Err(IoError::new(
            ErrorKind::InvalidInput,
            "the path goes through a symlink",
        ));
    }
    if meta.len() > MAX_WORKING_FILE_BYTES {
        return Err(IoError::new(
            ErrorKind::InvalidInput,
            "the file is too large",
        ));
    }
    Ok((path, meta))
}

/// The commit HEAD of the git repository at `repo` points to (`None` when it is not a
/// repository or has no commit yet), resolved again only when a file it was resolved from
/// changed: `.git/HEAD`, the branch's ref file and `packed-refs`. A `.git` that is a file
/// (a linked worktree, a submodule) is resolved every time.
pub fn git_head(repo: &Path) -> Option<String> {
    let read_at = SystemTime::now();
    let Some((stamps, sources)) = head_sources(repo) else {
        return walk::git_head(repo);
    };
    if let Some(head) = HEADS.get(repo, &stamps) {
        return head;
    }
    let head = walk::git_head(repo);
    if sources.iter().flatten().all(|meta| settled(meta, read_at)) {
        HEADS.insert(repo.to_path_buf(), stamps, head.clone());
    }
    head
}

/// The stamps and metadata of the files a HEAD commit is resolved from.
type HeadSources = (Stamps, Vec<Option<Metadata>>);

/// The [`HeadSources`] of `repo`, when its `.git` is a plain folder and HEAD names a branch
/// inside it (or a commit).
fn head_sources(repo: &Path) -> Option<HeadSources> {
    let git = repo.join(".git");
    if !std::fs::symlink_metadata(&git).ok()?.is_dir() {
        return None;
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let mut files = vec![git.join("HEAD")];
    if let Some(branch) = head.trim().strip_prefix("ref: ") {
        if !branch.starts_with("refs/") || branch.split('/').any(|part| part == "..") {
            return None;
        }
        files.push(git.join(branch));
        files.push(git.join("packed-refs"));
    }
    let sources: Vec<Option<Metadata>> = files
        .iter()
        .map(|f| std::fs::symlink_metadata(f).ok())
        .collect();
    let stamps = sources.iter().map(|m| m.as_ref().map(Stamp::of)).collect();
    Some((stamps, sources))
}

fn read_checked(path: &Path, meta: &Metadata) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)?
        .take(MAX_WORKING_FILE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembered(path: &Path) -> Option<String> {
        let entries = HASHES.entries.lock().unwrap();
        entries.get(path).map(|(_, hash)| hash.clone())
    }

    /// Writes `text` to `file` and dates its modification `age` back.
    fn write_aged(file: &Path, text: &str, age: Duration) {
        std::fs::write(file, text).unwrap();
        let opened = std::fs::File::options().write(true).open(file).unwrap();
        opened.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_remembered_hash_follows_every_change_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let file = root.join("a.rs");
        write_aged(&file, "fn a() {}\n", Duration::ZERO);
        assert_eq!(sha256(&root, "a.rs").unwrap(), sha256_hex(b"fn a() {}\n"));
        assert_eq!(
            remembered(&file),
            None,
            "just written: a second write could keep its stamp"
        );
        write_aged(&file, "fn b() {}\n", Duration::from_secs(60));
        assert_eq!(sha256(&root, "a.rs").unwrap(), sha256_hex(b"fn b() {}\n"));
        assert_eq!(remembered(&file), Some(sha256_hex(b"fn b() {}\n")));
        assert_eq!(sha256(&root, "a.rs").unwrap(), sha256_hex(b"fn b() {}\n"));
        // Same length, written in place: its time moves.
        std::fs::write(&file, "fn x() {}\n").unwrap();
        assert_eq!(sha256(&root, "a.rs").unwrap(), sha256_hex(b"fn x() {}\n"));
        // Replaced by a rename, as editors and git do.
        std::fs::write(root.join("new"), "fn c() {}\n").unwrap();
        std::fs::rename(root.join("new"), &file).unwrap();
        assert_eq!(sha256(&root, "a.rs").unwrap(), sha256_hex(b"fn c() {}\n"));
        // Replaced by a symlink: refused, remembered hash or not.
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), &file).unwrap();
        std::fs::write(root.join("elsewhere"), "fn c() {}\n").unwrap();
        assert!(sha256(&root, "a.rs").is_err());
        assert!(read(&root, "a.rs").is_err());
    }

    /// Commits everything in `repo` with `message`; the new commit's id.
    fn commit(repo: &git2::Repository, message: &str) -> String {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let who = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &who, &who, message, &tree, &parents)
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_remembered_head_follows_new_commits_and_branch_switches() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let repo = git2::Repository::init(&root).unwrap();
        assert_eq!(git_head(&root), None, "no commit yet");
        std::fs::write(root.join("a.rs"), "fn a() {}\n").unwrap();
        let first = commit(&repo, "first");
        let branch_file = std::fs::read_to_string(root.join(".git/HEAD")).unwrap();
        let branch = branch_file
            .trim()
            .strip_prefix("ref: ")
            .unwrap()
            .to_string();
        let age = |file: &Path| {
            let opened = std::fs::File::options().write(true).open(file).unwrap();
            opened
                .set_modified(SystemTime::now() - Duration::from_secs(60))
                .unwrap();
        };
        age(&root.join(".git/HEAD"));
        age(&root.join(".git").join(&branch));
        assert_eq!(git_head(&root), Some(first.clone()));
        assert!(
            HEADS.entries.lock().unwrap().contains_key(&root),
            "settled: remembered"
        );
        std::fs::write(root.join("b.rs"), "fn b() {}\n").unwrap();
        let second = commit(&repo, "second");
        assert_eq!(git_head(&root), Some(second));
        repo.branch(
            "old",
            &repo
                .find_commit(git2::Oid::from_str(&first).unwrap())
                .unwrap(),
            false,
        )
        .unwrap();
        repo.set_head("refs/heads/old").unwrap();
        assert_eq!(git_head(&root), Some(first));
    }
}
