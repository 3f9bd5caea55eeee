//! `airlockd migrate-store`: moves a stopped data directory's blobs from its own `blobs/` to an
//! S3-compatible bucket. Every recorded blob is hashed while it is copied (and committed under
//! its key only when it matches its record), then read back from the bucket and checked again;
//! only when every one checks out is
//! `blob-store.toml` written, which makes the directory use the bucket. An interrupted run
//! changes nothing the directory uses and can be run again (blobs already in the bucket whose
//! bytes check out are not sent again). The filesystem copies stay until the
//! operator removes them.

use std::io::Read;
use std::path::Path;

use airlock_proto::api::MigrateReport;
use anyhow::Context;
use bytes::Bytes;

use crate::store::blob_store::{self, S3Settings};
use crate::store::{hash_reader, BlobBackend, S3Backend, Store};

/// Moves the blobs of the data directory `data` to `bucket`, printing progress to stderr.
pub fn migrate(data: &Path, bucket: &S3Settings) -> anyhow::Result<MigrateReport> {
    anyhow::ensure!(
        blob_store::read(data)?.is_none(),
        "{} already keeps its blobs in a bucket ({})",
        data.display(),
        blob_store::BLOB_STORE_FILE
    );
    bucket.check()?;
    let store = Store::open(data, airlock_proto::Clock::system())?;
    let target = S3Backend::open(bucket).context("cannot reach the bucket")?;
    let digests = store.blob_digests()?;
    let mut report = MigrateReport { blobs: digests.len() as u64, ..MigrateReport::default() };
    // Whether the bucket holds the blob's recorded bytes, read back whole.
    let checks_out =
        |digest: &airlock_proto::Digest, record: &crate::store::BlobRecord| -> anyhow::Result<bool> {
            Ok(target.stat(digest)? == Some(record.size)
                && hash_reader(target.open(digest, 0, record.size.saturating_add(1))?.into_reader())?
                    == (record.size, *digest, record.sha256))
        };
    for (n, digest) in digests.iter().enumerate() {
        let record = store.blob(digest)?.with_context(|| format!("blob {digest}: its record went"))?;
        // Already there from an earlier run: sent again unless its bytes check out.
        if !checks_out(digest, &record)? {
            let mut reader = store
                .open_blob(digest, 0, record.size)
                .with_context(|| format!("blob {digest}: cannot read it here"))?
                .into_reader();
            let mut stage = target.stage(digest)?;
            let (mut blake3, mut sha256) = (blake3::Hasher::new(), <sha2::Sha256 as sha2::Digest>::new());
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let read = reader
                    .read(&mut buffer)
                    .with_context(|| format!("blob {digest}: cannot read it here"))?;
                if read == 0 {
                    break;
                }
                blake3.update(&buffer[..read]);
                sha2::Digest::update(&mut sha256, &buffer[..read]);
                stage.write(Bytes::copy_from_slice(&buffer[..read]))?;
            }
            // Checked before it becomes visible under its key, as every blob is.
            let hashed = (
                airlock_proto::Digest::from(blake3.finalize()),
                airlock_proto::Sha256(sha2::Digest::finalize(sha256).into()),
            );
            anyhow::ensure!(
                hashed == (*digest, record.sha256),
                "blob {digest}: the bytes here do not match its record (run `airlockd verify-store --data`); nothing was moved"
            );
            stage.commit(digest).with_context(|| format!("blob {digest}: cannot write it to the bucket"))?;
            anyhow::ensure!(
                checks_out(digest, &record)?,
                "blob {digest}: the bucket's copy does not match its record; the directory still uses its own blobs"
            );
            report.copied += 1;
            report.bytes_copied += record.size;
        }
        report.verified += 1;
        if (n + 1) % 1000 == 0 || n + 1 == digests.len() {
            eprintln!("{} of {} blobs in the bucket, each read back and checked", n + 1, digests.len());
        }
    }
    drop(store);
    blob_store::write(data, bucket)?;
    Ok(report)
}
