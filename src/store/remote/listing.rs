//! The listing of a published generation: its seal, manifest and the key of every file,
//! checked before a mirror writes anything it names.

use super::*;

/// A published generation as the bucket describes it: everything a mirror needs to
/// recreate its folder.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Listing {
    pub(super) format: u32,
    pub(super) generation: String,
    /// The generation's seal, as written in its `checksums.json`.
    pub(super) seal: Seal,
    /// Sealed file → its key below the prefix.
    pub(super) keys: BTreeMap<String, String>,
    /// Every folder of the generation, empty ones included.
    pub(super) dirs: Vec<String>,
    /// The generation's `manifest.json`.
    pub(super) manifest: serde_json::Value,
}

impl Listing {
    /// Checks that the listing describes `generation` and names only plain paths inside
    /// the generation's folder and keys inside the index: a crafted bucket must not make
    /// a mirror write elsewhere.
    pub(super) fn check(&self, generation: &str) -> Result<(), String> {
        if self.format != LISTING_FORMAT {
            return Err(format!(
                "listing format {}, this codeq reads {LISTING_FORMAT}",
                self.format
            ));
        }
        if self.generation != generation {
            return Err(format!("it describes {:?}", self.generation));
        }
        for rel in self.seal.files.keys() {
            let name = rel.rsplit('/').next().unwrap_or_default();
            if !is_plain_relative(rel) || seal::is_unsealed(name) {
                return Err(format!("it seals {rel:?}, which a generation cannot hold"));
            }
            match self.keys.get(rel) {
                Some(key) if is_plain_relative(key) && key.starts_with(GENERATIONS) => {}
                Some(key) => return Err(format!("{rel:?} is stored at {key:?}")),
                None => return Err(format!("{rel:?} has no key")),
            }
        }
        if self.keys.len() != self.seal.files.len() {
            return Err("it has keys of files it does not seal".into());
        }
        match self.dirs.iter().find(|dir| !is_plain_relative(dir)) {
            Some(dir) => Err(format!("it has the folder {dir:?}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_that_would_write_outside_the_mirror_is_refused() {
        let entry = SealedFile {
            bytes: 1,
            crc32: 0,
            mtime_ns: 0,
        };
        let listing = |rel: &str, key: &str, dir: &str| Listing {
            format: LISTING_FORMAT,
            generation: "g000002".into(),
            seal: Seal {
                files: BTreeMap::from([(rel.to_string(), entry)]),
            },
            keys: BTreeMap::from([(rel.to_string(), key.to_string())]),
            dirs: vec![dir.to_string()],
            manifest: serde_json::Value::Null,
        };
        let good = "generations/g000001/files/tantivy/a.idx";
        listing("tantivy/a.idx", good, "tantivy")
            .check("g000002")
            .unwrap();
        assert!(
            listing("tantivy/a.idx", good, "tantivy")
                .check("g000003")
                .is_err()
        );
        for (rel, key, dir) in [
            ("../../etc/x", good, "tantivy"),
            ("/etc/x", good, "tantivy"),
            ("manifest.json", good, "tantivy"),
            ("tantivy/a.idx", "../other/x", "tantivy"),
            ("tantivy/a.idx", "FORMAT", "tantivy"),
            ("tantivy/a.idx", good, "../up"),
        ] {
            assert!(
                listing(rel, key, dir).check("g000002").is_err(),
                "{rel} {key} {dir}"
            );
        }
    }
}
