//! Configuration: defaults, the user's file, the indexed root's `codeq.toml` and `CODEQ_*`
//! variables, in that order of precedence (later wins), with where each value came from.
//! Each section's type belongs to the stage it configures (`[index]` to `index`, `[model]`
//! to `embed`, `[rerank]` to `rerank`, `[llm]` to `llm`, `[budget]` to `answer`, `[acl]` to
//! `acl`); this module only layers and validates them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::acl::{Acl, AclSection};
use crate::answer::BudgetConfig;
use crate::embed::ModelConfig;
use crate::error::{Error, Result};
use crate::index::{IndexConfig, IndexOptions};
use crate::paths::{CONFIG_FILE, user_config_file};
use crate::rerank::RerankConfig;
use crate::tomlfile::{describe_toml_error, parse_file};

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
            .map_err(|e| Error::Internal(format!("cannot list the settings: {e}")))?;
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
            .map_err(|e| Error::Internal(format!("cannot merge the configuration: {e}")))?;
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

    /// What `codeq index` of `root` runs with under this configuration: incremental, the
    /// default index folder, no `--acl` file.
    pub fn index_options(&self, root: PathBuf) -> IndexOptions {
        IndexOptions {
            root,
            index_dir: None,
            rebuild: false,
            settings: self.index.clone(),
            acl_configured: self.acl().is_some(),
            acl_file: None,
            drop_acl: false,
            shard: None,
        }
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
