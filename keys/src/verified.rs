//! `Verified<T>`: a value whose signatures this crate checked.

use std::ops::Deref;

/// A value that passed verification. Only `airlock-keys` can construct one, so code that takes
/// a `Verified<T>` cannot be handed unverified data.
#[derive(Debug, Clone)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    /// Gives up the proof and returns the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
