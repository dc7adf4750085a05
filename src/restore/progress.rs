//! What a restore shows while it runs and when it ends: a progress bar (count,
//! rate, ETA against the planned rows) when standard error is a terminal, else
//! one JSON summary line; nothing with `--quiet`. The summary goes to standard
//! output unless NDJSON is being written there, then to standard error.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::RestoreSummary;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
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
    pub fn detect(quiet: bool, stdout_is_data: bool) -> Self {
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
}

/// The live part: a bar, or nothing.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing progress toward `planned` messages (an upper bound).
    pub fn start(mode: Mode, planned: u64) -> Self {
        let bar = (mode == Mode::Bar).then(|| {
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
        Self { mode, bar }
    }

    /// Counts delivered messages.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Removes the bar and prints the summary per the mode.
    pub fn finish(self, summary: &RestoreSummary) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        match self.mode {
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

    /// Removes the bar after an error.
    pub fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
