//! What `strata restore` shows while it runs and when it ends: a progress bar
//! (count, rate, ETA against the planned rows) when standard error is a
//! terminal, else one JSON summary line; nothing with `--quiet`. The summary
//! goes to standard output unless NDJSON is being written there, then to
//! standard error.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata::restore::{Progress, RestoreSummary};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A bar on standard error, a human summary line after it.
    Bar,
    /// One JSON line at the end, on standard output or standard error.
    Json {
        /// Standard error instead of standard output.
        stderr: bool,
    },
    /// Nothing.
    Quiet,
}

impl Mode {
    /// The mode for these flags and the current terminal.
    pub(crate) fn detect(quiet: bool, stdout_is_data: bool) -> Self {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Json {
                stderr: stdout_is_data,
            }
        }
    }

    /// Prints the summary of a finished restore as this mode says.
    pub(crate) fn print_summary(self, summary: &RestoreSummary) {
        match self {
            Mode::Quiet => {}
            Mode::Bar => {
                let _ = writeln!(std::io::stderr(), "{}", summary.human());
            }
            Mode::Json { stderr } => {
                let line = summary.to_json_line();
                // A closed pipe is not worth failing a finished restore for.
                let _ = if stderr {
                    writeln!(std::io::stderr(), "{line}")
                } else {
                    writeln!(std::io::stdout(), "{line}")
                };
            }
        }
    }
}

/// The live part: a bar once the plan is known (in [`Mode::Bar`]), or nothing.
#[derive(Debug)]
pub(crate) struct Bar {
    mode: Mode,
    bar: OnceLock<ProgressBar>,
}

impl Bar {
    /// Progress shown as `mode` says.
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            bar: OnceLock::new(),
        }
    }
}

impl Progress for Bar {
    fn planned(&self, planned: u64) {
        if self.mode != Mode::Bar {
            return;
        }
        self.bar.get_or_init(|| {
            let bar = ProgressBar::with_draw_target(Some(planned), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} msgs \
                 {per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
    }

    fn delivered(&self, n: u64) {
        if let Some(bar) = self.bar.get() {
            bar.inc(n);
        }
    }

    /// Removes the bar; after an error it stays where it stopped.
    fn ended(&self, ok: bool) {
        if let Some(bar) = self.bar.get() {
            if ok {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
        }
    }
}
