//! The `http_service` example as a user runs it: the real binary, over real HTTP on loopback.
//! Its `--self-test` walk must pass, and the error responses must have the documented shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use vigilo_examples::loopback_http::request;

const BIN: &str = env!("CARGO_BIN_EXE_http_service");

#[test]
fn self_test_walks_a_gated_run_over_http() {
    let out = Command::new(BIN)
        .arg("--self-test")
        .output()
        .expect("run http_service --self-test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for line in [
        "> POST /runs {\"runbook\":\"RB-00001\",\"as\":\"bob\"}",
        "< HTTP/1.1 201 Created",
        "< HTTP/1.1 403 Forbidden {\"error\":{\"kind\":\"denied\",\"message\":\"approving step 2 needs team role `sre`",
        "< HTTP/1.1 409 Conflict {\"error\":{\"kind\":\"conflict\"",
        "< HTTP/1.1 404 Not Found {\"error\":{\"kind\":\"not_found\"",
        "\"status\":\"completed\"",
        "EX-00001 completed",
        "execution.step_approved  api/127.0.0.1:",
        "audit chain intact: 10 entries",
        "self-test passed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The service started as a user would (`--db`, `--listen`), killed when the test ends.
struct Service(Child);

impl Service {
    /// Starts the binary on a port of its choosing and returns it with the address it printed.
    fn start(db: &std::path::Path) -> (Self, SocketAddr) {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start http_service");
        let stdout = child.stdout.take().expect("piped stdout");
        let service = Service(child);
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(addr) = line.strip_prefix("listening on http://") {
                // Keep draining, so a later line never meets a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return (service, addr.parse().expect("an address"));
            }
        }
        panic!("http_service exited before listening");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts the error body is exactly `{"error":{"kind":<kind>,"message":<a sentence>}}`.
fn assert_error_shape(body: &serde_json::Value, kind: &str) -> String {
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 1, "only `error`: {body}");
    let error = body["error"].as_object().expect("`error` is an object");
    assert_eq!(error.len(), 2, "`kind` and `message` only: {body}");
    assert_eq!(error["kind"], kind, "{body}");
    let message = error["message"].as_str().expect("`message` is a string");
    assert!(!message.is_empty());
    message.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_json_errors_with_their_http_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_service, addr) = Service::start(&dir.path().join("vigilo.db"));

    let started = request(
        addr,
        "POST",
        "/runs",
        Some(r#"{"runbook":"RB-00001","as":"bob"}"#),
    )
    .await
    .expect("start");
    assert_eq!(started.status, 201, "{}", started.body);
    let key = started.json().expect("json")["key"]
        .as_str()
        .expect("key")
        .to_string();

    // A plain member may read the run but not walk it: 403 with the engine's own sentence.
    let denied = request(
        addr,
        "POST",
        &format!("/runs/{key}/steps/1"),
        Some(r#"{"as":"dave","action":"done"}"#),
    )
    .await
    .expect("act");
    assert_eq!(denied.status, 403, "{}", denied.body);
    let message = assert_error_shape(&denied.json().expect("json"), "denied");
    assert!(message.contains("member"), "{message}");

    // Nothing changed: step 1 is still current and pending.
    let shown = request(addr, "GET", &format!("/runs/{key}?as=dave"), None)
        .await
        .expect("show");
    assert_eq!(shown.status, 200, "{}", shown.body);
    let shown = shown.json().expect("json");
    assert_eq!(shown["current_step"], 1);
    assert_eq!(shown["steps"][0]["status"], "pending");

    // Someone who is not a member, and a run that does not exist: 404.
    let stranger = request(
        addr,
        "POST",
        "/runs",
        Some(r#"{"runbook":"RB-00001","as":"mallory"}"#),
    )
    .await
    .expect("start");
    assert_eq!(stranger.status, 404, "{}", stranger.body);
    assert_error_shape(&stranger.json().expect("json"), "not_found");

    // A skip without a reason is refused by the rules: 422.
    let no_reason = request(
        addr,
        "POST",
        &format!("/runs/{key}/steps/1"),
        Some(r#"{"as":"bob","action":"skip"}"#),
    )
    .await
    .expect("act");
    assert_eq!(no_reason.status, 422, "{}", no_reason.body);
    assert_error_shape(&no_reason.json().expect("json"), "refused");

    // A request the service cannot read: 400, same shape.
    let unknown = request(
        addr,
        "POST",
        &format!("/runs/{key}/steps/1"),
        Some(r#"{"as":"bob","action":"explode"}"#),
    )
    .await
    .expect("act");
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert_error_shape(&unknown.json().expect("json"), "bad_request");
}
