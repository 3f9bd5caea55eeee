//! Storage: RocksDB for metadata, the log and indexes; the filesystem for blob bytes.
//!
//! Only this module touches RocksDB or the blob directory. Every logical change is one
//! `WriteBatch` written with sync, so an acknowledged change survives a crash and a partial one
//! is never visible.

pub mod blobs;
pub mod db;

pub use blobs::{BlobStore, BlobWriter, StoredBlob};
pub use db::{BlobRecord, Db, LeafBatch, TokenRecord};
