//! Progress bars on long transfers, hidden when stderr is not a terminal or output is JSON.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter; cheap to clone, and a no-op when hidden.
#[derive(Debug, Clone)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A byte-transfer bar labelled `what`, shown only on an interactive stderr.
    pub fn bytes(what: &str, len: u64, visible: bool) -> Self {
        if !visible || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Self(bar)
    }

    /// A count bar (leaves) labelled `what`.
    pub fn count(what: &str, len: u64, visible: bool) -> Self {
        if !visible || !std::io::stderr().is_terminal() || len < 1000 {
            return Self::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_message(what.to_owned());
        Self(bar)
    }

    /// A reporter that shows nothing.
    pub fn hidden() -> Self {
        Self(ProgressBar::hidden())
    }

    /// Adds `n` units.
    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Sets the total.
    pub fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
