//! Aligned buffers: what direct reads and writes need, pooled so that a stream of them (an
//! upload, a download) reuses memory instead of touching fresh pages.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::{ALIGN, BUFFER};

/// An aligned buffer of `BUFFER` bytes inside a slightly larger allocation.
#[derive(Debug)]
pub(super) struct Aligned {
    pub(super) memory: Vec<u8>,
    pub(super) start: usize,
}

impl Aligned {
    pub(super) fn new() -> Self {
        let memory = vec![0u8; BUFFER + ALIGN];
        let start = memory.as_ptr().align_offset(ALIGN);
        Self { memory, start }
    }

    pub(super) fn bytes(&self, len: usize) -> &[u8] {
        &self.memory[self.start..self.start + len]
    }

    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + BUFFER]
    }
}

/// Aligned buffers for a stream of bytes that is hashed and then written directly (an upload):
/// the bytes are copied once, into a buffer that the hashing threads and the direct writer then
/// share as `Bytes`; a buffer comes back to the pool when the last of them drops it.
#[derive(Debug, Clone, Default)]
pub struct AlignedPool(pub(super) Arc<Mutex<Vec<Aligned>>>);

/// Buffers a pool keeps for reuse; more in flight are freed when they come back.
const POOL_KEEPS: usize = 8;

impl AlignedPool {
    /// An empty buffer to fill.
    pub fn take(&self) -> Filling {
        let reused = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        Filling { buffer: reused.unwrap_or_else(Aligned::new), len: 0, pool: self.clone() }
    }
}

/// A pool's buffer being filled.
#[derive(Debug)]
pub struct Filling {
    buffer: Aligned,
    len: usize,
    pool: AlignedPool,
}

impl Filling {
    /// Copies as much of `bytes` as fits; returns how much that was.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BUFFER - self.len);
        self.buffer.bytes_mut()[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    /// Fills the buffer from its start by `read`, which returns how many bytes it wrote there.
    pub(super) fn fill_with(&mut self, read: impl FnOnce(&mut [u8]) -> io::Result<usize>) -> io::Result<()> {
        let n = read(self.buffer.bytes_mut())?;
        self.len = n.min(BUFFER);
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        self.len == BUFFER
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes filled, shared; the buffer goes back to the pool when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(Pooled { buffer: Some(self.buffer), len: self.len, pool: self.pool })
    }
}

/// A pool's buffer behind `Bytes`.
struct Pooled {
    buffer: Option<Aligned>,
    len: usize,
    pool: AlignedPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref().map_or(&[], |buffer| buffer.bytes(self.len))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut kept = self.pool.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < POOL_KEEPS {
            kept.extend(self.buffer.take());
        }
    }
}
