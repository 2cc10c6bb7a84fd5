//! The command line's declarations: every argument of every subcommand has
//! a help text, and `plcc bench` repeats until its timings settle unless
//! `--repeat` says how often.

use clap::{CommandFactory, Parser};

use super::bench::measure::{Repeat, SETTLE_MIN};
use super::{Cli, Command};

/// `(command path, argument id)` of every argument without a help text.
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let help = arg.get_help().or(arg.get_long_help());
        if help.is_none_or(|h| h.to_string().trim().is_empty()) {
            out.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        if sub.get_about().is_none() {
            out.push(format!("{path} {} (the subcommand)", sub.get_name()));
        }
        missing_help(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_argument_of_every_subcommand_has_a_help_text() {
    let cmd = Cli::command();
    let mut missing = Vec::new();
    missing_help(&cmd, "plcc", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:#?}");
    // The walk reaches every subcommand's arguments.
    assert!(cmd.get_subcommands().any(|s| s.get_name() == "eval"));
}

#[test]
fn bench_repeats_until_settled_by_default_and_exactly_with_repeat() {
    let parsed = Cli::try_parse_from(["plcc", "bench", "builtin:tiny-bert", "--input", "x"]);
    let Command::Bench(args) = parsed.unwrap().command else {
        panic!("not a bench command");
    };
    let repeat = args.repeat;
    assert_eq!(repeat, None);
    assert_eq!(
        Repeat::from_arg(repeat).unwrap(),
        Repeat::UntilSettled {
            min: SETTLE_MIN,
            max: 10
        }
    );
    assert_eq!(SETTLE_MIN, 3);
    assert_eq!(Repeat::from_arg(Some(2)).unwrap(), Repeat::Exactly(2));
    assert!(Repeat::from_arg(Some(0)).is_err());
    // Until settled: never fewer than 3, more while the last 3 vary.
    let settled = Repeat::from_arg(None).unwrap();
    assert!(settled.wants_more(&[1.0, 1.0]));
    assert!(!settled.wants_more(&[1.0, 1.0, 1.01]));
    assert!(settled.wants_more(&[1.0, 1.0, 1.5]));
    // At most 10 passes, and none after a minute of timed passes.
    let rising: Vec<f64> = (0..10).map(|i| 1.0 + f64::from(i)).collect();
    assert!(settled.wants_more(&rising[..9]));
    assert!(!settled.wants_more(&rising));
    assert!(!settled.wants_more(&[30.0, 31.0, 40.0]));
    assert!(!Repeat::Exactly(2).wants_more(&[1.0, 2.0]));
}
