//! The schema check fills every default and keeps spans of what it read.

use std::path::Path;

use plcc::base::*;
use plcc::recipe::*;

fn recipe(text: &str) -> Recipe {
    parse_str(text, Path::new("/base"))
        .unwrap_or_else(|d| panic!("{}", d.with_source("t.pc", text).render_plain()))
}

fn error_code(text: &str) -> &'static str {
    parse_str(text, Path::new("/base"))
        .err()
        .map(|d| d.code)
        .expect("the recipe must fail")
}

#[test]
fn fills_defaults() {
    let r = recipe(
        "teacher: \"builtin:tiny-bert\"\ndata d \"x.jsonl\" {}\nprune { heads: 2 }\nexits { after: all }\n\
         quantize weights \"*\" { bits: ternary }\nquantize activations \"*\" { bits: 8 }\n\
         distill s { steps: 5, data: d, loss contrastive {} }",
    );
    assert_eq!(r.teacher.value, TeacherRef::Builtin("tiny-bert".into()));
    assert_eq!(
        r.task.value,
        Task::Embedding {
            pooling: Pooling::Mean
        }
    );
    assert_eq!(r.device.value, Device::Cpu);
    assert_eq!(r.seed.value, 0);
    assert!(r.output.is_none());
    let d = &r.datasets[0];
    assert_eq!(d.path.value, Path::new("/base/x.jsonl"));
    assert_eq!(
        (d.format, d.text.clone()),
        (DataFormat::Jsonl, Column::Key("text".into()))
    );
    let p = r.prune.as_ref().unwrap();
    assert_eq!(p.width.heads.as_ref().unwrap().value, Amount::Count(2));
    assert_eq!(
        (p.importance.value, p.over.value, p.batches.value),
        (Importance::Taylor, ExitScope::AllExits, 8)
    );
    assert_eq!(p.data.as_ref().unwrap().value, "d");
    let e = r.exits.as_ref().unwrap();
    assert_eq!(
        (e.head.value, e.criterion.value),
        (ExitHead::Pooler, ExitCriterion::Similarity)
    );
    assert_eq!(e.after.value, ExitLayers::All);
    let (w, a) = (&r.quantizers[0], &r.quantizers[1]);
    assert_eq!(
        (w.bits.value, w.granularity.value, w.scale.value),
        (Bits::Ternary, Granularity::Row, ScaleMethod::MeanAbs)
    );
    assert_eq!(
        (a.bits.value, a.granularity.value, a.scale.value),
        (Bits::Int(8), Granularity::Token, ScaleMethod::Max)
    );
    let s = &r.stages[0];
    assert_eq!(s.length.value, StageLength::Steps(5));
    assert_eq!(
        (s.optimizer.value, s.schedule.value),
        (OptimizerKind::AdamW, LrScheduleKind::Linear)
    );
    assert_eq!(
        (s.lr.value, s.weight_decay.value, s.warmup.value),
        (1e-4, 0.01, Amount::Fraction(0.1))
    );
    assert_eq!(
        (s.batch_size.value, s.seq_len.value, s.accumulate.value),
        (32, 128, 1)
    );
    assert_eq!(
        s.losses[0].kind,
        LossKind::Contrastive {
            temperature: 0.1,
            negatives: Negatives::Batch,
            layer: None
        }
    );
    assert_eq!(s.losses[0].weight.value, 1.0);
}

#[test]
fn gpt2_teacher_defaults_to_causal_lm_with_classifier_exits() {
    let r = recipe("teacher: \"builtin:tiny-gpt2\"\nexits { after: [1, 3], criterion: patience }");
    assert_eq!(r.task.value, Task::CausalLm);
    let e = r.exits.unwrap();
    assert_eq!(e.head.value, ExitHead::Classifier);
    assert_eq!(e.patience.unwrap().value, 2);
    let ExitLayers::List(layers) = e.after.value else {
        panic!()
    };
    assert_eq!(
        layers.iter().map(|l| l.value).collect::<Vec<_>>(),
        vec![1, 3]
    );
}

#[test]
fn reads_layer_overrides_maps_and_pass_arguments() {
    let r = recipe(
        "teacher: \"t\"\ntask: classification\nlabels: 3\nkeep_layers: 0..=2\n\
         data d \"x.tsv\" { label: 1 }\nprune { layers [1, 2] { ffn: 25% } layer 0 { heads: 1 } }\n\
         distill s { epochs: 1, data: d, warmup: 0, loss hidden_mse { map: [0 -> 0, 3 -> 6] } }\n\
         pass \"head-floor\" { min: 2, share: 50%, names: [a, \"b\"], strict: true }",
    );
    assert_eq!(r.teacher.value, TeacherRef::Dir("/base/t".into()));
    assert_eq!(r.task.value, Task::Classification { labels: 3 });
    let kept: Vec<usize> = r
        .keep_layers
        .unwrap()
        .value
        .iter()
        .map(|l| l.value)
        .collect();
    assert_eq!(kept, vec![0, 1, 2]);
    assert_eq!(r.datasets[0].label, Some(Column::Index(1)));
    let p = r.prune.unwrap();
    assert_eq!(p.per_layer[0].layers.value, vec![1, 2]);
    assert_eq!(
        p.per_layer[0].width.ffn.as_ref().unwrap().value,
        Amount::Fraction(0.25)
    );
    assert_eq!(p.per_layer[1].layers.value, vec![0]);
    assert_eq!(
        r.stages[0].losses[0].kind,
        LossKind::HiddenMse {
            map: Some(vec![(0, 0), (3, 6)])
        }
    );
    assert_eq!(r.stages[0].warmup.value, Amount::Count(0));
    let call = &r.custom_passes[0];
    assert_eq!(call.name.value, "head-floor");
    let args: Vec<(&str, &ArgValue)> = call
        .args
        .iter()
        .map(|(k, v)| (k.value.as_str(), &v.value))
        .collect();
    assert_eq!(
        args,
        vec![
            ("min", &ArgValue::Number(2.0)),
            ("share", &ArgValue::Percent(0.5)),
            (
                "names",
                &ArgValue::List(vec![ArgValue::Ident("a".into()), ArgValue::Str("b".into())])
            ),
            ("strict", &ArgValue::Bool(true)),
        ]
    );
}

#[test]
fn spans_point_at_the_values() {
    let text = "teacher: \"builtin:tiny-bert\"\nseed: 42\n";
    let r = recipe(text);
    assert_eq!(&text[r.seed.span.start..r.seed.span.end], "42");
    assert_eq!(
        &text[r.teacher.span.start..r.teacher.span.end],
        "\"builtin:tiny-bert\""
    );
}

#[test]
fn rejects_schema_errors() {
    let t = "teacher: \"builtin:tiny-bert\"\n";
    assert_eq!(
        error_code(&format!("{t}labels: 2")),
        "plcc::recipe::conflicting-keys"
    );
    assert_eq!(
        error_code(&format!("{t}task: causal_lm\npooling: cls")),
        "plcc::recipe::conflicting-keys"
    );
    assert_eq!(
        error_code(&format!("{t}prune {{ ffn: 0 }}")),
        "plcc::recipe::out-of-range"
    );
    assert_eq!(
        error_code(&format!("{t}prune {{ ffn: 0% }}")),
        "plcc::recipe::fraction-out-of-range"
    );
    assert_eq!(
        error_code(&format!("{t}prune {{ layer 1 {{ importance: taylor }} }}")),
        "plcc::recipe::unknown-key"
    );
    assert_eq!(
        error_code(&format!("{t}prune {{}}\nprune {{}}")),
        "plcc::recipe::duplicate-block"
    );
    assert_eq!(
        error_code(&format!("{t}eval: nothing")),
        "plcc::recipe::unknown-dataset"
    );
    assert_eq!(
        error_code(&format!("{t}data d \"x.txt\" {{ label: 1 }}")),
        "plcc::recipe::conflicting-keys"
    );
    assert_eq!(
        error_code(&format!("{t}data d \"x.tsv\" {{ label: \"y\" }}")),
        "plcc::recipe::wrong-type"
    );
    assert_eq!(
        error_code(&format!("{t}exits {{ after: all, patience: 3 }}")),
        "plcc::recipe::conflicting-keys"
    );
    assert_eq!(
        error_code(&format!(
            "{t}quantize weights \"*\" {{ bits: 8, group: 32 }}"
        )),
        "plcc::recipe::conflicting-keys"
    );
    assert_eq!(
        error_code(&format!("{t}quantize biases \"*\" {{ bits: 8 }}")),
        "plcc::recipe::unknown-value"
    );
    assert_eq!(
        error_code(&format!("{t}keep_layers: []")),
        "plcc::recipe::out-of-range"
    );
    assert_eq!(
        error_code(&format!(
            "{t}data d \"x\" {{}}\ndistill s {{ steps: 1, data: d, loss kl {{}} }}"
        )),
        "plcc::recipe::unknown-value"
    );
    assert_eq!(error_code(&format!("{t}data d \"x\" {{}}\ndistill s {{ steps: 1, data: d, loss cosine {{}} loss cosine {{}} }}")), "plcc::recipe::duplicate-block");
    assert_eq!(error_code(&format!("{t}data d \"x\" {{}}\ndistill s {{ steps: 1, data: d, loss attention_kl {{ map: [0 -> 1] }} }}")), "plcc::recipe::out-of-range");
    assert_eq!(
        error_code(&format!("{t}pass {{}}")),
        "plcc::recipe::wrong-arguments"
    );
}

#[test]
fn exit_calibration_data_needs_a_target_and_a_declared_data_set() {
    let head = "teacher: \"builtin:tiny-bert\"\ndata d \"x.txt\" {}\n";
    let r = recipe(&format!(
        "{head}exits {{ after: all, max_fidelity_loss: 2%, data: d, samples: 50 }}"
    ));
    let e = r.exits.unwrap();
    assert_eq!(e.data.unwrap().value, "d");
    assert_eq!(e.samples.unwrap().value, 50);
    assert_eq!(
        error_code(&format!("{head}exits {{ after: all, data: d }}")),
        "plcc::recipe::conflicting-keys"
    );
    assert_eq!(
        error_code(&format!(
            "{head}exits {{ after: all, target_speedup: 2, data: nope }}"
        )),
        "plcc::recipe::unknown-dataset"
    );
}

#[test]
fn eval_lists_data_sets_the_first_primary_and_retrieval_sets_name_their_columns() {
    let head = "teacher: \"builtin:tiny-bert\"\ndata a \"a.txt\" {}\n\
                data b \"b.tsv\" { query: 1, document: 0 }\n";
    let text = format!("{head}eval: [a, b]\n");
    let r = recipe(&text);
    let names: Vec<&str> = r.eval.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(&text[r.eval[1].span.start..r.eval[1].span.end], "b");
    let b = &r.datasets[1];
    assert!(b.retrieval && !r.datasets[0].retrieval);
    assert_eq!(
        (b.text.clone(), b.text_pair.clone(), b.label.clone()),
        (Column::Index(1), Some(Column::Index(0)), None)
    );
    // One name is a list of one; no `eval` is an empty list.
    assert_eq!(recipe(&format!("{head}eval: b")).eval.len(), 1);
    assert!(recipe(head).eval.is_empty());

    for (extra, code) in [
        ("eval: [a, nope]", "plcc::recipe::unknown-dataset"),
        ("eval: []", "plcc::recipe::out-of-range"),
        ("eval: [a, a]", "plcc::recipe::duplicate-eval"),
        ("eval: [a, 3]", "plcc::recipe::wrong-type"),
        (
            "task: causal_lm\neval: [a, b]",
            "plcc::recipe::retrieval-task",
        ),
        ("data c \"c.tsv\" { query: 0 }", "plcc::recipe::missing-key"),
        (
            "data c \"c.tsv\" { document: 0 }",
            "plcc::recipe::missing-key",
        ),
        (
            "data c \"c.tsv\" { query: 0, document: 1, label: 2 }",
            "plcc::recipe::conflicting-keys",
        ),
        (
            "data c \"c.txt\" { query: 0, document: 1 }",
            "plcc::recipe::conflicting-keys",
        ),
    ] {
        assert_eq!(error_code(&format!("{head}{extra}")), code, "{extra}");
    }
}
