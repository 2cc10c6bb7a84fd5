//! `plcc eval`: scores a model (and with `--against`, a second one side by
//! side) on the user's labelled data: the gold Spearman and Pearson of an
//! embedding model's pair similarities, its recall, MRR and nDCG on a
//! retrieval set (`eval::retrieval`), a classifier's accuracy and macro
//! F1, or a language model's or an encoder-decoder's perplexity
//! (`eval::gold`). Text or JSON out.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::Device;
use clap::{Args, ValueEnum};

use super::eval_exits;
use super::options::{DeviceOption, ThreadsOption};
use super::output::print_json;
use super::vocab_warning::{warn_if_respelled, Reader};
use crate::base::{DataFormat, LabelSet, Pooling, Task};
use crate::diag::Diag;
use crate::eval::gold::{self, EvalReport, Score};
use crate::eval::gold_data::{model_task, parse_column, read_labelled, DataOptions, Labelled};
use crate::eval::retrieval::RetrievalSet;
use crate::eval::retrieval_run;
use crate::runtime::pool::on_pool;
use crate::runtime::{load_model, LoadedModel};
use crate::text::data::Example;
use crate::text::TextTokenizer;

/// How an embedding model pools its token states into one vector.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PoolingArg {
    /// The mean over real (non-padding) tokens.
    Mean,
    /// The first token (`[CLS]`).
    Cls,
}

impl From<PoolingArg> for Pooling {
    fn from(p: PoolingArg) -> Pooling {
        match p {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Cls => Pooling::Cls,
        }
    }
}

/// The layout of a data file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Tab-separated values, one example per line.
    Tsv,
    /// JSON Lines: one object per line.
    Jsonl,
    /// Plain text, one text per line (language models).
    Text,
}

impl From<FormatArg> for DataFormat {
    fn from(f: FormatArg) -> DataFormat {
        match f {
            FormatArg::Tsv => DataFormat::Tsv,
            FormatArg::Jsonl => DataFormat::Jsonl,
            FormatArg::Text => DataFormat::Text,
        }
    }
}

/// Score a model on labelled data: the Spearman correlation of an
/// embedding model's pair similarities with gold scores, its retrieval
/// metrics on query and document pairs, a classifier's accuracy and macro
/// F1, or a language model's perplexity.
#[derive(Args, Debug)]
#[command(mut_arg("device", |a| a.help("Where the models run")))]
pub struct EvalArgs {
    /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
    pub model: String,
    /// The labelled data: TSV (`text<TAB>text_pair<TAB>score` for
    /// embedding models, or `query<TAB>document` for retrieval;
    /// `text[<TAB>text_pair]<TAB>label` for classifiers; a header row is
    /// skipped) or JSON Lines (`text`, `text_pair`, `score` or `label`;
    /// `query`, `document`); plain text lines for language models.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Score a second model on the same data and show both with the
    /// difference (checkpoint directory, `builtin:NAME` or artifact).
    #[arg(long, value_name = "MODEL")]
    pub against: Option<String>,
    /// Pooling of an embedding model (default: the pooling an artifact's
    /// manifest records; mean for a checkpoint).
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
    /// The data file's layout (default: from its extension, else from its
    /// first line).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The column of the first text: a TSV column number (from 0) or a
    /// JSONL key (default: 0 or `text`).
    #[arg(long, value_name = "COLUMN")]
    pub text_column: Option<String>,
    /// The column of the second text (default: 1 or `text_pair`).
    #[arg(long, value_name = "COLUMN")]
    pub pair_column: Option<String>,
    /// The column of the gold score or class label (default: 2 for
    /// pairs, the last of two or three columns for a classifier, or the
    /// key `score` (else `label`) in JSON Lines).
    #[arg(long, value_name = "COLUMN")]
    pub label_column: Option<String>,
    /// Read the data as a retrieval set: each row a query and a document
    /// relevant to it, the documents of all rows the corpus searched
    /// (default: a file of exactly two text columns, or JSON Lines with
    /// `query` and `document`, reads so).
    #[arg(long, conflicts_with_all = ["text_column", "pair_column", "label_column"])]
    pub retrieval: bool,
    /// The column of a retrieval set's queries (default: 0 or `query`).
    #[arg(long, value_name = "COLUMN", conflicts_with_all = ["text_column", "pair_column", "label_column"])]
    pub query_column: Option<String>,
    /// The column of a retrieval set's documents (default: 1 or
    /// `document`).
    #[arg(long, value_name = "COLUMN", conflicts_with_all = ["text_column", "pair_column", "label_column"])]
    pub document_column: Option<String>,
    #[command(flatten)]
    pub threads: ThreadsOption,
    #[command(flatten)]
    pub device: DeviceOption,
    /// Print the scores as one JSON object (`spearman`, `pearson`, or
    /// `recall@1`, `recall@5`, `recall@10`, `mrr@10`, `ndcg@10`; `n`,
    /// `model`, `against`, ...) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl EvalArgs {
    /// How to read the data file: its layout and columns.
    fn data_options(&self) -> DataOptions {
        DataOptions {
            format: self.format.map(DataFormat::from),
            text: self.text_column.as_deref().map(parse_column),
            text_pair: self.pair_column.as_deref().map(parse_column),
            label: self.label_column.as_deref().map(parse_column),
            retrieval: self.retrieval,
            query: self.query_column.as_deref().map(parse_column),
            document: self.document_column.as_deref().map(parse_column),
        }
    }
}

/// Runs `plcc eval`.
pub fn run(args: &EvalArgs) -> Result<ExitCode, Diag> {
    args.threads.apply()?;
    on_pool(|| evaluate(args))
}

/// `plcc eval` on the threads `run` set up.
fn evaluate(args: &EvalArgs) -> Result<ExitCode, Diag> {
    let device = args.device.open()?;
    let pooling = args.pooling.map(Pooling::from);
    let model = load_model(&args.model, &device)?;
    let task = model_task(&args.model, &model, pooling)?;
    let labels = model.labels();
    let data = read_labelled(&args.data, task, labels.as_ref(), &args.data_options())?;
    let name = args.data.display().to_string();
    let examples = data.examples.clone();
    let scoring = Scoring::of(&name, task, data)?;
    let score = scoring.score(&model)?;
    let reader = (model.tokenizer.clone(), model.config.vocab_size);
    drop(model);
    let against = match &args.against {
        Some(spec) => {
            let (other, other_task) =
                against_model(args, spec, &device, (task, labels), reader, &examples)?;
            let score = scoring.with_task(other_task).score(&other)?;
            Some((score, other))
        }
        None => None,
    };
    let other = against
        .as_ref()
        .map(|(s, m)| (m, s.metrics.get("accuracy").copied()));
    let curve = eval_exits::curve(&args.model, &name, &examples, other)?;
    let mut report = EvalReport::new(name, score, against.map(|(s, _)| s));
    report.accuracy_vs_flops = curve;
    if args.json {
        print_json(&report)?;
    } else {
        print_text(&report);
        if let Some(c) = &report.accuracy_vs_flops {
            eval_exits::print_curve(c, args.against.as_deref());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--against` model `spec` and its task, checked against the first
/// model's task and labels, with a warning when its tokenizer spells the
/// data's texts differently from the first model's (`reader`: its
/// tokenizer and vocabulary size).
fn against_model(
    args: &EvalArgs,
    spec: &str,
    device: &Device,
    (task, labels): (Task, Option<LabelSet>),
    (tokenizer, vocab_size): (TextTokenizer, usize),
    examples: &[Example],
) -> Result<(LoadedModel, Task), Diag> {
    let other = load_model(spec, device)?;
    let other_task = model_task(spec, &other, args.pooling.map(Pooling::from))?;
    if !same_kind(task, other_task) {
        return Err(Diag::new(
            "plcc::eval::different-tasks",
            format!(
                "`{}` is a {} model but `{spec}` is a {} model",
                args.model,
                task.name(),
                other_task.name()
            ),
        )
        .help("compare two models of the same task on the same data"));
    }
    if let (Some(a), Some(b)) = (&labels, other.labels()) {
        if *a != b {
            return Err(Diag::new(
                "plcc::eval::different-labels",
                format!(
                    "`{}` classifies into {} but `{spec}` into {}",
                    args.model,
                    a.shown(),
                    b.shown()
                ),
            )
            .help("compare two classifiers with the same labels in the same order"));
        }
    }
    let reader = Reader {
        name: &args.model,
        tokenizer: &tokenizer,
        vocab_size,
    };
    let texts: Vec<&str> = examples
        .iter()
        .flat_map(|e| std::iter::once(e.text.as_str()).chain(e.pair.as_deref()))
        .collect();
    let input = format!("`{}`", args.data.display());
    warn_if_respelled(&reader, &Reader::of(spec, &other), &texts, &input)?;
    Ok((other, other_task))
}

/// How the data are scored: gold labels for the model's task, or a
/// retrieval set for an embedding model with its pooling.
enum Scoring {
    Gold(Task, Vec<Example>),
    Retrieval(Pooling, RetrievalSet),
}

impl Scoring {
    fn of(name: &str, task: Task, data: Labelled) -> Result<Scoring, Diag> {
        match (task, data.retrieval) {
            (Task::Embedding { pooling }, true) => Ok(Scoring::Retrieval(
                pooling,
                retrieval_run::retrieval_set(name, &data.examples)?,
            )),
            _ => Ok(Scoring::Gold(task, data.examples)),
        }
    }

    /// The same data scored for a model doing `task` (its own pooling).
    fn with_task(self, task: Task) -> Scoring {
        match (self, task) {
            (Scoring::Retrieval(_, set), Task::Embedding { pooling }) => {
                Scoring::Retrieval(pooling, set)
            }
            (Scoring::Gold(_, examples), task) => Scoring::Gold(task, examples),
            (other, _) => other,
        }
    }

    fn score(&self, model: &LoadedModel) -> Result<Score, Diag> {
        match self {
            Scoring::Gold(task, examples) => gold::score(model, *task, examples),
            Scoring::Retrieval(pooling, set) => retrieval_run::score(model, *pooling, set),
        }
    }
}

/// Whether two tasks are scored the same way (pooling may differ).
fn same_kind(a: Task, b: Task) -> bool {
    a.name() == b.name()
}

/// What the numbers measure, for the text output.
fn measure_text(s: &Score) -> String {
    match (s.task, s.pooling) {
        ("embedding", Some(p)) if s.documents.is_some() => format!(
            "{} queries over {} documents: cosine similarity of the embeddings ({p} pooling), ranked",
            s.n,
            s.documents.unwrap_or(0)
        ),
        ("embedding", Some(p)) => format!(
            "{} pairs: cosine similarity of the two embeddings ({p} pooling) against the gold scores",
            s.n
        ),
        ("classification", _) => format!("{} labelled texts: predicted class against the label", s.n),
        ("seq2seq", _) => format!(
            "{} examples: perplexity of the target (a pair's second text, a single text's reconstruction)",
            s.n
        ),
        _ => format!("{} texts: next-token perplexity", s.n),
    }
}

fn print_text(r: &EvalReport) {
    let a = &r.score;
    println!("data         {}", r.data);
    println!("measure      {}", measure_text(a));
    println!("model        {}", a.model);
    let Some(b) = &r.against else {
        for (name, v) in a.shown() {
            println!("{name:<12} {}", number(name, v));
        }
        print_confusion(a);
        return;
    };
    println!("against      {}", b.model);
    println!(
        "{:<12} {:>14} {:>14} {:>14}",
        "", "model", "against", "difference"
    );
    for (name, v) in a.shown() {
        let other = b.metrics.get(name).copied();
        let diff = r
            .difference
            .as_ref()
            .and_then(|d| d.get(name))
            .map_or(String::new(), |d| format!("{d:+.4}"));
        println!(
            "{name:<12} {:>14} {:>14} {diff:>14}",
            number(name, v),
            other.map_or("-".into(), |o| number(name, o))
        );
    }
    print_confusion(a);
    print_confusion(b);
    if let Some(share) = r.mrr_share {
        println!("mrr@10 share {:>14}", format!("{:.1}%", 100.0 * share));
    }
}

/// A classifier's confusion counts, when it has them.
fn print_confusion(s: &Score) {
    if let Some(c) = &s.confusion {
        println!(
            "confusion    {} (rows: gold label, columns: predicted)",
            s.model
        );
        for line in c.table() {
            println!("  {line}");
        }
    }
}

/// A metric's value as shown: counts whole, others to four places.
fn number(name: &str, v: f64) -> String {
    if name == "tokens" {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}
