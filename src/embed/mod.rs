//! Embedding models: the [`Embedder`] trait, a transformer run by fastembed over local
//! ONNX files ([`FastEmbedder`]) and a static token-vector model ([`StaticEmbedder`]).
//! Nothing here downloads: models and ONNX Runtime are files on disk.

mod onnx;
mod static_vectors;

pub use onnx::FastEmbedder;
pub use static_vectors::StaticEmbedder;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths;

/// Identity of an embedding model, recorded in the index so vectors are never mixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Human-readable id (`model_id` file in the model folder, else the folder name).
    pub id: String,
    /// sha256 of the ONNX file, so a changed file under the same id is caught too.
    pub file_sha256: String,
    /// Vector dimension.
    pub dimension: usize,
    /// Token limit per input.
    pub max_length: usize,
    /// Folder the model was loaded from; queries load the index's model from here by default.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl ModelInfo {
    /// True when vectors of `self` and `other` can be compared.
    pub fn compatible_with(&self, other: &ModelInfo) -> bool {
        self.id == other.id
            && self.file_sha256 == other.file_sha256
            && self.dimension == other.dimension
            && self.max_length == other.max_length
    }

    /// The error refusing to mix vectors of an index built with `self` and of `loaded`,
    /// naming the first thing that differs, so that two models of the same id (another
    /// file, another token limit) do not read as the same model.
    pub fn refusal(&self, loaded: &ModelInfo) -> Error {
        const REBUILD: &str = "rebuild with `codeq index ROOT --rebuild`";
        let built_with = format!(
            "model {} ({} dimensions, {} tokens per chunk)",
            self.id, self.dimension, self.max_length
        );
        let model_remedy = format!("point --model-dir at the index's model, or {REBUILD}");
        let (differs, remedy) = if self.id != loaded.id || self.dimension != loaded.dimension {
            (
                format!("is {} ({} dimensions)", loaded.id, loaded.dimension),
                model_remedy,
            )
        } else if self.file_sha256 != loaded.file_sha256 {
            (
                format!(
                    "is another model file under the same id (sha256 {} where the index has {})",
                    short_hash(&loaded.file_sha256),
                    short_hash(&self.file_sha256)
                ),
                model_remedy,
            )
        } else {
            (
                format!(
                    "cuts chunks at {} tokens (model.max_length in codeq.toml, or CODEQ_MODEL_MAX_LENGTH)",
                    loaded.max_length
                ),
                format!(
                    "set model.max_length = {} to keep this index, or {REBUILD}",
                    self.max_length
                ),
            )
        };
        Error::ModelMismatch {
            built_with,
            differs,
            remedy,
        }
    }
}

/// The first 12 hex digits of a sha256, enough to tell two files apart in a message.
fn short_hash(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
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

/// Turns texts into unit-length vectors.
pub trait Embedder: Send {
    /// Which model this is.
    fn info(&self) -> &ModelInfo;
    /// Embeds a batch of documents (chunks); one vector per input, in order.
    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
    /// Embeds a search query. Models trained with an instruction for queries (bge's
    /// "Represent this sentence for searching relevant passages: ") add it here.
    fn embed_query(&mut self, query: &str) -> Result<Vec<f32>> {
        the_only_vector(self.embed(&[query.to_string()])?)
    }
}

/// The vector of a one-text batch.
fn the_only_vector(mut vectors: Vec<Vec<f32>>) -> Result<Vec<f32>> {
    match (vectors.pop(), vectors.is_empty()) {
        (Some(vector), true) => Ok(vector),
        _ => Err(Error::Embed(
            "the model did not return one vector for the query".into(),
        )),
    }
}

impl<E: Embedder + ?Sized> Embedder for Box<E> {
    fn info(&self) -> &ModelInfo {
        (**self).info()
    }
    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        (**self).embed(texts)
    }
    fn embed_query(&mut self, query: &str) -> Result<Vec<f32>> {
        (**self).embed_query(query)
    }
}

/// Loads the model in the folder `config` names (or the default setup installs): a static
/// model (`model.safetensors` with a model2vec `config.json`) or an ONNX transformer.
pub fn load_embedder(config: &ModelConfig) -> Result<Box<dyn Embedder>> {
    let dir = resolve_model_dir(config);
    if StaticEmbedder::is_static_model(&dir) {
        return Ok(Box::new(StaticEmbedder::load(&dir, config)?));
    }
    Ok(Box::new(FastEmbedder::load(config)?))
}

/// The model id a folder names: its `model_id` file, else the folder name.
fn model_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("model_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            dir.file_name()
                .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
        })
}

/// Reads a local model folder holding every file of `required`: the ONNX file, the
/// tokenizer files (a missing `config.json` reads as `{}`) and the model's id (its
/// `model_id` file, else the folder name).
pub(crate) fn read_model_folder(
    dir: &Path,
    required: &[&str],
) -> Result<(Vec<u8>, fastembed::TokenizerFiles, String)> {
    for name in required {
        if !dir.join(name).is_file() {
            return Err(Error::ModelMissing {
                dir: dir.to_path_buf(),
                detail: format!("{name} is missing"),
            });
        }
    }
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| Error::ModelMissing {
            dir: dir.to_path_buf(),
            detail: format!("cannot read {name}: {e}"),
        })
    };
    let config_file = match dir.join("config.json").is_file() {
        true => read("config.json")?,
        false => b"{}".to_vec(),
    };
    let tokenizer = fastembed::TokenizerFiles {
        tokenizer_file: read("tokenizer.json")?,
        config_file,
        special_tokens_map_file: read("special_tokens_map.json")?,
        tokenizer_config_file: read("tokenizer_config.json")?,
    };
    Ok((read("model.onnx")?, tokenizer, model_id(dir)))
}

/// The model folder: `[model] dir`, `CODEQ_MODEL_DIR`, else the one setup installs.
pub fn resolve_model_dir(config: &ModelConfig) -> PathBuf {
    config
        .dir
        .clone()
        .or_else(|| std::env::var_os("CODEQ_MODEL_DIR").map(PathBuf::from))
        .unwrap_or_else(paths::default_model_dir)
}

/// The ONNX Runtime library: `[model] ort_lib`, `CODEQ_ORT_LIB`, `ORT_DYLIB_PATH`, else setup's.
pub fn resolve_ort_lib(config: &ModelConfig) -> PathBuf {
    config
        .ort_lib
        .clone()
        .or_else(|| std::env::var_os("CODEQ_ORT_LIB").map(PathBuf::from))
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .unwrap_or_else(paths::default_ort_lib)
}

/// Loads ONNX Runtime once per process. Checks the file first: a failed `dlopen`
/// inside ort would otherwise panic instead of returning an error.
pub(crate) fn init_onnx_runtime(path: &Path) -> Result<()> {
    static LOADED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let outcome = LOADED.get_or_init(|| {
        if !path.is_file() {
            return Err("the file does not exist".to_string());
        }
        match ort::init_from(path) {
            // The default environment is enough; dropping the builder keeps the loaded library.
            Ok(_environment) => Ok(path.to_path_buf()),
            Err(e) => Err(e.to_string()),
        }
    });
    match outcome {
        Ok(_) => Ok(()),
        Err(detail) => Err(Error::OrtMissing {
            path: path.to_path_buf(),
            detail: detail.clone(),
        }),
    }
}
