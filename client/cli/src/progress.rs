//! Progress bars on long transfers (indicatif), hidden when stderr is not a terminal or output
//! is JSON; count bars only for 1000 items or more.

use std::io::IsTerminal;

use airlock_client::progress::{NoProgress, Progress, Reporter};
use indicatif::{ProgressBar, ProgressStyle};

/// Below this many items a count (of log leaves) shows no bar.
const MIN_COUNT_BAR: u64 = 1000;

/// One bar.
#[derive(Debug, Clone)]
pub struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }

    fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Makes bars on an interactive stderr, or progress that shows nothing.
#[derive(Debug, Clone, Copy)]
pub struct Bars {
    visible: bool,
}

impl Bars {
    /// Bars for a run with (`json`) or without JSON output.
    pub fn new(json: bool) -> Self {
        Self { visible: !json && std::io::stderr().is_terminal() }
    }
}

impl Reporter for Bars {
    /// A byte-transfer bar labelled `what`.
    fn bytes(&self, what: &str, len: u64) -> Box<dyn Progress> {
        if !self.visible {
            return Box::new(NoProgress);
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Box::new(Bar(bar))
    }

    /// A count bar (log leaves) labelled `what`.
    fn count(&self, what: &str, len: u64) -> Box<dyn Progress> {
        if !self.visible || len < MIN_COUNT_BAR {
            return Box::new(NoProgress);
        }
        let bar = ProgressBar::new(len);
        bar.set_message(what.to_owned());
        Box::new(Bar(bar))
    }
}
