//! Reading TOML files so that every mistake names its file and line: the configuration,
//! ACL files and question sets share these helpers.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a configuration file and parses it; a parse error becomes [`Error::Config`] naming
/// the file. `what` goes before the path in a read error ("the ACL file ").
pub fn parse_file<T>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {what}{}", path.display()), e))?;
    parse(&text).map_err(|detail| Error::Config {
        path: path.to_path_buf(),
        detail,
    })
}

/// 1-based line number of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML parse error as `line N: message`.
pub fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_string();
    match err.span() {
        Some(span) => format!("line {}: {message}", line_of(text, span.start)),
        None => message,
    }
}
