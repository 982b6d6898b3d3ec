//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client):
//! label families, histograms and the text format come from a maintained
//! crate instead of a hand-written encoder. Every label value comes from a
//! fixed set (route templates, status codes, outcomes) or from data the
//! store already vouches for (published versions), so a client cannot grow
//! the metrics without bound.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use ferry_store::StoreStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReportLabels {
    app: String,
    version: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    kind: &'static str,
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn batch_histogram() -> Histogram {
    // 1 .. 65536 chunks.
    Histogram::new(exponential_buckets(1.0, 4.0, 9))
}

/// Every metric of one server process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    bytes_out: Family<RouteLabel, Counter>,
    bytes_in: Family<RouteLabel, Counter>,
    chunks_served: Counter,
    chunk_bytes_served: Counter,
    chunks_stored: Counter,
    fetch_batch: Histogram,
    upload_batch: Histogram,
    connections: Gauge,
    connections_total: Counter,
    tls_failures: Counter,
    shed: Counter,
    reports: Family<ReportLabels, Counter>,
    mirror: Family<MirrorLabels, Counter>,
    store_chunks: Gauge,
    store_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("ferry");
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            bytes_out: Family::default(),
            bytes_in: Family::default(),
            chunks_served: Counter::default(),
            chunk_bytes_served: Counter::default(),
            chunks_stored: Counter::default(),
            fetch_batch: batch_histogram(),
            upload_batch: batch_histogram(),
            connections: Gauge::default(),
            connections_total: Counter::default(),
            tls_failures: Counter::default(),
            shed: Counter::default(),
            reports: Family::default(),
            mirror: Family::default(),
            store_chunks: Gauge::default(),
            store_bytes: Gauge::default(),
        };
        r.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from request to the end of the response body, by route",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register_with_unit(
            "http_response_body",
            "Response body bytes sent, by route",
            Unit::Bytes,
            m.bytes_out.clone(),
        );
        r.register_with_unit(
            "http_request_body",
            "Request body bytes received (as declared by Content-Length), by route",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        r.register(
            "chunks_served",
            "Chunks read from the store for responses",
            m.chunks_served.clone(),
        );
        r.register_with_unit(
            "chunk_payload_served",
            "Stored (compressed) chunk bytes read for responses",
            Unit::Bytes,
            m.chunk_bytes_served.clone(),
        );
        r.register(
            "chunks_stored",
            "New chunks written to the store (uploads and mirror fills)",
            m.chunks_stored.clone(),
        );
        r.register(
            "fetch_batch_chunks",
            "Chunk ids per batched fetch request",
            m.fetch_batch.clone(),
        );
        r.register(
            "upload_batch_chunks",
            "Chunks per upload request",
            m.upload_batch.clone(),
        );
        r.register(
            "connections_active",
            "Open client connections",
            m.connections.clone(),
        );
        r.register(
            "connections",
            "Client connections accepted",
            m.connections_total.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.tls_failures.clone(),
        );
        r.register(
            "requests_shed",
            "Requests refused with 503 because --max-requests were in progress",
            m.shed.clone(),
        );
        r.register(
            "client_reports",
            "Client reports received, by app, version and outcome (unpublished versions count as version=\"unknown\")",
            m.reports.clone(),
        );
        r.register(
            "mirror_fills",
            "Pull-through mirror: upstream fetches by kind and result",
            m.mirror.clone(),
        );
        r.register(
            "store_chunks",
            "Chunks in the store (estimate)",
            m.store_chunks.clone(),
        );
        r.register_with_unit(
            "store_size",
            "Bytes the store occupies (estimate)",
            Unit::Bytes,
            m.store_bytes.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// One answered request. `route` is a template from a fixed set.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// A response body finished (or was dropped) after `secs`.
    pub fn response_done(&self, route: &'static str, secs: f64, body_bytes: u64) {
        self.duration
            .get_or_create(&RouteLabel { route })
            .observe(secs);
        self.bytes_out
            .get_or_create(&RouteLabel { route })
            .inc_by(body_bytes);
    }

    pub fn request_body(&self, route: &'static str, bytes: u64) {
        if bytes > 0 {
            self.bytes_in
                .get_or_create(&RouteLabel { route })
                .inc_by(bytes);
        }
    }

    pub fn chunks_served(&self, n: u64, payload_bytes: u64) {
        self.chunks_served.inc_by(n);
        self.chunk_bytes_served.inc_by(payload_bytes);
    }

    pub fn chunks_stored(&self, n: u64) {
        self.chunks_stored.inc_by(n);
    }

    pub fn fetch_batch(&self, ids: usize) {
        self.fetch_batch.observe(ids as f64);
    }

    pub fn upload_batch(&self, chunks: usize) {
        self.upload_batch.observe(chunks as f64);
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_total.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    pub fn tls_failure(&self) {
        self.tls_failures.inc();
    }

    pub fn shed(&self) {
        self.shed.inc();
    }

    /// Requests refused since start.
    pub fn shed_count(&self) -> u64 {
        self.shed.get()
    }

    pub fn report(&self, app: &str, version: &str, outcome: &str) {
        self.reports
            .get_or_create(&ReportLabels {
                app: app.to_string(),
                version: version.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn mirror(&self, kind: &'static str, result: &'static str) {
        self.mirror
            .get_or_create(&MirrorLabels { kind, result })
            .inc();
    }

    /// The text exposition, with the store's sizes as of now (`None`: the
    /// store could not say; the last values stay).
    pub fn render(&self, stats: Option<StoreStats>) -> String {
        if let Some(s) = stats {
            self.store_chunks.set(s.chunks as i64);
            self.store_bytes.set(s.bytes as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.request("GET /v1/chunks/{id}", 200);
        m.request("GET /v1/chunks/{id}", 200);
        m.response_done("GET /v1/chunks/{id}", 0.004, 1234);
        m.chunks_served(3, 9000);
        m.report("demo", "1.0", "updated");
        m.connection_opened();
        let t = m.render(Some(StoreStats {
            chunks: 7,
            bytes: 4096,
        }));
        for want in [
            "ferry_http_requests_total{route=\"GET /v1/chunks/{id}\",status=\"200\"} 2",
            "ferry_http_response_body_bytes_total{route=\"GET /v1/chunks/{id}\"} 1234",
            "ferry_chunks_served_total 3",
            "ferry_client_reports_total{app=\"demo\",version=\"1.0\",outcome=\"updated\"} 1",
            "ferry_connections_active 1",
            "ferry_store_chunks 7",
            "ferry_store_size_bytes 4096",
            "ferry_http_request_duration_seconds_bucket{le=\"0.004\",route=\"GET /v1/chunks/{id}\"} 1",
            "# EOF",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
    }
}
