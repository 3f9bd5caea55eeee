//! Progress of long transfers, as seen by the library: a small trait the caller implements (the
//! `airlock` CLI draws bars on a terminal; a server's mirror shows nothing). The library never
//! decides how progress is shown, only what advanced.

/// One transfer or count in progress. Implementations must be cheap: `inc` is called per chunk.
pub trait Progress: Send + Sync {
    /// Sets the total (bytes or items).
    fn set_length(&self, len: u64);
    /// Adds `n` units.
    fn inc(&self, n: u64);
    /// The work is done (or abandoned): remove whatever shows it.
    fn finish(&self) {}
}

/// Progress that shows nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_length(&self, _len: u64) {}
    fn inc(&self, _n: u64) {}
}

/// Makes one [`Progress`] per step, for workflows with several (an export fetches one blob after
/// another; following a log fetches leaves).
pub trait Reporter: Send + Sync {
    /// Progress of a byte transfer of `len` bytes, labelled `what`.
    fn bytes(&self, what: &str, len: u64) -> Box<dyn Progress>;
    /// Progress of a count of `len` items (log leaves), labelled `what`.
    fn count(&self, what: &str, len: u64) -> Box<dyn Progress>;
}

/// A reporter whose progress shows nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quiet;

impl Reporter for Quiet {
    fn bytes(&self, _what: &str, _len: u64) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }

    fn count(&self, _what: &str, _len: u64) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}
