//! The accuracy curve on hand-made observations: the accuracy of each
//! setting and of each exit, worked out by hand.

use super::*;
use crate::artifact::ExitRecord;
use crate::base::{builtin, ExitCriterion, ExitHead};

const TOKENS: usize = 8;

/// Four examples, exits after layers 1 and 2 (entropy signals; 1 when the
/// exit's prediction is the gold label):
/// - A is sure early and right everywhere;
/// - B is wrong at exit 1, right later;
/// - C is unsure at both exits and right only at the end;
/// - D is right only at exit 1.
fn observations() -> Vec<Observation> {
    let obs = |signals: [f64; 2], scores: [f64; 2], final_score: f64| Observation {
        tokens: TOKENS,
        signals: signals.iter().copied().map(Some).collect(),
        scores: scores.to_vec(),
        final_score,
    };
    vec![
        obs([0.1, 0.2], [1.0, 1.0], 1.0),
        obs([0.4, 0.3], [0.0, 1.0], 1.0),
        obs([0.9, 0.8], [0.0, 0.0], 1.0),
        obs([0.6, 0.5], [1.0, 0.0], 0.0),
    ]
}

fn exits() -> Vec<ExitRecord> {
    [1, 2]
        .map(|after| ExitRecord {
            after,
            head: ExitHead::Classifier,
            criterion: ExitCriterion::Entropy,
            threshold: None,
            patience: None,
        })
        .to_vec()
}

fn policies() -> Vec<ExitPolicy> {
    exits()
        .iter()
        .map(|e| ExitPolicy {
            head: e.head,
            criterion: e.criterion,
            threshold: e.threshold,
            patience: e.patience,
        })
        .collect()
}

/// The sweep of [`observations`] on tiny-bert's classifier with `shipped`
/// marked; its costs and the model's depth.
fn swept(shipped: Option<f64>) -> (Vec<AccuracyPoint>, ExitCosts, usize) {
    let config = builtin::config("tiny-bert").unwrap();
    let depth = config.num_layers();
    let task = Task::Classification { labels: 3 };
    let mut costs = ExitCosts::new(&config, task, &exits());
    let points = sweep(
        &observations(),
        &policies(),
        &[1, 2],
        depth,
        &mut costs,
        shipped,
    );
    (points, costs, depth)
}

#[test]
fn each_setting_and_each_exit_scores_against_the_gold_labels() {
    let (points, mut costs, depth) = swept(Some(0.45));
    let settings: Vec<Option<f64>> = points.iter().map(|p| p.setting).collect();
    // 0.2 sends everyone where 0.1 does (the strictest kept), 0.4 where
    // the shipped 0.45 does (the shipped one kept).
    let expected = [None, Some(0.1), Some(0.3), Some(0.45)];
    assert_eq!(settings[..4], expected);
    assert_eq!(settings[4..], [Some(0.5), Some(0.6), Some(0.8), Some(0.9)]);
    // By hand: who leaves where, and whether the output there is right.
    let accuracy: Vec<f64> = points.iter().map(|p| p.accuracy).collect();
    assert_eq!(accuracy, [0.75, 0.75, 0.75, 0.5, 0.5, 0.75, 0.5, 0.5]);
    let d = depth as f64;
    let layers: Vec<f64> = points.iter().map(|p| p.avg_exit_layer).collect();
    let left_at = [
        [d, d, d, d],
        [1.0, d, d, d],
        [1.0, 2.0, d, d],
        [1.0, 1.0, d, d],
        [1.0, 1.0, d, 2.0],
        [1.0, 1.0, d, 1.0],
        [1.0, 1.0, 2.0, 1.0],
        [1.0, 1.0, 1.0, 1.0],
    ];
    let by_hand: Vec<f64> = left_at
        .iter()
        .map(|l| l.iter().sum::<f64>() / 4.0)
        .collect();
    assert_eq!(layers, by_hand);
    // The shipped setting: A and B leave at exit 1, C and D run to the end.
    let shipped: Vec<&AccuracyPoint> = points.iter().filter(|p| p.shipped).collect();
    assert_eq!(shipped.len(), 1);
    assert_eq!(shipped[0].setting, Some(0.45));
    // Exits off costs what the model without exits costs; the loosest
    // sends everyone out at exit 1.
    let full = costs.without_exits(TOKENS) as f64;
    assert_eq!(points[0].flops_per_example, full);
    assert_eq!(points[0].speedup, 1.0);
    let loosest = points.last().unwrap();
    assert_eq!(loosest.avg_exit_layer, 1.0);
    let at_first = costs.leaving_at(TOKENS, Some(0), &[true, true]) as f64;
    assert_eq!(loosest.flops_per_example, at_first);
    assert!((loosest.speedup - full / at_first).abs() < 1e-12);
    for pair in points[1..].windows(2) {
        assert!(pair[1].flops_per_example <= pair[0].flops_per_example);
    }
    let layers = layer_accuracies(&observations(), &[1, 2], depth);
    let got: Vec<(usize, Option<usize>, f64)> = layers
        .iter()
        .map(|l| (l.after_layer, l.exit, l.accuracy))
        .collect();
    assert_eq!(
        got,
        [(1, Some(1), 0.5), (2, Some(2), 0.5), (depth, None, 0.75)]
    );
}

#[test]
fn a_shipped_setting_already_swept_is_marked_not_added() {
    let (points, _, _) = swept(None);
    assert_eq!(points.len(), 8);
    assert!(points[0].shipped && points[0].setting.is_none());
    assert_eq!(points.iter().filter(|p| p.shipped).count(), 1);
}
