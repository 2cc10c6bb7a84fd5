//! The student's float weights from the teacher's, as the compiled program
//! says: layer reduction (student layer i is the plan's teacher layer), width
//! slicing of heads and neurons (each layer checked against its masked
//! teacher layer), vocabulary pruning (the kept rows of the word embedding,
//! before any factorization), embedding factorization, and the task head and
//! exit heads.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::base::ExitHead;
use crate::base::{ExitScope, Importance};
use crate::base::{LayerShape, ModelConfig};
use crate::diag::Diag;
use crate::eval::build_report::Cut;
use crate::ir::{HeadKind, Layer, Op, Program};
use crate::linalg::truncated_svd_factors;
use crate::lower::prune::equivalence::{check_layer, LayerModules};
use crate::lower::prune::importance::{select_by_magnitude, top_k};
use crate::lower::prune::slice::{layer_tensors, mask_layer, slice_layer, with_prefix, Kept};
use crate::lower::prune::taylor::{taylor_scores, Scores as TaylorScores, TaylorSetup};
use crate::lower::teacher::{Teacher, Tensors};
use crate::runtime::load::weights::SeededWeights;
use crate::runtime::tensor_error;
use crate::text::data::Example;
use crate::text::vocab::PrunedVocab;

/// The student before quantization.
pub struct Student {
    pub config: ModelConfig,
    pub tensors: Tensors,
    /// Teacher layer of each student layer.
    pub layer_map: Vec<usize>,
    /// `encoder.layer.{i}.attention.heads` / `.ffn.neurons` → kept teacher indices.
    pub kept: BTreeMap<String, Vec<usize>>,
    /// IR module name → student module name (layers are renumbered).
    pub module_names: BTreeMap<String, String>,
    /// Energy kept by the embedding factorization, when factorized.
    pub embedding_energy: Option<f64>,
    /// Largest masked-vs-sliced difference over all layers.
    pub max_slice_diff: f32,
    /// Notes for the build output and report.
    pub notes: Vec<String>,
    /// The pruned vocabulary (its tokenizer is the student's), if pruned.
    pub vocab: Option<PrunedVocab>,
}

impl Student {
    /// The tokenizer the student reads: the pruned one, else the teacher's.
    pub fn tokenizer<'a>(&'a self, teacher: &'a Teacher) -> &'a crate::text::TextTokenizer {
        self.vocab
            .as_ref()
            .map_or(&teacher.tokenizer, |v| &v.tokenizer)
    }

    /// How the student was cut from the teacher, as the report shows it.
    pub fn cut(&self) -> Cut {
        Cut {
            layer_map: self.layer_map.clone(),
            embedding_energy_kept: self.embedding_energy,
            max_slice_difference: self.max_slice_diff,
        }
    }
}

/// Builds the student of `program` from `teacher`.
/// `prune_data` is what Taylor importance is scored on; `vocab` the pruned
/// vocabulary, whose kept rows the word embedding keeps.
pub fn build_student(
    program: &Program,
    teacher: &Teacher,
    seed: u64,
    prune_data: &[Example],
    vocab: Option<PrunedVocab>,
    reporter: &dyn crate::lower::reporter::Reporter,
) -> Result<Student, Diag> {
    let mut notes = Vec::new();
    let mut head_tensors = Tensors::new();
    add_heads(program, teacher, seed, &mut head_tensors)?;
    let taylor = taylor_importance(program, teacher, &head_tensors, prune_data, reporter)?;
    if let Some((note, _)) = &taylor {
        notes.push(note.clone());
    }
    let scores = taylor.as_ref().map(|(_, scores)| scores);
    let mut layers = slice_layers(program, teacher, scores)?;
    let mut config = teacher.config.clone();
    config.layers = layers.shapes;
    config.labels = program.plan.labels.clone();
    let embedding_energy = shape_embeddings(
        program,
        &teacher.config,
        vocab.as_ref(),
        &mut layers.tensors,
        &mut config,
    )?;
    layers.tensors.extend(head_tensors);
    for (ix, _) in program.model.linears() {
        for lin in program.model.node(ix).linears() {
            layers
                .module_names
                .entry(lin.name.clone())
                .or_insert(lin.name);
        }
    }
    Ok(Student {
        config,
        tensors: layers.tensors,
        layer_map: layers.layer_map,
        kept: layers.kept,
        module_names: layers.module_names,
        embedding_energy,
        max_slice_diff: layers.max_slice_diff,
        notes,
        vocab,
    })
}

/// Taylor importance of every teacher layer's heads and neurons, when the
/// plan prunes by it, with the note that says how it was scored.
fn taylor_importance(
    program: &Program,
    teacher: &Teacher,
    head_tensors: &Tensors,
    prune_data: &[Example],
    reporter: &dyn crate::lower::reporter::Reporter,
) -> Result<Option<(String, TaylorScores)>, Diag> {
    let Some(p) = program
        .plan
        .prune
        .as_ref()
        .filter(|p| p.importance == Importance::Taylor)
    else {
        return Ok(None);
    };
    let ir_layers = program.model.layers();
    let exit_layers = match p.over {
        ExitScope::LastExit => Vec::new(),
        ExitScope::AllExits => program
            .plan
            .exits
            .iter()
            .flat_map(|e| e.after.iter())
            .filter_map(|&l| ir_layers.get(l.wrapping_sub(1)).map(|x| x.teacher + 1))
            .collect(),
    };
    let setup = TaylorSetup {
        task: program.plan.task,
        exit_layers,
        head: Some(head_tensors),
        batches: p.batches,
    };
    let note = format!(
        "importance: taylor, |activation × gradient| over {} exit(s) and the final output, {} batch(es)",
        setup.exit_layers.len(),
        p.batches.min(prune_data.len().div_ceil(16)).max(1)
    );
    Ok(Some((
        note,
        taylor_scores(teacher, &setup, prune_data, reporter)?,
    )))
}

/// The student's layers: each the plan's teacher layer with the kept heads
/// and neurons, checked against its masked teacher layer.
struct SlicedLayers {
    /// The teacher's tensors outside its layers, and the sliced layers'.
    tensors: Tensors,
    shapes: Vec<LayerShape>,
    layer_map: Vec<usize>,
    kept: BTreeMap<String, Vec<usize>>,
    module_names: BTreeMap<String, String>,
    max_slice_diff: f32,
}

/// Reduces and slices the teacher's layers as the program says; heads and
/// neurons are kept by `taylor` scores when given, else by magnitude.
fn slice_layers(
    program: &Program,
    teacher: &Teacher,
    taylor: Option<&TaylorScores>,
) -> Result<SlicedLayers, Diag> {
    let arch = teacher.config.arch;
    let mut out = SlicedLayers {
        tensors: teacher
            .tensors
            .iter()
            .filter(|(n, _)| !n.starts_with(arch.family().layers.root))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect(),
        shapes: Vec::new(),
        layer_map: Vec::new(),
        kept: BTreeMap::new(),
        module_names: BTreeMap::new(),
        max_slice_diff: 0f32,
    };
    for (i, layer) in program.model.layers().iter().enumerate() {
        let t = layer.teacher;
        let tshape = *teacher.config.layers.get(t).ok_or_else(|| {
            Diag::new(
                "plcc::build::no-such-layer",
                format!(
                    "the plan maps a student layer to teacher layer {t}, which the teacher lacks"
                ),
            )
        })?;
        let (Op::Attention(a), Op::Ffn(f)) = (
            &program.model.node(layer.attention).op,
            &program.model.node(layer.ffn).op,
        ) else {
            continue;
        };
        let shape = LayerShape {
            heads: a.heads,
            head_dim: a.head_dim,
            ffn: f.width,
        };
        slice_layer_into(
            program,
            teacher,
            taylor,
            (i, layer),
            (tshape, shape),
            &mut out,
        )?;
    }
    Ok(out)
}

/// Slices teacher layer `layer.teacher`, of shape `tshape`, to `shape` as
/// student layer `i`,
/// checks it against its masked teacher layer, and adds it to `out`.
fn slice_layer_into(
    program: &Program,
    teacher: &Teacher,
    taylor: Option<&TaylorScores>,
    (i, layer): (usize, &Layer),
    (tshape, shape): (LayerShape, LayerShape),
    out: &mut SlicedLayers,
) -> Result<(), Diag> {
    let arch = teacher.config.arch;
    let t = layer.teacher;
    let stack = &arch.family().layers;
    let teacher_layer = layer_tensors(&teacher.tensors, &stack.prefix(t));
    let kept = match taylor.and_then(|s| s.get(&t)) {
        Some((h, n)) => Kept {
            heads: top_k(h, shape.heads),
            neurons: top_k(n, shape.ffn),
        },
        None => select_by_magnitude(&teacher_layer, arch, tshape, shape.heads, shape.ffn)?,
    };
    let sliced = slice_layer(&teacher_layer, arch, tshape, &kept)?;
    let masked = mask_layer(&teacher_layer, arch, tshape, &kept)?;
    let attention_name = program.model.node(layer.attention).name.clone();
    let ffn_name = program.model.node(layer.ffn).name.clone();
    // A layer nothing was cut from is the teacher's own.
    let diff = if shape == tshape {
        0.0
    } else {
        check_layer(
            &teacher.config,
            (&masked, tshape),
            (&sliced, shape),
            LayerModules {
                attention: &attention_name,
                ffn: &ffn_name,
            },
        )?
    };
    out.max_slice_diff = out.max_slice_diff.max(diff);
    let student_prefix = stack.prefix(i);
    for node in [layer.attention, layer.ffn] {
        for lin in program.model.node(node).linears() {
            let renamed = match lin.name.strip_prefix(&stack.prefix(t)) {
                Some(rest) => format!("{student_prefix}{rest}"),
                None => lin.name.clone(),
            };
            out.module_names.insert(lin.name, renamed);
        }
    }
    out.kept
        .insert(format!("{student_prefix}heads"), kept.heads.clone());
    out.kept
        .insert(format!("{student_prefix}neurons"), kept.neurons.clone());
    out.tensors.extend(with_prefix(&sliced, &student_prefix));
    out.shapes.push(shape);
    out.layer_map.push(t);
    Ok(())
}

/// The word embedding as the program says: the pruned vocabulary's kept
/// rows (and the vocabulary size and padding id in `config`), then the
/// factorization. Returns the energy the factorization kept.
fn shape_embeddings(
    program: &Program,
    tcfg: &ModelConfig,
    vocab: Option<&PrunedVocab>,
    tensors: &mut Tensors,
    config: &mut ModelConfig,
) -> Result<Option<f64>, Diag> {
    let Some(Op::Embeddings(e)) = program
        .model
        .find_op(|op| matches!(op, Op::Embeddings(_)))
        .map(|ix| &program.model.node(ix).op)
    else {
        return Ok(None);
    };
    if let Some(v) = vocab {
        let name = format!("{}.weight", e.word);
        let table = tensors.get(&name).ok_or_else(|| {
            Diag::new(
                "plcc::build::missing-tensor",
                format!("the teacher has no `{name}`"),
            )
        })?;
        let rows = Tensor::from_vec(v.kept.clone(), v.kept.len(), table.device())
            .and_then(|ix| table.index_select(&ix, 0))
            .map_err(tensor_error)?;
        tensors.insert(name, rows);
        config.vocab_size = v.len();
        config.pad_token_id = config.pad_token_id.and_then(|p| v.new_id(p));
    }
    let mut embedding_energy = None;
    if let (Some(r), None) = (e.rank, tcfg.embedding_rank) {
        embedding_energy = Some(factorize(
            tensors,
            &format!("{}.weight", e.word),
            &format!("{}_proj.weight", e.word),
            r,
        )?);
    }
    config.embedding_rank = e.rank;
    Ok(embedding_energy)
}

/// Replaces `word` `[vocab, hidden]` by `[vocab, r]` and `proj` `[hidden, r]`.
fn factorize(tensors: &mut Tensors, word: &str, proj: &str, rank: usize) -> Result<f64, Diag> {
    let table = tensors.get(word).ok_or_else(|| {
        Diag::new(
            "plcc::build::missing-tensor",
            format!("the teacher has no `{word}`"),
        )
    })?;
    let (vocab, hidden) = table.dims2().map_err(tensor_error)?;
    let values = table
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(tensor_error)?;
    let f = truncated_svd_factors(&values, vocab, hidden, rank);
    let dev = table.device().clone();
    let left = Tensor::from_vec(f.left.clone(), (vocab, f.rank), &dev).map_err(tensor_error)?;
    let right = Tensor::from_vec(f.right.clone(), (f.rank, hidden), &dev)
        .and_then(|r| r.t())
        .and_then(|r| r.contiguous())
        .map_err(tensor_error)?;
    tensors.insert(word.to_string(), left);
    tensors.insert(proj.to_string(), right);
    Ok(f.energy_kept())
}

/// The final head's and the exit heads' tensors, as the program says.
fn add_heads(
    program: &Program,
    teacher: &Teacher,
    seed: u64,
    tensors: &mut Tensors,
) -> Result<(), Diag> {
    let hidden = teacher.config.hidden_size;
    // The final head first: classifier exits start as copies of it.
    let mut nodes = program.model.ordered_nodes();
    nodes.sort_by_key(|&ix| !matches!(program.model.node(ix).op, Op::Head(_)));
    for ix in nodes {
        let node = program.model.node(ix);
        match &node.op {
            Op::Head(h) => {
                if let HeadKind::Classify { .. } = &h.kind {
                    if !teacher.config.arch.family().supports.classification {
                        return Err(Diag::new(
                            "plcc::build::unsupported",
                            "classification with a GPT-2 teacher cannot be built yet",
                        )
                        .help("use `task: causal_lm` for GPT-2 teachers"));
                    }
                    for lin in node.linears() {
                        tensors.extend(task_head_tensors(
                            teacher, &lin.name, lin.out, lin.inp, lin.bias, seed,
                        )?);
                    }
                }
            }
            Op::Exit(e) => {
                let dev = Device::Cpu;
                match e.head {
                    ExitHead::Pooler => {
                        let eye = Tensor::eye(hidden, DType::F32, &dev).map_err(tensor_error)?;
                        let zeros =
                            Tensor::zeros(hidden, DType::F32, &dev).map_err(tensor_error)?;
                        tensors.insert(format!("{}.dense.weight", node.name), eye);
                        tensors.insert(format!("{}.dense.bias", node.name), zeros);
                    }
                    ExitHead::Classifier if e.tied => {}
                    ExitHead::Classifier => {
                        let Some(HeadKind::Classify { classifier, .. }) = program
                            .model
                            .find_op(|op| matches!(op, Op::Head(_)))
                            .and_then(|ix| match &program.model.node(ix).op {
                                Op::Head(h) => Some(h.kind.clone()),
                                _ => None,
                            })
                        else {
                            continue;
                        };
                        for part in ["weight", "bias"] {
                            if let Some(t) = tensors.get(&format!("{classifier}.{part}")).cloned() {
                                tensors.insert(format!("{}.classifier.{part}", node.name), t);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The tensors of one task-head linear: the teacher's when it has them with
/// the right shape, else a seeded initialisation (normal, std 0.02; bias 0).
pub fn task_head_tensors(
    teacher: &Teacher,
    name: &str,
    out: usize,
    inp: usize,
    bias: bool,
    seed: u64,
) -> Result<Tensors, Diag> {
    let mut t = Tensors::new();
    let w_name = format!("{name}.weight");
    match teacher.extra.get(&w_name) {
        Some(w) if w.dims() == [out, inp] => {
            t.insert(w_name, w.clone());
            if bias {
                if let Some(b) = teacher.extra.get(&format!("{name}.bias")) {
                    t.insert(format!("{name}.bias"), b.clone());
                }
            }
        }
        _ => {
            let vb =
                VarBuilder::from_backend(Box::new(SeededWeights { seed }), DType::F32, Device::Cpu);
            let w = vb
                .pp(name)
                .get_with_hints(
                    (out, inp),
                    "weight",
                    Init::Randn {
                        mean: 0.0,
                        stdev: 0.02,
                    },
                )
                .map_err(tensor_error)?;
            t.insert(w_name, w);
            if bias {
                let b = Tensor::zeros(out, DType::F32, &Device::Cpu).map_err(tensor_error)?;
                t.insert(format!("{name}.bias"), b);
            }
        }
    }
    Ok(t)
}
