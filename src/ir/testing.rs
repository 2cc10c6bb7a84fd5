//! Recipes built in code for unit tests of resolve, the passes and the cost
//! model (no parser involved).

use std::path::PathBuf;

use crate::base::{
    Bits, ExitCriterion, ExitHead, Granularity, Pooling, ScaleMethod, Task, TeacherRef,
};
use crate::base::{
    ExitScope, Importance, LabelSet, LrScheduleKind, OptimizerKind, QuantMethod, StageLength,
};
use crate::diag::{Span, Spanned};
use crate::recipe::{
    Amount, Device, ExitLayers, ExitSpec, LossKind, LossSpec, PruneSpec, QuantKind, QuantSpec,
    Recipe, StageSpec, WidthSpec,
};

pub fn s<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Span::default())
}

/// A recipe on `builtin:NAME` with nothing but the teacher and task (a
/// classification task's labels counted, as `labels: N` gives them).
pub fn recipe(builtin: &str, task: Task) -> Recipe {
    let labels = match task {
        Task::Classification { labels } => Some(s(LabelSet::numbered(labels))),
        _ => None,
    };
    Recipe {
        base_dir: PathBuf::from("."),
        teacher: s(TeacherRef::Builtin(builtin.into())),
        task: s(task),
        labels,
        seed: s(0),
        device: s(Device::Cpu),
        output: None,
        output_format: Default::default(),
        datasets: Vec::new(),
        eval: Vec::new(),
        keep_layers: None,
        prune: None,
        vocab: None,
        exits: None,
        quantizers: Vec::new(),
        pretrain: None,
        stages: Vec::new(),
        custom_passes: Vec::new(),
    }
}

pub fn embedding() -> Task {
    Task::Embedding {
        pooling: Pooling::Mean,
    }
}

pub fn prune(heads: Option<Amount>, ffn: Option<Amount>) -> PruneSpec {
    PruneSpec {
        span: Span::default(),
        keyword: Span::default(),
        width: WidthSpec {
            heads: heads.map(s),
            ffn: ffn.map(s),
        },
        per_layer: Vec::new(),
        embedding_rank: None,
        importance: s(Importance::Taylor),
        over: s(ExitScope::AllExits),
        data: None,
        batches: s(8),
    }
}

pub fn exits(after: &[usize], head: ExitHead) -> ExitSpec {
    ExitSpec {
        span: Span::default(),
        keyword: Span::default(),
        after: s(ExitLayers::List(after.iter().map(|&a| s(a)).collect())),
        head: s(head),
        criterion: s(ExitCriterion::Entropy),
        threshold: None,
        patience: None,
        target: None,
        data: None,
        samples: None,
    }
}

pub fn weights(selector: &str, bits: Bits, granularity: Granularity) -> QuantSpec {
    QuantSpec {
        span: Span::default(),
        kind: QuantKind::Weights,
        selector: s(selector.to_string()),
        bits: s(bits),
        symmetric: s(true),
        granularity: s(granularity),
        scale: s(ScaleMethod::Max),
        method: s(QuantMethod::Rtn),
        inputs: s(crate::base::WeightInputs::Kernel),
    }
}

pub fn stage(name: &str, steps: usize, losses: Vec<LossKind>) -> StageSpec {
    StageSpec {
        span: Span::default(),
        name: s(name.into()),
        length: s(StageLength::Steps(steps)),
        data: s("train".into()),
        losses: losses
            .into_iter()
            .map(|kind| LossSpec {
                span: Span::default(),
                kind,
                weight: s(1.0),
            })
            .collect(),
        optimizer: s(OptimizerKind::AdamW),
        lr: s(1e-4),
        weight_decay: s(0.01),
        schedule: s(LrScheduleKind::Linear),
        warmup: s(Amount::Fraction(0.1)),
        batch_size: s(32),
        seq_len: s(64),
        grad_clip: None,
        accumulate: s(1),
        checkpoint_every: None,
        checkpoint_minutes: s(5.0),
        seed: s(0),
        eval_every: None,
        keep: s(crate::base::Keep::Best),
        quantize: s(true),
    }
}
