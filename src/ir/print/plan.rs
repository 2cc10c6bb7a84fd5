//! The plan as text: the teacher, task, data, pruning, vocabulary and exit
//! settings, the training timeline, custom passes and the cost estimates,
//! one line each after the model graph.

use std::fmt::Write;

use crate::base::{duration_text, Negatives, StageLength};
use crate::base::{word, CalibrationTarget, Task};
use crate::ir::{Cost, ExitPlan, LayerPair, LossPlanKind, Plan, StagePlan, Warmup};
use crate::recipe::ArgValue;

use super::words::{show_path, vocab_rule_text};

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
        Task::Classification { labels } => match &plan.labels {
            Some(names) => format!("classification ({labels} labels: {})", names.shown()),
            None => format!("classification ({labels} labels)"),
        },
        Task::CausalLm => "causal_lm".into(),
        Task::Seq2Seq => "seq2seq".into(),
    };
    let output = plan
        .output
        .as_ref()
        .map(|o| show_path(&o.value, &plan.base_dir))
        .unwrap_or_else(|| "(default)".into());
    let output = match plan.output_format {
        crate::base::OutputFormat::Artifact => output,
        crate::base::OutputFormat::Hf => format!("{output} (Hugging Face checkpoint)"),
    };
    let _ = writeln!(
        out,
        "  task {task}, seed {}, device {}, output {output}",
        plan.seed,
        plan.device.name()
    );
    for d in &plan.datasets {
        let _ = writeln!(
            out,
            "  data {} {} {}{}",
            d.name.value,
            show_path(&d.path.value, &plan.base_dir),
            word(&d.format),
            if d.retrieval { " retrieval" } else { "" }
        );
    }
    if !plan.eval.is_empty() {
        let _ = writeln!(out, "  eval {}", plan.eval.join(", "));
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
        out.push_str(&exits_line(e));
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

/// `  exits after [..] HEAD criterion C` with the threshold, patience or
/// calibration target.
fn exits_line(e: &ExitPlan) -> String {
    let after: Vec<String> = e.after.iter().map(|a| a.to_string()).collect();
    let mut out = format!(
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
    out
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
    if !s.quantize {
        let _ = write!(out, " float");
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
fn pairs_text(pairs: &[LayerPair]) -> String {
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
