//! Width pruning on the built-in tiny BERT: the equivalence check accepts a
//! right slice and names the module of a wrong one, and Taylor importance
//! scores every head and neuron through all exits.

use candle_core::Device;

use super::equivalence::{check_layer, LayerModules};
use super::slice::{layer_tensors, mask_layer, slice_layer, Kept};
use super::taylor::{taylor_scores, TaylorSetup};
use crate::base::{builtin, LayerShape, ModelConfig, Pooling, Task, TeacherRef};
use crate::lower::reporter::Silent;
use crate::lower::teacher::{load_teacher, Tensors};
use crate::text::data::Example;

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\n";

fn tiny_bert_layer() -> (ModelConfig, Tensors) {
    let teacher = load_teacher(&TeacherRef::Builtin("tiny-bert".into()), &Device::Cpu).unwrap();
    let cfg = builtin::config("tiny-bert").unwrap();
    let layer = layer_tensors(&teacher.tensors, &cfg.arch.family().layers.prefix(1));
    (cfg, layer)
}

#[test]
fn equivalence_check_accepts_a_right_slice_and_names_a_wrong_one() {
    let (cfg, layer) = tiny_bert_layer();
    let t = cfg.layers[1];
    let small = LayerShape {
        heads: 2,
        head_dim: t.head_dim,
        ffn: 3,
    };
    let kept = Kept {
        heads: vec![0, 2],
        neurons: vec![1, 5, 9],
    };
    let modules = || LayerModules {
        attention: "encoder.layer.1.attention",
        ffn: "encoder.layer.1",
    };
    let masked = mask_layer(&layer, cfg.arch, t, &kept).unwrap();
    let sliced = slice_layer(&layer, cfg.arch, t, &kept).unwrap();
    let diff = check_layer(&cfg, (&masked, t), (&sliced, small), modules()).unwrap();
    assert!(diff <= 1e-4);

    let wrong_heads = Kept {
        heads: vec![0, 1],
        neurons: kept.neurons.clone(),
    };
    let bad = slice_layer(&layer, cfg.arch, t, &wrong_heads).unwrap();
    let err = check_layer(&cfg, (&masked, t), (&bad, small), modules()).unwrap_err();
    assert_eq!(err.code, "plcc::build::slice-mismatch");
    assert!(
        err.message.contains("`encoder.layer.1.attention`"),
        "{}",
        err.message
    );

    let wrong_neurons = Kept {
        heads: kept.heads.clone(),
        neurons: vec![1, 5, 10],
    };
    let bad = slice_layer(&layer, cfg.arch, t, &wrong_neurons).unwrap();
    let err = check_layer(&cfg, (&masked, t), (&bad, small), modules()).unwrap_err();
    assert!(err.message.contains("`encoder.layer.1`"), "{}", err.message);
}

#[test]
fn taylor_importance_scores_every_head_and_neuron_through_all_exits() {
    let teacher = load_teacher(&TeacherRef::Builtin("tiny-bert".into()), &Device::Cpu).unwrap();
    let examples: Vec<Example> = SENTENCES.lines().map(Example::text).collect();
    let setup = |exit_layers: Vec<usize>| TaylorSetup {
        task: Task::Embedding {
            pooling: Pooling::Mean,
        },
        exit_layers,
        head: None,
        batches: 2,
    };
    let all = taylor_scores(&teacher, &setup(vec![1, 2]), &examples, &Silent).unwrap();
    assert_eq!(all.len(), 4);
    for (heads, neurons) in all.values() {
        assert_eq!((heads.len(), neurons.len()), (4, 256));
        assert!(heads.iter().all(|s| s.is_finite() && *s > 0.0), "{heads:?}");
        assert!(neurons.iter().filter(|s| **s > 0.0).count() > 200);
    }
    // Exits change what layer 1 is scored on.
    let last = taylor_scores(&teacher, &setup(vec![]), &examples, &Silent).unwrap();
    assert_ne!(all[&0].0, last[&0].0);
}
