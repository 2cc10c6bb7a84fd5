//! Unit tests of resolve, verify and the cost model (hand-computed numbers
//! for the built-in teachers).

use super::testing::*;
use super::*;
use crate::base::{Bits, ExitHead, Granularity, Task};
use crate::pass::{run_passes, DumpAfter};
use crate::recipe::{Amount, LossKind};

fn compile(recipe: &crate::recipe::Recipe) -> Result<crate::ir::Verified, crate::Diag> {
    crate::compile_recipe(recipe, &crate::pass_registry(), DumpAfter::none())
}

#[test]
fn tiny_bert_teacher_cost_by_hand() {
    let program = resolve(&recipe("tiny-bert", embedding())).unwrap();
    verify(&program).unwrap();
    let c = &program.plan.cost.teacher;
    // embeddings: 1024·64 words + 128·64 positions + 2·64 types + 2·64 norm
    let embeddings = 65_536 + 8_192 + 128 + 128;
    // attention: q, k, v, output 64×64 + 64 bias each, norm 2·64
    let attention = 4 * (4_096 + 64) + 128;
    // FFN: 64→256 (+256), 256→64 (+64), norm 2·64
    let ffn = 16_384 + 256 + 16_384 + 64 + 128;
    assert_eq!(c.params, embeddings + 4 * (attention + ffn));
    assert_eq!(c.params, 273_920);
    assert_eq!(c.bytes, 4 * 273_920);
    // per layer per token: 2·(4·64·64 + 2·64·256) linears + 2·2·64·128 attention
    let per_layer = 2 * (4 * 4_096 + 2 * 16_384) + 4 * 64 * 128;
    assert_eq!(per_layer, 131_072);
    assert_eq!(program.plan.cost.seq_len, DEFAULT_SEQ_LEN);
    assert_eq!(c.flops_per_token, 4 * per_layer);
    assert!(c.exits.is_empty());
}

#[test]
fn tiny_gpt2_teacher_cost_by_hand() {
    let program = resolve(&recipe("tiny-gpt2", Task::CausalLm)).unwrap();
    verify(&program).unwrap();
    let c = &program.plan.cost.teacher;
    // wte 512·64 + wpe 128·64; layers as BERT's; ln_f 2·64; tied LM head 0
    assert_eq!(c.params, 32_768 + 8_192 + 4 * 49_984 + 128);
    // + LM head 2·512·64 per token
    assert_eq!(c.flops_per_token, 4 * 131_072 + 65_536);
}

#[test]
fn packed_bytes_follow_bits_and_scales() {
    let mut r = recipe("tiny-bert", embedding());
    r.quantizers = vec![
        weights("embeddings.word_embeddings", Bits::Int(8), Granularity::Row),
        weights(
            "encoder.layer.0.attention.self.query",
            Bits::Ternary,
            Granularity::Tensor,
        ),
        weights(
            "encoder.layer.0.intermediate.dense",
            Bits::Binary,
            Granularity::Group(32),
        ),
    ];
    r.quantizers[2].symmetric.value = false;
    let p = compile(&r).unwrap();
    let teacher = p.plan.cost.teacher.bytes;
    // int8 row: 65536 bytes + 1024 row scales; was 4·65536
    let words = 65_536 + 4 * 1_024;
    // ternary tensor: 4096·2/8 bytes + 1 scale
    let query = 1_024 + 4;
    // binary (symmetric whatever the recipe says), groups of 32 over 64
    // inputs, 256 rows, f16 group scales: 16384/8 + 256·2·2
    let inter = 2_048 + 256 * 2 * 2;
    let saved = (4 * 65_536 - words) + (4 * 4_096 - query) + (4 * 16_384 - inter);
    assert_eq!(p.plan.cost.student.bytes, teacher - saved);
    assert_eq!(p.plan.cost.student.params, p.plan.cost.teacher.params);
}

#[test]
fn pruning_and_exits_change_cost() {
    let mut r = recipe("tiny-bert", Task::Classification { labels: 3 });
    r.prune = Some(prune(Some(Amount::Fraction(0.5)), Some(Amount::Count(64))));
    r.exits = Some(exits(&[1, 2], ExitHead::Classifier));
    r.stages = vec![stage("one", 100, vec![LossKind::TaskCe])];
    let p = compile(&r).unwrap();
    let s = &p.plan.cost.student;
    assert_eq!(p.plan.cost.seq_len, 64);
    // layer: q,k,v 32×64, out 64×32 (+biases), FFN 64→64→64, two norms
    let attention = 3 * (2_048 + 32) + 2_048 + 64 + 128;
    let ffn = 4_096 + 64 + 4_096 + 64 + 128;
    let embeddings = 65_536 + 8_192 + 128 + 128;
    let head = 4_096 + 64 + 3 * 64 + 3; // pooler + classifier
    let exit = 3 * 64 + 3;
    assert_eq!(
        s.params,
        embeddings + 4 * (attention + ffn) + head + 2 * exit
    );
    // per token at seq 64: linears 2·(4·2048 + 2·4096) + attention 2·2·32·64
    let layer = 2 * (4 * 2_048 + 2 * 4_096) + 4 * 32 * 64;
    let head_flops = 2 * (4_096 + 192); // once per sequence
    assert_eq!(
        s.flops_per_token,
        (64 * 4 * layer + head_flops as u64).div_ceil(64)
    );
    let exit_flops = 2 * 192;
    assert_eq!(s.exits.len(), 2);
    assert_eq!(
        s.exits[0].flops_per_token,
        (64 * layer + exit_flops as u64).div_ceil(64)
    );
    assert_eq!(
        s.exits[1].flops_per_token,
        (64 * 2 * layer + 2 * exit_flops as u64).div_ceil(64)
    );
}

#[test]
fn verify_rejects_mismatched_edges_and_empty_heads() {
    let mut p = resolve(&recipe("tiny-bert", embedding())).unwrap();
    let layer = p.model.layers()[1];
    if let Op::Attention(a) = &mut p.model.node_mut(layer.attention).op {
        a.heads = 0;
    }
    let d = verify(&p).unwrap_err();
    assert!(
        d.message.contains("encoder.layer.1.attention"),
        "{}",
        d.message
    );

    let mut p = resolve(&recipe("tiny-bert", embedding())).unwrap();
    if let Op::Ffn(f) = &mut p.model.node_mut(layer.ffn).op {
        f.hidden = 32;
    }
    let d = verify(&p).unwrap_err();
    assert_eq!(d.code, "plcc::internal::invalid-ir");
}

#[test]
fn missing_checkpoint_is_a_diag_on_the_teacher() {
    let mut r = recipe("tiny-bert", embedding());
    r.teacher = crate::diag::Spanned::new(
        crate::base::TeacherRef::Dir("/nonexistent/plcc-checkpoint".into()),
        crate::diag::Span::new(9, 20),
    );
    let d = resolve(&r).unwrap_err();
    assert_eq!(d.code, "plcc::checkpoint::missing");
    assert_eq!(d.labels[0].span, crate::diag::Span::new(9, 20));
}

#[test]
fn print_is_deterministic_and_names_nodes() {
    let mut r = recipe("tiny-gpt2", Task::CausalLm);
    r.exits = Some(exits(&[2], ExitHead::Classifier));
    let a = print(&compile(&r).unwrap());
    let b = print(&compile(&r).unwrap());
    assert_eq!(a, b);
    assert!(a.contains("h.1.mlp = ffn(%"), "{a}");
    assert!(a.contains("exit.2 = exit("), "{a}");
    let exit_line = a.lines().position(|l| l.contains("exit.2")).unwrap();
    let layer2 = a.lines().position(|l| l.contains("h.1.mlp")).unwrap();
    assert_eq!(exit_line, layer2 + 1, "{a}");
}

#[test]
fn passes_run_in_order_and_dump() {
    let mut seen = Vec::new();
    let r = recipe("tiny-bert", embedding());
    let p = resolve(&r).unwrap();
    let dump = DumpAfter::new(crate::pass::DumpSelect::All, |name, _| {
        seen.push(name.to_string())
    });
    run_passes(p, &crate::pass_registry(), &r, dump).unwrap();
    assert_eq!(
        seen,
        [
            "layer-reduce",
            "width-prune",
            "vocab-prune",
            "exit-insert",
            "quant-place",
            "distill-schedule"
        ]
    );
}
