//! The student's fidelity to the teacher measured while it trains: before
//! training, after each stage and, with `eval_every: N`, every N steps of a
//! stage; and the weights of a stage's best evaluation, which the stage
//! hands on with `keep: best`.

use std::collections::BTreeMap;

use candle_core::Tensor;

use super::checkpoint::BestPoint;
use super::optim::Param;
use super::student_net::TrainableNet;
use super::train_error;
use crate::diag::Diag;
use crate::eval::fidelity::Fidelity;
use crate::eval::measure::{measure_against, TeacherSide};
use crate::eval::report::StageEval;
use crate::runtime::LoadedModel;
use crate::text::data::Example;
use crate::text::TextTokenizer;

/// What a stage evaluates the student on.
#[derive(Clone, Copy)]
pub struct EvalData<'a> {
    pub teacher: &'a LoadedModel,
    /// The data set's name in the recipe.
    pub name: &'a str,
    pub examples: &'a [Example],
    /// The teacher's outputs on `examples`, computed once for every
    /// evaluation.
    pub teacher_side: &'a TeacherSide,
}

/// The student as a runnable model (inference mode, weights fake-quantized)
/// reading `tokenizer`, on `template`'s device.
pub fn snapshot(
    net: &mut TrainableNet,
    template: &LoadedModel,
    tokenizer: &TextTokenizer,
    name: &str,
) -> Result<LoadedModel, Diag> {
    net.refresh().map_err(train_error)?;
    // Evaluation runs every sample to full depth: no exit policies.
    Ok(LoadedModel {
        classifier: net.classifier.clone(),
        exits: net.exits.clone(),
        ..LoadedModel::new(
            name,
            net.config.clone(),
            net.network.clone(),
            tokenizer.clone(),
            &template.device,
        )
    })
}

/// Measures the student's fidelity to the teacher on `data`, each reading it
/// through its own tokenizer (`tokenizer`: the student's).
pub fn measure(
    net: &mut TrainableNet,
    data: &EvalData,
    tokenizer: &TextTokenizer,
) -> Result<Fidelity, Diag> {
    let student = snapshot(net, data.teacher, tokenizer, "student")?;
    measure_against(data.teacher_side, &student, data.name, data.examples)
}

/// [`measure`], labelled with the point of training it was taken at.
pub fn evaluate(
    net: &mut TrainableNet,
    data: &EvalData,
    tokenizer: &TextTokenizer,
    after: &str,
) -> Result<StageEval, Diag> {
    Ok(StageEval {
        after: after.to_string(),
        fidelity: measure(net, data, tokenizer)?,
    })
}

/// The weights of a stage's best evaluation so far.
pub struct Best {
    pub point: BestPoint,
    pub fidelity: Option<Fidelity>,
    /// Parameter name → a copy of its value at `point.step`.
    pub weights: BTreeMap<String, Tensor>,
}

/// The checkpoint tensor name of a kept best weight.
pub fn best_key(param: &str) -> String {
    format!("best.{}", super::param_key(param))
}

impl Best {
    /// Keeps a copy of `params` as the weights of `point`.
    pub fn take(point: BestPoint, fidelity: Fidelity, params: &[Param]) -> Result<Best, Diag> {
        let weights = params
            .iter()
            .map(|p| Ok((p.name.clone(), p.var.as_tensor().copy()?)))
            .collect::<candle_core::Result<_>>()
            .map_err(train_error)?;
        Ok(Best {
            point,
            fidelity: Some(fidelity),
            weights,
        })
    }

    /// The best weights a checkpoint holds, when it holds some.
    pub fn from_checkpoint(
        point: Option<BestPoint>,
        state: &BTreeMap<String, Tensor>,
        params: &[Param],
    ) -> Option<Best> {
        let point = point?;
        let weights = params
            .iter()
            .map(|p| Some((p.name.clone(), state.get(&best_key(&p.name))?.clone())))
            .collect::<Option<_>>()?;
        Some(Best {
            point,
            fidelity: None,
            weights,
        })
    }

    /// Sets `params` to the kept weights.
    pub fn restore(&self, params: &[Param]) -> Result<(), Diag> {
        for p in params {
            if let Some(w) = self.weights.get(&p.name) {
                p.var.set(w).map_err(train_error)?;
            }
        }
        Ok(())
    }

    /// The kept weights as checkpoint tensors (`best.param.NAME`).
    pub fn state(&self) -> impl Iterator<Item = (String, Tensor)> + '_ {
        self.weights.iter().map(|(k, v)| (best_key(k), v.clone()))
    }
}

/// The metrics of an evaluation in words: `mean_cosine 0.9012,
/// similarity_spearman 0.8800` (the minimum cosine left out).
pub fn metrics_text(f: &Fidelity) -> String {
    f.metrics
        .iter()
        .filter(|(k, _)| k.as_str() != "min_cosine")
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}
