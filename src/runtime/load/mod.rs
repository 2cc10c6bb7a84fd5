//! Loading: a model reference (`builtin:NAME`, a Hugging Face checkpoint
//! directory, a plcc artifact) turned into a runnable `LoadedModel`; the
//! checkpoint's safetensors validated before any tensor is built; the
//! built-in models' seeded weights.

pub mod builtin_weights;
pub mod from_artifact;
pub mod loaded_model;
pub mod loader;
pub mod safetensors_check;
pub mod weights;
