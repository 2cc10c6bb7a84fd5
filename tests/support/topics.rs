//! Generated classification data for tests: short texts of topic words
//! labelled with their topic's name (`text<TAB>label`), for the built-in
//! tiny BERT's classifiers.

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
