//! Progress display on stderr: one bar per training stage with the loss,
//! learning rate, tokens/s and the time left. Hidden when stderr is not a
//! terminal (logs and tests stay clean; the loss log has every number).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar for a stage of `total` steps, starting at `start` (a resumed run).
pub fn stage_bar(name: &str, total: usize, start: usize, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style =
        ProgressStyle::with_template("  {prefix:<12} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar.set_position(start as u64);
    bar
}

/// A bar for a long build step of `total` units (importance scoring, evaluation).
pub fn bar(name: &str, total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("  {prefix:<12} [{bar:30}] {pos}/{len} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar
}

/// Moves the bar one step and shows the step's numbers.
pub fn advance(bar: &ProgressBar, loss: f64, lr: f64, tokens_per_s: f64) {
    bar.set_message(format!(
        "loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s"
    ));
    bar.inc(1);
}

pub fn finish(bar: &ProgressBar) {
    bar.finish();
}
