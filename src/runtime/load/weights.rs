//! Checkpoint weights: reads a `model.safetensors` file (validated by
//! `safetensors_check` before any tensor is built), strips a model prefix
//! (`bert.`, `transformer.`, ...), and serves the tensors to the model code
//! through a `candle_nn::VarBuilder`. Also the seeded random backend of the
//! built-in models and the mapping of candle loading errors to `Diag`s.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use safetensors::tensor::{Metadata, TensorView};

use crate::diag::{shape_text, Diag};
use crate::fsio;
use crate::runtime::load::safetensors_check::{
    check_finite, check_header, check_header_in_file, corrupt,
};

fn unreadable(path: &Path, e: std::io::Error) -> Diag {
    Diag::io(
        fsio::WEIGHTS.unreadable,
        "read checkpoint weights",
        path,
        &e,
    )
}

/// Opens the safetensors file at `path` and reads and validates its header
/// only: the open file, the header's bytes (length included) and what it
/// describes.
fn read_header(path: &Path) -> Result<(std::fs::File, Vec<u8>, Metadata), Diag> {
    let file_len = fsio::check_regular(path, &fsio::WEIGHTS)?;
    let mut file = std::fs::File::open(path).map_err(|e| unreadable(path, e))?;
    let mut header = vec![0u8; file_len.min(8) as usize];
    file.read_exact(&mut header)
        .map_err(|e| unreadable(path, e))?;
    if let Ok(len) = <[u8; 8]>::try_from(header.as_slice()) {
        let json_len = u64::from_le_bytes(len);
        if json_len <= file_len - 8 {
            header.resize(8 + json_len as usize, 0);
            file.read_exact(&mut header[8..])
                .map_err(|e| unreadable(path, e))?;
        }
    }
    check_header_in_file(&header, file_len, path)?;
    let metadata: Metadata = serde_json::from_slice(&header[8..])
        .map_err(|e| corrupt(path, format!("the header does not describe tensors: {e}")))?;
    Ok((file, header, metadata))
}

/// The tensor names of the safetensors file at `path`, read from its
/// header alone (no weight is read).
pub fn tensor_names(path: &Path) -> Result<Vec<String>, Diag> {
    let (_, _, metadata) = read_header(path)?;
    Ok(metadata.tensors().into_keys().collect())
}

/// The tensors of one checkpoint file, keyed by name with the model prefix
/// removed.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file the tensors came from (used in messages).
    pub path: PathBuf,
    /// The prefix that was stripped (`""`, `"bert."`, `"transformer."`, ...).
    pub prefix: String,
    tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads and validates `path`, converting every tensor to f32 on `device`.
    /// `anchor` is a tensor name the model certainly has (without prefix),
    /// used to find the prefix: e.g. `embeddings.word_embeddings.weight`.
    /// The file is read one tensor at a time, so its bytes and the tensors
    /// built from them are never in memory whole at once.
    pub fn load(path: &Path, anchor: &str, device: &Device) -> Result<Self, Diag> {
        let (mut file, header, metadata) = read_header(path)?;
        let unreadable = |e: std::io::Error| unreadable(path, e);
        let data_start = header.len() as u64;
        let mut raw = HashMap::new();
        let mut data = Vec::new();
        for (name, info) in metadata.tensors() {
            let (start, end) = info.data_offsets;
            data.resize(end - start, 0);
            file.seek(SeekFrom::Start(data_start + start as u64))
                .and_then(|_| file.read_exact(&mut data))
                .map_err(unreadable)?;
            let view = TensorView::new(info.dtype, info.shape.clone(), &data)
                .map_err(|e| corrupt(path, format!("tensor `{name}`: {e}")))?;
            let tensor = tensor_from_view(path, &name, &view, device)?;
            raw.insert(name, tensor);
        }
        Self::from_tensors(raw, path, anchor)
    }

    /// Like `load`, from the bytes of a safetensors file.
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        anchor: &str,
        device: &Device,
    ) -> Result<Self, Diag> {
        check_header(bytes, path)?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| corrupt(path, e.to_string()))?;
        let mut raw = HashMap::new();
        for (name, view) in st.tensors() {
            let tensor = tensor_from_view(path, &name, &view, device)?;
            raw.insert(name, tensor);
        }
        Self::from_tensors(raw, path, anchor)
    }

    /// The checkpoint of `raw` tensors with the model prefix found from
    /// `anchor` and stripped.
    fn from_tensors(raw: HashMap<String, Tensor>, path: &Path, anchor: &str) -> Result<Self, Diag> {
        let prefix = raw
            .keys()
            .filter_map(|k| k.strip_suffix(anchor))
            .filter(|p| p.is_empty() || p.ends_with('.'))
            .min_by_key(|p| p.len())
            .map(str::to_string)
            .ok_or_else(|| {
                Diag::new(
                    "plcc::checkpoint::missing-tensor",
                    format!(
                        "checkpoint `{}` has no tensor `{anchor}` (with or without a model prefix)",
                        path.display()
                    ),
                )
                .help("is this a checkpoint of the architecture named in config.json?")
            })?;
        let tensors = raw
            .into_iter()
            .map(|(k, t)| match k.strip_prefix(&prefix) {
                Some(rest) => (rest.to_string(), t),
                None => (k, t),
            })
            .collect();
        Ok(Checkpoint {
            path: path.to_path_buf(),
            prefix,
            tensors,
        })
    }

    /// The tensor called `name` (prefix removed), if present.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// A `VarBuilder` over these tensors; its errors map to `Diag`s with
    /// `load_error`.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.tensors.clone()), DType::F32, device.clone())
    }
}

/// One stored tensor checked for NaN and infinity and built as f32 on
/// `device`.
fn tensor_from_view(
    path: &Path,
    name: &str,
    view: &TensorView,
    device: &Device,
) -> Result<Tensor, Diag> {
    check_finite(path, name, view.dtype(), view.data())?;
    view.load(&Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_device(device))
        .map_err(|e| corrupt(path, format!("tensor `{name}`: {e}")))
}

/// Turns an error raised while building a model from `path`'s tensors into a
/// `Diag` naming the tensor (and both shapes on a mismatch).
pub fn load_error(err: candle_core::Error, path: &Path) -> Diag {
    match innermost(&err) {
        candle_core::Error::CannotFindTensor { path: name } => Diag::new(
            "plcc::checkpoint::missing-tensor",
            format!("checkpoint `{}` has no tensor `{name}`", path.display()),
        ),
        candle_core::Error::UnexpectedShape { msg, expected, got } => Diag::new(
            "plcc::checkpoint::shape-mismatch",
            format!(
                "{msg} in `{}`: the checkpoint has {}, config.json implies {}",
                path.display(),
                shape_text(got.dims()),
                shape_text(expected.dims())
            ),
        ),
        other => Diag::new(
            "plcc::checkpoint::load-failed",
            format!("cannot build the model from `{}`", path.display()),
        )
        .note(other.to_string()),
    }
}

fn innermost(err: &candle_core::Error) -> &candle_core::Error {
    match err {
        candle_core::Error::Context { inner, .. }
        | candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::WithPath { inner, .. } => innermost(inner),
        e => e,
    }
}

/// A backend that makes every requested tensor from a seed and the tensor's
/// name: normal(0, std) draws for `Randn` hints, constants for `Const`. The
/// same name always gets the same values, whatever the order of requests.
pub struct SeededWeights {
    pub seed: u64,
}

impl SimpleBackend for SeededWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let n = s.elem_count();
        let values: Vec<f32> = match h {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => {
                let mut rng = SplitMix64::new(self.seed ^ fnv1a(name));
                (0..n)
                    .map(|_| (mean + stdev * rng.normal()) as f32)
                    .collect()
            }
            Init::Uniform { lo, up } => {
                let mut rng = SplitMix64::new(self.seed ^ fnv1a(name));
                (0..n)
                    .map(|_| (lo + (up - lo) * rng.unit()) as f32)
                    .collect()
            }
            other => candle_core::bail!("seeded weights: unsupported init {other:?} for `{name}`"),
        };
        Tensor::from_vec(values, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::CannotFindTensor {
            path: name.to_string(),
        })
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64: a small, fully specified PRNG (so built-in weights never change
/// with a dependency update).
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Transposes the layer weights a family stores `[in, out]` (GPT-2's
/// `Conv1D`) of `tensors` (its own inverse).
pub fn flip_conv1d(
    arch: crate::base::Arch,
    tensors: &mut std::collections::HashMap<String, candle_core::Tensor>,
) -> candle_core::Result<()> {
    let family = arch.family();
    let names: Vec<String> = tensors
        .keys()
        .filter(|n| family.is_transposed(n))
        .cloned()
        .collect();
    for n in names {
        if let Some(t) = tensors.get(&n) {
            let flipped = t.t()?.contiguous()?;
            tensors.insert(n, flipped);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;

    #[test]
    fn seeded_weights_depend_on_name_not_order() {
        let dev = Device::Cpu;
        let vb =
            VarBuilder::from_backend(Box::new(SeededWeights { seed: 7 }), DType::F32, dev.clone());
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let a1 = vb.get_with_hints((4, 3), "a", init).unwrap();
        let _b = vb.get_with_hints((4, 3), "b", init).unwrap();
        let a2 = vb.get_with_hints((4, 3), "a", init).unwrap();
        assert_eq!(max_diff(&a1, &a2), 0.0);
        let std = a2
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt();
        assert!(std > 0.005 && std < 0.05, "std {std}");
    }

    #[test]
    fn truncated_header_is_a_diag() {
        let d = Checkpoint::from_bytes(
            &[1, 0, 0, 0, 0, 0, 0, 0, b'{'],
            Path::new("x"),
            "w",
            &Device::Cpu,
        )
        .err()
        .map(|d| d.code);
        assert_eq!(d, Some("plcc::checkpoint::corrupt-weights"));
        let d = Checkpoint::from_bytes(
            &[200, 0, 0, 0, 0, 0, 0, 0, b'{'],
            Path::new("x"),
            "w",
            &Device::Cpu,
        )
        .err()
        .map(|d| d.code);
        assert_eq!(d, Some("plcc::checkpoint::corrupt-weights"));
    }
}
