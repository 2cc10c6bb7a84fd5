//! `distill-schedule`: resolves the training timeline into the plan: the
//! optional `pretrain` stage, then every `distill` stage in recipe order with
//! its global step range (when counted in steps), warm-up in steps, and its
//! losses with layer maps resolved.
//!
//! Default maps pair each student layer with the teacher layer it was taken
//! from (the identity without `keep_layers`; for layer reduction, the kept
//! teacher layers), plus embeddings → embeddings (0 → 0) for hidden states.
//! A pair whose hidden widths differ needs a learned projection (`*` in the
//! text form); an attention pair whose head counts differ compares attention
//! maps averaged over heads (`~`), since pruned heads have no counterpart.
//!
//! Relies on the final student structure. Errors: a map entry outside the
//! student's or teacher's layers (attention maps start at layer 1), a
//! contrastive layer that does not exist.

use crate::base::StageLength;
use crate::diag::Diag;
use crate::ir::{LayerPair, LossPlan, LossPlanKind, Op, Program, StagePlan, Warmup};
use crate::pass::{Facts, Pass, PassCx};
use crate::recipe::{LossKind, LossSpec, StageSpec};

pub struct DistillSchedule;

impl Pass for DistillSchedule {
    fn name(&self) -> &'static str {
        "distill-schedule"
    }

    fn directive(&self, recipe: &crate::recipe::Recipe) -> Option<crate::diag::Span> {
        recipe
            .stages
            .first()
            .or(recipe.pretrain.as_ref())
            .map(|s| s.span)
    }

    fn description(&self) -> &'static str {
        "resolve the distillation timeline: stages, losses, layer maps, lr schedules"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES | Facts::LAYERS_REDUCED | Facts::WIDTH_PLANNED | Facts::EXITS_PLACED
    }

    fn provides(&self) -> Facts {
        Facts::SCHEDULED
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let shapes = Shapes::of(program);
        let pretrain = match &cx.recipe.pretrain {
            Some(stage) => {
                pretrainable(program, stage)?;
                Some(stage_plan(stage, None, &shapes)?)
            }
            None => None,
        };
        let mut stages = Vec::new();
        let mut at: Option<usize> = Some(0);
        for stage in &cx.recipe.stages {
            let plan = stage_plan(stage, at, &shapes)?;
            at = plan.steps.map(|(_, end)| end);
            stages.push(plan);
        }
        program.plan.pretrain = pretrain;
        program.plan.stages = stages;
        Ok(())
    }
}

/// `pretrain` trains a GPT-2 teacher with next-token prediction and a BART
/// teacher with text infilling: any other teacher is refused at the block.
fn pretrainable(program: &Program, stage: &StageSpec) -> Result<(), Diag> {
    let config = &program.plan.teacher.config;
    if config.arch.family().supports.language_model.is_some() {
        return Ok(());
    }
    Err(Diag::new(
        "plcc::recipe::pretrain-unsupported",
        format!(
            "`pretrain` trains causal language models (GPT-2 layout) with next-token prediction and encoder-decoders (BART) with text infilling; this teacher is `{}`",
            config.model_type
        ),
    )
    .label(stage.name.span, "this teacher cannot be pretrained")
    .help("remove the `pretrain` block; a classifier head is trained by a `distill` stage with `loss task_ce {}` on a data set with a `label` column"))
}

/// The widths the layer maps are checked against.
struct Shapes {
    /// Teacher (heads, hidden) per teacher layer.
    teacher: Vec<(usize, usize)>,
    teacher_hidden: usize,
    /// Student (teacher index, heads, hidden) per student layer.
    student: Vec<(usize, usize, usize)>,
    student_hidden: usize,
}

impl Shapes {
    fn of(program: &Program) -> Shapes {
        let config = &program.plan.teacher.config;
        let model = &program.model;
        let student = model
            .layers()
            .iter()
            .map(|l| match &model.node(l.attention).op {
                Op::Attention(a) => (l.teacher, a.heads, a.hidden),
                _ => (l.teacher, 0, 0),
            })
            .collect();
        let student_hidden = model
            .find_op(|op| matches!(op, Op::Embeddings(_)))
            .map(|ix| match &model.node(ix).op {
                Op::Embeddings(e) => e.hidden,
                _ => 0,
            })
            .unwrap_or(config.hidden_size);
        Shapes {
            teacher: config
                .layers
                .iter()
                .map(|l| (l.heads, config.hidden_size))
                .collect(),
            teacher_hidden: config.hidden_size,
            student,
            student_hidden,
        }
    }

    /// A resolved pair; head counts matter only for `attention` losses.
    fn pair(&self, student: usize, teacher: usize, attention: bool) -> LayerPair {
        let (s_heads, s_hidden) = match student {
            0 => (0, self.student_hidden),
            s => self
                .student
                .get(s - 1)
                .map(|&(_, h, w)| (h, w))
                .unwrap_or((0, 0)),
        };
        let (t_heads, t_hidden) = match teacher {
            0 => (0, self.teacher_hidden),
            t => self.teacher.get(t - 1).copied().unwrap_or((0, 0)),
        };
        LayerPair {
            student,
            teacher,
            projection: s_hidden != t_hidden,
            average_heads: attention && s_heads != t_heads,
        }
    }

    /// The default map: each student layer to the teacher layer it came from.
    fn default_map(&self, with_embeddings: bool) -> Vec<(usize, usize)> {
        let mut map = Vec::new();
        if with_embeddings {
            map.push((0, 0));
        }
        map.extend(
            self.student
                .iter()
                .enumerate()
                .map(|(i, &(t, _, _))| (i + 1, t + 1)),
        );
        map
    }
}

fn stage_plan(stage: &StageSpec, start: Option<usize>, shapes: &Shapes) -> Result<StagePlan, Diag> {
    let steps = match (stage.length.value, start) {
        (StageLength::Steps(n), Some(a)) => Some((a, a + n)),
        _ => None,
    };
    let losses = stage
        .losses
        .iter()
        .map(|l| loss_plan(l, shapes))
        .collect::<Result<Vec<_>, Diag>>()?;
    Ok(StagePlan {
        name: stage.name.value.clone(),
        length: stage.length.value,
        steps,
        data: stage.data.value.clone(),
        optimizer: stage.optimizer.value,
        lr: stage.lr.value,
        weight_decay: stage.weight_decay.value,
        schedule: stage.schedule.value,
        warmup: Warmup::resolve(stage.warmup.value, stage.length.value),
        batch_size: stage.batch_size.value,
        seq_len: stage.seq_len.value,
        grad_clip: stage.grad_clip.as_ref().map(|c| c.value),
        accumulate: stage.accumulate.value,
        checkpoint_every: stage.checkpoint_every.as_ref().map(|c| c.value),
        checkpoint_minutes: stage.checkpoint_minutes.value,
        seed: stage.seed.value,
        losses,
        eval_every: stage.eval_every.as_ref().map(|e| e.value),
        keep: stage.keep.value,
        quantize: stage.quantize.value,
    })
}

fn loss_plan(loss: &LossSpec, shapes: &Shapes) -> Result<LossPlan, Diag> {
    let kind = match &loss.kind {
        LossKind::LogitKl { temperature, over } => LossPlanKind::LogitKl {
            temperature: *temperature,
            over: *over,
        },
        LossKind::TaskCe => LossPlanKind::TaskCe,
        LossKind::Cosine => LossPlanKind::Cosine,
        LossKind::HiddenMse { map } => LossPlanKind::HiddenMse {
            pairs: pairs(loss, map.as_deref(), 0, shapes)?,
        },
        LossKind::AttentionKl { map } => LossPlanKind::AttentionKl {
            pairs: pairs(loss, map.as_deref(), 1, shapes)?,
        },
        LossKind::AttentionMse { map } => LossPlanKind::AttentionMse {
            pairs: pairs(loss, map.as_deref(), 1, shapes)?,
        },
        LossKind::Contrastive {
            temperature,
            negatives,
            layer,
        } => {
            let depth = shapes.student.len();
            let layer = layer.unwrap_or(depth);
            if layer == 0 || layer > depth {
                return Err(Diag::new(
                    "plcc::distill::no-such-layer",
                    format!("contrastive loss on student layer {layer}, but the student has {depth} layers (1..={depth})"),
                )
                .label(loss.span, "no such student layer"));
            }
            LossPlanKind::Contrastive {
                temperature: *temperature,
                negatives: *negatives,
                layer,
            }
        }
    };
    Ok(LossPlan {
        weight: loss.weight.value,
        kind,
    })
}

/// Resolves a layer map; `min` is the lowest layer allowed (0 = embeddings).
fn pairs(
    loss: &LossSpec,
    map: Option<&[(usize, usize)]>,
    min: usize,
    shapes: &Shapes,
) -> Result<Vec<LayerPair>, Diag> {
    let student_depth = shapes.student.len();
    let teacher_depth = shapes.teacher.len();
    let entries = match map {
        Some(m) => m.to_vec(),
        None => shapes.default_map(min == 0),
    };
    for &(s, t) in &entries {
        let bad = if s < min || s > student_depth {
            Some(format!(
                "student layer {s} (the student has layers {min}..={student_depth})"
            ))
        } else if t < min || t > teacher_depth {
            Some(format!(
                "teacher layer {t} (the teacher has layers {min}..={teacher_depth})"
            ))
        } else {
            None
        };
        if let Some(what) = bad {
            return Err(Diag::new(
                "plcc::distill::map-out-of-range",
                format!("layer map entry `{s} -> {t}` names {what}"),
            )
            .label(loss.span, "in this loss's map")
            .help(if min == 0 {
                "maps pair `student -> teacher` layers; 0 is the embeddings, then 1-based layers"
            } else {
                "attention maps pair 1-based `student -> teacher` layers"
            }));
        }
    }
    let attention = min == 1;
    Ok(entries
        .into_iter()
        .map(|(s, t)| shapes.pair(s, t, attention))
        .collect())
}
