//! The plan as data: every module's shape before → after with its
//! quantizers (`module_rows`), the per-layer widths (`layer_rows`), the
//! vocabulary, and the whole plan as the stable JSON document of
//! `plcc plan --json` (`plan_document`). The table in `table` shows the
//! same rows as text.

use serde::Serialize;

use crate::diag::Span;
use crate::ir::{
    self, model_from_config, Cost, CustomPassPlan, ExitPlan, Model, Op, Program, StagePlan,
};

/// One linear module, before and after.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModuleRow {
    pub name: String,
    /// `[out, in]` in the teacher (`None`: new in the student).
    pub before: Option<[usize; 2]>,
    /// `[out, in]` in the student (`None`: removed).
    pub after: Option<[usize; 2]>,
    pub weights: Option<String>,
    /// What its input goes through at run time (`Program::linear_input`):
    /// the recipe's activation quantizer, the integer kernel's int8 per
    /// token, or float with the packed weight (weight-only).
    pub activations: Option<String>,
    /// The module reuses the token embedding's matrix (a tied head).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tied: bool,
}

/// One student layer's widths.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LayerRow {
    pub student: usize,
    pub teacher: usize,
    pub heads: [usize; 2],
    pub head_dim: usize,
    pub ffn: [usize; 2],
}

/// Teacher → student ratios (teacher / student).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ratios {
    pub params: f64,
    pub bytes: f64,
    pub flops_per_token: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Estimates {
    pub seq_len: usize,
    pub teacher: Cost,
    pub student: Cost,
    pub ratios: Ratios,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeacherDoc {
    pub source: String,
    pub model_type: String,
    pub layers: usize,
    pub hidden: usize,
    pub config_sha256: String,
}

/// Vocabulary pruning: sizes before and after and the bytes it saves.
#[derive(Debug, Clone, Serialize)]
pub struct VocabDoc {
    pub data: String,
    pub rule: crate::base::VocabRule,
    pub before: usize,
    pub after: usize,
    pub always_kept: usize,
    /// Bytes the smaller word embedding saves (at its planned storage).
    pub bytes_saved: u64,
}

/// The `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDocument {
    pub format: u32,
    pub teacher: TeacherDoc,
    pub task: crate::base::Task,
    /// A classifier's labels, in class order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<crate::base::LabelSet>,
    /// Where training runs (the recipe's `device:`).
    pub device: crate::base::Device,
    pub student_layers: usize,
    pub layers: Vec<LayerRow>,
    pub modules: Vec<ModuleRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab: Option<VocabDoc>,
    pub exits: Option<ExitPlan>,
    pub pretrain: Option<StagePlan>,
    pub stages: Vec<StagePlan>,
    pub custom_passes: Vec<CustomPassPlan>,
    pub estimates: Estimates,
}

/// The machine-readable plan.
pub fn plan_document(program: &Program) -> PlanDocument {
    let plan = &program.plan;
    let t = &plan.teacher;
    let (teacher, student) = (&plan.cost.teacher, &plan.cost.student);
    PlanDocument {
        format: 1,
        teacher: TeacherDoc {
            source: t.source.clone(),
            model_type: t.config.model_type.clone(),
            layers: t.config.num_layers(),
            hidden: t.config.hidden_size,
            config_sha256: t.config_hash.clone(),
        },
        task: plan.task,
        labels: plan.labels.clone(),
        device: plan.device,
        student_layers: program.model.num_layers(),
        layers: layer_rows(program),
        modules: module_rows(program),
        vocab: vocab_doc(program),
        exits: plan.exits.clone(),
        pretrain: plan.pretrain.clone(),
        stages: plan.stages.clone(),
        custom_passes: plan.custom_passes.clone(),
        estimates: Estimates {
            seq_len: plan.cost.seq_len,
            teacher: teacher.clone(),
            student: student.clone(),
            ratios: Ratios {
                params: ratio(teacher.params, student.params),
                bytes: ratio(teacher.bytes, student.bytes),
                flops_per_token: ratio(teacher.flops_per_token, student.flops_per_token),
            },
        },
    }
}

/// The vocabulary section, when the recipe prunes the vocabulary.
pub fn vocab_doc(program: &Program) -> Option<VocabDoc> {
    let v = program.plan.vocab.as_ref()?;
    Some(VocabDoc {
        data: v.data.clone(),
        rule: v.rule,
        before: v.before,
        after: v.after,
        always_kept: v.always_kept,
        bytes_saved: ir::cost::vocab_bytes_saved(&program.model, v.before),
    })
}

fn ratio(teacher: u64, student: u64) -> f64 {
    if student == 0 {
        0.0
    } else {
        let r = teacher as f64 / student as f64;
        (r * 100.0).round() / 100.0
    }
}

fn teacher_model(program: &Program) -> Model {
    model_from_config(
        &program.plan.teacher.config,
        program.plan.task,
        Span::default(),
    )
}

/// Every module of teacher and student: teacher order, new modules after
/// the teacher module they follow.
pub fn module_rows(program: &Program) -> Vec<ModuleRow> {
    let teacher: Vec<_> = teacher_model(program)
        .linears()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let student = program.model.linears();
    let mut rows: Vec<ModuleRow> = teacher
        .iter()
        .map(|l| ModuleRow {
            name: l.name.clone(),
            before: Some([l.out, l.inp]),
            after: None,
            weights: None,
            activations: None,
            tied: l.tied,
        })
        .collect();
    let mut insert_at = 0;
    for (ix, l) in &student {
        let q = program.model.node(*ix).quant.get(&l.name);
        let weights = q
            .and_then(|q| q.weights.as_ref())
            .map(ir::print_weight_quant);
        let activations = program.linear_input(*ix, l).text();
        match rows.iter().position(|r| r.name == l.name) {
            Some(pos) => {
                rows[pos].after = Some([l.out, l.inp]);
                rows[pos].weights = weights;
                rows[pos].activations = activations;
                insert_at = pos + 1;
            }
            None => {
                rows.insert(
                    insert_at,
                    ModuleRow {
                        name: l.name.clone(),
                        before: None,
                        after: Some([l.out, l.inp]),
                        weights,
                        activations,
                        tied: l.tied,
                    },
                );
                insert_at += 1;
            }
        }
    }
    rows
}

/// The student's layers with their widths before and after.
pub fn layer_rows(program: &Program) -> Vec<LayerRow> {
    let config = &program.plan.teacher.config;
    program
        .model
        .layers()
        .iter()
        .filter_map(|l| {
            let teacher = config.layers.get(l.teacher)?;
            let (Op::Attention(a), Op::Ffn(f)) = (
                &program.model.node(l.attention).op,
                &program.model.node(l.ffn).op,
            ) else {
                return None;
            };
            Some(LayerRow {
                student: l.student,
                teacher: l.teacher,
                heads: [teacher.heads, a.heads],
                head_dim: a.head_dim,
                ffn: [teacher.ffn, f.width],
            })
        })
        .collect()
}
