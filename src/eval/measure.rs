//! Fidelity measured by running both models: the teacher's side of a
//! comparison (its rows and its outputs over the evaluation data, computed
//! once and kept, since the teacher never changes while a student trains),
//! and the comparison of a student against it: cosine and similarity
//! Spearman of sentence embeddings, prediction agreement and accuracy,
//! perplexity ratio and top-1 next-token agreement.

use std::collections::BTreeMap;

use super::fidelity::{
    embedding_metrics, encode_for, inputs_for, next_token_stats, rows2, Agreement, Encoded,
    Fidelity, LmCounts, BATCH, MEASURED_TOKENS,
};
use crate::base::Task;
use crate::diag::Diag;
use crate::runtime::model::heads::pool;
use crate::runtime::run::exit_rule::{argmax, cosine};
use crate::runtime::tensor_error;
use crate::runtime::{Inputs, LoadedModel};
use crate::text::data::Example;

/// One model's outputs for one batch, in the form the comparison reads.
enum BatchOutputs {
    /// Pooled sentence embeddings, one a row.
    Embeddings(Vec<Vec<f32>>),
    /// Class logits, one a row.
    Logits(Vec<Vec<f32>>),
    /// Per row and position: the next token's log-probability and the most
    /// likely next token.
    NextTokens(Vec<Vec<f32>>, Vec<Vec<u32>>),
}

/// The teacher's side of a comparison over some examples: how it reads
/// them, and its outputs batch by batch.
pub struct TeacherSide {
    task: Task,
    rows: Vec<Encoded>,
    /// Examples longer than the measurement reads.
    truncated: usize,
    /// The length examples are cut to.
    max_len: usize,
    batches: Vec<BatchOutputs>,
}

/// Runs the teacher over `examples` once, for any number of comparisons.
pub fn teacher_side(
    task: Task,
    teacher: &LoadedModel,
    examples: &[Example],
) -> Result<TeacherSide, Diag> {
    let max_len = teacher.config.max_positions.min(MEASURED_TOKENS);
    let (rows, truncated) = encode_for(teacher, max_len, examples)?;
    let batches = rows
        .chunks(BATCH)
        .map(|chunk| batch_outputs(task, teacher, &inputs_for(teacher, chunk)?))
        .collect::<Result<_, Diag>>()?;
    Ok(TeacherSide {
        task,
        rows,
        truncated,
        max_len,
        batches,
    })
}

/// Runs teacher and student over `examples` and compares them. Each model
/// reads the examples through its own tokenizer (a pruned vocabulary gives
/// the student other ids, and some words other pieces, than the teacher).
pub fn measure(
    task: Task,
    teacher: &LoadedModel,
    student: &LoadedModel,
    data: &str,
    examples: &[Example],
) -> Result<Fidelity, Diag> {
    measure_against(
        &teacher_side(task, teacher, examples)?,
        student,
        data,
        examples,
    )
}

/// Runs the student over `examples` and compares it with the teacher's
/// side computed on the same examples.
pub fn measure_against(
    side: &TeacherSide,
    student: &LoadedModel,
    data: &str,
    examples: &[Example],
) -> Result<Fidelity, Diag> {
    let (rows_s, _) = encode_for(student, side.max_len, examples)?;
    let mut tally = Tally::default();
    for (b, (chunk_t, chunk_s)) in side
        .rows
        .chunks(BATCH)
        .zip(rows_s.chunks(BATCH))
        .enumerate()
    {
        let labels: Vec<Option<usize>> = examples[b * BATCH..b * BATCH + chunk_t.len()]
            .iter()
            .map(|e| e.label)
            .collect();
        let s = batch_outputs(side.task, student, &inputs_for(student, chunk_s)?)?;
        tally.add(&side.batches[b], &s, &labels, (chunk_t, chunk_s))?;
    }
    let metrics = tally.metrics(side.task, examples.len());
    Ok(Fidelity {
        data: data.to_string(),
        examples: examples.len(),
        truncated: side.truncated,
        max_tokens: side.max_len,
        metrics,
    })
}

/// What `m` gives for one batch, as `task` compares it.
fn batch_outputs(task: Task, m: &LoadedModel, inputs: &Inputs) -> Result<BatchOutputs, Diag> {
    match task {
        Task::Embedding { pooling } => {
            let (out, _) = m.forward(inputs).map_err(tensor_error)?;
            let pooled = pool(&out.last_hidden, &inputs.mask, pooling).map_err(tensor_error)?;
            Ok(BatchOutputs::Embeddings(rows2(&pooled)?))
        }
        Task::Classification { .. } => {
            let (_, logits) = m.forward(inputs).map_err(tensor_error)?;
            let logits = logits.ok_or_else(|| {
                Diag::new(
                    "plcc::build::no-head",
                    "the model has no classification head",
                )
            })?;
            Ok(BatchOutputs::Logits(rows2(&logits)?))
        }
        Task::CausalLm | Task::Seq2Seq => {
            let (lp, top) = next_token_stats(m, inputs)?;
            Ok(BatchOutputs::NextTokens(lp, top))
        }
    }
}

/// The running sums of a comparison.
#[derive(Default)]
struct Tally {
    cos: Vec<f64>,
    teacher_emb: Vec<Vec<f32>>,
    student_emb: Vec<Vec<f32>>,
    agreement: Agreement,
    lm: LmCounts,
}

impl Tally {
    /// Adds one batch: the teacher's and the student's outputs, the
    /// examples' labels and the rows each side read.
    fn add(
        &mut self,
        t: &BatchOutputs,
        s: &BatchOutputs,
        labels: &[Option<usize>],
        (rows_t, rows_s): (&[Encoded], &[Encoded]),
    ) -> Result<(), Diag> {
        match (t, s) {
            (BatchOutputs::Embeddings(t), BatchOutputs::Embeddings(s)) => {
                self.cos.extend(t.iter().zip(s).map(|(a, b)| cosine(a, b)));
                self.teacher_emb.extend(t.iter().cloned());
                self.student_emb.extend(s.iter().cloned());
            }
            (BatchOutputs::Logits(t), BatchOutputs::Logits(s)) => {
                let a = &mut self.agreement;
                for ((tl, sl), label) in t.iter().zip(s).zip(labels) {
                    let (tp, sp) = (argmax(tl), argmax(sl));
                    a.examples += 1;
                    a.agree += usize::from(tp == sp);
                    if let Some(l) = label {
                        a.labelled += 1;
                        a.correct_teacher += usize::from(tp == *l);
                        a.correct_student += usize::from(sp == *l);
                    }
                }
            }
            (BatchOutputs::NextTokens(t_lp, t_top), BatchOutputs::NextTokens(s_lp, s_top)) => {
                self.add_next_tokens((t_lp, t_top), (s_lp, s_top), (rows_t, rows_s));
            }
            _ => {
                return Err(Diag::new(
                    "plcc::eval::missing-output",
                    "teacher and student outputs differ in kind",
                ))
            }
        }
        Ok(())
    }

    fn add_next_tokens(
        &mut self,
        (t_lp, t_top): (&[Vec<f32>], &[Vec<u32>]),
        (s_lp, s_top): (&[Vec<f32>], &[Vec<u32>]),
        (rows_t, rows_s): (&[Encoded], &[Encoded]),
    ) {
        let lm = &mut self.lm;
        for (i, ((ids_t, _), (ids_s, _))) in rows_t.iter().zip(rows_s).enumerate() {
            let (nt, ns) = (ids_t.len().saturating_sub(1), ids_s.len().saturating_sub(1));
            lm.nll_teacher -= t_lp
                .get(i)
                .map_or(0.0, |r| r[..nt].iter().map(|&x| x as f64).sum());
            lm.nll_student -= s_lp
                .get(i)
                .map_or(0.0, |r| r[..ns].iter().map(|&x| x as f64).sum());
            lm.tokens_teacher += nt;
            lm.tokens_student += ns;
            // Next-token agreement where both read the same tokens.
            if ids_t == ids_s {
                if let (Some(a), Some(b)) = (t_top.get(i), s_top.get(i)) {
                    lm.top1 += a[..nt].iter().zip(&b[..nt]).filter(|(x, y)| x == y).count();
                    lm.compared += nt;
                }
            }
        }
    }

    fn metrics(&self, task: Task, examples: usize) -> BTreeMap<String, f64> {
        match task {
            Task::Embedding { .. } => {
                embedding_metrics(&self.cos, &self.teacher_emb, &self.student_emb)
            }
            Task::Classification { .. } => Agreement {
                examples,
                ..self.agreement
            }
            .metrics(),
            Task::CausalLm | Task::Seq2Seq => self.lm.metrics(),
        }
    }
}
