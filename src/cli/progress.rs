//! What `plcc build` shows while it works, on stderr: one line per finished
//! stage with its time and, for long work (a training stage, importance
//! scoring), a bar with the step's numbers and the time left. When stderr
//! is not a terminal (CI, `nohup`, a log file) the bar becomes plain lines:
//! one when the work starts, one at most every [`LOG_EVERY`] and one when it
//! ends, so a log shows the build is alive.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::lower::reporter::Reporter;

/// How often a log gets a line during long work.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// Long work in progress.
struct Work {
    name: String,
    total: usize,
    done: usize,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

/// The command line's reporter: bars on a terminal, plain lines elsewhere.
pub struct StderrReporter {
    terminal: bool,
    work: Mutex<Option<Work>>,
}

impl StderrReporter {
    pub fn new() -> Self {
        StderrReporter {
            terminal: std::io::stderr().is_terminal(),
            work: Mutex::new(None),
        }
    }
}

impl Default for StderrReporter {
    fn default() -> Self {
        StderrReporter::new()
    }
}

fn bar(name: &str, total: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("  {prefix:<12} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar.set_position(done as u64);
    bar
}

/// The plain line for `work` after a step with `status`.
fn line(work: &Work, status: &str) -> String {
    let elapsed = work.started.elapsed().as_secs_f64();
    let left = work.total.saturating_sub(work.done);
    let eta = match (work.done, left) {
        (0, _) | (_, 0) => String::new(),
        (d, _) => format!(", about {:.0}s left", elapsed / d as f64 * left as f64),
    };
    let status = if status.is_empty() {
        String::new()
    } else {
        format!(" {status}")
    };
    format!(
        "  {} step {}/{}{status} ({elapsed:.0}s{eta})",
        work.name, work.done, work.total
    )
}

impl Reporter for StderrReporter {
    fn stage(&self, name: &str, seconds: f64) {
        eprintln!("  {name:<32} {seconds:>8.2}s");
    }

    fn begin(&self, name: &str, total: usize, done: usize) {
        let work = Work {
            name: name.to_string(),
            total,
            done,
            started: Instant::now(),
            last_line: Instant::now(),
            bar: self.terminal.then(|| bar(name, total, done)),
        };
        if !self.terminal {
            eprintln!("  {name}: {total} steps, from step {done}");
        }
        if let Ok(mut w) = self.work.lock() {
            *w = Some(work);
        }
    }

    fn resize(&self, total: usize) {
        let Ok(mut guard) = self.work.lock() else {
            return;
        };
        if let Some(work) = guard.as_mut() {
            work.total = total;
            if let Some(bar) = &work.bar {
                bar.set_length(total as u64);
            }
        }
    }

    fn step(&self, status: &str) {
        let Ok(mut guard) = self.work.lock() else {
            return;
        };
        let Some(work) = guard.as_mut() else {
            return;
        };
        work.done += 1;
        match &work.bar {
            Some(bar) => {
                bar.set_message(status.to_string());
                bar.inc(1);
            }
            None if work.last_line.elapsed() >= LOG_EVERY => {
                eprintln!("{}", line(work, status));
                work.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn event(&self, message: &str) {
        let Ok(guard) = self.work.lock() else {
            return;
        };
        let text = match guard.as_ref() {
            Some(work) => format!("  {} {message}", work.name),
            None => format!("  {message}"),
        };
        match guard.as_ref().and_then(|w| w.bar.as_ref()) {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn end(&self) {
        let Ok(mut guard) = self.work.lock() else {
            return;
        };
        if let Some(work) = guard.take() {
            match &work.bar {
                Some(bar) => bar.finish_and_clear(),
                None => eprintln!("{}", line(&work, "done")),
            }
        }
    }
}
