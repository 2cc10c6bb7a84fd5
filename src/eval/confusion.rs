//! A classifier's confusion counts on labelled data, by label name: how
//! many texts of each gold class were predicted as each class.

use serde::Serialize;

use crate::base::LabelSet;

/// `counts[g][p]`: texts of gold class `g` predicted as class `p`, the
/// classes named by `labels`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// The counts of `predicted` against `gold`, class indices of `labels`
    /// (an index beyond them is not counted).
    pub fn new(predicted: &[usize], gold: &[usize], labels: &LabelSet) -> Self {
        let n = labels.len();
        let mut counts = vec![vec![0; n]; n];
        for (&p, &g) in predicted.iter().zip(gold) {
            if p < n && g < n {
                counts[g][p] += 1;
            }
        }
        Confusion {
            labels: labels.names().to_vec(),
            counts,
        }
    }

    /// The counts as a table: a header of predicted labels, then one row
    /// per gold label that occurs in the data or is predicted.
    pub fn table(&self) -> Vec<String> {
        let used: Vec<usize> = (0..self.labels.len())
            .filter(|&c| {
                self.counts[c].iter().sum::<usize>() > 0 || self.counts.iter().any(|r| r[c] > 0)
            })
            .collect();
        let width = |c: usize| self.labels[c].chars().count().max(5);
        let first = used
            .iter()
            .map(|&c| self.labels[c].chars().count())
            .chain([14])
            .max()
            .unwrap_or(14);
        let mut head = format!("{:<first$}", "gold \\ predicted");
        for &c in &used {
            head.push_str(&format!(" {:>w$}", self.labels[c], w = width(c)));
        }
        let mut lines = vec![head];
        for &g in &used {
            let mut line = format!("{:<first$}", self.labels[g]);
            for &p in &used {
                line.push_str(&format!(" {:>w$}", self.counts[g][p], w = width(p)));
            }
            lines.push(line);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_by_gold_row_and_predicted_column() {
        let labels = LabelSet::new(vec!["net".into(), "web".into(), "sound".into()]).unwrap();
        let c = Confusion::new(&[0, 1, 1, 0], &[0, 0, 1, 1], &labels);
        assert_eq!(c.counts, vec![vec![1, 1, 0], vec![1, 1, 0], vec![0, 0, 0]]);
        let table = c.table();
        assert_eq!(table.len(), 3, "{table:?}");
        assert!(
            table[0].contains("net") && table[0].contains("web") && !table[0].contains("sound")
        );
        assert!(table[1].starts_with("net"));
    }
}
