//! The plan as `plcc plan` shows it: a table of every module's shape before
//! → after with its quantizers, the per-layer widths, the vocabulary, the
//! exits, the distillation timeline and the estimates of teacher and
//! student (`plan_table`), and the same as a stable JSON document
//! (`plan_document`). The IR's own text form is in the parent module; both
//! share its pieces (timeline, vocabulary rule, words).

use std::fmt::Write;

use serde::Serialize;

use crate::base::{compare_counts, CalibrationTarget};
use crate::diag::Span;
use crate::ir::{
    self, model_from_config, print_timeline, Cost, CustomPassPlan, ExitPlan, LossPlanKind, Model,
    Op, Program, StagePlan,
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
        let weights = q.and_then(|q| q.weights.as_ref()).map(ir_weight);
        let activations = q.and_then(|q| q.activations.as_ref()).map(ir_act);
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

fn ir_weight(w: &ir::WeightQuant) -> String {
    ir::print_weight_quant(w)
}

fn ir_act(a: &ir::ActQuant) -> String {
    ir::print_act_quant(a)
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

/// The human-readable plan.
pub fn plan_table(program: &Program) -> String {
    let plan = &program.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}; student {} layers; device {}",
        super::teacher_text(plan),
        program.model.num_layers(),
        plan.device.name()
    );

    out.push_str("\nlayers\n");
    let mut table = vec![vec![
        "student".to_string(),
        "teacher".to_string(),
        "heads".to_string(),
        "ffn".to_string(),
    ]];
    for r in layer_rows(program) {
        table.push(vec![
            r.student.to_string(),
            r.teacher.to_string(),
            arrow(r.heads[0], r.heads[1]),
            arrow(r.ffn[0], r.ffn[1]),
        ]);
    }
    out.push_str(&columns(&table));

    out.push_str("\nmodules\n");
    let shape = |s: Option<[usize; 2]>| match s {
        Some([o, i]) => format!("[{o}, {i}]"),
        None => "-".to_string(),
    };
    let mut table = vec![vec![
        "module".to_string(),
        "before".to_string(),
        "after".to_string(),
        "weights".to_string(),
        "activations".to_string(),
    ]];
    for r in module_rows(program) {
        let after = match (r.before, r.after) {
            (Some(_), None) => "removed".to_string(),
            (_, a) => shape(a),
        };
        let removed = r.after.is_none();
        let weights = match r.weights {
            Some(w) => w,
            None if removed => "-".into(),
            None if r.tied => "tied to the token embedding".into(),
            None => "fp32".into(),
        };
        table.push(vec![
            r.name,
            shape(r.before),
            after,
            weights,
            r.activations.unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&columns(&table));

    if let Some(v) = vocab_doc(program) {
        out.push_str("\nvocabulary\n");
        let _ = writeln!(
            out,
            "  {} pieces ({} on `{}`, {} always kept)",
            arrow(v.before, v.after),
            ir::vocab_rule_text(v.rule),
            v.data,
            v.always_kept
        );
        let _ = writeln!(
            out,
            "  word embedding {} smaller",
            human(v.bytes_saved as f64, "B")
        );
    }

    out.push_str("\nexits\n");
    match &plan.exits {
        None => out.push_str("  none\n"),
        Some(e) => {
            let _ = writeln!(
                out,
                "  {} heads, criterion {}",
                crate::base::word(&e.head),
                crate::base::word(&e.criterion)
            );
            if let Some(t) = e.target {
                let target = match t {
                    CalibrationTarget::AvgExitLayer(x) => format!("an average exit layer of {x}"),
                    CalibrationTarget::Speedup(x) => format!("a {x}x speed-up"),
                    CalibrationTarget::MaxFidelityLoss(x) => {
                        format!("at most {}% fidelity loss", x * 100.0)
                    }
                };
                let data = e.calibration_data.as_deref().unwrap_or("the eval data");
                let samples = e
                    .calibration_samples
                    .map_or(String::new(), |n| format!(" (its first {n} examples)"));
                let _ = writeln!(
                    out,
                    "  thresholds calibrated after the build for {target} on {data}{samples}"
                );
            }
            for c in &plan.cost.student.exits {
                let _ = writeln!(
                    out,
                    "  after layer {}: {} FLOPs/token",
                    c.after_layer,
                    human(c.flops_per_token as f64, "")
                );
            }
        }
    }

    out.push_str("\ntimeline\n");
    if plan.pretrain.is_none() && plan.stages.is_empty() {
        out.push_str("  no training: compress only\n");
    }
    out.push_str(&print_timeline(plan));
    let pairs = plan
        .stages
        .iter()
        .flat_map(|s| &s.losses)
        .flat_map(|l| match &l.kind {
            LossPlanKind::HiddenMse { pairs }
            | LossPlanKind::AttentionKl { pairs }
            | LossPlanKind::AttentionMse { pairs } => pairs.as_slice(),
            _ => &[],
        });
    let (mut projected, mut averaged) = (false, false);
    for p in pairs {
        projected |= p.projection;
        averaged |= p.average_heads;
    }
    if averaged {
        out.push_str("  ~ head counts differ: attention maps are compared averaged over heads\n");
    }
    if projected {
        out.push_str("  * hidden widths differ: a learned projection maps student to teacher\n");
    }

    let c = &plan.cost;
    let _ = writeln!(out, "\nestimates (seq_len {})", c.seq_len);
    let rows = [
        (
            "params",
            c.teacher.params,
            c.student.params,
            "",
            "fewer",
            "more",
        ),
        (
            "bytes",
            c.teacher.bytes,
            c.student.bytes,
            "B",
            "smaller",
            "larger",
        ),
        (
            "FLOPs/token",
            c.teacher.flops_per_token,
            c.student.flops_per_token,
            "",
            "fewer",
            "more",
        ),
    ];
    let mut table = Vec::new();
    for (what, teacher, student, unit, less, more) in rows {
        table.push(vec![
            what.to_string(),
            human(teacher as f64, unit),
            "→".to_string(),
            human(student as f64, unit),
            format!("({})", compare_counts(teacher, student, 1, less, more)),
        ]);
    }
    out.push_str(&columns(&table));
    out
}

fn arrow(before: usize, after: usize) -> String {
    if before == after {
        before.to_string()
    } else {
        format!("{before} → {after}")
    }
}

/// `90.9 MB`, `2.9 M`, `512`.
pub fn human(x: f64, unit: &str) -> String {
    let (v, prefix) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "K")
    } else {
        return if unit.is_empty() {
            format!("{x}")
        } else {
            format!("{x} {unit}")
        };
    };
    let prefix = if unit == "B" && prefix == "K" {
        "k"
    } else {
        prefix
    };
    format!("{v:.1} {prefix}{unit}")
}

/// Left-aligned columns, two spaces apart, indented by two.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let _ = write!(line, "  {cell}{}", " ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
