//! The ground floor: the vocabulary every stage shares, free of candle and of
//! the compiler. Model configurations and architectures, one description
//! per model family (`family`: tensor names, layouts, what plcc supports),
//! the built-in models' configurations, bit widths, granularities and scale methods,
//! tasks and pooling, exit heads and criteria, training schedules and
//! weight-rounding methods, teacher and data sources, and
//! content hashes. The front end, the IR, the passes, the runtime and the
//! artifact all import from here; this module imports only `diag` and `fsio`.

pub mod builtin;
pub mod config;
pub mod config_json;
pub mod config_labels;
pub mod config_read;
pub mod exits;
pub mod family;
pub mod hash;
pub mod labels;
pub mod pipeline;
pub mod quant;
pub mod schedule;
pub mod sources;
pub mod svg;
pub mod task;
pub mod vocab;
pub mod words;

pub use config::{Activation, Arch, LayerShape, ModelConfig, Seq2Seq};
pub use exits::{CalibrationTarget, ExitCriterion, ExitHead};
pub use family::Family;
pub use hash::sha256_hex;
pub use labels::LabelSet;
pub use pipeline::{read_pipeline, SentencePipeline};
pub use quant::{linear_kernel, LinearKernelKind, WeightInputs};
pub use quant::{Bits, GptqSpec, Granularity, QuantMethod, ScaleMethod};
pub use quant::{KERNEL_INPUT_TEXT, WEIGHT_ONLY_INPUT_TEXT};
pub use schedule::{
    ExitScope, Importance, Keep, LrScheduleKind, Negatives, OptimizerKind, StageLength,
};
pub use sources::{Column, DataFormat, DataSpec, Device, OutputFormat, TeacherRef};
pub use task::{Pooling, Task};
pub use vocab::VocabRule;
pub use words::{compare_counts, duration_text, word};
