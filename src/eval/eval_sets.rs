//! A build's evaluation sets (`eval: [a, b, ...]`), each measured on the
//! written artifact: a sentence set by the student's fidelity to the teacher
//! (`eval::fidelity`, with the gold Spearman where the set has gold scores),
//! a retrieval set by the retrieval metrics of the student and of the
//! teacher side by side (`eval::retrieval_run`, the same code for both).
//! The report keeps one section per set, keyed by its name; the primary
//! set's fidelity is the report's headline `fidelity`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fidelity::Fidelity;
use super::gold::build_gold_metrics;
use super::retrieval::{self, METRICS};
use super::retrieval_run;
use crate::base::{DataSpec, Task};
use crate::diag::Diag;
use crate::runtime::LoadedModel;
use crate::text::data::Example;

/// What kind of set a section measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    /// Texts (or pairs as one sequence): fidelity to the teacher.
    Sentences,
    /// Queries and their documents: retrieval metrics.
    Retrieval,
}

/// One evaluation set measured on the artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSetReport {
    pub kind: SetKind,
    /// The recipe's first `eval` set, whose fidelity is the report's
    /// `fidelity`.
    pub primary: bool,
    /// The student's fidelity to the teacher (sentence sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
    /// Teacher and student retrieval metrics (retrieval sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalReport>,
}

/// A retrieval set's metrics for teacher and student.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetrievalReport {
    pub queries: usize,
    pub documents: usize,
    /// `recall@1`, `recall@5`, `recall@10`, `mrr@10`, `ndcg@10`.
    pub teacher: BTreeMap<String, f64>,
    pub student: BTreeMap<String, f64>,
    /// The student's MRR@10 over the teacher's (absent when the teacher's
    /// is 0).
    #[serde(
        rename = "student_share_of_teacher_mrr@10",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mrr_share: Option<f64>,
}

/// One set to measure: its data block and its examples as read.
pub struct EvalSet<'a> {
    pub spec: &'a DataSpec,
    pub examples: &'a [Example],
}

/// Every set of `sets` (the primary one first, whose fidelity `primary`
/// already measured) measured on `student` against `teacher`, keyed by name.
pub fn measure(
    task: Task,
    teacher: &LoadedModel,
    student: &LoadedModel,
    sets: &[EvalSet<'_>],
    primary: &Fidelity,
) -> Result<BTreeMap<String, EvalSetReport>, Diag> {
    let mut out = BTreeMap::new();
    for (i, set) in sets.iter().enumerate() {
        let name = set.spec.name.value.clone();
        let report = match (set.spec.retrieval, task) {
            (true, Task::Embedding { pooling }) => {
                let rs = retrieval_run::retrieval_set(&name, set.examples)?;
                let student = retrieval_run::measure(student, pooling, &rs)?;
                let teacher = retrieval_run::measure(teacher, pooling, &rs)?;
                EvalSetReport {
                    kind: SetKind::Retrieval,
                    primary: i == 0,
                    fidelity: None,
                    retrieval: Some(RetrievalReport {
                        queries: rs.queries.len(),
                        documents: rs.documents.len(),
                        mrr_share: retrieval::share_of(&student, &teacher),
                        teacher,
                        student,
                    }),
                }
            }
            _ if i == 0 => sentences(primary.clone(), true),
            _ => {
                let mut f = super::measure::measure(task, teacher, student, &name, set.examples)?;
                let gold = build_gold_metrics(task, teacher, student, set.examples, f.max_tokens)?;
                f.metrics.extend(gold);
                sentences(f, false)
            }
        };
        out.insert(name, report);
    }
    Ok(out)
}

fn sentences(fidelity: Fidelity, primary: bool) -> EvalSetReport {
    EvalSetReport {
        kind: SetKind::Sentences,
        primary,
        fidelity: Some(fidelity),
        retrieval: None,
    }
}

/// Whether the sections say more than the report's headline fidelity: more
/// than one set, or a retrieval set.
pub fn worth_showing(sets: &BTreeMap<String, EvalSetReport>) -> bool {
    sets.len() > 1 || sets.values().any(|s| s.retrieval.is_some())
}

/// The sections in the order they are shown: the primary set, then the
/// others by name.
pub fn in_order(sets: &BTreeMap<String, EvalSetReport>) -> Vec<(&String, &EvalSetReport)> {
    let mut v: Vec<_> = sets.iter().collect();
    v.sort_by_key(|(name, s)| (!s.primary, name.as_str()));
    v
}

/// The report's section on its evaluation sets (empty when
/// [`worth_showing`] says so).
pub fn markdown(sets: &BTreeMap<String, EvalSetReport>) -> String {
    if !worth_showing(sets) {
        return String::new();
    }
    let mut s = String::from("\n## Evaluation sets\n\n");
    let ordered = in_order(sets);
    let fidelity: Vec<_> = ordered
        .iter()
        .filter_map(|(n, r)| r.fidelity.as_ref().map(|f| (n, r.primary, f)))
        .collect();
    if !fidelity.is_empty() {
        s.push_str("Fidelity of the student to the teacher on each sentence set:\n\n");
        s.push_str("| set | examples | mean cosine | min cosine | similarity Spearman |\n");
        s.push_str("|---|---:|---:|---:|---:|\n");
        for (name, primary, f) in fidelity {
            let cell = |k: &str| f.metrics.get(k).map_or("-".into(), |v| format!("{v:.4}"));
            s.push_str(&format!(
                "| `{name}`{} | {} | {} | {} | {} |\n",
                if primary { " (primary)" } else { "" },
                f.examples,
                cell("mean_cosine"),
                cell("min_cosine"),
                cell("similarity_spearman"),
            ));
        }
    }
    for (name, r) in ordered {
        if let Some(rr) = &r.retrieval {
            s.push_str(&retrieval_markdown(name, rr));
        }
    }
    s
}

fn retrieval_markdown(name: &str, r: &RetrievalReport) -> String {
    let mut s = format!(
        "\nRetrieval on `{name}`: {} queries over {} documents, ranked by the cosine of sentence embeddings:\n\n| model |",
        r.queries, r.documents
    );
    for m in METRICS {
        s.push_str(&format!(" {m} |"));
    }
    s.push_str(&format!("\n|---|{}\n", "---:|".repeat(METRICS.len())));
    for (side, metrics) in [("teacher", &r.teacher), ("student", &r.student)] {
        s.push_str(&format!("| {side} |"));
        for m in METRICS {
            match metrics.get(m) {
                Some(v) => s.push_str(&format!(" {v:.4} |")),
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    if let Some(share) = r.mrr_share {
        s.push_str(&format!(
            "\nThe student keeps {:.1}% of the teacher's MRR@10.\n",
            100.0 * share
        ));
    }
    s
}
