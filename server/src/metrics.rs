//! Metrics for Prometheus: `GET /metrics` answers the OpenMetrics text format (which Prometheus
//! scrapes) with requests by route, method and status, their latency, bytes on the wire, open
//! connections, garbage collection and scrub results, and, read at each scrape, the log size, the served
//! checkpoint's age, a mirror's lag and last sync, and the blobs stored (counted at most once a
//! minute: a scan of every record).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlock_proto::api::GcReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::app::App;
use crate::traffic::Traffic;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a count of the stored blobs is reused.
const TOTALS_FOR: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

type Latency = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 26 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    traffic: Traffic,
    log_size: Gauge,
    checkpoint_age: Gauge,
    mirror_lag_leaves: Gauge,
    mirror_lag_seconds: Gauge,
    mirror_last_sync_ok: Gauge,
    mirror_last_success_age: Gauge,
    blobs: Gauge,
    blob_bytes: Gauge,
    gc_runs: Counter,
    gc_removed: Counter,
    gc_freed_bytes: Counter,
    scrub_runs: Counter,
    scrub_problems: Gauge,
    scrub_repaired: Counter,
    totals: Mutex<Option<(Instant, u64, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("airlock");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Latency::new_with_constructor(latency_histogram);
        let traffic = Traffic::default();
        let metrics = Self {
            requests: requests.clone(),
            latency: latency.clone(),
            traffic: traffic.clone(),
            log_size: Gauge::default(),
            checkpoint_age: Gauge::default(),
            mirror_lag_leaves: Gauge::default(),
            mirror_lag_seconds: Gauge::default(),
            mirror_last_sync_ok: Gauge::default(),
            mirror_last_success_age: Gauge::default(),
            blobs: Gauge::default(),
            blob_bytes: Gauge::default(),
            gc_runs: Counter::default(),
            gc_removed: Counter::default(),
            gc_freed_bytes: Counter::default(),
            scrub_runs: Counter::default(),
            scrub_problems: Gauge::default(),
            scrub_repaired: Counter::default(),
            totals: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request's head, by route",
            latency,
        );
        registry.register(
            "received_bytes",
            "Bytes read from client connections (before TLS)",
            traffic.received,
        );
        registry.register("sent_bytes", "Bytes written to client connections (before TLS)", traffic.sent);
        registry.register(
            "sent_zero_copy_bytes",
            "Blob bytes sent from file to socket by sendfile, without a copy through airlockd (part of sent_bytes)",
            traffic.sent_zero_copy,
        );
        registry.register("open_connections", "Client connections open", traffic.open);
        registry.register("log_size", "Leaves in the log this server serves", metrics.log_size.clone());
        registry.register(
            "checkpoint_age_seconds",
            "Seconds since the stored checkpoint was issued",
            metrics.checkpoint_age.clone(),
        );
        registry.register(
            "mirror_lag_leaves",
            "Leaves the upstream has that this mirror does not (mirrors)",
            metrics.mirror_lag_leaves.clone(),
        );
        registry.register(
            "mirror_lag_seconds",
            "Seconds between the upstream checkpoint last seen and the one served (mirrors)",
            metrics.mirror_lag_seconds.clone(),
        );
        registry.register(
            "mirror_last_sync_ok",
            "1 if the mirror's last sync succeeded, 0 if it failed (mirrors)",
            metrics.mirror_last_sync_ok.clone(),
        );
        registry.register(
            "mirror_last_success_age_seconds",
            "Seconds since the mirror last synced successfully (mirrors)",
            metrics.mirror_last_success_age.clone(),
        );
        registry.register("stored_blobs", "Blobs stored", metrics.blobs.clone());
        registry.register("stored_blob_bytes", "Bytes of the blobs stored", metrics.blob_bytes.clone());
        registry.register("gc_runs", "Garbage collections run (not dry runs)", metrics.gc_runs.clone());
        registry.register("gc_removed_blobs", "Blobs garbage collection removed", metrics.gc_removed.clone());
        registry.register("gc_freed_bytes", "Bytes garbage collection freed", metrics.gc_freed_bytes.clone());
        registry.register("scrub_runs", "Scrubs finished", metrics.scrub_runs.clone());
        registry.register(
            "scrub_problems",
            "Problems the last scrub left (damaged blobs it could not repair, a log that does not verify)",
            metrics.scrub_problems.clone(),
        );
        registry.register("scrub_repaired_blobs", "Blobs scrubs repaired", metrics.scrub_repaired.clone());
        Self { registry, ..metrics }
    }
}

impl Metrics {
    /// The connection counters the accept loop adds to.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, method: &http::Method, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        self.latency.get_or_create(&RouteLabel { route }).observe(elapsed.as_secs_f64());
    }

    /// Counts a garbage collection that was not a dry run.
    pub fn collected(&self, report: &GcReport) {
        if !report.dry_run {
            self.gc_runs.inc();
            self.gc_removed.inc_by(report.removed.len() as u64);
            self.gc_freed_bytes.inc_by(report.bytes_freed);
        }
    }

    /// Counts a finished scrub.
    pub fn scrubbed(&self, report: &airlock_proto::api::ScrubReport) {
        self.scrub_runs.inc();
        self.scrub_problems.set(gauge(report.store.problems.len() as u64));
        self.scrub_repaired.inc_by(report.repaired.len() as u64);
    }

    /// Reads the server's state into the gauges and encodes every metric. Blocking (it reads
    /// the store).
    pub fn render(&self, app: &App) -> anyhow::Result<String> {
        let now = app.store.now();
        self.log_size.set(gauge(app.registry.size()));
        if let Some(note) = app.store.checkpoint()? {
            if let Ok(checkpoint) = airlock_proto::Checkpoint::from_note_unverified(&note) {
                self.checkpoint_age.set(gauge(now.saturating_sub(checkpoint.issued_at)));
            }
        }
        if let Some(mirror) = app.registry.mirror() {
            let status = mirror.status();
            self.mirror_lag_leaves.set(gauge(status.lag_leaves));
            self.mirror_lag_seconds.set(gauge(status.lag_seconds));
            self.mirror_last_sync_ok
                .set(i64::from(status.last_error.is_none() && status.last_success_at.is_some()));
            if let Some(at) = status.last_success_at {
                self.mirror_last_success_age.set(gauge(now.saturating_sub(at)));
            }
        }
        let (blobs, bytes) = self.blob_totals(app)?;
        self.blobs.set(gauge(blobs));
        self.blob_bytes.set(gauge(bytes));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn blob_totals(&self, app: &App) -> anyhow::Result<(u64, u64)> {
        let mut totals = self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, blobs, bytes)) = *totals {
            if at.elapsed() < TOTALS_FOR {
                return Ok((blobs, bytes));
            }
        }
        let (blobs, bytes) = app.store.blob_totals()?;
        *totals = Some((Instant::now(), blobs, bytes));
        Ok((blobs, bytes))
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::POST => "POST",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
