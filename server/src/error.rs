//! The one place that maps errors to HTTP statuses. Domain errors (submit, ingest, import,
//! checkpoint) become an `ApiError` here and nowhere else; internal details are logged, never
//! sent.

use airlock_proto::api::ErrorCode;
use http::StatusCode;

use crate::mirror::import::ImportError;
use crate::mirror::CheckpointError;
use crate::primary::SubmitError;
use crate::store::IngestError;

/// An error a request handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The Python index has no representation the client accepts.
    #[error("{0}")]
    NotAcceptable(String),
    /// A revoked release's file.
    #[error("{0}")]
    Gone(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    Unprocessable(String),
    #[error("request body timed out")]
    Timeout,
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the server's storage is full: {0}")]
    InsufficientStorage(String),
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Gone(_) => StatusCode::GONE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Stale(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) | Self::Gone(_) => ErrorCode::NotFound,
            Self::NotAcceptable(_) => ErrorCode::BadRequest,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::RangeNotSatisfiable { .. } => ErrorCode::RangeNotSatisfiable,
            Self::Unprocessable(_) => ErrorCode::Rejected,
            Self::Timeout => ErrorCode::Timeout,
            Self::Stale(_) => ErrorCode::Stale,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::InsufficientStorage(_) => ErrorCode::InsufficientStorage,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// An internal error, unless a full disk caused it (an I/O error of that kind, or RocksDB's
/// report of one, anywhere in its chain): that is named, so operator and client learn why.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match storage_full(&e) {
            Some(why) => Self::InsufficientStorage(why),
            None => Self::Internal(e),
        }
    }
}

/// Why `error` is a full disk of this server, if it is one. The chain is read only up to an
/// error from another registry: what an upstream says about its own disk is not ours.
pub fn storage_full(error: &anyhow::Error) -> Option<String> {
    error.chain().take_while(|cause| !cause.is::<airlock_client::RemoteError>()).find_map(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull);
        let text = cause.to_string();
        (io || text.contains("No space left on device")).then_some(text)
    })
}

/// A malformed query string or range.
impl From<airlock_proto::api::query::RequestError> for ApiError {
    fn from(e: airlock_proto::api::query::RequestError) -> Self {
        match e {
            airlock_proto::api::query::RequestError::Invalid(message) => Self::BadRequest(message),
            airlock_proto::api::query::RequestError::Unsatisfiable { size } => {
                Self::RangeNotSatisfiable { size }
            }
        }
    }
}

/// An I/O error: a full disk is named as such; anything else stays internal.
/// A blocking task that panicked or was cancelled.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            Self::InsufficientStorage(e.to_string())
        } else if let Some(detail) = crate::store::StoreUnavailable::detail(&e) {
            tracing::error!(error = detail, "the blob store is unavailable");
            Self::Unavailable("the blob store is unavailable; try again later".to_owned())
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<crate::purge::PurgeError> for ApiError {
    fn from(e: crate::purge::PurgeError) -> Self {
        use crate::purge::PurgeError;
        match e {
            PurgeError::NotFound(_) => Self::NotFound(e.to_string()),
            PurgeError::Ambiguous(_) => Self::BadRequest(e.to_string()),
            PurgeError::NotRevoked { .. } => Self::Conflict(e.to_string()),
            PurgeError::Internal(e) => e.into(),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Rejected(message) => Self::Unprocessable(message),
            SubmitError::Conflict(message) => Self::Conflict(message),
            SubmitError::Internal(inner) => inner.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge { .. } => Self::TooLarge(e.to_string()),
            IngestError::Size { .. } | IngestError::Blake3 { .. } | IngestError::Sha256 { .. } => {
                Self::BadRequest(e.to_string())
            }
            IngestError::Io(io) => io.into(),
            IngestError::Record(inner) => inner.into(),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Internal(inner) => inner.into(),
            ImportError::Blob { source: IngestError::Io(io), .. } => io.into(),
            ImportError::Blob { source: IngestError::Record(inner), .. } => inner.into(),
            other => Self::Unprocessable(other.to_string()),
        }
    }
}

impl From<CheckpointError> for ApiError {
    fn from(e: CheckpointError) -> Self {
        match e {
            CheckpointError::NotSynced => Self::Unavailable(e.to_string()),
            CheckpointError::Stale { .. } => Self::Stale(e.to_string()),
            CheckpointError::Internal(inner) => inner.into(),
        }
    }
}

/// A failed mirror sync, answered to the admin who asked for it.
pub fn sync_failed(e: &anyhow::Error) -> ApiError {
    match storage_full(e) {
        Some(why) => ApiError::InsufficientStorage(why),
        None => ApiError::Unprocessable(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_s_full_disk_is_not_ours() {
        let upstream = airlock_client::RemoteError::Status {
            url: "http://upstream/v1/blobs".into(),
            status: StatusCode::INSUFFICIENT_STORAGE,
            code: None,
            message: "the server's storage is full: No space left on device".into(),
        };
        let error = anyhow::Error::from(upstream).context("fetching blob");
        assert!(storage_full(&error).is_none());
        assert_eq!(sync_failed(&error).status(), StatusCode::UNPROCESSABLE_ENTITY);
        let ours = anyhow::Error::from(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "No space left on device",
        ));
        assert_eq!(sync_failed(&ours).status(), StatusCode::INSUFFICIENT_STORAGE);
    }

    #[test]
    fn a_full_disk_is_named_and_answered_507() {
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let error = ApiError::from(IngestError::Io(full));
        assert_eq!(error.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(error.to_string().contains("storage is full"), "{error}");
    }

    #[test]
    fn bytes_that_do_not_match_are_the_sender_s_fault() {
        let a = airlock_proto::Digest::of(b"a");
        let b = airlock_proto::Digest::of(b"b");
        assert_eq!(
            ApiError::from(IngestError::Blake3 { expected: a, actual: b }).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(IngestError::TooLarge { digest: a, max: 1 }).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
