//! `plcc build`: executing a compiled program on the teacher's weights and
//! writing the artifact. Without training (`--max-steps 0`): layer reduction,
//! width slicing (checked against the masked teacher), embedding
//! factorization, vocabulary pruning (the kept word-embedding rows and a
//! rewritten tokenizer), head initialisation, quantization and packing, then
//! fidelity measured by running the written artifact against the teacher.
//! The artifact is committed only when every check passed.

pub mod distill;
pub mod equivalence;
pub mod gptq;
pub mod importance;
pub mod layout;
pub mod quantize;
pub mod slice;
pub mod student;
pub mod taylor;
pub mod teacher;
pub mod train;
pub mod vocab;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;

use crate::artifact::{
    write_into, ExitRecord, Manifest, RecipeRecord, SourceRecord, StagedDir, FORMAT, FORMAT_VERSION,
};
use crate::base::sha256_hex;
use crate::compile_recipe;
use crate::diag::Diag;
use crate::eval::report::{Report, Size, TrainingReport};
use crate::lower::train::Session;
use crate::pass::{DumpAfter, PassRegistry};
use crate::recipe::load;
use crate::runtime::from_artifact::classifier_head;
use crate::runtime::from_artifact::load_artifact;
use crate::runtime::LoadedModel;
use crate::text::data;
pub use train::folder::training_dir;

/// Allowed relative difference between the real weight file and the plan's estimate.
pub const BYTES_TOLERANCE: f64 = 0.05;

/// What `plcc build` was asked to do.
pub struct BuildOptions<'a> {
    pub recipe: &'a Path,
    pub output: Option<PathBuf>,
    pub max_steps: Option<usize>,
    pub resume: bool,
    /// Let the recipe's `output:` name a path outside the recipe's folder.
    pub allow_outside: bool,
    /// No progress bars (tests, scripts).
    pub quiet: bool,
    /// Where training runs (the student and the teacher it is distilled
    /// from); compression, packing and the fidelity measurement of the
    /// artifact run on the CPU.
    pub device: Device,
}

/// A finished build.
pub struct Built {
    pub dir: PathBuf,
    pub report: Report,
}

/// `model` (the teacher) with the student's initial head (copied from the
/// teacher's when it has one) when it classifies and has no head of its own,
/// so that it is compared through that head.
fn with_stand_in_head(
    mut model: LoadedModel,
    student: &student::Student,
    classifies: bool,
) -> Result<LoadedModel, Diag> {
    if classifies && model.classifier.is_none() {
        let tensors = teacher::tensors_on(&student.tensors, &model.device)?;
        model.classifier = classifier_head(&tensors, model.config.num_layers());
    }
    Ok(model)
}

/// Runs the build, calling `stage(name, seconds)` after each stage.
pub fn build(
    opts: &BuildOptions<'_>,
    registry: &PassRegistry,
    stage: &mut dyn FnMut(&str, f64),
) -> Result<Built, Diag> {
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut clock = Instant::now();
    let mut done = |name: &str, timings: &mut Vec<(String, f64)>| {
        let secs = clock.elapsed().as_secs_f64();
        stage(name, secs);
        timings.push((name.to_string(), secs));
        clock = Instant::now();
    };

    let (recipe, source) = load(opts.recipe)?;
    let program =
        compile_recipe(&recipe, registry, DumpAfter::none()).map_err(|d| source.attach(d))?;
    let training = opts.max_steps != Some(0)
        && (program.plan.pretrain.is_some() || !program.plan.stages.is_empty());
    if opts.resume && !training {
        return Err(Diag::new(
            "plcc::build::nothing-to-resume",
            "--resume continues training, but this build does not train",
        )
        .help("the recipe has no `pretrain` or `distill` stage, or `--max-steps 0` skips them"));
    }
    let output = opts
        .output
        .clone()
        .or_else(|| recipe.output.as_ref().map(|o| o.value.clone()))
        .unwrap_or_else(|| PathBuf::from("out"));
    check_output(opts, &recipe, &output).map_err(|d| source.attach(d))?;
    let _output_lock = crate::artifact::output_lock::OutputLock::acquire(&output)?;
    if training {
        train::folder::check_training_dir(&training_dir(&output))?;
    }
    crate::artifact::output_check::remove_stale_staging(&output);
    let labels = program.plan.task.labels();
    let eval_name = program
        .plan
        .eval
        .clone()
        .or_else(|| recipe.datasets.first().map(|d| d.name.value.clone()));
    let eval_spec = eval_name
        .as_ref()
        .and_then(|n| recipe.datasets.iter().find(|d| &d.name.value == n))
        .ok_or_else(|| {
            Diag::new(
                "plcc::build::no-eval-data",
                "the build measures fidelity on data, but the recipe has no data set",
            )
            .help("add a `data NAME \"file\" {}` block (and `eval: NAME`)")
        })?;
    let prune_name = program.plan.prune.as_ref().and_then(|p| p.data.clone());
    let mut datasets: std::collections::BTreeMap<String, Vec<data::Example>> = Default::default();
    for spec in &recipe.datasets {
        let ex = data::read_dataset(spec, labels).map_err(|d| source.attach(d))?;
        datasets.insert(spec.name.value.clone(), ex);
    }
    let examples = datasets
        .get(&eval_spec.name.value)
        .cloned()
        .unwrap_or_default();
    let prune_data = prune_name
        .as_ref()
        .and_then(|n| datasets.get(n))
        .cloned()
        .unwrap_or_else(|| examples.clone());
    done("read data", &mut timings);

    let mut teacher = teacher::load_teacher(&recipe.teacher.value, &Device::Cpu)?;
    done("load teacher", &mut timings);
    let recipe_sha256 = sha256_hex(source.text.as_bytes());
    let mut session = if training {
        Some(Session::open(
            training_dir(&output),
            recipe_sha256.clone(),
            opts.max_steps,
            opts.resume,
            opts.device.clone(),
        )?)
    } else {
        None
    };
    if let (Some(s), Some(plan)) = (session.as_mut(), &program.plan.pretrain) {
        s.quiet = opts.quiet;
        distill::pretrain(s, plan, &mut teacher, &datasets).map_err(|d| source.attach(d))?;
        done("pretrain the teacher", &mut timings);
    }
    let teacher_model = teacher.loaded(&Device::Cpu)?;
    let pruning = match (&program.plan.vocab, &recipe.vocab) {
        (Some(plan), Some(spec)) => {
            let p = vocab::prune_vocabulary(plan, spec, &teacher, &datasets)
                .map_err(|d| source.attach(d))?;
            done("prune the vocabulary", &mut timings);
            Some(p)
        }
        _ => None,
    };
    let student = student::build_student(
        &program,
        &teacher,
        recipe.seed.value,
        &prune_data,
        pruning.as_ref().map(|p| p.vocab.clone()),
    )?;
    done("reduce, slice and check layers", &mut timings);
    let classifies = labels.is_some();
    let teacher_model = with_stand_in_head(teacher_model, &student, classifies)?;
    let exit_records = exit_records(&program);
    let (weight_quant, activation_quant) =
        quantize::placed_quantizers(&program, &student.module_names);
    let trained = match session.as_mut() {
        Some(s) if !program.plan.stages.is_empty() => {
            s.quiet = opts.quiet;
            // The teacher's outputs are computed where the student trains.
            let on_device = match &s.device {
                Device::Cpu => None,
                device => Some(with_stand_in_head(
                    teacher.loaded(device)?,
                    &student,
                    classifies,
                )?),
            };
            let t = distill::distill(
                s,
                &distill::DistillInputs {
                    program: &program,
                    student: &student,
                    teacher: &teacher,
                    teacher_model: on_device.as_ref().unwrap_or(&teacher_model),
                    weight_quant: &weight_quant,
                    activation_quant: &activation_quant,
                    exit_records: &exit_records,
                    datasets: &datasets,
                    eval_name: &eval_spec.name.value,
                    eval: &examples,
                },
            )
            .map_err(|d| source.attach(d))?;
            done("distill", &mut timings);
            Some(t)
        }
        _ => None,
    };
    let (final_tensors, scales) = match &trained {
        Some(t) => (&t.tensors, t.scales.clone()),
        None => (&student.tensors, Default::default()),
    };
    let calibrated = gptq::calibrate(&gptq::CalibrationInputs {
        program: &program,
        config: &student.config,
        tensors: final_tensors,
        module_names: &student.module_names,
        trained_scales: &scales,
        datasets: &datasets,
        tokenizer: student.tokenizer(&teacher),
    })
    .map_err(|d| source.attach(d))?;
    if !calibrated.quantized.is_empty() {
        done("calibrate (gptq)", &mut timings);
    }
    let packed = quantize::pack(
        &program,
        final_tensors,
        &student.module_names,
        &scales,
        &calibrated.quantized,
    )?;
    done("quantize and pack", &mut timings);

    let staged = StagedDir::begin(&output)?;
    let manifest = Manifest {
        manifest_sha256: String::new(),
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        plcc_version: env!("CARGO_PKG_VERSION").into(),
        recipe: RecipeRecord {
            file: Some(opts.recipe.display().to_string()),
            text: source.text.clone(),
            sha256: recipe_sha256.clone(),
        },
        source: SourceRecord {
            teacher: teacher.source.clone(),
            checkpoint_sha256: teacher.checkpoint_sha256.clone(),
            layers: teacher.config.num_layers(),
        },
        task: program.plan.task,
        config: student.config.clone(),
        weights: packed.weights.clone(),
        activation_quant: packed.activation_quant.clone(),
        kept: student.kept.clone(),
        layer_map: student.layer_map.clone(),
        exits: exit_records.clone(),
        files: Default::default(),
    };
    let tokenizer_json = match &student.vocab {
        Some(v) => v.json.clone(),
        None => teacher.tokenizer.inner.to_string(true).map_err(|e| {
            Diag::new("plcc::build::tokenizer", "cannot serialise the tokenizer")
                .note(e.to_string())
        })?,
    };
    write_into(&staged, manifest, &packed.set, tokenizer_json.as_bytes())?;
    crate::fault::point("artifact-write");
    done("write artifact", &mut timings);

    if let (Some(s), Some(t)) = (&session, &trained) {
        staged.write("loss.jsonl", s.log.text().as_bytes())?;
        staged.write(
            "loss.svg",
            crate::lower::train::log::loss_plot(s.log.records()).as_bytes(),
        )?;
        let _ = t;
    }
    let student_model = load_artifact(staged.path(), &Device::Cpu)?;
    let fidelity = crate::eval::fidelity::measure(
        program.plan.task,
        &teacher_model,
        &student_model,
        &eval_spec.name.value,
        &examples,
    )?;
    done("measure fidelity", &mut timings);

    let weights_file = staged.path().join(crate::artifact::WEIGHTS_FILE);
    let student_bytes = std::fs::metadata(&weights_file)
        .map_err(|e| Diag::io("plcc::io::read", "measure", &weights_file, &e))?
        .len();
    let teacher_bytes = match &recipe.teacher.value {
        crate::base::TeacherRef::Dir(d) => std::fs::metadata(d.join("model.safetensors"))
            .map(|m| m.len())
            .unwrap_or(0),
        crate::base::TeacherRef::Builtin(_) => {
            teacher::to_tensor_set(&teacher.tensors)?.to_bytes()?.len() as u64
        }
    };
    let cost = &program.plan.cost;
    let planned = cost.student.bytes;
    let bytes_vs_plan = student_bytes as f64 / planned.max(1) as f64;
    let mut notes: Vec<String> = session.iter().flat_map(|s| s.notes.clone()).collect();
    notes.extend(student.notes.clone());
    notes.extend(calibrated.notes);
    notes.extend(packed.notes.clone());
    notes.extend(fidelity.note_cuts());
    if !packed.activation_quant.is_empty() {
        notes.push(format!(
            "{} modules quantize their input activations; fidelity was measured on the \
             loaded artifact, with them",
            packed.activation_quant.len()
        ));
    }
    if !training && (!recipe.stages.is_empty() || recipe.pretrain.is_some()) {
        notes.push("training stages were skipped (--max-steps 0)".into());
    }
    if let Some(m) = opts.max_steps.filter(|&m| m > 0 && training) {
        notes.push(format!(
            "every training stage was capped at {m} steps (--max-steps)"
        ));
    }
    let count = |t: &crate::lower::teacher::Tensors| -> Vec<(String, usize)> {
        t.iter().map(|(n, x)| (n.clone(), x.elem_count())).collect()
    };
    let teacher_parts = crate::eval::report::params_by_part(
        count(&teacher.tensors)
            .iter()
            .chain(count(&teacher.extra).iter())
            .map(|(n, c)| (n, *c)),
    );
    let student_parts =
        crate::eval::report::params_by_part(count(final_tensors).iter().map(|(n, c)| (n, *c)));
    let mut ratios = std::collections::BTreeMap::new();
    let part = |m: &std::collections::BTreeMap<String, u64>| m.get("encoder").copied().unwrap_or(0);
    ratios.insert(
        "encoder_params".into(),
        part(&teacher_parts) as f64 / part(&student_parts).max(1) as f64,
    );
    ratios.insert(
        "params".into(),
        cost.teacher.params as f64 / cost.student.params.max(1) as f64,
    );
    ratios.insert(
        "bytes".into(),
        teacher_bytes as f64 / student_bytes.max(1) as f64,
    );
    ratios.insert(
        "flops_per_token".into(),
        cost.teacher.flops_per_token as f64 / cost.student.flops_per_token.max(1) as f64,
    );
    let vocab_report = match (&program.plan.vocab, &pruning) {
        (Some(plan), Some(p)) => Some(vocab::vocab_report(
            plan,
            p,
            &teacher,
            crate::ir::cost::vocab_bytes_saved(&program.model, plan.before),
            &eval_spec.name.value,
            &examples,
        )?),
        _ => None,
    };
    let report = Report {
        recipe: opts.recipe.display().to_string(),
        teacher: Size {
            params: cost.teacher.params,
            params_by_part: teacher_parts.clone(),
            bytes: teacher_bytes,
            flops_per_token: cost.teacher.flops_per_token,
        },
        student: Size {
            params: cost.student.params,
            params_by_part: student_parts.clone(),
            bytes: student_bytes,
            flops_per_token: cost.student.flops_per_token,
        },
        ratios,
        planned_student_bytes: planned,
        planned_teacher_bytes: cost.teacher.bytes,
        bytes_vs_plan,
        layer_map: student.layer_map.clone(),
        embedding_energy_kept: student.embedding_energy,
        max_slice_difference: student.max_slice_diff,
        fidelity,
        vocab: vocab_report,
        stages: timings.clone(),
        training: trained.map(|t| TrainingReport {
            resumed: opts.resume,
            ..t.report
        }),
        notes,
    };
    if (bytes_vs_plan - 1.0).abs() > BYTES_TOLERANCE {
        return Err(Diag::new(
            "plcc::build::size-mismatch",
            format!(
                "the weight file has {student_bytes} bytes, {:.1}% off the plan's estimate of {planned} bytes (allowed {:.0}%)",
                100.0 * (bytes_vs_plan - 1.0),
                100.0 * BYTES_TOLERANCE
            ),
        )
        .note("nothing was written; an earlier artifact at the output is left as it was"));
    }
    let json = serde_json::to_vec_pretty(&report).map_err(|e| {
        Diag::new("plcc::build::report", "cannot encode the report").note(e.to_string())
    })?;
    staged.write("report.json", &json)?;
    staged.write("report.md", report.markdown().as_bytes())?;
    // Checked again: the output may have changed while the build ran.
    crate::artifact::output_check::replaceable(&output)?;
    let dir = staged.commit()?;
    crate::fault::point("artifact-commit");
    if let Some(s) = session {
        // The artifact holds the loss log; checkpoints are no longer needed.
        let _ = std::fs::remove_dir_all(&s.dir);
    }
    Ok(Built { dir, report })
}

/// Refuses an output path that is not plcc's to replace (see
/// [`output_check`]); when the path came from the recipe's `output:` key,
/// the diagnostic points at it.
fn check_output(
    opts: &BuildOptions<'_>,
    recipe: &crate::recipe::Recipe,
    output: &Path,
) -> Result<(), Diag> {
    let mut inputs = vec![crate::artifact::output_check::Input {
        what: "the recipe",
        path: opts.recipe,
    }];
    if let crate::base::TeacherRef::Dir(d) = &recipe.teacher.value {
        inputs.push(crate::artifact::output_check::Input {
            what: "the teacher's checkpoint folder",
            path: d,
        });
    }
    for spec in &recipe.datasets {
        inputs.push(crate::artifact::output_check::Input {
            what: "a data file of the recipe",
            path: &spec.path.value,
        });
    }
    let from_recipe = recipe
        .output
        .as_ref()
        .filter(|o| opts.output.is_none() && o.span != crate::diag::Span::default());
    let located = |d: Diag| match from_recipe {
        Some(o) => d.label(o.span, "the output directory named here"),
        None => d,
    };
    if from_recipe.is_some() && !opts.allow_outside {
        let recipe_dir = match opts.recipe.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        crate::artifact::output_check::confine(output, recipe_dir).map_err(located)?;
    }
    crate::artifact::output_check::check_output(output, &inputs).map_err(located)
}

/// One manifest exit record per exit the program places.
fn exit_records(program: &crate::ir::Program) -> Vec<ExitRecord> {
    program
        .plan
        .exits
        .iter()
        .flat_map(|e| {
            e.after.iter().map(|&after| ExitRecord {
                after,
                head: e.head,
                criterion: e.criterion,
                threshold: e.threshold,
                patience: e.patience,
            })
        })
        .collect()
}
