//! Reading a Hugging Face `config.json` into a `ModelConfig`: its
//! `model_type` picks the model family (`family`), which reads its own keys
//! through `config_json`'s bounded readers.

use std::path::Path;

use super::config::ModelConfig;
use super::config_json::ConfigJson;
use super::family::Family;
use crate::diag::Diag;
use crate::fsio;

impl ModelConfig {
    /// Parses a Hugging Face `config.json`, every size within the limits of
    /// `config_json`. `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, Diag> {
        let json = ConfigJson::parse(text, path)?;
        let model_type = json.str(&["model_type"]).unwrap_or("").to_string();
        let Some(family) = Family::of_model_type(&model_type) else {
            return Err(Diag::new(
                "plcc::checkpoint::unsupported-model",
                format!(
                    "unsupported model_type `{model_type}` in `{}`",
                    path.display()
                ),
            )
            .help("plcc supports BERT-family encoders (`bert`), `gpt2` and `bart`"));
        };
        let labels = json.labels()?;
        Ok(ModelConfig {
            labels,
            ..(family.read_config)(&json, model_type)?
        })
    }

    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, Diag> {
        let path = dir.join("config.json");
        let text = fsio::read_text(&path, &fsio::CONFIG)?;
        Self::from_json_str(&text, &path)
    }
}
