//! A sequence classifier's labels read from its config.json: `id2label`,
//! checked against `label2id` and `num_labels`, or numbered classes when
//! `architectures` names a `...ForSequenceClassification` model.

use serde_json::Value;

use super::config_json::{ConfigJson, Limit, BAD_CONFIG};
use super::labels::{LabelSet, MAX_LABELS};
use crate::diag::Diag;

impl ConfigJson<'_> {
    /// A sequence classifier's labels: `id2label` when present (its keys
    /// exactly `0..n`, checked against `label2id` and `num_labels`), else
    /// `num_labels` (or transformers' default of two) numbered classes when
    /// `architectures` names a `...ForSequenceClassification` model; `None`
    /// for any other model.
    pub fn labels(&self) -> Result<Option<LabelSet>, Diag> {
        let classifier = self
            .get("architectures")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|x| {
                    x.as_str()
                        .is_some_and(|s| s.ends_with("ForSequenceClassification"))
                })
            });
        let count = match self.get("num_labels") {
            Some(_) => Some(self.count(
                &["num_labels"],
                Limit {
                    min: 1,
                    max: MAX_LABELS as u64,
                },
            )?),
            None => None,
        };
        let Some(id2label) = self.get("id2label") else {
            return Ok(classifier.then(|| LabelSet::numbered(count.unwrap_or(2))));
        };
        let bad = |message: String| {
            self.at(BAD_CONFIG, "id2label", message)
                .help("`id2label` maps each class index, from \"0\" up, to its name: {\"0\": \"neg\", \"1\": \"pos\"}")
        };
        let Some(map) = id2label.as_object() else {
            return Err(bad(format!(
                "`id2label` must be an object, found `{id2label}`"
            )));
        };
        let mut names = vec![None; map.len()];
        for (key, name) in map {
            let index = key.parse::<usize>().ok().filter(|&i| i < map.len());
            let (Some(i), Some(name)) = (index, name.as_str()) else {
                return Err(bad(format!(
                    "`id2label` entry `{key}: {name}` is not a class index below {} with a name",
                    map.len()
                )));
            };
            names[i] = Some(name.to_string());
        }
        let names: Vec<String> = names.into_iter().map(Option::unwrap_or_default).collect();
        let set = LabelSet::new(names).map_err(|e| bad(format!("`id2label`: {e}")))?;
        if let Some(n) = count.filter(|&n| n != set.len()) {
            return Err(self.at(
                BAD_CONFIG,
                "num_labels",
                format!(
                    "`num_labels` is {n} but `id2label` names {} classes",
                    set.len()
                ),
            ));
        }
        if let Some(label2id) = self.get("label2id") {
            if *label2id != set.label2id() {
                return Err(self
                    .at(
                        BAD_CONFIG,
                        "label2id",
                        "`label2id` does not map each name of `id2label` back to its index"
                            .to_string(),
                    )
                    .help(format!("`id2label` names the classes {}", set.shown())));
            }
        }
        Ok(Some(set))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn labels(text: &str) -> Result<Option<LabelSet>, Diag> {
        ConfigJson::parse(text, Path::new("config.json"))?.labels()
    }

    #[test]
    fn id2label_gives_the_names_in_index_order() {
        let set =
            labels(r#"{"id2label": {"1": "pos", "0": "neg"}, "label2id": {"neg": 0, "pos": 1}}"#)
                .unwrap()
                .unwrap();
        assert_eq!(set.names(), ["neg", "pos"]);
        assert_eq!(set.class_of("pos"), Some(1));
        assert_eq!(set.class_of("1"), Some(1));
        assert_eq!(set.class_of("2"), None);
        assert_eq!(set.class_of("neutral"), None);
    }

    #[test]
    fn a_sequence_classifier_without_id2label_has_numbered_classes() {
        let arch = r#"{"architectures": ["BertForSequenceClassification"]"#;
        let set = labels(&format!("{arch}}}")).unwrap().unwrap();
        assert_eq!(set.names(), ["LABEL_0", "LABEL_1"]);
        let set = labels(&format!("{arch}, \"num_labels\": 3}}"))
            .unwrap()
            .unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(labels(r#"{"architectures": ["BertModel"]}"#).unwrap(), None);
    }

    #[test]
    fn inconsistent_label_maps_are_refused_with_their_place() {
        let gap = labels(r#"{"id2label": {"0": "a", "2": "b"}}"#).unwrap_err();
        assert!(
            gap.message.contains("not a class index below 2"),
            "{}",
            gap.message
        );
        let twice = labels(r#"{"id2label": {"0": "a", "1": "a"}}"#).unwrap_err();
        assert!(twice.message.contains("given twice"), "{}", twice.message);
        let map = labels(r#"{"id2label": {"0": "a", "1": "b"}, "label2id": {"a": 1, "b": 0}}"#)
            .unwrap_err();
        assert!(map.message.contains("config.json:1:"), "{}", map.message);
        let count = labels(r#"{"id2label": {"0": "a", "1": "b"}, "num_labels": 3}"#).unwrap_err();
        assert!(
            count.message.contains("`num_labels` is 3"),
            "{}",
            count.message
        );
    }
}
