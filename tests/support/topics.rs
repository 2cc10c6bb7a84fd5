//! Generated classification data for tests: short texts of topic words
//! labelled with their topic's name (`text<TAB>label`), for the built-in
//! tiny BERT's classifiers, and the recipe that fine-tunes its head on them.

/// The topics, their label names and their words.
pub const TOPICS: [(&str, [&str; 4]); 3] = [
    ("net", ["network", "socket", "proxy", "router"]),
    ("sound", ["audio", "mixer", "midi", "synth"]),
    ("games", ["chess", "puzzle", "arcade", "board"]),
];

/// `n` texts labelled by topic, the topics in turn from `offset`: four words
/// of the topic, and in every fifth text one word of another topic, so that
/// not every example is easy.
pub fn labelled(n: usize, offset: usize) -> String {
    (0..n)
        .map(|i| {
            let t = (i + offset) % 3;
            let (label, words) = TOPICS[t];
            let mut text: Vec<&str> = (0..4).map(|k| words[(i * 5 + k * 3) % 4]).collect();
            if i % 5 == 4 {
                text.push(TOPICS[(t + 1) % 3].1[i % 4]);
            }
            format!("{}\t{label}\n", text.join(" "))
        })
        .collect()
}

/// A recipe that fine-tunes the built-in tiny BERT's classifier head on
/// `train.tsv` (evaluated on `dev.tsv`, both beside it) and writes a
/// Hugging Face checkpoint to `ckpt`.
pub const FINETUNE: &str = r#"teacher: "builtin:tiny-bert"
task: classification
labels: [net, sound, games]
eval: dev
data train "train.tsv" { label: 1 }
data dev "dev.tsv" { label: 1 }
finetune topics {
    data: train
    steps: 40
    lr: 2e-3
    batch_size: 16
    seq_len: 16
    warmup: 0
}
output "ckpt" { format: hf }
"#;
