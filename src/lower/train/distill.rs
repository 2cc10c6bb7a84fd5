//! The training part of `plcc build`: the `pretrain` stage (the teacher
//! itself trained on text before it is compressed) and the distillation
//! stages on the student, each with its evaluation, checkpoints and loss
//! log, continuing from the last checkpoint with `--resume`.

use std::collections::BTreeMap;

use crate::artifact::ExitRecord;
use crate::base::sha256_hex;
use crate::diag::Diag;
use crate::eval::measure::teacher_side;
use crate::eval::report::{CurvePoint, StageEval, TrainingReport, BEFORE_TRAINING};
use crate::ir::{LossPlanKind, Program, StagePlan, WeightQuant};
use crate::lower::prune::student::Student;
use crate::lower::teacher::{to_tensor_set, Teacher, Tensors};
use crate::lower::train::evaluation::{evaluate, EvalData};
use crate::lower::train::student_net::{learned_scale_supported, TrainableNet};
use crate::lower::train::{finish_stage, restore_finished, run_stage, Session, StageJob};
use crate::runtime::tensor_error;
use crate::runtime::LoadedModel;
use crate::text::data::Example;

/// The trained student's weights and what training did.
pub struct Trained {
    pub tensors: Tensors,
    pub scales: BTreeMap<String, Vec<f32>>,
    pub report: TrainingReport,
}

fn examples_of<'a>(
    datasets: &'a BTreeMap<String, Vec<Example>>,
    plan: &StagePlan,
) -> Result<&'a [Example], Diag> {
    datasets.get(&plan.data).map(Vec::as_slice).ok_or_else(|| {
        Diag::new(
            "plcc::train::no-data",
            format!(
                "stage `{}` reads data set `{}`, which the recipe does not define",
                plan.name, plan.data
            ),
        )
    })
}

/// The evaluation before training and every evaluation in the loss log, in
/// order, with the tokens trained on when each was taken.
fn learning_curve(session: &Session) -> Vec<CurvePoint> {
    let first = session.meta.evaluations.first().map(|e| CurvePoint {
        stage: e.after.clone(),
        step: 0,
        global_step: 0,
        tokens: 0,
        metrics: e.fidelity.metrics.clone(),
    });
    let during = session.log.records().iter().filter_map(|r| {
        Some(CurvePoint {
            stage: r.stage.clone(),
            step: r.step,
            global_step: r.global_step,
            tokens: r.tokens,
            metrics: r.eval.clone()?,
        })
    });
    first.into_iter().chain(during).collect()
}

/// Trains the teacher from its current weights on the `pretrain` stage
/// (next-token cross-entropy), replacing `teacher.tensors`.
pub fn pretrain(
    session: &mut Session,
    plan: &StagePlan,
    teacher: &mut Teacher,
    datasets: &BTreeMap<String, Vec<Example>>,
) -> Result<(), Diag> {
    let Some(task) = teacher.config.arch.family().supports.language_model else {
        return Err(Diag::new(
            "plcc::train::pretrain-unsupported",
            "`pretrain` trains causal language models (GPT-2 layout) with next-token prediction and encoder-decoders (BART) with text infilling",
        )
        .help("remove the `pretrain` block; a classifier head is trained by a `distill` stage with `loss task_ce {}` on a data set with a `label` column"));
    };
    let tensors = match (session.stage_finished(0), session.resumed_teacher()) {
        (true, Some(saved)) => saved.clone().into_iter().collect(),
        _ => {
            let mut net = TrainableNet::new(
                &teacher.config,
                task,
                &teacher.tensors,
                &BTreeMap::new(),
                &BTreeMap::new(),
                &[],
                &session.device,
            )
            .map_err(|e| {
                Diag::new(
                    "plcc::train::build-failed",
                    "cannot build the model to pretrain",
                )
                .note(e)
            })?;
            let job = StageJob {
                index: 0,
                plan,
                examples: examples_of(datasets, plan)?,
                teacher: None,
                layer_map: Vec::new(),
                kept_heads: BTreeMap::new(),
                pad_id: teacher.tokenizer.pad_id,
                tokenizer: &teacher.tokenizer,
                teacher_ids: None,
                eval: None,
                start_eval: None,
            };
            let totals = run_stage(session, &mut net, &job)?.totals;
            let (tensors, _) = net.export().map_err(tensor_error)?;
            session.teacher_tensors = Some(tensors.clone().into_iter().collect());
            finish_stage(session, &net, 0, totals, None)?;
            tensors
        }
    };
    session.teacher_tensors = Some(tensors.clone().into_iter().collect());
    teacher.tensors = tensors;
    teacher.checkpoint_sha256 = sha256_hex(&to_tensor_set(&teacher.tensors)?.to_bytes()?);
    Ok(())
}

/// What distillation reads besides the session.
pub struct DistillInputs<'a> {
    pub program: &'a Program,
    pub student: &'a Student,
    pub teacher: &'a Teacher,
    pub teacher_model: &'a LoadedModel,
    pub weight_quant: &'a BTreeMap<String, WeightQuant>,
    pub activation_quant: &'a BTreeMap<String, crate::artifact::ActivationQuant>,
    pub exit_records: &'a [ExitRecord],
    pub datasets: &'a BTreeMap<String, Vec<Example>>,
    pub eval_name: &'a str,
    pub eval: &'a [Example],
}

/// Runs the distillation stages on the student.
pub fn distill(session: &mut Session, d: &DistillInputs) -> Result<Trained, Diag> {
    if let Some((m, w)) = d
        .weight_quant
        .iter()
        .find(|(_, w)| !learned_scale_supported(w))
    {
        return Err(Diag::new(
            "plcc::train::learned-scale-unsupported",
            format!(
                "learned scales on `{m}` train only symmetric, per-row or per-tensor quantizers"
            ),
        )
        .label(w.span, "placed here")
        .help("use `granularity: row` (or tensor) and `symmetric: true` with `scale: learned`"));
    }
    let task = d.program.plan.task;
    let mut net = TrainableNet::new(
        &d.student.config,
        task,
        &d.student.tensors,
        d.weight_quant,
        d.activation_quant,
        d.exit_records,
        &session.device,
    )
    .map_err(|e| {
        Diag::new(
            "plcc::train::build-failed",
            "cannot build the student for training",
        )
        .note(e)
    })?;
    let base = usize::from(d.program.plan.pretrain.is_some());
    // The student reads its own (possibly pruned) vocabulary; the teacher
    // reads the same pieces through the kept teacher ids.
    let tokenizer = d.student.tokenizer(d.teacher);
    let teacher_ids = d.student.vocab.as_ref().map(|v| v.kept.as_slice());
    if let Some(c) = &session.resume_from {
        if c.meta.progress.stage_done && c.meta.progress.stage >= base {
            restore_finished(session, &net)?;
        }
    }
    let teacher_side = teacher_side(net.task, d.teacher_model, d.eval)?;
    let eval_data = EvalData {
        teacher: d.teacher_model,
        name: d.eval_name,
        examples: d.eval,
        teacher_side: &teacher_side,
    };
    let first_quantized = d.program.plan.stages.first().is_none_or(|s| s.quantize);
    net.set_quantized(first_quantized).map_err(tensor_error)?;
    if session.meta.evaluations.is_empty() {
        let before = evaluate(&mut net, &eval_data, tokenizer, BEFORE_TRAINING)?;
        session.meta.evaluations.push(before);
    }
    let layer_map: Vec<usize> = d.student.layer_map.iter().map(|t| t + 1).collect();
    let kept_heads: BTreeMap<usize, Vec<usize>> = d
        .student
        .kept
        .iter()
        .filter_map(|(k, v)| {
            let rest = k
                .strip_suffix(".attention.heads")
                .or_else(|| k.strip_suffix(".heads"))?;
            let layer: usize = rest.rsplit('.').next()?.parse().ok()?;
            Some((layer + 1, v.clone()))
        })
        .collect();
    for (i, plan) in d.program.plan.stages.iter().enumerate() {
        let index = base + i;
        if session.stage_finished(index) {
            continue;
        }
        let mut start_eval = session.meta.evaluations.last().map(|e| e.fidelity.clone());
        if net.set_quantized(plan.quantize).map_err(tensor_error)? {
            // The last evaluation measured the other form of the student:
            // the weights this stage starts from are measured again as it
            // trains them.
            let label = format!("{} (start)", plan.name);
            start_eval = Some(evaluate(&mut net, &eval_data, tokenizer, &label)?.fidelity);
        }
        let job = StageJob {
            index,
            plan,
            examples: examples_of(d.datasets, plan)?,
            // A stage trained on the labels alone (`finetune`) never runs
            // the teacher.
            teacher: plan
                .losses
                .iter()
                .any(|l| !matches!(l.kind, LossPlanKind::TaskCe))
                .then_some(d.teacher_model),
            layer_map: layer_map.clone(),
            kept_heads: kept_heads.clone(),
            pad_id: tokenizer.pad_id,
            tokenizer,
            teacher_ids,
            eval: Some(eval_data),
            start_eval: start_eval.as_ref(),
        };
        let outcome = run_stage(session, &mut net, &job)?;
        let eval = match outcome.eval {
            Some(fidelity) => StageEval {
                after: plan.name.clone(),
                fidelity,
            },
            None => evaluate(&mut net, &eval_data, tokenizer, &plan.name)?,
        };
        finish_stage(session, &net, index, outcome.totals, Some(eval))?;
    }
    let (tensors, scales) = net.export().map_err(tensor_error)?;
    let curve = learning_curve(session);
    Ok(Trained {
        tensors,
        scales,
        report: TrainingReport {
            stages: session.meta.finished.clone(),
            evaluations: session.meta.evaluations.clone(),
            curve,
            loss_log: "loss.jsonl".into(),
            loss_plot: "loss.svg".into(),
            resumed: false,
        },
    })
}
