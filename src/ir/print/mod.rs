//! The deterministic text form of a program: nodes in topological order,
//! renumbered `%0, %1, ...` at print time, one line each with its inputs,
//! shape and annotations (quantizers on indented lines below their node),
//! then the plan. Snapshot tests and `plcc plan --dump-after` show this text.

mod document;
mod table;

pub use document::{plan_document, LayerRow, ModuleRow, PlanDocument};
pub use table::{human, plan_table};

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use crate::base::{duration_text, Negatives, QuantMethod, StageLength};
use crate::base::{word, Bits, CalibrationTarget, Granularity, ScaleMethod, Task};
use crate::recipe::ArgValue;

use super::node::{ActQuant, HeadKind, Node, Norm, Op, WeightQuant};
use super::plan::{LayerPair, LossPlanKind, Plan, Program, StagePlan, Warmup};
use super::Cost;

/// The whole program as text.
pub fn print(program: &Program) -> String {
    let mut out = print_model(program);
    out.push_str(&print_plan(&program.plan));
    out
}

/// The model graph as text.
pub fn print_model(program: &Program) -> String {
    let model = &program.model;
    let order = model.ordered_nodes();
    let numbers: HashMap<_, _> = order.iter().enumerate().map(|(i, &ix)| (ix, i)).collect();
    let layers: HashMap<_, _> = model
        .layers()
        .into_iter()
        .flat_map(|l| {
            [Some(l.attention), l.cross, Some(l.ffn)]
                .into_iter()
                .flatten()
                .map(move |ix| (ix, l.student))
        })
        .collect();
    let mut out = String::from("model\n");
    for &ix in &order {
        let node = model.node(ix);
        let inputs: Vec<String> = model
            .inputs(ix)
            .iter()
            .map(|i| format!("%{}", numbers.get(i).copied().unwrap_or(usize::MAX)))
            .collect();
        let _ = write!(
            out,
            "  %{} {} = {}({})",
            numbers[&ix],
            node.name,
            node.kind(),
            inputs.join(", ")
        );
        if let Some(student) = layers.get(&ix) {
            let _ = write!(out, " layer {student}");
        }
        if let Some(t) = node.teacher_layer {
            let _ = write!(out, " (teacher {t})");
        }
        if let Some(e) = node.encoder_layer {
            let _ = write!(out, " encoder layer {e}");
        }
        out.push_str(&op_details(node));
        let _ = writeln!(out, " -> {}", node.output_type());
        for (module, q) in &node.quant {
            let mut parts = Vec::new();
            if let Some(w) = &q.weights {
                parts.push(format!("weights {}", print_weight_quant(w)));
            }
            if let Some(a) = &q.activations {
                parts.push(format!("activations {}", print_act_quant(a)));
            }
            let _ = writeln!(out, "      quant {module}: {}", parts.join("; "));
        }
    }
    out
}

fn op_details(node: &Node) -> String {
    match &node.op {
        Op::Input => " tokens".into(),
        Op::Embeddings(e) => {
            let mut s = format!(
                " vocab {} hidden {} positions {} types {}",
                e.vocab, e.hidden, e.positions, e.token_types
            );
            if let Some(r) = e.rank {
                let _ = write!(s, " rank {r}");
            }
            if let Some(n) = &e.norm {
                let _ = write!(s, " norm {n}");
            }
            if let Some(d) = &e.decoder {
                let _ = write!(s, " decoder positions {} norm {}", d.position, d.norm);
            }
            s
        }
        Op::Attention(a) => format!(
            " heads {} x {} hidden {}{}{} {}",
            a.heads,
            a.head_dim,
            a.hidden,
            if a.causal { " causal" } else { "" },
            if a.cross { " cross" } else { "" },
            norm(&a.norm)
        ),
        Op::Ffn(f) => format!(
            " width {} hidden {} {} {}",
            f.width,
            f.hidden,
            word(&f.activation),
            norm(&f.norm)
        ),
        Op::Exit(e) => format!(
            " after layer {} {} outputs {}{}{}",
            e.after_layer,
            word(&e.head),
            e.outputs,
            if e.per_token { " per-token" } else { "" },
            if e.tied { " tied" } else { "" }
        ),
        Op::Head(h) => {
            let mut s = match &h.kind {
                HeadKind::Pool { pooling } => format!(" pool {}", word(pooling)),
                HeadKind::Classify { labels, pooler, .. } => {
                    format!(
                        " classify labels {labels}{}",
                        if *pooler { " pooler" } else { "" }
                    )
                }
                HeadKind::LanguageModel { vocab, tied } => {
                    format!(" lm vocab {vocab}{}", if *tied { " tied" } else { "" })
                }
            };
            if let Some(n) = &h.final_norm {
                let _ = write!(s, " norm {n}");
            }
            if let Some(b) = &h.logits_bias {
                let _ = write!(s, " bias {b}");
            }
            s
        }
    }
}

fn norm(n: &Norm) -> String {
    match n {
        Norm::Post { name } => format!("post-norm {name}"),
        Norm::Pre { name } => format!("pre-norm {name}"),
    }
}

/// `ternary sym row mean_abs`, then `gptq on DATA (N samples)` for GPTQ.
pub fn print_weight_quant(w: &WeightQuant) -> String {
    let text = quant_text(w.bits, w.symmetric, w.granularity, w.scale);
    match &w.method {
        QuantMethod::Rtn => text,
        QuantMethod::Gptq(g) => format!(
            "{text} gptq on {} ({} samples, damp {}%{})",
            g.data.value,
            g.samples.value,
            g.damp * 100.0,
            if g.act_order { ", act_order" } else { "" }
        ),
    }
}

pub fn print_act_quant(a: &ActQuant) -> String {
    quant_text(a.bits, a.symmetric, a.granularity, a.scale)
}

fn quant_text(bits: Bits, symmetric: bool, granularity: Granularity, scale: ScaleMethod) -> String {
    format!(
        "{} {} {} {}",
        bits_text(bits),
        if symmetric { "sym" } else { "asym" },
        granularity_text(granularity),
        match scale {
            ScaleMethod::Max => "max",
            ScaleMethod::MeanAbs => "mean_abs",
            ScaleMethod::Learned => "learned",
        }
    )
}

pub fn bits_text(bits: Bits) -> String {
    match bits {
        Bits::Binary => "binary".into(),
        Bits::Ternary => "ternary".into(),
        Bits::Int(b) => format!("int{b}"),
    }
}

pub fn granularity_text(g: Granularity) -> String {
    match g {
        Granularity::Tensor => "tensor".into(),
        Granularity::Row => "row".into(),
        Granularity::Group(n) => format!("group {n}"),
        Granularity::Token => "token".into(),
    }
}

/// A path shown relative to `base` when it lies inside it.
pub fn show_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `teacher SOURCE (TYPE, N layers, hidden H)`; an encoder-decoder's
/// layers as `E encoder + D decoder layers`.
pub fn teacher_text(plan: &Plan) -> String {
    let t = &plan.teacher;
    let layers = match t.config.seq2seq {
        Some(_) => format!(
            "{} encoder + {} decoder",
            t.config.encoder_layers().len(),
            t.config.num_layers()
        ),
        None => t.config.num_layers().to_string(),
    };
    format!(
        "teacher {} ({}, {layers} layers, hidden {})",
        t.source, t.config.model_type, t.config.hidden_size
    )
}

/// The plan as text.
pub fn print_plan(plan: &Plan) -> String {
    let mut out = String::from("plan\n");
    let t = &plan.teacher;
    let _ = writeln!(
        out,
        "  {} config sha256 {}",
        teacher_text(plan),
        &t.config_hash[..t.config_hash.len().min(16)]
    );
    let task = match plan.task {
        Task::Embedding { pooling } => format!("embedding ({} pooling)", word(&pooling)),
        Task::Classification { labels } => format!("classification ({labels} labels)"),
        Task::CausalLm => "causal_lm".into(),
        Task::Seq2Seq => "seq2seq".into(),
    };
    let output = plan
        .output
        .as_ref()
        .map(|o| show_path(&o.value, &plan.base_dir))
        .unwrap_or_else(|| "(default)".into());
    let _ = writeln!(
        out,
        "  task {task}, seed {}, device {}, output {output}",
        plan.seed,
        plan.device.name()
    );
    for d in &plan.datasets {
        let _ = writeln!(
            out,
            "  data {} {} {}",
            d.name.value,
            show_path(&d.path.value, &plan.base_dir),
            word(&d.format)
        );
    }
    if let Some(e) = &plan.eval {
        let _ = writeln!(out, "  eval {e}");
    }
    if let Some(p) = &plan.prune {
        let _ = writeln!(
            out,
            "  prune importance {} over {} data {} batches {}",
            word(&p.importance),
            word(&p.over),
            p.data.as_deref().unwrap_or("(none)"),
            p.batches
        );
    }
    if let Some(v) = &plan.vocab {
        let _ = writeln!(
            out,
            "  vocab data {} {}: vocabulary {} -> {} ({} always kept)",
            v.data,
            vocab_rule_text(v.rule),
            v.before,
            v.after,
            v.always_kept
        );
    }
    if let Some(e) = &plan.exits {
        let after: Vec<String> = e.after.iter().map(|a| a.to_string()).collect();
        let _ = write!(
            out,
            "  exits after [{}] {} criterion {}",
            after.join(", "),
            word(&e.head),
            word(&e.criterion)
        );
        if let Some(t) = e.threshold {
            let _ = write!(out, " threshold {t}");
        }
        if let Some(p) = e.patience {
            let _ = write!(out, " patience {p}");
        }
        match e.target {
            Some(CalibrationTarget::AvgExitLayer(x)) => {
                let _ = write!(out, " target avg layer {x}");
            }
            Some(CalibrationTarget::Speedup(x)) => {
                let _ = write!(out, " target speedup {x}");
            }
            Some(CalibrationTarget::MaxFidelityLoss(x)) => {
                let _ = write!(out, " target max fidelity loss {x}");
            }
            None => {}
        }
        if e.target.is_some() {
            let data = e.calibration_data.as_deref().unwrap_or("the eval data");
            let _ = match e.calibration_samples {
                Some(n) => write!(out, " calibrated on {data} (first {n})"),
                None => write!(out, " calibrated on {data}"),
            };
        }
        out.push('\n');
    }
    out.push_str(&print_timeline(plan));
    for c in &plan.custom_passes {
        let args: Vec<String> = c
            .args
            .iter()
            .map(|(k, v)| format!("{k}: {}", arg_text(v)))
            .collect();
        let _ = writeln!(out, "  pass {} {}", c.name, args.join(" "));
    }
    let _ = writeln!(out, "  cost at seq_len {}", plan.cost.seq_len);
    out.push_str(&cost_text("teacher", &plan.cost.teacher));
    out.push_str(&cost_text("student", &plan.cost.student));
    out
}

/// `keep 8000` / `min_count 3`.
pub fn vocab_rule_text(rule: crate::base::VocabRule) -> String {
    match rule {
        crate::base::VocabRule::Keep(n) => format!("keep {n}"),
        crate::base::VocabRule::MinCount(k) => format!("min_count {k}"),
    }
}

/// The training timeline: the pretrain stage, then the distillation stages
/// with their losses, one line each, indented by two.
pub fn print_timeline(plan: &Plan) -> String {
    let mut out = String::new();
    if let Some(p) = &plan.pretrain {
        out.push_str(&stage_text("pretrain", p));
    }
    for s in &plan.stages {
        out.push_str(&stage_text("distill", s));
    }
    out
}

fn cost_text(who: &str, c: &Cost) -> String {
    let mut s = format!(
        "    {who}: params {} bytes {} flops/token {}\n",
        c.params, c.bytes, c.flops_per_token
    );
    for e in &c.exits {
        let _ = writeln!(
            s,
            "      exit after layer {}: flops/token {}",
            e.after_layer, e.flops_per_token
        );
    }
    s
}

fn stage_text(kind: &str, s: &StagePlan) -> String {
    let length = match (s.length, s.steps) {
        (_, Some((a, b))) => format!("steps {a}..{b}"),
        (StageLength::Epochs(e), None) => format!("{e} epochs"),
        (StageLength::Steps(n), None) => format!("{n} steps"),
        (StageLength::Budget(secs), None) => format!("budget {}", duration_text(secs)),
    };
    let warmup = match s.warmup {
        Warmup::Steps(n) => format!("{n} steps"),
        Warmup::Fraction(f) => format!("{}%", f * 100.0),
    };
    let title = if s.name == kind {
        kind.to_string()
    } else {
        format!("{kind} {}", s.name)
    };
    let mut out = format!(
        "  {title}: {length} data {} {} lr {} wd {} {} warmup {warmup} batch {} seq {} accumulate {}",
        s.data,
        word(&s.optimizer),
        s.lr,
        s.weight_decay,
        word(&s.schedule),
        s.batch_size,
        s.seq_len,
        s.accumulate
    );
    if let Some(c) = s.grad_clip {
        let _ = write!(out, " clip {c}");
    }
    let minutes = s.checkpoint_minutes;
    let _ = match s.checkpoint_every {
        Some(c) => write!(out, " checkpoint every {c} steps and {minutes} min"),
        None => write!(out, " checkpoint every {minutes} min"),
    };
    if let Some(n) = s.eval_every {
        let _ = write!(out, " eval every {n} steps keep {}", word(&s.keep));
    }
    let _ = writeln!(out, " seed {}", s.seed);
    for l in &s.losses {
        let _ = write!(out, "    loss {} weight {}", l.kind.name(), l.weight);
        match &l.kind {
            LossPlanKind::LogitKl { temperature, over } => {
                let _ = write!(out, " temperature {temperature} over {}", word(over));
            }
            LossPlanKind::HiddenMse { pairs }
            | LossPlanKind::AttentionKl { pairs }
            | LossPlanKind::AttentionMse { pairs } => {
                let _ = write!(out, " map {}", pairs_text(pairs));
            }
            LossPlanKind::Contrastive {
                temperature,
                negatives,
                layer,
            } => {
                let neg = match negatives {
                    Negatives::Batch => "batch".to_string(),
                    Negatives::Memory(n) => format!("memory {n}"),
                };
                let _ = write!(
                    out,
                    " temperature {temperature} negatives {neg} layer {layer}"
                );
            }
            LossPlanKind::TaskCe | LossPlanKind::Cosine => {}
        }
        out.push('\n');
    }
    out
}

/// `0->0 1->2* 2->4~`: `*` marks a hidden projection, `~` averaged heads.
pub fn pairs_text(pairs: &[LayerPair]) -> String {
    pairs
        .iter()
        .map(|p| {
            format!(
                "{}->{}{}{}",
                p.student,
                p.teacher,
                if p.projection { "*" } else { "" },
                if p.average_heads { "~" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A custom pass argument as the recipe writes it.
fn arg_text(value: &ArgValue) -> String {
    match value {
        ArgValue::Number(n) => n.to_string(),
        ArgValue::Percent(p) => format!("{}%", p * 100.0),
        ArgValue::Str(s) => format!("{s:?}"),
        ArgValue::Ident(i) => i.clone(),
        ArgValue::Bool(b) => b.to_string(),
        ArgValue::List(items) => format!(
            "[{}]",
            items.iter().map(arg_text).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::base::word;
    use crate::base::ScaleMethod;
    use crate::base::{ExitScope, OptimizerKind};

    #[test]
    fn words_use_the_recipe_spelling() {
        assert_eq!(word(&ExitScope::AllExits), "all_exits");
        assert_eq!(word(&OptimizerKind::AdamW), "adamw");
        assert_eq!(word(&ScaleMethod::MeanAbs), "mean_abs");
    }
}
