//! The command line itself: `plcc bench` reports its passes and their
//! spread, and `--repeat` says how often it runs.

use crate::support::plcc::{plcc, stderr, workdir};

#[test]
fn bench_json_reports_its_passes_and_their_spread() {
    let lines: String = (0..8)
        .map(|i| format!("sentence number {i} for timing\n"))
        .collect();
    let dir = workdir("cli-bench", &[("input.txt", &lines)]);
    let input = dir.join("input.txt");
    let o = plcc(&[
        "bench",
        "builtin:tiny-bert",
        "--alone",
        "--input",
        input.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rounds = v["rounds"].as_u64().unwrap();
    assert!((3..=10).contains(&rounds), "{v}");
    let spread = v["spread_pct"].as_f64().unwrap();
    assert!(spread >= 0.0, "{v}");
    assert_eq!(v["settled"].as_bool().unwrap(), spread <= 3.0);
    assert!(v["median_sentences_per_s"].as_f64().unwrap() > 0.0);

    // --repeat forces the count.
    let o = plcc(&[
        "bench",
        "builtin:tiny-bert",
        "--input",
        input.to_str().unwrap(),
        "--against",
        "builtin:tiny-bert",
        "--repeat",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"]["rounds"], 2, "{v}");
    assert_eq!(v["against"]["rounds"], 2, "{v}");
    assert!(v["speedup_median"].as_f64().unwrap() > 0.0);
}
