//! Similarity-ranking fidelity: how well a student preserves the order of
//! the teacher's pairwise similarities, which is what retrieval, clustering
//! and deduplication depend on. For sentence embeddings `t_i` (teacher) and
//! `s_i` (student), it is the Spearman rank correlation between
//! `cos(t_i, t_j)` and `cos(s_i, s_j)` over all pairs `i < j`.

use crate::runtime::run::exit_rule::cosine;

/// At most this many sentences enter the pairwise comparison (the first
/// ones): 4,000 sentences are about 8 million pairs.
pub const MAX_RANKED_SENTENCES: usize = 4000;

/// The Spearman correlation of the teacher's and the student's cosine
/// similarities over all pairs of the first [`MAX_RANKED_SENTENCES`]
/// sentences; `None` with fewer than three sentences (one pair has no
/// ranking) or embeddings of different counts.
pub fn similarity_spearman(teacher: &[Vec<f32>], student: &[Vec<f32>]) -> Option<f64> {
    if teacher.len() != student.len() || teacher.len() < 3 {
        return None;
    }
    let n = teacher.len().min(MAX_RANKED_SENTENCES);
    let pairs = |e: &[Vec<f32>]| -> Vec<f64> {
        let mut out = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                out.push(cosine(&e[i], &e[j]));
            }
        }
        out
    };
    Some(spearman(&pairs(teacher), &pairs(student)))
}

/// Spearman's rank correlation of `a` and `b` (equal lengths): the Pearson
/// correlation of their ranks, tied values sharing their average rank.
/// 0 when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// 1-based ranks, ties averaged; NaN values rank last.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut out = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold equal values: average rank.
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

/// Pearson's correlation of `a` and `b` (over their common length); 0 when
/// either side is constant or empty.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |x: &[f64]| x[..n].iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (da, db) = (a[i] - ma, b[i] - mb);
        cov += da * db;
        va += da * da;
        vb += db * db;
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn spearman_of_monotone_maps_is_one_and_of_reversal_minus_one() {
        let a = [0.1, 0.5, -0.3, 0.9, 0.2];
        let up: Vec<f64> = a.iter().map(|x: &f64| x.powi(3) + 2.0).collect();
        let down: Vec<f64> = a.iter().map(|x| -x).collect();
        assert!((spearman(&a, &up) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &down) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_matches_the_textbook_formula_without_ties() {
        // 1 - 6 Σd² / (n (n² - 1)) for distinct values.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [2.0, 1.0, 4.0, 3.0, 5.0];
        let d2 = 4.0;
        let expected = 1.0 - 6.0 * d2 / (5.0 * 24.0);
        assert!((spearman(&a, &b) - expected).abs() < 1e-12);
    }

    #[test]
    fn similarity_ranking_is_one_for_a_rescaled_student_and_drops_for_a_shuffled_one() {
        let t: Vec<Vec<f32>> = (0..6)
            .map(|i| vec![(i as f32).sin(), (i as f32 * 0.7).cos(), i as f32 * 0.1])
            .collect();
        let scaled: Vec<Vec<f32>> = t
            .iter()
            .map(|v| v.iter().map(|x| x * 3.0).collect())
            .collect();
        assert!((similarity_spearman(&t, &scaled).unwrap() - 1.0).abs() < 1e-12);
        let mut shuffled = t.clone();
        shuffled.rotate_left(1);
        assert!(similarity_spearman(&t, &shuffled).unwrap() < 0.9);
        assert_eq!(similarity_spearman(&t[..2], &t[..2]), None);
    }
}
