//! Every metric name, help text, label set and bucket layout of the service.
//!
//! Call sites never spell a metric name: they use the typed structs below,
//! which register themselves in a [`Registry`]. Label values are bounded enums
//! (route, status class, style, outcome, reason), never ids, keys or messages.
//! The seed product's names (`pixel_couplet_requests_total`,
//! `pixel_couplet_request_latency_seconds` with its buckets) are kept verbatim
//! so existing dashboards and the `HighRequestLatency` alert keep working.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Metric names, one constant each. Monitoring rules and dashboards use these strings.
pub mod names {
    /// HTTP requests by route, method, status and style (seed product name).
    pub const REQUESTS_TOTAL: &str = "pixel_couplet_requests_total";
    /// HTTP request latency histogram (seed product name).
    pub const REQUEST_LATENCY_SECONDS: &str = "pixel_couplet_request_latency_seconds";
    /// Requests refused before doing work, by reason.
    pub const REJECTED_REQUESTS_TOTAL: &str = "pixel_couplet_rejected_requests_total";
    /// Submissions answered from an idempotency record.
    pub const IDEMPOTENT_REPLAYS_TOTAL: &str = "pixel_couplet_idempotent_replays_total";
    /// Requests being served right now.
    pub const INFLIGHT_REQUESTS: &str = "pixel_couplet_inflight_requests";
    /// Entries in the job stream (XLEN).
    pub const QUEUE_STREAM_LENGTH: &str = "pixel_couplet_queue_stream_length";
    /// Entries not yet delivered to any consumer of the group.
    pub const QUEUE_LAG: &str = "pixel_couplet_queue_lag";
    /// Entries delivered but not yet acknowledged.
    pub const QUEUE_PENDING: &str = "pixel_couplet_queue_pending";
    /// Idle time of the oldest pending entry.
    pub const QUEUE_OLDEST_PENDING_AGE_SECONDS: &str = "pixel_couplet_queue_oldest_pending_age_seconds";
    /// Entries in the dead-letter stream.
    pub const QUEUE_DEAD_LETTER_LENGTH: &str = "pixel_couplet_queue_dead_letter_length";
    /// Consumers registered in the group that were seen recently.
    pub const QUEUE_CONSUMERS: &str = "pixel_couplet_queue_consumers";
    /// Webhook deliveries waiting in the outbox.
    pub const WEBHOOK_OUTBOX_DEPTH: &str = "pixel_couplet_webhook_outbox_depth";
    /// Jobs finished by a worker, by outcome and style.
    pub const JOBS_PROCESSED_TOTAL: &str = "pixel_couplet_jobs_processed_total";
    /// Processing attempts started (first tries and retries).
    pub const JOB_ATTEMPTS_TOTAL: &str = "pixel_couplet_job_attempts_total";
    /// Attempts beyond the first.
    pub const JOB_RETRIES_TOTAL: &str = "pixel_couplet_job_retries_total";
    /// Entries reclaimed from dead or stuck consumers.
    pub const RECLAIMED_ENTRIES_TOTAL: &str = "pixel_couplet_reclaimed_entries_total";
    /// Jobs per inference batch.
    pub const BATCH_SIZE: &str = "pixel_couplet_batch_size";
    /// Time the first job of a batch waited for the batch to close.
    pub const BATCH_WAIT_SECONDS: &str = "pixel_couplet_batch_wait_seconds";
    /// Inference time per batch.
    pub const INFERENCE_DURATION_SECONDS: &str = "pixel_couplet_inference_duration_seconds";
    /// Enqueue to stored result: the user's wait.
    pub const JOB_LATENCY_SECONDS: &str = "pixel_couplet_job_latency_seconds";
    /// Time to load the ONNX model at start.
    pub const MODEL_LOAD_SECONDS: &str = "pixel_couplet_model_load_seconds";
    /// Info gauge: active execution provider and model.
    pub const MODEL_INFO: &str = "pixel_couplet_model_info";
    /// Webhook deliveries by outcome.
    pub const WEBHOOK_DELIVERIES_TOTAL: &str = "pixel_couplet_webhook_deliveries_total";
    /// Webhook HTTP attempts.
    pub const WEBHOOK_ATTEMPTS_TOTAL: &str = "pixel_couplet_webhook_attempts_total";
    /// Time from the job's final state to the successful delivery.
    pub const WEBHOOK_DELIVERY_LATENCY_SECONDS: &str = "pixel_couplet_webhook_delivery_latency_seconds";
    /// Webhook deliveries being sent right now.
    pub const WEBHOOK_INFLIGHT: &str = "pixel_couplet_webhook_inflight";
    /// Supervised background tasks that panicked, failed or ended before shutdown, by task.
    pub const TASK_FAILURES_TOTAL: &str = "pixel_couplet_task_failures_total";
}

/// Bounded label values for `route` of the HTTP metrics (one per route of the API).
pub mod route {
    /// `POST /v1/couplets`.
    pub const SUBMIT: &str = "submit";
    /// `POST /generate` (waits up to `GENERATE_TIMEOUT_MS` by design).
    pub const GENERATE: &str = "generate";
    /// `GET /v1/jobs/{id}` answered at once.
    pub const JOB_GET: &str = "job_get";
    /// `GET /v1/jobs/{id}?wait=N` with N > 0: a long poll that is slow by design,
    /// kept apart so it does not drive the `job_get` latency the P95 alert watches.
    pub const JOB_WAIT: &str = "job_wait";
    /// `DELETE /v1/jobs/{id}`.
    pub const JOB_DELETE: &str = "job_delete";
    /// `GET /v1/jobs/{id}/image.{png,svg}`.
    pub const JOB_IMAGE: &str = "job_image";
    /// `GET /healthz`.
    pub const HEALTHZ: &str = "healthz";
    /// `GET /readyz`.
    pub const READYZ: &str = "readyz";
    /// `GET /metrics`.
    pub const METRICS: &str = "metrics";
    /// `GET /` and `GET /ui/{file}`.
    pub const UI: &str = "ui";
    /// `GET /openapi.json`.
    pub const OPENAPI: &str = "openapi";
    /// Anything warp rejected (unknown route, wrong method, bad query).
    pub const NOT_FOUND: &str = "not_found";
    /// Every value, for tests and the monitoring lint.
    pub const ALL: &[&str] = &[SUBMIT, GENERATE, JOB_GET, JOB_WAIT, JOB_DELETE, JOB_IMAGE, HEALTHZ, READYZ, METRICS, UI, OPENAPI, NOT_FOUND];
}

/// Bounded label values for `reason` of rejected requests.
pub mod reason {
    /// Invalid request (400/413/415/422).
    pub const VALIDATION: &str = "validation";
    /// Missing or wrong API key.
    pub const AUTH: &str = "auth";
    /// Over the per-key or per-IP limit.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Queue backlog past its limit.
    pub const BACKPRESSURE: &str = "backpressure";
    /// Redis unreachable.
    pub const UNAVAILABLE: &str = "unavailable";
}

/// Bounded label values for job and webhook outcomes.
pub mod outcome {
    /// Job stored a result.
    pub const SUCCEEDED: &str = "succeeded";
    /// Job ended failed (validation or attempts exhausted).
    pub const FAILED: &str = "failed";
    /// Attempt failed, job will be retried.
    pub const RETRIED: &str = "retried";
    /// Job was canceled before it ran.
    pub const CANCELED: &str = "canceled";
    /// Another worker had already stored the result.
    pub const DUPLICATE: &str = "duplicate";
    /// Webhook answered 2xx.
    pub const DELIVERED: &str = "delivered";
    /// Webhook attempt failed, will retry.
    pub const ATTEMPT_FAILED: &str = "attempt_failed";
    /// Webhook gave up after the last attempt.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// Webhook target refused by the SSRF policy at delivery time.
    pub const REFUSED: &str = "refused";
}

/// `task` label values: the supervised background tasks ([`crate::supervise`]).
pub mod task {
    /// The API's HTTP accept loop (shuts the API down when it fails).
    pub const API_SERVER: &str = "api_server";
    /// The API's job-completion subscription that wakes `?wait` polls (restarted).
    pub const COMPLETION_LISTENER: &str = "completion_listener";
    /// The API's loop that re-creates the consumer group (restarted).
    pub const GROUP_KEEPER: &str = "group_keeper";
    /// The worker's batching consumer (restarted).
    pub const CONSUMER: &str = "consumer";
    /// The worker's webhook dispatcher (restarted).
    pub const WEBHOOK_DISPATCHER: &str = "webhook_dispatcher";
    /// The worker's metrics and health listener (shuts the worker down when it fails).
    pub const WORKER_HTTP: &str = "worker_http";
    /// Every value.
    pub const ALL: &[&str] = &[API_SERVER, COMPLETION_LISTENER, GROUP_KEEPER, CONSUMER, WEBHOOK_DISPATCHER, WORKER_HTTP];
}

/// Buckets of the seed product's latency histogram, plus finer ones below 0.1 s.
pub const REQUEST_LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets for end-to-end job latency and webhook latency.
pub const JOB_LATENCY_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Buckets for batch sizes.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Buckets for per-batch durations.
pub const BATCH_SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    // Registration fails only on duplicate names within one registry, which the
    // typed structs below make impossible (each name appears once).
    r.register(Box::new(m.clone())).expect("metric names are unique per registry");
    m
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // Names and labels are compile-time constants checked by the tests below.
    reg(r, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"))
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(r, IntCounter::with_opts(Opts::new(name, help)).expect("valid metric definition"))
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    reg(r, Histogram::with_opts(opts).expect("valid metric definition"))
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    reg(r, HistogramVec::new(opts, labels).expect("valid metric definition"))
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(r, IntGauge::new(name, help).expect("valid metric definition"))
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    reg(r, Gauge::new(name, help).expect("valid metric definition"))
}

/// A registry with the process collector (CPU, RSS, open fds) already in it.
pub fn new_registry() -> Registry {
    let r = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        // The process collector is registered once per fresh registry.
        r.register(Box::new(pc)).expect("process collector registers once");
    }
    r
}

/// HTTP-side metrics of the API.
#[derive(Clone)]
pub struct ApiMetrics {
    /// `pixel_couplet_requests_total{route,method,status,style}`.
    pub requests: IntCounterVec,
    /// `pixel_couplet_request_latency_seconds{route}`.
    pub latency: HistogramVec,
    /// `pixel_couplet_rejected_requests_total{reason}`.
    pub rejected: IntCounterVec,
    /// `pixel_couplet_idempotent_replays_total`.
    pub idempotent_replays: IntCounter,
    /// `pixel_couplet_inflight_requests`.
    pub inflight: IntGauge,
}

impl ApiMetrics {
    /// Registers the API metrics.
    pub fn new(r: &Registry) -> Self {
        let rejected = counter_vec(r, names::REJECTED_REQUESTS_TOTAL, "Requests refused before doing work, by reason.", &["reason"]);
        for why in [reason::VALIDATION, reason::AUTH, reason::RATE_LIMITED, reason::BACKPRESSURE, reason::UNAVAILABLE] {
            rejected.with_label_values(&[why]);
        }
        ApiMetrics {
            requests: counter_vec(r, names::REQUESTS_TOTAL, "HTTP requests by route, method, status and style.", &["route", "method", "status", "style"]),
            latency: histogram_vec(r, names::REQUEST_LATENCY_SECONDS, "HTTP request latency by route.", &["route"], REQUEST_LATENCY_BUCKETS),
            rejected,
            idempotent_replays: counter(r, names::IDEMPOTENT_REPLAYS_TOTAL, "Submissions answered from an idempotency record."),
            inflight: int_gauge(r, names::INFLIGHT_REQUESTS, "HTTP requests being served."),
        }
    }
}

/// Queue depth sampled from Redis on scrape.
#[derive(Clone)]
pub struct QueueMetrics {
    /// XLEN of the job stream.
    pub stream_length: IntGauge,
    /// Consumer-group lag.
    pub lag: IntGauge,
    /// Pending (delivered, unacknowledged) entries.
    pub pending: IntGauge,
    /// Idle seconds of the oldest pending entry.
    pub oldest_pending_age: Gauge,
    /// XLEN of the dead-letter stream.
    pub dead_letter_length: IntGauge,
    /// Live consumers.
    pub consumers: IntGauge,
    /// Webhook outbox depth.
    pub outbox_depth: IntGauge,
}

impl QueueMetrics {
    /// Registers the queue gauges.
    pub fn new(r: &Registry) -> Self {
        QueueMetrics {
            stream_length: int_gauge(r, names::QUEUE_STREAM_LENGTH, "Entries in the job stream."),
            lag: int_gauge(r, names::QUEUE_LAG, "Entries not yet delivered to the consumer group."),
            pending: int_gauge(r, names::QUEUE_PENDING, "Entries delivered but not acknowledged."),
            oldest_pending_age: gauge(r, names::QUEUE_OLDEST_PENDING_AGE_SECONDS, "Idle seconds of the oldest pending entry."),
            dead_letter_length: int_gauge(r, names::QUEUE_DEAD_LETTER_LENGTH, "Entries in the dead-letter stream."),
            consumers: int_gauge(r, names::QUEUE_CONSUMERS, "Consumers of the group seen within the visibility timeout."),
            outbox_depth: int_gauge(r, names::WEBHOOK_OUTBOX_DEPTH, "Webhook deliveries waiting in the outbox."),
        }
    }
}

/// Worker-side metrics.
#[derive(Clone)]
pub struct WorkerMetrics {
    /// `pixel_couplet_jobs_processed_total{outcome,style}`.
    pub jobs: IntCounterVec,
    /// Attempts started.
    pub attempts: IntCounter,
    /// Attempts beyond the first.
    pub retries: IntCounter,
    /// Entries reclaimed with XAUTOCLAIM.
    pub reclaimed: IntCounter,
    /// Jobs per batch.
    pub batch_size: Histogram,
    /// First job's wait for its batch.
    pub batch_wait: Histogram,
    /// Inference time per batch.
    pub inference: Histogram,
    /// Enqueue → stored result, by style.
    pub job_latency: HistogramVec,
    /// Model load time.
    pub model_load: Gauge,
    /// `pixel_couplet_model_info{provider,model}` = 1.
    pub model_info: IntGaugeVec,
}

impl WorkerMetrics {
    /// Registers the worker metrics.
    pub fn new(r: &Registry) -> Self {
        WorkerMetrics {
            jobs: counter_vec(r, names::JOBS_PROCESSED_TOTAL, "Jobs finished by outcome and style.", &["outcome", "style"]),
            attempts: counter(r, names::JOB_ATTEMPTS_TOTAL, "Processing attempts started."),
            retries: counter(r, names::JOB_RETRIES_TOTAL, "Processing attempts beyond the first."),
            reclaimed: counter(r, names::RECLAIMED_ENTRIES_TOTAL, "Stream entries reclaimed from idle consumers."),
            batch_size: histogram(r, names::BATCH_SIZE, "Jobs per inference batch.", BATCH_SIZE_BUCKETS),
            batch_wait: histogram(r, names::BATCH_WAIT_SECONDS, "Time the first job of a batch waited for the batch.", BATCH_SECONDS_BUCKETS),
            inference: histogram(r, names::INFERENCE_DURATION_SECONDS, "Inference time per batch.", BATCH_SECONDS_BUCKETS),
            job_latency: histogram_vec(r, names::JOB_LATENCY_SECONDS, "Enqueue to stored result.", &["style"], JOB_LATENCY_BUCKETS),
            model_load: gauge(r, names::MODEL_LOAD_SECONDS, "Seconds taken to load the ONNX model."),
            model_info: reg(r, IntGaugeVec::new(Opts::new(names::MODEL_INFO, "Active execution provider and model (value 1)."), &["provider", "model"]).expect("valid metric definition")),
        }
    }
}

/// Webhook dispatcher metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// Deliveries by outcome.
    pub deliveries: IntCounterVec,
    /// HTTP attempts.
    pub attempts: IntCounter,
    /// Final state → delivered.
    pub latency: Histogram,
    /// Deliveries in flight.
    pub inflight: IntGauge,
}

impl WebhookMetrics {
    /// Registers the webhook metrics.
    pub fn new(r: &Registry) -> Self {
        let deliveries = counter_vec(r, names::WEBHOOK_DELIVERIES_TOTAL, "Webhook deliveries by outcome.", &["outcome"]);
        for o in [outcome::DELIVERED, outcome::ATTEMPT_FAILED, outcome::DEAD_LETTERED, outcome::REFUSED] {
            deliveries.with_label_values(&[o]);
        }
        WebhookMetrics {
            deliveries,
            attempts: counter(r, names::WEBHOOK_ATTEMPTS_TOTAL, "Webhook HTTP attempts."),
            latency: histogram(r, names::WEBHOOK_DELIVERY_LATENCY_SECONDS, "Job final state to successful webhook delivery.", JOB_LATENCY_BUCKETS),
            inflight: int_gauge(r, names::WEBHOOK_INFLIGHT, "Webhook deliveries being sent."),
        }
    }
}

/// Failures of supervised background tasks ([`crate::supervise`]).
#[derive(Clone)]
pub struct TaskMetrics {
    /// `pixel_couplet_task_failures_total{task}`.
    pub failures: IntCounterVec,
}

impl TaskMetrics {
    /// Registers the task metrics. Series appear (at 0) for the tasks a
    /// process actually supervises, when it starts them.
    pub fn new(r: &Registry) -> Self {
        TaskMetrics {
            failures: counter_vec(r, names::TASK_FAILURES_TOTAL, "Supervised background tasks that panicked, failed or ended before shutdown.", &["task"]),
        }
    }
}

/// Encodes a registry in the Prometheus text format.
pub fn encode(r: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metric families.
    prometheus::TextEncoder::new().encode(&r.gather(), &mut buf).expect("text encoding into memory");
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_metric_sets_register_together() {
        let r = new_registry();
        let api = ApiMetrics::new(&r);
        let _q = QueueMetrics::new(&r);
        let w = WorkerMetrics::new(&r);
        let _h = WebhookMetrics::new(&r);
        let _t = TaskMetrics::new(&r);
        api.requests.with_label_values(&["submit", "POST", "202", "festive"]).inc();
        w.batch_size.observe(8.0);
        api.latency.with_label_values(&["submit"]).observe(0.01);
        let text = encode(&r);
        assert!(text.contains("pixel_couplet_requests_total{method=\"POST\",route=\"submit\",status=\"202\",style=\"festive\"} 1"));
        assert!(text.contains("pixel_couplet_request_latency_seconds"));
    }
}
