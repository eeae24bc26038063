//! `codeq index --shard I/N`: one of N indexers that build one index together, each
//! taking the repositories whose stable hash falls in its shard. A shard's run leaves every
//! other repository of the index as the generation it builds on has it, so N workers
//! publishing one after another (or retrying after a lost compare-and-swap on object
//! storage) add up to the whole index.

use std::fmt;
use std::str::FromStr;

use crate::hash::sha256_hex;

/// Shard `index` of `count` (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// True when the repository with id `repo_id` belongs to this shard: the first eight
    /// bytes of the sha256 of its id, modulo the shard count. The id is the repository's
    /// path under the indexed root, so every worker given the same layout agrees.
    pub fn contains(&self, repo_id: &str) -> bool {
        let digest = sha256_hex(repo_id.as_bytes());
        let head = u64::from_str_radix(&digest[..16], 16).expect("sha256 hex is hexadecimal");
        head % u64::from(self.count) == u64::from(self.index)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let invalid = || format!("`{text}` is not a shard: write I/N with 0 <= I < N, e.g. 0/4");
        let (index, count) = text.split_once('/').ok_or_else(invalid)?;
        let index: u32 = index.trim().parse().map_err(|_| invalid())?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        if count == 0 || index >= count {
            return Err(invalid());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_parsed_and_nonsense_refused() {
        assert_eq!("1/4".parse::<Shard>().unwrap().to_string(), "1/4");
        for bad in ["4/4", "1/0", "-1/2", "1", "a/b", "1/2/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_repository_falls_in_exactly_one_shard() {
        let ids: Vec<String> = (0..200).map(|i| format!("services/repo-{i}")).collect();
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        let mut sizes = [0usize; 3];
        for id in &ids {
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].contains(id)).collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        // A hash spreads 200 ids roughly evenly (each shard expects 66.7).
        assert!(sizes.iter().all(|&n| (40..=95).contains(&n)), "{sizes:?}");
        assert!("0/1".parse::<Shard>().unwrap().contains("anything"));
    }
}
