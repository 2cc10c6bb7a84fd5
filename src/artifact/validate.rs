//! Checks of the manifest's fields that loading indexes or trusts: the files
//! it must list, the student's shapes, exit layers, activation quantizers'
//! modules and bit widths, the teacher layers of `layer_map`, and the exit
//! of every exit head weight. Each failure is a diagnostic naming the field
//! and its value. Weight shapes and dtypes are checked against the weight
//! file when it is read (`packed::check_weight`), and the network's shapes
//! against the config when it is built.

use std::collections::BTreeSet;
use std::path::Path;

use super::manifest::{FileRecord, Manifest, Storage};
use super::manifest_file::REBUILD_HELP;
use super::{MANIFEST_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::base::WeightInputs;
use crate::diag::Diag;

/// Bit widths an activation quantizer may have (what recipes accept).
const ACTIVATION_BITS: [u8; 2] = [4, 8];

/// A diagnostic: `field` of the manifest of `dir` holds a value that `why`
/// explains.
fn bad_field(dir: &Path, field: &str, why: String) -> Diag {
    Diag::new(
        "plcc::artifact::bad-field",
        format!("`{MANIFEST_FILE}` in `{}`: `{field}` {why}", dir.display()),
    )
    .help(REBUILD_HELP)
}

/// Checks the fields of `manifest`, read from the artifact in `dir`.
pub fn validate(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    check_files(manifest, dir)?;
    check_weight_shapes(manifest, dir)?;
    check_config(manifest, dir)?;
    check_exits(manifest, dir)?;
    check_activation_quant(manifest, dir)?;
    check_layer_map(manifest, dir)
}

/// The record of file `name`, which the manifest of `dir` must list.
pub fn file_record<'a>(
    manifest: &'a Manifest,
    dir: &Path,
    name: &str,
) -> Result<&'a FileRecord, Diag> {
    manifest
        .files
        .get(name)
        .ok_or_else(|| bad_field(dir, "files", format!("does not list `{name}`")))
}

fn check_files(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    for required in [WEIGHTS_FILE, TOKENIZER_FILE] {
        file_record(manifest, dir, required)?;
    }
    for name in manifest.files.keys() {
        let plain = Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name.as_str());
        if !plain {
            return Err(bad_field(
                dir,
                "files",
                format!("lists `{name}`, which is not a file name inside the artifact"),
            ));
        }
    }
    Ok(())
}

/// Every weight's element count fits the weight file (at most eight
/// weights per byte, for binary ones), so no size computed from a shape
/// overflows.
fn check_weight_shapes(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    let file_bytes = file_record(manifest, dir, WEIGHTS_FILE)?.bytes;
    for (name, record) in &manifest.weights {
        let count = record
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        if count.is_none_or(|c| c > file_bytes.saturating_mul(8)) {
            return Err(bad_field(
                dir,
                &format!("weights.{name}.shape"),
                format!(
                    "is {:?}, which does not fit the {file_bytes} bytes of `{WEIGHTS_FILE}`",
                    record.shape
                ),
            ));
        }
    }
    Ok(())
}

fn check_config(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    let config = &manifest.config;
    if config.layers.is_empty() {
        return Err(bad_field(dir, "config.layers", "is empty".into()));
    }
    for (i, layer) in config.layers.iter().enumerate() {
        if layer.heads == 0 || layer.head_dim == 0 {
            return Err(bad_field(
                dir,
                &format!("config.layers[{i}]"),
                format!(
                    "has {} heads of width {}; both must be at least 1",
                    layer.heads, layer.head_dim
                ),
            ));
        }
    }
    for (field, value) in [
        ("config.vocab_size", config.vocab_size),
        ("config.hidden_size", config.hidden_size),
        ("config.max_positions", config.max_positions),
    ] {
        if value == 0 {
            return Err(bad_field(dir, field, "is 0".into()));
        }
    }
    if let Some(pad) = config.pad_token_id {
        if pad as usize >= config.vocab_size {
            return Err(bad_field(
                dir,
                "config.pad_token_id",
                format!("is {pad}, outside the vocabulary of {}", config.vocab_size),
            ));
        }
    }
    Ok(())
}

fn check_exits(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    let layers = manifest.config.num_layers();
    let mut seen = BTreeSet::new();
    for (i, exit) in manifest.exits.iter().enumerate() {
        let field = format!("exits[{i}].after");
        if !(1..=layers).contains(&exit.after) {
            return Err(bad_field(
                dir,
                &field,
                format!("is {}, but the model has layers 1 to {layers}", exit.after),
            ));
        }
        if !seen.insert(exit.after) {
            return Err(bad_field(
                dir,
                &field,
                format!("is {}, which an earlier exit has too", exit.after),
            ));
        }
    }
    for name in manifest.weights.keys() {
        let Some(rest) = name.strip_prefix("exit.") else {
            continue;
        };
        let after = rest.split('.').next().and_then(|n| n.parse::<usize>().ok());
        if !after.is_some_and(|a| seen.contains(&a)) {
            return Err(bad_field(
                dir,
                &format!("weights.{name}"),
                format!(
                    "is an exit head weight, but no exit is after that layer (exits after {:?})",
                    seen
                ),
            ));
        }
    }
    Ok(())
}

fn check_activation_quant(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    for (module, q) in &manifest.activation_quant {
        let field = format!("activation_quant.{module}");
        if !manifest.weights.contains_key(&format!("{module}.weight")) {
            return Err(bad_field(
                dir,
                &field,
                format!("names module `{module}`, which has no weight in the artifact"),
            ));
        }
        let weight_only = matches!(
            manifest.weights[&format!("{module}.weight")].storage,
            Storage::Packed {
                inputs: WeightInputs::Float,
                ..
            }
        );
        if weight_only {
            return Err(bad_field(
                dir,
                &field,
                format!("quantizes the inputs of `{module}`, whose weight record keeps them float (`inputs: float`)"),
            ));
        }
        if !ACTIVATION_BITS.contains(&q.bits) {
            return Err(bad_field(
                dir,
                &format!("{field}.bits"),
                format!("is {}; activations are quantized to 4 or 8 bits", q.bits),
            ));
        }
    }
    Ok(())
}

fn check_layer_map(manifest: &Manifest, dir: &Path) -> Result<(), Diag> {
    let layers = manifest.config.num_layers();
    if manifest.layer_map.len() != layers {
        return Err(bad_field(
            dir,
            "layer_map",
            format!(
                "has {} entries, but the model has {layers} layers",
                manifest.layer_map.len()
            ),
        ));
    }
    let teacher = manifest.source.layers;
    for (i, &t) in manifest.layer_map.iter().enumerate() {
        if t >= teacher {
            return Err(bad_field(
                dir,
                &format!("layer_map[{i}]"),
                format!(
                    "is {t}, but the teacher has layers 0 to {}",
                    teacher.saturating_sub(1)
                ),
            ));
        }
    }
    Ok(())
}
