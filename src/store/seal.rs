//! A generation's seal: the size, modification time and CRC-32 of every data file,
//! written when the generation is published. Opening a generation stats every file: a
//! missing or resized file is damage, and a file whose modification time moved (written
//! to since, or copied) has its checksum compared, so a truncated, garbled or deleted file
//! is found before a query reads it, at the price of a stat per file on the usual path.
//! `codeq index` and `codeq status` compare every checksum (damage without a write: the
//! disk), so a generation is never built on unless all of it is as written. Generations
//! published before seals existed have none and are not checked.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the seal inside a generation folder.
pub(super) const SEAL_FILE: &str = "checksums.json";

/// One sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SealedFile {
    /// Its size.
    pub(super) bytes: u64,
    /// The CRC-32 of its content.
    pub(super) crc32: u32,
    /// Modification time when sealed, nanoseconds since the epoch.
    pub(super) mtime_ns: i64,
}

/// Path (relative to the generation, `/`-separated) → size and checksum.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Seal {
    /// Every sealed file.
    pub(super) files: BTreeMap<String, SealedFile>,
}

/// What is wrong with a sealed generation.
#[derive(Debug)]
pub(super) enum Damage {
    /// The seal itself cannot be read or parsed.
    Seal(String),
    /// A sealed file is gone.
    Missing(PathBuf),
    /// A sealed file has another size or content.
    Changed(PathBuf, String),
    /// A file cannot be read (its I/O error, permission problems among them).
    Unreadable(PathBuf, std::io::Error),
}

impl Damage {
    /// What went wrong, for an "index is damaged" message.
    pub(super) fn detail(&self) -> String {
        match self {
            Damage::Seal(detail) => format!("{SEAL_FILE}: {detail}"),
            Damage::Missing(path) => format!("{} is missing", path.display()),
            Damage::Changed(path, how) => format!("{} {how}", path.display()),
            Damage::Unreadable(path, err) => format!("{}: {err}", path.display()),
        }
    }
}

/// Files that are not part of a generation's sealed content: the manifest (checked by
/// parsing), the seal itself, lock files and temporary files.
pub(super) fn is_unsealed(name: &str) -> bool {
    name == super::MANIFEST_FILE
        || name == SEAL_FILE
        || name.ends_with(".lock")
        || name.ends_with(".tmp")
}

/// Writes the seal of the finished generation at `path`. Files that are hard links of
/// the same file in `previous` (the generation it was copied from) take their checksum
/// from `previous`'s seal instead of being read again.
pub(super) fn write(path: &Path, previous: Option<&Path>) -> crate::Result<()> {
    let known: BTreeMap<String, SealedFile> = previous
        .and_then(|p| read(p).ok().flatten())
        .map(|s| s.files)
        .unwrap_or_default();
    let mut seal = Seal::default();
    for rel in sealed_files(path).map_err(|e| crate::Error::io("cannot list a generation", e))? {
        let file = path.join(&rel);
        let meta = std::fs::metadata(&file)
            .map_err(|e| crate::Error::io(format!("cannot read {}", file.display()), e))?;
        let reused = known.get(&rel).copied().filter(|entry| {
            entry.bytes == meta.len() && previous.is_some_and(|p| same_inode(&p.join(&rel), &meta))
        });
        let entry = match reused {
            Some(entry) => entry,
            None => SealedFile {
                bytes: meta.len(),
                crc32: crc_of(&file)
                    .map_err(|e| crate::Error::io(format!("cannot read {}", file.display()), e))?,
                mtime_ns: mtime_ns(&meta),
            },
        };
        seal.files.insert(rel, entry);
    }
    let json = serde_json::to_vec(&seal).map_err(crate::Error::store)?;
    super::write_atomically(&path.join(SEAL_FILE), &json)
}

/// Checks that every sealed file is present with its size and, when its modification
/// time moved or with `checksums` always, with its content. A generation without a seal
/// passes.
pub(super) fn check(path: &Path, checksums: bool) -> Result<(), Damage> {
    let Some(seal) = read(path)? else {
        return Ok(());
    };
    for (rel, sealed) in &seal.files {
        let file = path.join(rel);
        let meta = match std::fs::metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Damage::Missing(file));
            }
            Err(e) => return Err(Damage::Unreadable(file, e)),
        };
        if meta.len() != sealed.bytes {
            return Err(Damage::Changed(
                file,
                format!("has {} bytes, {} were written", meta.len(), sealed.bytes),
            ));
        }
        if checksums || mtime_ns(&meta) != sealed.mtime_ns {
            let crc = crc_of(&file).map_err(|e| Damage::Unreadable(file.clone(), e))?;
            if crc != sealed.crc32 {
                return Err(Damage::Changed(
                    file,
                    "does not have the content written".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The first file below `path` (sealed or not) that this user cannot open, if any (to
/// tell a permission problem from damage).
pub(super) fn first_unreadable(path: &Path) -> Option<PathBuf> {
    let files = files_below(path, |_| true).ok()?;
    files.into_iter().map(|rel| path.join(rel)).find(|file| {
        std::fs::File::open(file).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

/// The seal of the generation folder `path`; `None` when it has none.
pub(super) fn read(path: &Path) -> Result<Option<Seal>, Damage> {
    let file = path.join(SEAL_FILE);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Damage::Seal(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Damage::Unreadable(file, e)),
    }
}

/// Every sealed file below `root`, relative and `/`-separated, sorted.
fn sealed_files(root: &Path) -> std::io::Result<Vec<String>> {
    files_below(root, |name| !is_unsealed(name))
}

/// Every file below `root` whose name `keep` accepts, relative and `/`-separated, sorted.
fn files_below(root: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<String>> {
    Ok(below(root, keep)?.1)
}

/// Every folder below `root`, relative and `/`-separated, sorted (empty ones included:
/// a copy of the generation recreates them).
pub(super) fn folders_below(root: &Path) -> std::io::Result<Vec<String>> {
    Ok(below(root, |_| false)?.0)
}

/// The folders below `root`, and the files whose name `keep` accepts, both relative and
/// `/`-separated, sorted.
fn below(root: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    let mut folders = vec![PathBuf::new()];
    while let Some(rel) = folders.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = rel.join(&name);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(child.to_string_lossy().into_owned());
                folders.push(child);
            } else if kind.is_file() && keep(&name) {
                files.push(child.to_string_lossy().into_owned());
            }
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec()
}

fn same_inode(path: &Path, meta: &std::fs::Metadata) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

fn crc_of(path: &Path) -> std::io::Result<u32> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_garbling_and_deletion_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let generation = dir.path();
        let data = generation.join("lance/data/a.lance");
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, b"abcdefgh").unwrap();
        std::fs::write(generation.join("files.json"), b"[]").unwrap();
        std::fs::write(generation.join("readers.lock"), b"").unwrap();
        write(generation, None).unwrap();
        let sealed_time = std::fs::metadata(&data).unwrap().modified().unwrap();
        check(generation, true).unwrap();
        // Lock files are not sealed: they change with every reader.
        std::fs::write(generation.join("readers.lock"), b"x").unwrap();
        check(generation, true).unwrap();

        // A write moves the modification time, so even the stat-only check reads it.
        std::fs::write(&data, b"abcdXfgh").unwrap();
        assert!(matches!(check(generation, false), Err(Damage::Changed(..))));
        // A copy (new time, same bytes) passes on its checksum.
        std::fs::write(&data, b"abcdefgh").unwrap();
        check(generation, false).unwrap();
        // Damage without a write (the disk) keeps the time: only the full check finds it.
        std::fs::write(&data, b"abcdXfgh").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&data)
            .unwrap()
            .set_modified(sealed_time)
            .unwrap();
        check(generation, false).unwrap();
        assert!(matches!(check(generation, true), Err(Damage::Changed(..))));

        std::fs::write(&data, b"abcd").unwrap();
        assert!(matches!(check(generation, false), Err(Damage::Changed(..))));
        std::fs::remove_file(&data).unwrap();
        assert!(matches!(check(generation, false), Err(Damage::Missing(_))));
        std::fs::write(generation.join(SEAL_FILE), b"{\"files\": ").unwrap();
        assert!(matches!(check(generation, false), Err(Damage::Seal(_))));
    }
}
