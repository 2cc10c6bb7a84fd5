//! The stages of a build up to the packed weights, each a function from
//! values to values: whether the build trains, the output folder claimed,
//! the data read, the training session opened, the teacher pretrained, the
//! vocabulary pruned, the student built, the teacher it is compared with,
//! distillation, GPTQ calibration, quantization and packing. The build's
//! stage clock is here too.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Device;

use super::prune::{student, vocab};
use super::quantize::{gptq, pack};
use super::reporter::Reporter;
use super::teacher::{self, Teacher, Tensors};
use super::train::distill::{self as training, DistillInputs, Trained};
use super::train::Session;
use super::BuildOptions;
use crate::artifact::output::{Input, OutputFolder, OutputRequest, WhenBusy};
use crate::artifact::ExitRecord;
use crate::base::{DataSpec, TeacherRef};
use crate::diag::Diag;
use crate::eval::eval_sets::EvalSet;
use crate::eval::source::EvalSource;
use crate::ir::{Plan, Program};
use crate::runtime::load::from_artifact::classifier_head;
use crate::runtime::LoadedModel;
use crate::text::data::Example;

/// The build's stage clock: reports each stage as it ends and keeps its time.
pub(super) struct Clock<'r> {
    reporter: &'r dyn Reporter,
    started: Instant,
    timings: Vec<(String, f64)>,
}

impl<'r> Clock<'r> {
    /// A clock whose first stage starts now.
    pub(super) fn start(reporter: &'r dyn Reporter) -> Self {
        Clock {
            reporter,
            started: Instant::now(),
            timings: Vec::new(),
        }
    }

    /// Ends the stage `name`; the next one starts now.
    pub(super) fn done(&mut self, name: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        self.reporter.stage(name, secs);
        self.timings.push((name.to_string(), secs));
        self.started = Instant::now();
    }

    /// Ends the stage `name` when it ran.
    pub(super) fn done_if(&mut self, ran: bool, name: &str) {
        if ran {
            self.done(name);
        }
    }

    /// Each ended stage's name and seconds, in order.
    pub(super) fn timings(&self) -> Vec<(String, f64)> {
        self.timings.clone()
    }
}

/// Whether the build trains: the plan has a `pretrain` or `distill` stage
/// and `--max-steps 0` does not skip them. `--resume` without training is
/// refused.
pub(super) fn trains(plan: &Plan, opts: &BuildOptions) -> Result<bool, Diag> {
    let training =
        opts.max_steps != Some(0) && (plan.pretrain.is_some() || !plan.stages.is_empty());
    if opts.resume && !training {
        return Err(Diag::new(
            "plcc::build::nothing-to-resume",
            "--resume continues training, but this build does not train",
        )
        .help("the recipe has no `pretrain` or `distill` stage, or `--max-steps 0` skips them"));
    }
    Ok(training)
}

/// The output folder, claimed: `-o`, else the recipe's `output:`, refused
/// when it would replace the recipe at `recipe`, the teacher's checkpoint
/// folder, a data file, or something plcc did not write.
pub(super) fn claim_output(
    plan: &Plan,
    recipe: &std::path::Path,
    opts: &BuildOptions,
    training: bool,
    reporter: &dyn Reporter,
) -> Result<OutputFolder, Diag> {
    let waiting = |lock: &std::path::Path| {
        reporter.event(&format!(
            "waiting for the build that holds `{}`",
            lock.display()
        ));
    };
    let mut inputs = Vec::new();
    if let TeacherRef::Dir(d) = &plan.teacher.reference {
        inputs.push(Input {
            what: "the teacher's checkpoint folder",
            path: d,
        });
    }
    for spec in &plan.datasets {
        inputs.push(Input {
            what: "a data file of the recipe",
            path: &spec.path.value,
        });
    }
    OutputFolder::claim(OutputRequest {
        command_line: opts.output.as_deref(),
        recipe_output: plan.output.as_ref(),
        recipe,
        allow_outside: opts.allow_outside,
        inputs,
        trains: training,
        when_busy: if opts.no_wait {
            WhenBusy::Fail
        } else {
            WhenBusy::Wait(&waiting)
        },
    })
}

/// The data a build reads, checked with the device and the teacher's files
/// before any work starts.
pub(super) struct BuildData<'p> {
    /// Where training runs.
    pub device: Device,
    /// Every data set of the recipe by name.
    pub datasets: BTreeMap<String, Vec<Example>>,
    /// The data set fidelity is measured on, its examples, and the hash of
    /// the bytes they were read from.
    pub eval_spec: &'p DataSpec,
    pub eval: Vec<Example>,
    pub eval_sha256: String,
    /// Every data set the artifact is measured on, the primary one
    /// (`eval_spec`) first.
    pub eval_specs: Vec<&'p DataSpec>,
    /// What Taylor importance is scored on: the prune block's `data`, else
    /// the eval data.
    pub prune_data: Vec<Example>,
    /// Problems that do not stop the build.
    pub warnings: Vec<Diag>,
}

impl BuildData<'_> {
    /// The eval data set's name.
    pub fn eval_name(&self) -> &str {
        &self.eval_spec.name.value
    }

    /// The eval data as the report describes it.
    pub fn eval_source(&self, teacher_differs: Option<String>) -> EvalSource {
        let path = &self.eval_spec.path.value;
        let mut source = EvalSource::of(self.eval_spec, self.eval_sha256.clone(), teacher_differs);
        source.path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        source
    }

    /// Every evaluation set with its examples, the primary one first.
    pub fn eval_sets(&self) -> Vec<EvalSet<'_>> {
        self.eval_specs
            .iter()
            .map(|spec| EvalSet {
                spec,
                examples: self
                    .datasets
                    .get(&spec.name.value)
                    .map_or(&[][..], Vec::as_slice),
            })
            .collect()
    }
}

/// Checks the device, the data and the teacher's files (`preflight`) and
/// reads the data.
pub(super) fn read_data<'p>(
    program: &'p Program,
    device: Option<&Device>,
    training: bool,
) -> Result<BuildData<'p>, Diag> {
    let plan = &program.plan;
    let mut checked = super::preflight::preflight(program, device, training);
    if let Some(problems) = Diag::gather(std::mem::take(&mut checked.errors)) {
        return Err(problems);
    }
    let eval_name = plan
        .eval
        .first()
        .cloned()
        .or_else(|| plan.datasets.first().map(|d| d.name.value.clone()));
    let eval_spec = eval_name
        .as_ref()
        .and_then(|n| plan.datasets.iter().find(|d| &d.name.value == n))
        .ok_or_else(|| {
            Diag::new(
                "plcc::build::no-eval-data",
                "the build measures fidelity on data, but the recipe has no data set",
            )
            .help("add a `data NAME \"file\" {}` block (and `eval: NAME`)")
        })?;
    let named = |n: &String| plan.datasets.iter().find(|d| &d.name.value == n);
    let mut eval_specs: Vec<&DataSpec> = plan.eval.iter().filter_map(named).collect();
    if eval_specs.is_empty() {
        eval_specs.push(eval_spec);
    }
    let datasets = std::mem::take(&mut checked.datasets);
    let eval = datasets
        .get(&eval_spec.name.value)
        .cloned()
        .unwrap_or_default();
    let prune_data = plan
        .prune
        .as_ref()
        .and_then(|p| p.data.as_ref())
        .and_then(|n| datasets.get(n))
        .cloned()
        .unwrap_or_else(|| eval.clone());
    Ok(BuildData {
        device: checked.device.clone().unwrap_or(Device::Cpu),
        eval_sha256: checked
            .dataset_sha256
            .remove(&eval_spec.name.value)
            .unwrap_or_default(),
        datasets,
        eval_spec,
        eval,
        eval_specs,
        prune_data,
        warnings: checked.warnings,
    })
}

/// The training session in the output's training folder, when the build
/// trains: a fresh run, or the checkpointed one continued (`--resume`).
pub(super) fn open_session<'r>(
    output: &OutputFolder,
    recipe_sha256: &str,
    opts: &BuildOptions,
    device: &Device,
    reporter: &'r dyn Reporter,
) -> Result<Option<Session<'r>>, Diag> {
    output
        .training()
        .map(|folder| {
            Session::open(
                folder.clone(),
                recipe_sha256.to_string(),
                opts.max_steps,
                opts.resume,
                device.clone(),
                reporter,
            )
        })
        .transpose()
}

/// Pretrains the teacher when the plan says so and the build trains;
/// whether it did.
pub(super) fn pretrain(
    session: Option<&mut Session>,
    plan: &Plan,
    teacher: &mut Teacher,
    data: &BuildData,
) -> Result<bool, Diag> {
    let (Some(s), Some(stage)) = (session, &plan.pretrain) else {
        return Ok(false);
    };
    training::pretrain(s, stage, teacher, &data.datasets)?;
    Ok(true)
}

/// The pruned vocabulary, when the plan prunes it.
pub(super) fn prune_vocabulary(
    plan: &Plan,
    teacher: &Teacher,
    data: &BuildData,
) -> Result<Option<vocab::Pruning>, Diag> {
    plan.vocab
        .as_ref()
        .map(|vocab_plan| vocab::prune_vocabulary(vocab_plan, teacher, &data.datasets))
        .transpose()
}

/// The student's float weights: the teacher's layers reduced and sliced,
/// the vocabulary's kept rows, the heads.
pub(super) fn build_student(
    program: &Program,
    teacher: &Teacher,
    data: &BuildData,
    pruning: Option<&vocab::Pruning>,
    reporter: &dyn Reporter,
) -> Result<student::Student, Diag> {
    student::build_student(
        program,
        teacher,
        program.plan.seed,
        &data.prune_data,
        pruning.map(|p| p.vocab.clone()),
        reporter,
    )
}

/// The teacher the student is compared with, on the CPU, and why it is not
/// exactly the recipe's teacher, when it is not.
pub(super) struct Compared {
    pub model: LoadedModel,
    /// For the report: the build pretrained its teacher, or compared it
    /// through a classifier head of its own.
    pub teacher_differs: Option<String>,
    /// Whether the task classifies (the teacher then needs a head).
    classifies: bool,
}

/// The teacher as the student is compared with it.
pub(super) fn compared_teacher(
    plan: &Plan,
    teacher: &Teacher,
    student: &student::Student,
    training: bool,
) -> Result<Compared, Diag> {
    let model = teacher.loaded(&Device::Cpu)?;
    let classifies = plan.task.labels().is_some();
    let teacher_differs = if training && plan.pretrain.is_some() {
        Some("the build pretrained its teacher".to_string())
    } else if classifies && model.classifier.is_none() {
        Some("the build compared the teacher through a classifier head of its own".to_string())
    } else {
        None
    };
    Ok(Compared {
        model: with_stand_in_head(model, student, classifies)?,
        teacher_differs,
        classifies,
    })
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

/// Distills the student when the build trains and the plan has stages.
pub(super) fn distill(
    session: Option<&mut Session>,
    program: &Program,
    teacher: &Teacher,
    student: &student::Student,
    compared: &Compared,
    data: &BuildData,
) -> Result<Option<Trained>, Diag> {
    let Some(s) = session.filter(|_| !program.plan.stages.is_empty()) else {
        return Ok(None);
    };
    // The teacher's outputs are computed where the student trains.
    let on_device = match &s.device {
        Device::Cpu => None,
        device => Some(with_stand_in_head(
            teacher.loaded(device)?,
            student,
            compared.classifies,
        )?),
    };
    let (weight_quant, activation_quant) = pack::placed_quantizers(program, &student.module_names);
    let trained = training::distill(
        s,
        &DistillInputs {
            program,
            student,
            teacher,
            teacher_model: on_device.as_ref().unwrap_or(&compared.model),
            weight_quant: &weight_quant,
            activation_quant: &activation_quant,
            exit_records: &exit_records(program),
            datasets: &data.datasets,
            eval_name: data.eval_name(),
            eval: &data.eval,
        },
    )?;
    Ok(Some(trained))
}

/// The student's weights as they are quantized: the trained ones, else the
/// built ones; with the scales training learned.
pub(super) struct FinalWeights<'a> {
    pub tensors: &'a Tensors,
    pub scales: BTreeMap<String, Vec<f32>>,
}

impl<'a> FinalWeights<'a> {
    pub(super) fn of(student: &'a student::Student, trained: Option<&'a Trained>) -> Self {
        match trained {
            Some(t) => FinalWeights {
                tensors: &t.tensors,
                scales: t.scales.clone(),
            },
            None => FinalWeights {
                tensors: &student.tensors,
                scales: Default::default(),
            },
        }
    }
}

/// GPTQ's quantized weights, for the modules the plan quantizes with it.
pub(super) fn calibrate_gptq(
    program: &Program,
    teacher: &Teacher,
    student: &student::Student,
    weights: &FinalWeights,
    data: &BuildData,
) -> Result<gptq::Calibrated, Diag> {
    gptq::calibrate(&gptq::CalibrationInputs {
        program,
        config: &student.config,
        tensors: weights.tensors,
        module_names: &student.module_names,
        trained_scales: &weights.scales,
        datasets: &data.datasets,
        tokenizer: student.tokenizer(teacher),
    })
}

/// The weights quantized and packed as the artifact stores them.
pub(super) fn quantize_and_pack(
    program: &Program,
    student: &student::Student,
    weights: &FinalWeights,
    calibrated: &gptq::Calibrated,
) -> Result<pack::Packed, Diag> {
    pack::pack(
        program,
        weights.tensors,
        &student.module_names,
        &weights.scales,
        &calibrated.quantized,
    )
}

/// One manifest exit record per exit the program places.
pub(super) fn exit_records(program: &Program) -> Vec<ExitRecord> {
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
