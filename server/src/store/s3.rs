//! The S3-compatible blob backend: every blob an object `<prefix>blobs/<hex>` in one bucket
//! (Ceph, MinIO, SeaweedFS, Garage or AWS), through the `object_store` crate (request signing,
//! multipart, ranged reads, retries).
//!
//! A blob becomes visible under its final key only after the ingest path checked its size,
//! BLAKE3 and SHA-256: a small blob (up to one part) is held in memory and written with one PUT
//! to its final key at commit, which S3 makes visible whole or not at all. A larger one streams
//! into a multipart upload to its final key with at most [`PARTS_IN_FLIGHT`] parts in memory;
//! the parts are invisible until commit completes the upload. Before the first part, a marker
//! object `<prefix>stages/<random>.upload` records the key and the upload's id, so that garbage
//! collection can abort an upload a crash left behind and free its parts (`collect_stages`).
//! Nothing under `stages/` is ever read as a blob.
//!
//! The backend trait is blocking; the requests run on a small runtime the backend owns, and a
//! blocking caller waits on a channel, so the backend can be used from any thread.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airlock_proto::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, PutPayloadMut};
use tokio::task::JoinHandle;

use super::backend::{BlobBackend, BlobRead, BlobStage, ChunkRead, Parked, StoreUnavailable, StreamRead};
use super::blob_store::S3Settings;

/// The size of every multipart part but the last (S3 wants at least 5 MiB). A blob up to this
/// size is written with one PUT.
pub const PART_BYTES: usize = 8 << 20;
/// Parts of one upload sent at once: with the part being filled, the memory a stage holds.
pub const PARTS_IN_FLIGHT: usize = 2;
/// A parked blob up to this size waits in memory for its batch; a larger one waits in the bucket
/// under its temporary key, so a batch of thousands holds at most this much per blob.
const PARK_IN_MEMORY: usize = 32 << 10;
/// Chunks of a read waiting for the reader.
const READ_AHEAD_CHUNKS: usize = 16;
/// Commits of one batch in flight at once.
const BATCH_CONCURRENCY: usize = 16;

/// The S3 backend.
pub struct S3Backend {
    inner: Arc<Inner>,
}

struct Inner {
    s3: Arc<AmazonS3>,
    prefix: String,
    /// Other front ends keep their blobs under the same prefix.
    shared: bool,
    /// Where the blobs are, for messages (never a credential).
    place: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A runtime may not be dropped where blocking is not allowed (an async worker).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend").field("place", &self.inner.place).finish_non_exhaustive()
    }
}

impl S3Backend {
    /// Connects to the bucket the settings name and checks that it answers (a listing of one
    /// key), so that a wrong endpoint, bucket or credential fails at start with its reason.
    pub fn open(settings: &S3Settings) -> io::Result<Self> {
        // The HTTP client's TLS takes the process's default provider: the one the server uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            // Before `with_allow_http`, which sets one of these options.
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    // A blob streams to a client as fast as the client reads: no whole-request
                    // limit, only the connect timeout and the retries' own.
                    .with_timeout_disabled(),
            )
            .with_allow_http(settings.endpoint.starts_with("http://"))
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        if let Some((id, secret)) = settings.credentials() {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let s3 = builder.build().map_err(|e| io::Error::other(format!("object store settings: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("airlock-s3")
            .enable_all()
            .build()?;
        let place =
            format!("{}/{}/{}", settings.endpoint.trim_end_matches('/'), settings.bucket, settings.prefix);
        let inner = Arc::new(Inner {
            s3: Arc::new(s3),
            prefix: settings.prefix.clone(),
            shared: settings.shared,
            place,
            runtime: Some(runtime),
        });
        let backend = Self { inner };
        let (s3, probe) = (Arc::clone(&backend.inner.s3), backend.inner.key("blobs/"));
        backend.inner.wait(async move {
            let mut listing = s3.list(Some(&probe));
            match listing.next().await {
                Some(Err(e)) => Err(e),
                _ => Ok(()),
            }
        })?;
        Ok(backend)
    }
}

impl Inner {
    fn key(&self, name: &str) -> Path {
        Path::from(format!("{}{name}", self.prefix))
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        self.key(&format!("blobs/{}", digest.to_hex()))
    }

    fn stage_key(&self) -> Path {
        self.key(&format!("stages/{}", hex::encode(rand::random::<[u8; 16]>())))
    }

    fn runtime(&self) -> io::Result<&tokio::runtime::Runtime> {
        self.runtime.as_ref().ok_or_else(|| io::Error::other("the object store client has stopped"))
    }

    /// Runs a request to completion on the backend's runtime, from any thread.
    fn wait<T: Send + 'static>(
        &self,
        request: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime()?.spawn(async move {
            let _ = tx.send(request.await);
        });
        let outcome = rx.recv().map_err(|_| io::Error::other("the object store client has stopped"))?;
        outcome.map_err(|e| self.error(e))
    }

    /// An `object_store` error as an I/O error naming the store (a missing object is
    /// `NotFound`; an unreachable store says so).
    fn error(&self, error: object_store::Error) -> io::Error {
        let detail = format!("object store {}: {error}", self.place);
        match &error {
            object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, detail),
            _ => io::Error::other(StoreUnavailable(detail)),
        }
    }
}

impl BlobBackend for S3Backend {
    fn stage(&self, digest: &Digest) -> io::Result<Box<dyn BlobStage>> {
        Ok(Box::new(S3Stage {
            inner: Arc::clone(&self.inner),
            target: *digest,
            buffer: PutPayloadMut::new(),
            upload: None,
        }))
    }

    fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobRead> {
        let inner = &self.inner;
        if len == 0 {
            return Ok(BlobRead::Stream(StreamRead(Box::new(io::empty()))));
        }
        // From the start the whole object is asked for (a reader takes `len`), so a length
        // past the end (`verify-store` asks for one byte more) or an empty blob needs no care.
        let range = (offset > 0).then(|| GetRange::Bounded(offset..offset.saturating_add(len)));
        let (s3, key) = (Arc::clone(&inner.s3), inner.blob_key(digest));
        let result =
            inner.wait(async move { s3.get_opts(&key, GetOptions { range, ..Default::default() }).await })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD_CHUNKS);
        let place = inner.place.clone();
        inner.runtime()?.spawn(async move {
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| io::Error::other(StoreUnavailable(format!("object store {place}: {e}"))));
                let failed = chunk.is_err();
                // Waits while the reader is behind; stops when it went away.
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(BlobRead::Chunks(ChunkRead { chunks: rx, len }))
    }

    fn stat(&self, digest: &Digest) -> io::Result<Option<u64>> {
        let (s3, key) = (Arc::clone(&self.inner.s3), self.inner.blob_key(digest));
        match self.inner.wait(async move { s3.head(&key).await }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn written(&self, digest: &Digest) -> io::Result<Option<(u64, u64)>> {
        let (s3, key) = (Arc::clone(&self.inner.s3), self.inner.blob_key(digest));
        match self.inner.wait(async move { s3.head(&key).await }) {
            Ok(meta) => Ok(u64::try_from(meta.last_modified.timestamp()).ok().map(|at| (meta.size, at))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn presign(&self, digest: &Digest, valid_for: Duration) -> io::Result<Option<String>> {
        use object_store::signer::Signer;
        let (s3, key) = (Arc::clone(&self.inner.s3), self.inner.blob_key(digest));
        let url = self.inner.wait(async move { s3.signed_url(http::Method::GET, &key, valid_for).await })?;
        Ok(Some(url.to_string()))
    }

    fn list(&self) -> io::Result<Vec<Digest>> {
        let (s3, prefix) = (Arc::clone(&self.inner.s3), self.inner.key("blobs/"));
        let metas = self.inner.wait(async move {
            let listing: Vec<_> = s3.list(Some(&prefix)).collect().await;
            listing.into_iter().collect::<object_store::Result<Vec<_>>>()
        })?;
        let mut digests: Vec<Digest> = metas
            .iter()
            .filter_map(|meta| meta.location.filename().and_then(|name| Digest::from_hex(name).ok()))
            .collect();
        digests.sort();
        Ok(digests)
    }

    fn delete(&self, digest: &Digest) -> io::Result<bool> {
        // S3 answers a DELETE of a missing key like any other: ask first.
        if self.stat(digest)?.is_none() {
            return Ok(false);
        }
        let (s3, key) = (Arc::clone(&self.inner.s3), self.inner.blob_key(digest));
        self.inner.wait(async move { s3.delete(&key).await })?;
        Ok(true)
    }

    fn commit_batch(&self, parked: Vec<(Parked, Digest)>) -> io::Result<()> {
        let mut blobs = Vec::with_capacity(parked.len());
        for (parked, digest) in parked {
            let blob = parked
                .0
                .downcast::<ParkedObject>()
                .map_err(|_| io::Error::other("a stage parked by another backend"))?;
            blobs.push((*blob, digest));
        }
        let inner = Arc::clone(&self.inner);
        // Each blob placed under its key; the keys that were empty are taken back if any fails,
        // so that nothing of a failed batch is visible that was not there before.
        let outcomes: Vec<object_store::Result<(bool, Digest)>> = self.inner.wait(async move {
            Ok(futures_util::stream::iter(blobs.into_iter().map(|(blob, digest)| {
                let inner = Arc::clone(&inner);
                async move { blob.place(&inner, &digest).await.map(|placed| (placed, digest)) }
            }))
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await)
        })?;
        let mut placed = Vec::new();
        let mut failed = None;
        for outcome in outcomes {
            match outcome {
                Ok((true, digest)) => placed.push(digest),
                Ok((false, _)) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            None => Ok(()),
            Some(e) => {
                // In a shared bucket another front end may have written the same key meanwhile:
                // nothing is taken back there (the collector removes what no one records).
                if !self.inner.shared {
                    for digest in &placed {
                        let _ = self.delete(digest);
                    }
                }
                Err(self.inner.error(e))
            }
        }
    }

    fn collect_stages(&self, cutoff: SystemTime, remove: bool) -> io::Result<Vec<(String, u64)>> {
        let (s3, prefix) = (Arc::clone(&self.inner.s3), self.inner.key("stages/"));
        let cutoff = cutoff.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let found = self.inner.wait(async move {
            let listing: Vec<_> = s3.list(Some(&prefix)).collect().await;
            let metas = listing.into_iter().collect::<object_store::Result<Vec<_>>>()?;
            let mut stale = Vec::new();
            for meta in metas.into_iter().filter(|m| m.last_modified.timestamp() <= cutoff) {
                if remove {
                    let name = meta.location.as_ref();
                    if name.ends_with(".upload") {
                        // A marker: abort the upload it names (freeing the parts), then drop it.
                        // One gone meanwhile belonged to an upload that just finished.
                        let named = match s3.get(&meta.location).await {
                            Ok(got) => got.bytes().await?,
                            Err(object_store::Error::NotFound { .. }) => continue,
                            Err(e) => return Err(e),
                        };
                        let named = String::from_utf8_lossy(&named).into_owned();
                        if let Some((key, id)) = named.split_once('\n') {
                            match s3.abort_multipart(&Path::from(key), &id.to_owned()).await {
                                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    match s3.delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                stale.push((meta.location.to_string(), meta.size));
            }
            Ok(stale)
        })?;
        Ok(found)
    }
}

/// A multipart upload straight to the blob's final key: its parts are invisible until it is
/// completed, which happens only after the ingest path checked the bytes. Its marker under
/// `stages/` names the key and the upload id, so that GC can abort it after a crash.
struct Upload {
    key: Path,
    id: String,
    marker: Path,
    /// Parts sent and not yet acknowledged, in order.
    sending: Vec<JoinHandle<object_store::Result<PartId>>>,
    parts: Vec<PartId>,
}

/// A blob being written.
struct S3Stage {
    inner: Arc<Inner>,
    /// The digest the ingest path expects: a large blob uploads to its key.
    target: Digest,
    buffer: PutPayloadMut,
    upload: Option<Upload>,
}

impl fmt::Debug for S3Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Stage").field("buffered", &self.buffer.content_length()).finish_non_exhaustive()
    }
}

impl S3Stage {
    /// Sends the buffer as the next part, starting the upload (and its marker) on the first.
    fn send_part(&mut self) -> io::Result<()> {
        let payload = std::mem::take(&mut self.buffer).freeze();
        let inner = Arc::clone(&self.inner);
        if self.upload.is_none() {
            let key = inner.blob_key(&self.target);
            let marker = Path::from(format!("{}.upload", inner.stage_key()));
            let (s3, k, m) = (Arc::clone(&inner.s3), key.clone(), marker.clone());
            let id = inner.wait(async move {
                let id = s3.create_multipart(&k).await?;
                let named = PutPayload::from(format!("{k}\n{id}").into_bytes());
                if let Err(e) = s3.put(&m, named).await {
                    // No marker, so no later GC could find it: abort now.
                    let _ = s3.abort_multipart(&k, &id).await;
                    return Err(e);
                }
                Ok(id)
            })?;
            self.upload = Some(Upload { key, id, marker, sending: Vec::new(), parts: Vec::new() });
        }
        let Some(upload) = self.upload.as_mut() else { return Err(io::Error::other("no upload")) };
        if upload.sending.len() >= PARTS_IN_FLIGHT {
            let oldest = upload.sending.remove(0);
            let part = inner.wait(async move {
                oldest.await.map_err(|e| object_store::Error::JoinError { source: e })?
            })?;
            upload.parts.push(part);
        }
        let (s3, key, id, index) = (
            Arc::clone(&inner.s3),
            upload.key.clone(),
            upload.id.clone(),
            upload.parts.len() + upload.sending.len(),
        );
        let sending = inner.runtime()?.spawn(async move { s3.put_part(&key, &id, index, payload).await });
        upload.sending.push(sending);
        Ok(())
    }

    /// Sends what is buffered as the last part and waits until the store holds every part; the
    /// upload is not completed yet (`PendingUpload::complete`).
    fn flush_parts(&mut self) -> io::Result<PendingUpload> {
        if self.buffer.content_length() > 0 {
            self.send_part()?;
        }
        let Some(mut upload) = self.upload.take() else { return Err(io::Error::other("no upload")) };
        let sending = std::mem::take(&mut upload.sending);
        let mut parts = std::mem::take(&mut upload.parts);
        let flushed = self.inner.wait(async move {
            for part in sending {
                parts.push(part.await.map_err(|e| object_store::Error::JoinError { source: e })??);
            }
            Ok(parts)
        });
        let pending = PendingUpload { inner: Arc::clone(&self.inner), upload: Some(upload) };
        let parts = flushed?;
        let mut pending = pending;
        if let Some(upload) = pending.upload.as_mut() {
            upload.parts = parts;
        }
        Ok(pending)
    }
}

/// Aborts an upload and drops its marker, in the background (what fails here garbage collection
/// finds later through the marker).
fn abort(inner: &Arc<Inner>, upload: &Upload) {
    let (s3, key, id, marker) =
        (Arc::clone(&inner.s3), upload.key.clone(), upload.id.clone(), upload.marker.clone());
    if let Ok(runtime) = inner.runtime() {
        runtime.spawn(async move {
            if s3.abort_multipart(&key, &id).await.is_ok() {
                let _ = s3.delete(&marker).await;
            }
        });
    }
}

impl Drop for S3Stage {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            abort(&self.inner, &upload);
        }
    }
}

impl BlobStage for S3Stage {
    fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let mut chunk = chunk;
        while !chunk.is_empty() {
            let room = PART_BYTES - self.buffer.content_length();
            let piece = chunk.split_to(room.min(chunk.len()));
            self.buffer.push(piece);
            if self.buffer.content_length() == PART_BYTES {
                self.send_part()?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, digest: &Digest) -> io::Result<()> {
        let blob = self.finish(digest, PART_BYTES)?;
        let inner = Arc::clone(&self.inner);
        let digest = *digest;
        self.inner.wait(async move { blob.place(&inner, &digest).await.map(|_| ()) })
    }

    fn park(mut self: Box<Self>) -> io::Result<Parked> {
        let target = self.target;
        Ok(Parked(Box::new(self.finish(&target, PARK_IN_MEMORY)?)))
    }
}

impl S3Stage {
    /// The written blob: in memory up to `in_memory` bytes, else under a temporary key (up to a
    /// part), else its multipart upload with every part in the store.
    fn finish(&mut self, digest: &Digest, in_memory: usize) -> io::Result<ParkedObject> {
        if *digest != self.target {
            return Err(io::Error::other(format!("a stage for {} committed as {digest}", self.target)));
        }
        if self.upload.is_some() {
            return Ok(ParkedObject::Pending(self.flush_parts()?));
        }
        if self.buffer.content_length() <= in_memory {
            return Ok(ParkedObject::Memory(std::mem::take(&mut self.buffer).freeze()));
        }
        // Over the memory bound but under a part: one PUT to a temporary key.
        let key = self.inner.stage_key();
        let (s3, k, payload) =
            (Arc::clone(&self.inner.s3), key.clone(), std::mem::take(&mut self.buffer).freeze());
        self.inner.wait(async move { s3.put(&k, payload).await })?;
        Ok(ParkedObject::Staged(StagedObject { inner: Arc::clone(&self.inner), key, done: false }))
    }
}

/// A blob written in full and checked, waiting to be placed under its final key.
enum ParkedObject {
    Memory(PutPayload),
    Staged(StagedObject),
    Pending(PendingUpload),
}

/// A multipart upload whose parts are all in the store, not yet completed. Dropped before it
/// completes, it is aborted in the background; what that misses, GC finds through its marker.
struct PendingUpload {
    inner: Arc<Inner>,
    upload: Option<Upload>,
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            abort(&self.inner, &upload);
        }
    }
}

/// A blob under a temporary key. Dropped before it is placed, it is deleted in the background;
/// what that misses, garbage collection finds.
struct StagedObject {
    inner: Arc<Inner>,
    key: Path,
    done: bool,
}

impl Drop for StagedObject {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (s3, key) = (Arc::clone(&self.inner.s3), self.key.clone());
        if let Ok(runtime) = self.inner.runtime() {
            runtime.spawn(async move {
                let _ = s3.delete(&key).await;
            });
        }
    }
}

impl ParkedObject {
    /// Places the blob under its final key, over what the bucket holds there (a repair puts
    /// good bytes over bad ones). Returns whether the key was empty before, so that a failed
    /// batch takes back only what it added.
    async fn place(self, inner: &Inner, digest: &Digest) -> object_store::Result<bool> {
        let target = inner.blob_key(digest);
        let held = match inner.s3.head(&target).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        match self {
            Self::Memory(payload) => {
                inner.s3.put(&target, payload).await?;
            }
            Self::Staged(mut staged) => {
                inner.s3.copy(&staged.key, &target).await?;
                inner.s3.delete(&staged.key).await?;
                staged.done = true;
            }
            Self::Pending(mut pending) => {
                let Some(upload) = pending.upload.take() else { return Ok(!held) };
                let parts = upload.parts.clone();
                if let Err(e) = inner.s3.complete_multipart(&upload.key, &upload.id, parts).await {
                    pending.upload = Some(upload);
                    return Err(e);
                }
                inner.s3.delete(&upload.marker).await?;
            }
        }
        Ok(!held)
    }
}
