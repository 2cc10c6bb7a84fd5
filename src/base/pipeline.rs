//! The sentence-embedding pipeline of a checkpoint: how token states become
//! one vector. A sentence-transformers checkpoint says it in `modules.json`
//! (a Transformer, then a Pooling module whose `config.json` names the mode,
//! then optionally Normalize); plcc reads it so `plcc run` returns what the
//! checkpoint's users get, and records it in artifacts built from it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::task::Pooling;
use crate::diag::Diag;
use crate::fsio;

/// Pooling, then (optionally) division by the vector's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentencePipeline {
    pub pooling: Pooling,
    /// Unit-length embeddings (sentence-transformers' `Normalize`).
    pub normalize: bool,
}

impl Default for SentencePipeline {
    /// The mean over real tokens, not normalized: what plcc returns for a
    /// model without a pipeline.
    fn default() -> Self {
        SentencePipeline {
            pooling: Pooling::Mean,
            normalize: false,
        }
    }
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

fn bad(path: &Path, why: impl Into<String>) -> Diag {
    Diag::new(
        "plcc::checkpoint::bad-pipeline",
        format!("`{}`: {}", path.display(), why.into()),
    )
    .help(
        "plcc reads sentence-transformers pipelines of mean or CLS pooling, optionally normalized",
    )
}

/// The pipeline of the checkpoint in `dir`: `None` when it has no
/// `modules.json`; a diagnostic for a pipeline plcc cannot reproduce.
pub fn read_pipeline(dir: &Path) -> Result<Option<SentencePipeline>, Diag> {
    let modules_path = dir.join("modules.json");
    if !modules_path.exists() {
        return Ok(None);
    }
    let text = fsio::read_text(&modules_path, &fsio::CONFIG)?;
    let modules: Vec<Module> =
        serde_json::from_str(&text).map_err(|e| bad(&modules_path, e.to_string()))?;
    let mut pipeline = SentencePipeline::default();
    for module in &modules {
        match module.kind.rsplit('.').next().unwrap_or_default() {
            "Transformer" => {}
            "Normalize" => pipeline.normalize = true,
            "Pooling" => {
                let path = dir.join(&module.path).join("config.json");
                let text = fsio::read_text(&path, &fsio::CONFIG)?;
                let config: PoolingConfig =
                    serde_json::from_str(&text).map_err(|e| bad(&path, e.to_string()))?;
                pipeline.pooling = match (
                    config.pooling_mode_cls_token,
                    config.pooling_mode_mean_tokens,
                    config.pooling_mode_max_tokens || config.pooling_mode_mean_sqrt_len_tokens,
                ) {
                    (true, false, false) => Pooling::Cls,
                    (false, true, false) => Pooling::Mean,
                    _ => return Err(bad(&path, "a pooling mode other than mean or CLS alone")),
                };
            }
            other => {
                return Err(bad(
                    &modules_path,
                    format!("module `{other}` is not one plcc runs"),
                ))
            }
        }
    }
    Ok(Some(pipeline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(modules: &str, pooling: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "plcc-pipeline-{}-{}",
            std::process::id(),
            crate::base::sha256_hex(format!("{modules}{pooling}").as_bytes())
        ));
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        std::fs::write(dir.join("modules.json"), modules).unwrap();
        std::fs::write(dir.join("1_Pooling/config.json"), pooling).unwrap();
        dir
    }

    const MODULES: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
        {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;

    #[test]
    fn mean_pooling_then_normalize_is_read() {
        let dir = checkpoint(MODULES, r#"{"pooling_mode_mean_tokens": true}"#);
        let p = read_pipeline(&dir).unwrap().unwrap();
        assert_eq!(
            p,
            SentencePipeline {
                pooling: Pooling::Mean,
                normalize: true
            }
        );
    }

    #[test]
    fn cls_pooling_without_normalize_is_read() {
        let modules = MODULES.replace(
            r#",
        {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}"#,
            "",
        );
        let dir = checkpoint(&modules, r#"{"pooling_mode_cls_token": true}"#);
        let p = read_pipeline(&dir).unwrap().unwrap();
        assert_eq!(
            p,
            SentencePipeline {
                pooling: Pooling::Cls,
                normalize: false
            }
        );
    }

    #[test]
    fn max_pooling_is_a_diagnostic() {
        let dir = checkpoint(MODULES, r#"{"pooling_mode_max_tokens": true}"#);
        assert_eq!(
            read_pipeline(&dir).unwrap_err().code,
            "plcc::checkpoint::bad-pipeline"
        );
    }

    #[test]
    fn a_checkpoint_without_modules_has_no_pipeline() {
        let dir = std::env::temp_dir().join(format!("plcc-no-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_pipeline(&dir).unwrap(), None);
    }
}
