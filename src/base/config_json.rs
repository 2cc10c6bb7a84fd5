//! The fields of a Hugging Face `config.json`, read with limits: every size
//! and count must be a whole number inside a sane range and every epsilon a
//! positive finite number, checked before anything is allocated from them.
//! A bad field is a diagnostic naming the field, its value, the limit and its
//! place in the file (`config.json:5:3`).

use std::path::Path;

use serde_json::Value;

use super::config::Activation;
use crate::diag::Diag;

/// The code of a size, count or epsilon outside its limits.
pub const OUT_OF_RANGE: &str = "plcc::config::out-of-range";
/// The code of a field that is missing or of the wrong type.
pub const BAD_CONFIG: &str = "plcc::checkpoint::bad-config";

/// The accepted range of one count, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub min: u64,
    pub max: u64,
}

/// Transformer layers.
pub const LAYERS: Limit = Limit { min: 1, max: 1024 };
/// Hidden width.
pub const HIDDEN: Limit = Limit {
    min: 1,
    max: 65_536,
};
/// Attention heads (they must also divide the hidden width).
pub const HEADS: Limit = Limit {
    min: 1,
    max: 65_536,
};
/// Intermediate (FFN) width.
pub const INTERMEDIATE: Limit = Limit {
    min: 1,
    max: 262_144,
};
/// Vocabulary entries.
pub const VOCAB: Limit = Limit {
    min: 1,
    max: 10_000_000,
};
/// Position embeddings.
pub const POSITIONS: Limit = Limit {
    min: 1,
    max: 1_000_000,
};
/// Token type (segment) vocabulary of BERT-family models.
pub const TYPE_VOCAB: Limit = Limit { min: 1, max: 1024 };

/// A parsed `config.json` with its text, so fields can be located.
pub struct ConfigJson<'a> {
    value: Value,
    text: &'a str,
    path: &'a Path,
}

impl<'a> ConfigJson<'a> {
    /// Parses `text`, the contents of `path`.
    pub fn parse(text: &'a str, path: &'a Path) -> Result<Self, Diag> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Diag::new(
                BAD_CONFIG,
                format!("`{}` is not valid JSON", path.display()),
            )
            .note(e.to_string())
        })?;
        if !value.is_object() {
            return Err(Diag::new(
                BAD_CONFIG,
                format!("`{}` is not a JSON object", path.display()),
            )
            .help("config.json holds one object of model settings"));
        }
        Ok(ConfigJson { value, text, path })
    }

    /// The first of `keys` that is present and not null, with its value.
    fn find(&self, keys: &[&'static str]) -> Option<(&'static str, &Value)> {
        keys.iter()
            .find_map(|k| self.value.get(*k).filter(|x| !x.is_null()).map(|x| (*k, x)))
    }

    /// A field's value, if present and not null.
    pub fn get(&self, key: &'static str) -> Option<&Value> {
        self.find(&[key]).map(|(_, v)| v)
    }

    /// A string field, if present.
    pub fn str(&self, keys: &[&'static str]) -> Option<&str> {
        self.find(keys).and_then(|(_, v)| v.as_str())
    }

    /// A boolean field, `default` when absent or not a boolean.
    pub fn flag_or(&self, keys: &[&'static str], default: bool) -> bool {
        self.find(keys)
            .and_then(|(_, v)| v.as_bool())
            .unwrap_or(default)
    }

    /// A required count within `limit` (the first of `keys` present).
    pub fn count(&self, keys: &[&'static str], limit: Limit) -> Result<usize, Diag> {
        match self.find(keys) {
            Some((key, v)) => self.bounded(key, v, limit),
            None => Err(Diag::new(
                BAD_CONFIG,
                format!("`{}` has no integer `{}`", self.path.display(), keys[0]),
            )
            .help("is this the config.json of a Hugging Face checkpoint?")),
        }
    }

    /// An optional count within `limit`, `default` when absent.
    pub fn count_or(
        &self,
        keys: &[&'static str],
        default: usize,
        limit: Limit,
    ) -> Result<usize, Diag> {
        match self.find(keys) {
            Some((key, v)) => self.bounded(key, v, limit),
            None => Ok(default),
        }
    }

    /// An optional token id below `vocab`.
    pub fn token_id(&self, keys: &[&'static str], vocab: usize) -> Result<Option<u32>, Diag> {
        let limit = Limit {
            min: 0,
            max: (vocab as u64).saturating_sub(1),
        };
        self.find(keys)
            .map(|(key, v)| self.bounded(key, v, limit).map(|id| id as u32))
            .transpose()
    }

    /// An optional epsilon (positive, finite, at most 1), `default` when absent.
    pub fn epsilon_or(&self, keys: &[&'static str], default: f64) -> Result<f64, Diag> {
        let Some((key, v)) = self.find(keys) else {
            return Ok(default);
        };
        match v.as_f64() {
            Some(x) if x > 0.0 && x <= 1.0 => Ok(x),
            Some(x) => Err(self
                .at(
                    OUT_OF_RANGE,
                    key,
                    format!("`{key}` is {x}, outside the accepted range (0, 1]"),
                )
                .help("a layer-norm epsilon is a small positive number such as 1e-12")),
            None => Err(self.at(
                BAD_CONFIG,
                key,
                format!("`{key}` must be a number, found `{v}`"),
            )),
        }
    }

    /// Heads removed from each of `layers` layers of `heads` heads
    /// (`pruned_heads`: layer index → head indices, as transformers' `prune_heads`
    /// records them): the count per layer.
    pub fn pruned_heads(&self, layers: usize, heads: usize) -> Result<Vec<usize>, Diag> {
        let mut counts = vec![0; layers];
        let Some((key, value)) = self.find(&["pruned_heads"]) else {
            return Ok(counts);
        };
        let bad = |why: String| {
            self.at(BAD_CONFIG, key, format!("`{key}` {why}"))
                .help("`pruned_heads` maps a layer index to the indices of its removed heads")
        };
        let map = value
            .as_object()
            .ok_or_else(|| bad("is not an object".into()))?;
        for (layer, removed) in map {
            let i: usize = layer
                .parse()
                .ok()
                .filter(|&i| i < layers)
                .ok_or_else(|| bad(format!("names layer `{layer}`, not one of 0..{layers}")))?;
            let list = removed
                .as_array()
                .ok_or_else(|| bad(format!("gives layer {i} no list of heads")))?;
            let mut seen = std::collections::BTreeSet::new();
            for h in list {
                match h.as_u64() {
                    Some(h) if (h as usize) < heads && seen.insert(h) => {}
                    _ => {
                        return Err(bad(format!(
                            "gives layer {i} head {h}, not a new one of 0..{heads}"
                        )))
                    }
                }
            }
            if seen.len() >= heads {
                return Err(bad(format!("removes every head of layer {i}")));
            }
            counts[i] = seen.len();
        }
        Ok(counts)
    }

    /// The activation named by `key` (`gelu` when absent).
    pub fn activation(&self, key: &'static str) -> Result<Activation, Diag> {
        match self.str(&[key]).unwrap_or("gelu") {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(self
                .at(BAD_CONFIG, key, format!("unsupported {key} `{other}`"))
                .help("plcc supports `gelu`, `gelu_new`, `gelu_pytorch_tanh` and `relu`")),
        }
    }

    /// The hidden width and the attention heads (the first of `hidden_keys`
    /// and of `heads_keys` present), the heads dividing the width; `width`
    /// names the width in the help (`hidden size`, `d_model`).
    pub fn width_and_heads(
        &self,
        hidden_keys: &[&'static str],
        heads_keys: &[&'static str],
        width: &str,
    ) -> Result<(usize, usize), Diag> {
        let hidden = self.count(hidden_keys, HIDDEN)?;
        let heads = self.count(heads_keys, HEADS)?;
        if !hidden.is_multiple_of(heads) {
            return Err(self
                .at(
                    OUT_OF_RANGE,
                    heads_keys[0],
                    format!(
                        "`{}` {hidden} is not divisible by `{}` {heads}",
                        hidden_keys[0], heads_keys[0]
                    ),
                )
                .help(format!(
                    "every attention head has the same width: {width} / heads"
                )));
        }
        Ok((hidden, heads))
    }

    /// A diagnostic about `key`, its place in the file in the message.
    pub fn at(&self, code: &'static str, key: &str, message: String) -> Diag {
        let place = match locate_key(self.text, key) {
            Some((line, column)) => format!("{}:{line}:{column}", self.path.display()),
            None => self.path.display().to_string(),
        };
        Diag::new(code, format!("`{place}`: {message}"))
    }

    fn bounded(&self, key: &str, v: &Value, limit: Limit) -> Result<usize, Diag> {
        let Some(n) = v.as_u64() else {
            return Err(self
                .at(
                    BAD_CONFIG,
                    key,
                    format!("`{key}` must be a whole number, found `{v}`"),
                )
                .help(format!(
                    "`{key}` takes a value from {} to {}",
                    limit.min, limit.max
                )));
        };
        if n < limit.min || n > limit.max {
            let side = if n < limit.min {
                format!("below the minimum of {}", limit.min)
            } else {
                format!("above the limit of {}", limit.max)
            };
            return Err(self
                .at(OUT_OF_RANGE, key, format!("`{key}` is {n}, {side}"))
                .help(format!(
                    "plcc accepts `{key}` from {} to {}; check the checkpoint's config.json",
                    limit.min, limit.max
                )));
        }
        Ok(n as usize)
    }
}

/// The 1-based line and column of the first `"key":` in `text`.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(found) = text[from..].find(&quoted) {
        let start = from + found;
        let after = start + quoted.len();
        if text[after..].trim_start().starts_with(':') {
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            return Some((line, column));
        }
        from = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_located_by_line_and_column() {
        let text = "{\n  \"a\": \"num_hidden_layers\",\n  \"num_hidden_layers\" : 0\n}";
        assert_eq!(locate_key(text, "num_hidden_layers"), Some((3, 3)));
        assert_eq!(locate_key(text, "missing"), None);
    }

    #[test]
    fn a_count_above_its_limit_names_field_value_and_limit() {
        let text = "{\n \"num_hidden_layers\": 1000000000000\n}";
        let cfg = ConfigJson::parse(text, Path::new("m/config.json")).unwrap();
        let d = cfg.count(&["num_hidden_layers"], LAYERS).unwrap_err();
        assert_eq!(d.code, OUT_OF_RANGE);
        assert_eq!(
            d.message,
            "`m/config.json:2:2`: `num_hidden_layers` is 1000000000000, above the limit of 1024"
        );
    }

    #[test]
    fn a_negative_epsilon_is_refused() {
        let text = "{\"layer_norm_eps\": -1}";
        let cfg = ConfigJson::parse(text, Path::new("c.json")).unwrap();
        let d = cfg.epsilon_or(&["layer_norm_eps"], 1e-12).unwrap_err();
        assert_eq!(d.code, OUT_OF_RANGE);
        assert!(
            d.message.contains("`layer_norm_eps` is -1"),
            "{}",
            d.message
        );
    }
}
