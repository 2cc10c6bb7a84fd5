//! The library without the command line: open a model, embed or score
//! strings, read an artifact's report, check and build a recipe, score a
//! model on labelled pairs or by retrieval, calibrate an artifact's exits.
//! Everything `plcc run`, `plcc build`, `plcc eval` and `plcc calibrate` do
//! is reachable from here; nothing prints.
//!
//! Embed with the built-in tiny BERT (no download):
//!
//! ```
//! let model = plcc::api::Model::open("builtin:tiny-bert")?;
//! let vectors = model.embed(&["a cat sat on the mat", "a dog lay on the rug"])?;
//! assert_eq!(vectors.len(), 2);
//! assert_eq!(vectors[0].len(), 64);
//! let similarity = plcc::api::cosine(&vectors[0], &vectors[1]);
//! assert!(similarity > -1.0 && similarity <= 1.0 + 1e-6);
//! # Ok::<(), plcc::Diag>(())
//! ```
//!
//! Build an int8 artifact from a recipe, open it and read its report:
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("plcc-api-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("sentences.txt"), "the cat sat\na dog ran\nbirds sing at dawn\n").unwrap();
//! std::fs::write(
//!     dir.join("int8.pc"),
//!     "teacher: \"builtin:tiny-bert\"\neval: s\ndata s \"sentences.txt\" {}\n\
//!      quantize weights \"encoder.layer.*\" { bits: 8 }\n\
//!      quantize activations \"encoder.layer.*\" { bits: 8 }\n",
//! )
//! .unwrap();
//! let artifact = plcc::api::build(&dir.join("int8.pc"), &dir.join("out"))?;
//! let student = plcc::api::Model::open(artifact.to_str().unwrap())?;
//! let report = student.report().expect("an artifact has a report");
//! let cosine = report["fidelity"]["metrics"]["mean_cosine"].as_f64().unwrap();
//! assert!(cosine > 0.9);
//! let teacher = plcc::api::Model::open("builtin:tiny-bert")?;
//! let (a, b) = (student.embed(&["the cat sat"])?, teacher.embed(&["the cat sat"])?);
//! assert!(plcc::api::cosine(&a[0], &b[0]) > 0.9);
//! # Ok::<(), plcc::Diag>(())
//! ```
//!
//! Score on labelled pairs (the Spearman correlation of cosine
//! similarities with gold scores, as `plcc eval` gives it):
//!
//! ```
//! let model = plcc::api::Model::open("builtin:tiny-bert")?;
//! let pairs = [("a cat sat", "a cat sat down", 0.9), ("a cat sat", "stocks fell", 0.1),
//!              ("rain is wet", "water falls", 0.5), ("one two", "three four", 0.3)];
//! let score = model.spearman(&pairs)?;
//! assert!((-1.0..=1.0).contains(&score));
//!
//! // Retrieval: each query with a document relevant to it; the documents
//! // of all rows are the corpus searched.
//! let rows = [("a cat sat", "a cat sat on the mat"), ("stocks fell", "markets fell today")];
//! let metrics = model.retrieval(&rows)?;
//! assert!(metrics["recall@1"] <= metrics["recall@10"]);
//! # Ok::<(), plcc::Diag>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::base::Task;
use crate::diag::Diag;
use crate::eval::{gold, gold_data, retrieval_run};
use crate::lower::reporter::Silent;
use crate::lower::BuildOptions;
use crate::runtime::run::record::Record;
use crate::runtime::run::runner::{run_all, Schedule};
use crate::runtime::run::token_rows::tokenize;
use crate::runtime::{load_model, LoadedModel};
use crate::text::data::Example;

/// Accuracy and macro F1 of predicted classes against gold ones (classes
/// below the count given), as `plcc eval` reports them for a classifier.
pub use crate::eval::gold::accuracy_and_macro_f1;

/// Calibrates the exit thresholds of the artifact in a folder on lines of
/// text for a target and writes them into its manifest, as `plcc calibrate`
/// does.
pub use crate::eval::exits::calibrate;

/// Texts per forward pass.
const BATCH: usize = 32;

/// A model ready to run on the CPU: a checkpoint, a built-in model or an
/// artifact, with the artifact's build report when it has one.
pub struct Model {
    loaded: LoadedModel,
    spec: String,
    /// What the model does (an artifact's recorded task).
    task: Task,
    report: Option<serde_json::Value>,
}

impl Model {
    /// Opens `spec`: a checkpoint directory, `builtin:NAME` or an artifact
    /// directory (checked byte by byte against its manifest).
    pub fn open(spec: &str) -> Result<Model, Diag> {
        let loaded = load_model(spec, &Device::Cpu)?;
        let task = gold_data::model_task(spec, &loaded, None)?;
        let dir = Path::new(spec);
        let report = crate::artifact::is_artifact_dir(dir)
            .then(|| std::fs::read(dir.join("report.json")).ok())
            .flatten()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Ok(Model {
            loaded,
            spec: spec.to_string(),
            task,
            report,
        })
    }

    /// One output record per text: the embedding (the model's pipeline),
    /// the logits, and the exit layer where the model has exits.
    pub fn run(&self, texts: &[&str]) -> Result<Vec<Record>, Diag> {
        let lines: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        let tokenized = tokenize(&self.loaded, &lines, None)?;
        run_all(&self.loaded, &tokenized.rows, BATCH, Schedule::SideBySide)
    }

    /// The sentence embedding of each text (an encoder's; empty for GPT-2).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Diag> {
        Ok(self
            .run(texts)?
            .into_iter()
            .map(|r| r.embedding.unwrap_or_default())
            .collect())
    }

    /// The logits of each text: a classifier's classes, or a language
    /// model's next token after the text (empty for an encoder without a
    /// head).
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, Diag> {
        Ok(self
            .run(texts)?
            .into_iter()
            .map(|r| r.logits.unwrap_or_default())
            .collect())
    }

    /// The Spearman correlation of the cosine similarity of each pair's
    /// embeddings with its gold score (at least three pairs).
    pub fn spearman(&self, pairs: &[(&str, &str, f64)]) -> Result<f64, Diag> {
        let examples: Vec<Example> = pairs
            .iter()
            .map(|(a, b, s)| Example {
                pair: Some(b.to_string()),
                score: Some(*s),
                ..Example::text(*a)
            })
            .collect();
        let score = gold::score(&self.loaded, self.task, &examples)?;
        score.metrics.get("spearman").copied().ok_or_else(|| {
            Diag::new(
                "plcc::eval::not-pairs",
                format!("`{}` is not an embedding model", self.spec),
            )
        })
    }

    /// The cosine similarity of each pair's embeddings, pooled as the
    /// model's task says: the numbers `plcc eval` correlates with gold
    /// scores.
    pub fn similarities(&self, pairs: &[(&str, &str)]) -> Result<Vec<f64>, Diag> {
        let Task::Embedding { pooling } = self.task else {
            return Err(Diag::new(
                "plcc::eval::not-pairs",
                format!("`{}` is not an embedding model", self.spec),
            ));
        };
        let examples: Vec<Example> = pairs
            .iter()
            .map(|(a, b)| Example {
                pair: Some(b.to_string()),
                ..Example::text(*a)
            })
            .collect();
        let max_len = self.loaded.config.max_positions;
        gold::pair_similarities(&self.loaded, pooling, &examples, max_len)
    }

    /// The retrieval metrics (`recall@1`, `recall@5`, `recall@10`, `mrr@10`,
    /// `ndcg@10`) of `(query, document)` rows, each a query and a document
    /// relevant to it, the documents of all rows the corpus searched, as
    /// `plcc eval` gives them on a retrieval set.
    pub fn retrieval(&self, rows: &[(&str, &str)]) -> Result<BTreeMap<String, f64>, Diag> {
        let Task::Embedding { pooling } = self.task else {
            return Err(Diag::new(
                "plcc::eval::not-pairs",
                format!("`{}` is not an embedding model", self.spec),
            ));
        };
        let examples: Vec<Example> = rows
            .iter()
            .map(|(q, d)| Example {
                pair: Some(d.to_string()),
                ..Example::text(*q)
            })
            .collect();
        let set = retrieval_run::retrieval_set("the rows", &examples)?;
        retrieval_run::measure(&self.loaded, pooling, &set)
    }

    /// The artifact's build report (`report.json`), if this is an artifact.
    pub fn report(&self) -> Option<&serde_json::Value> {
        self.report.as_ref()
    }

    /// The loaded model, for everything else the runtime offers.
    pub fn loaded(&self) -> &LoadedModel {
        &self.loaded
    }
}

/// The cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    crate::runtime::run::exit_rule::cosine(a, b) as f32
}

/// Builds the recipe at `recipe` into `output` without training limits or
/// progress output, as `plcc build RECIPE -o OUTPUT` does; returns the
/// artifact's directory.
pub fn build(recipe: &Path, output: &Path) -> Result<PathBuf, Diag> {
    let options = BuildOptions {
        output: Some(output.to_path_buf()),
        max_steps: None,
        resume: false,
        allow_outside: false,
        no_wait: false,
        device: None,
    };
    Ok(crate::build(recipe, &options, &crate::pass_registry(), &Silent)?.dir)
}
