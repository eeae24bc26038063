//! The tokens file of `codeq serve`: which bearer token is which principal, without the
//! tokens themselves.
//!
//! ```toml
//! [[token]]
//! principal = "alice"
//! sha256 = "<lowercase hex sha256 of the token>"   # `printf %s TOKEN | sha256sum`
//! expires = 2027-06-30T00:00:00Z                   # optional: refused from then on
//! ```
//!
//! A presented token is hashed and compared with every entry in constant time, so neither
//! the comparison nor the number of entries checked says how close a guess was.

use std::path::Path;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The principals a server accepts, by the sha256 of their bearer tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    principal: String,
    /// Lowercase hex sha256 of the token.
    sha256: String,
    /// Unix seconds from which the token is refused.
    expires: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    principal: String,
    sha256: String,
    expires: Option<toml::value::Datetime>,
}

impl Tokens {
    /// Reads and checks the tokens file at `path`.
    pub fn load(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read the tokens file {}", path.display()), e))?;
        Tokens::parse(&text).map_err(|detail| Error::Config {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Parses a tokens file's text; the error says which entry is wrong and how, never
    /// repeating a hash or a token.
    pub fn parse(text: &str) -> std::result::Result<Tokens, String> {
        let file: File = toml::from_str(text).map_err(|e| {
            let hint = if text.contains("token =") || text.contains("token=") {
                " (store the sha256 of each token, never the token: `printf %s TOKEN | sha256sum`)"
            } else {
                ""
            };
            format!("not a tokens file: {}{hint}", e.message())
        })?;
        if file.token.is_empty() {
            return Err("no [[token]] entries: nobody could use the server".into());
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(file.token.len());
        for (n, raw) in file.token.into_iter().enumerate() {
            let which = format!("[[token]] number {}", n + 1);
            if raw.principal.trim().is_empty() {
                return Err(format!("{which} has an empty principal"));
            }
            let sha256 = raw.sha256.trim().to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{which} ({}): sha256 must be 64 hex digits, the sha256 of the token",
                    raw.principal
                ));
            }
            if entries.iter().any(|e| e.sha256 == sha256) {
                return Err(format!(
                    "{which} ({}) repeats the sha256 of an earlier entry: one token, one principal",
                    raw.principal
                ));
            }
            let expires = raw
                .expires
                .map(|at| unix_seconds(&at).ok_or_else(|| format!("{which} ({}): expires must be a date or a date and time, e.g. 2027-06-30 or 2027-06-30T12:00:00Z", raw.principal)))
                .transpose()?;
            entries.push(Entry {
                principal: raw.principal,
                sha256,
                expires,
            });
        }
        Ok(Tokens { entries })
    }

    /// The principal of a presented token, given as its `digest` (lowercase hex sha256; the
    /// server hashes each token once), at unix time `now`: `None` for an unknown or expired
    /// token. Every entry is compared, each in constant time.
    pub fn principal_of_digest(&self, digest: &str, now: i64) -> Option<&str> {
        let mut found = None;
        for entry in &self.entries {
            let same: bool = entry.sha256.as_bytes().ct_eq(digest.as_bytes()).into();
            if same && entry.expires.is_none_or(|at| now < at) {
                found = Some(entry.principal.as_str());
            }
        }
        found
    }

    /// How many tokens the file lists.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file lists no token (never true of a loaded file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Unix seconds of a TOML date (midnight UTC) or date-time (UTC unless it has an offset;
/// a local time without one counts as UTC).
fn unix_seconds(at: &toml::value::Datetime) -> Option<i64> {
    let date = at.date?;
    let days = days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let seconds_of_day = at.time.map_or(0, |t| {
        i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
    });
    let offset = match at.offset {
        Some(toml::value::Offset::Custom { minutes }) => i64::from(minutes) * 60,
        _ => 0,
    };
    Some(days * 86_400 + seconds_of_day - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(&str, &str, Option<&str>)]) -> String {
        entries
            .iter()
            .map(|(principal, token, expires)| {
                let expires = expires.map_or(String::new(), |e| format!("expires = {e}\n"));
                format!(
                    "[[token]]\nprincipal = \"{principal}\"\nsha256 = \"{}\"\n{expires}",
                    sha256_hex(token.as_bytes())
                )
            })
            .collect()
    }

    use crate::hash::sha256_hex;

    impl Tokens {
        /// The principal of the token `presented` in clear.
        fn principal_of(&self, presented: &str, now: i64) -> Option<&str> {
            self.principal_of_digest(&sha256_hex(presented.as_bytes()), now)
        }
    }

    #[test]
    fn a_token_names_its_principal_until_it_expires() {
        let tokens = Tokens::parse(&file(&[
            ("alice", "tok-alice", None),
            ("bob", "tok-bob", Some("2027-01-01T00:00:00Z")),
        ]))
        .unwrap();
        let before = unix_seconds(&"2026-12-31T23:59:59Z".parse().unwrap()).unwrap();
        assert_eq!(tokens.principal_of("tok-alice", before), Some("alice"));
        assert_eq!(tokens.principal_of("tok-bob", before), Some("bob"));
        assert_eq!(tokens.principal_of("tok-bob", before + 1), None, "expired");
        assert_eq!(tokens.principal_of("tok-carol", before), None);
        assert_eq!(tokens.principal_of("", before), None);
        // The hash of a token is not a token.
        assert_eq!(tokens.principal_of(&sha256_hex(b"tok-alice"), before), None);
    }

    #[test]
    fn dates_count_from_the_unix_epoch_in_utc() {
        let at = |s: &str| unix_seconds(&s.parse().unwrap()).unwrap();
        assert_eq!(at("1970-01-01"), 0);
        assert_eq!(at("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(at("2024-02-29T12:30:00Z"), 1_709_209_800);
        assert_eq!(at("2024-02-29T14:30:00+02:00"), 1_709_209_800);
    }

    #[test]
    fn a_wrong_file_says_what_is_wrong_without_repeating_secrets() {
        let cases = [
            ("", "no [[token]] entries"),
            (
                "[[token]]\nprincipal = \"a\"\ntoken = \"s3cret\"\n",
                "never the token",
            ),
            (
                "[[token]]\nprincipal = \"a\"\nsha256 = \"abc\"\n",
                "64 hex digits",
            ),
            (
                "[[token]]\nprincipal = \" \"\nsha256 = \"abc\"\n",
                "empty principal",
            ),
        ];
        for (text, expected) in cases {
            let err = Tokens::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        let twice = file(&[("a", "same", None), ("b", "same", None)]);
        let err = Tokens::parse(&twice).unwrap_err();
        assert!(err.contains("repeats"), "{err}");
        assert!(!err.contains(&sha256_hex(b"same")), "{err}");
    }
}
