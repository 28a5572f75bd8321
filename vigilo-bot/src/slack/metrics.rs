//! Prometheus metrics of the Slack surface, served as text on `GET /metrics`.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `vigilo_slack_requests_total` | `endpoint`, `status` | requests answered, by HTTP status |
//! | `vigilo_slack_acks_total` | `endpoint` | requests accepted and acknowledged (2xx) |
//! | `vigilo_slack_ack_seconds` | `endpoint` | receipt to acknowledgement |
//! | `vigilo_slack_click_committed_seconds` | | receipt of a click to the engine's committed answer |
//! | `vigilo_slack_click_stage_seconds` | `stage` | a click's time by stage: `queued` (receipt to its background task running), `channel` (waiting for the channel's turn), `engine` (the engine call: reads, the committed write, the replies), `deliver` (rendering and the Web API posts) |
//! | `vigilo_slack_store_errors_total` | | service calls that failed in storage |
//! | `vigilo_slack_duplicates_total` | | redeliveries ignored (same body seen before) |
//! | `vigilo_slack_web_api_calls_total` | `method`, `outcome` | Web API calls (`ok`, `error`) |
//! | `vigilo_slack_web_api_rate_limited_total` | `method` | 429 answers honoured |
//! | `vigilo_slack_in_flight` | | background tasks (store write and follow-ups) running |
//! | `vigilo_slack_audit_intact` | `workspace` | 1 when the workspace's audit chain verified at the last check, 0 when tampering was found |
//! | `vigilo_slack_audit_entries` | `workspace` | entries verified at the last check |
//! | `vigilo_slack_audit_verifications_total` | `result` | checks of every chain: `intact`, `tampered`, `error` |
//! | `vigilo_slack_audit_last_verified_seconds` | | Unix time of the last completed check |
//! | `vigilo_slack_audit_checkpoints_posted_total` | | signed checkpoints posted to the checkpoint channel |

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
}

/// Labels naming an endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// Labels naming a stage of a click's handling.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// Labels of a Web API call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    outcome: &'static str,
}

/// Labels naming a Web API method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// Labels naming a workspace (its slug).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkspaceLabels {
    workspace: String,
}

/// Labels naming a result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Latency buckets in seconds, fine below 25 ms where the targets are.
const LATENCY_BUCKETS: [f64; 20] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.004, 0.005, 0.007_5, 0.01, 0.012_5, 0.015, 0.02,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The Slack surface's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    acks: Family<EndpointLabels, Counter>,
    ack_seconds: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    committed_seconds: Histogram,
    stage_seconds: Family<StageLabels, Histogram, fn() -> Histogram>,
    store_errors: Counter,
    duplicates: Counter,
    web_api_calls: Family<CallLabels, Counter>,
    rate_limited: Family<MethodLabels, Counter>,
    in_flight: Gauge<i64, AtomicI64>,
    audit_intact: Family<WorkspaceLabels, Gauge<i64, AtomicI64>>,
    audit_entries: Family<WorkspaceLabels, Gauge<i64, AtomicI64>>,
    audit_verifications: Family<ResultLabels, Counter>,
    audit_last_verified: Gauge<i64, AtomicI64>,
    checkpoints_posted: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `vigilo_slack` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vigilo_slack");
        let requests = Family::<RequestLabels, Counter>::default();
        let acks = Family::<EndpointLabels, Counter>::default();
        let ack_seconds =
            Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let committed_seconds = latency_histogram();
        let stage_seconds =
            Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let store_errors = Counter::default();
        let duplicates = Counter::default();
        let web_api_calls = Family::<CallLabels, Counter>::default();
        let rate_limited = Family::<MethodLabels, Counter>::default();
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let audit_intact = Family::<WorkspaceLabels, Gauge<i64, AtomicI64>>::default();
        let audit_entries = Family::<WorkspaceLabels, Gauge<i64, AtomicI64>>::default();
        let audit_verifications = Family::<ResultLabels, Counter>::default();
        let audit_last_verified = Gauge::<i64, AtomicI64>::default();
        let checkpoints_posted = Counter::default();
        registry.register(
            "requests",
            "Requests answered, by endpoint and HTTP status",
            requests.clone(),
        );
        registry.register("acks", "Requests accepted and acknowledged", acks.clone());
        registry.register(
            "ack_seconds",
            "Time from receiving a request to acknowledging it",
            ack_seconds.clone(),
        );
        registry.register(
            "click_committed_seconds",
            "Time from receiving a click to the engine's committed answer",
            committed_seconds.clone(),
        );
        registry.register(
            "click_stage_seconds",
            "Time a click spent in each stage of its handling",
            stage_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Service calls that failed in storage",
            store_errors.clone(),
        );
        registry.register(
            "duplicates",
            "Redelivered requests ignored",
            duplicates.clone(),
        );
        registry.register(
            "web_api_calls",
            "Slack Web API calls by method and outcome",
            web_api_calls.clone(),
        );
        registry.register(
            "web_api_rate_limited",
            "Slack Web API 429 answers honoured",
            rate_limited.clone(),
        );
        registry.register(
            "in_flight",
            "Background tasks running (store write and follow-up messages)",
            in_flight.clone(),
        );
        registry.register(
            "audit_intact",
            "1 when the workspace's audit chain verified at the last check, 0 when tampered",
            audit_intact.clone(),
        );
        registry.register(
            "audit_entries",
            "Audit entries verified at the last check",
            audit_entries.clone(),
        );
        registry.register(
            "audit_verifications",
            "Checks of every audit chain, by result",
            audit_verifications.clone(),
        );
        registry.register(
            "audit_last_verified_seconds",
            "Unix time of the last completed audit check",
            audit_last_verified.clone(),
        );
        registry.register(
            "audit_checkpoints_posted",
            "Signed audit checkpoints posted to the checkpoint channel",
            checkpoints_posted.clone(),
        );
        Self {
            registry,
            requests,
            acks,
            ack_seconds,
            committed_seconds,
            stage_seconds,
            store_errors,
            duplicates,
            web_api_calls,
            rate_limited,
            in_flight,
            audit_intact,
            audit_entries,
            audit_verifications,
            audit_last_verified,
            checkpoints_posted,
        }
    }

    /// Counts an answered request; a 2xx also counts as an acknowledgement with its latency.
    pub fn answered(&self, endpoint: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
        if (200..300).contains(&status) {
            let labels = EndpointLabels { endpoint };
            self.acks.get_or_create(&labels).inc();
            self.ack_seconds.get_or_create(&labels).observe(seconds);
        }
    }

    /// Records the time from a click's receipt to the engine's committed answer.
    pub fn committed(&self, seconds: f64) {
        self.committed_seconds.observe(seconds);
    }

    /// Records the time a click spent in `stage` (`queued`, `channel`, `engine`, `deliver`).
    pub fn click_stage(&self, stage: &'static str, seconds: f64) {
        self.stage_seconds
            .get_or_create(&StageLabels { stage })
            .observe(seconds);
    }

    /// Counts a service call that failed in storage.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// Counts an ignored redelivery.
    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// Counts a Web API call.
    pub fn web_api_call(&self, method: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.web_api_calls
            .get_or_create(&CallLabels { method, outcome })
            .inc();
    }

    /// Counts a 429 answer that was waited out.
    pub fn rate_limited(&self, method: &'static str) {
        self.rate_limited
            .get_or_create(&MethodLabels { method })
            .inc();
    }

    /// One more background task.
    pub fn task_started(&self) {
        self.in_flight.inc();
    }

    /// One background task fewer.
    pub fn task_finished(&self) {
        self.in_flight.dec();
    }

    /// Records one workspace's verdict of an audit check.
    pub fn audit_verdict(&self, workspace: &str, intact: bool, entries: u64) {
        let labels = WorkspaceLabels {
            workspace: workspace.to_owned(),
        };
        self.audit_intact
            .get_or_create(&labels)
            .set(i64::from(intact));
        self.audit_entries
            .get_or_create(&labels)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// Records the end of a check of every chain: `intact`, `tampered` or `error`.
    pub fn audit_checked(&self, result: &'static str, unix_seconds: i64) {
        self.audit_verifications
            .get_or_create(&ResultLabels { result })
            .inc();
        self.audit_last_verified.set(unix_seconds);
    }

    /// Counts a posted checkpoint message.
    pub fn checkpoint_posted(&self) {
        self.checkpoints_posted.inc();
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_families() {
        let m = Metrics::new();
        m.answered("interactions", 200, 0.001);
        m.answered("interactions", 401, 0.0001);
        m.committed(0.004);
        m.web_api_call("chat.postMessage", true);
        let text = m.encode();
        assert!(
            text.contains(r#"vigilo_slack_requests_total{endpoint="interactions",status="401"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vigilo_slack_acks_total{endpoint="interactions"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("vigilo_slack_click_committed_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("vigilo_slack_ack_seconds_bucket"), "{text}");
    }
}
