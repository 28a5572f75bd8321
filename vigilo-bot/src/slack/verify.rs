//! Slack request signatures: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing
//! secret, compared in constant time, and a timestamp no more than five minutes from now.
//!
//! Every request to `/slack/*` passes through [`verify`] before anything reads its body. A
//! refused request gets a [`Refusal`]: a 4xx status and a short message that reveals nothing
//! about the secret.

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the request's Unix time (seconds).
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// The header carrying the signature, `v0=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The header Slack adds to a redelivery (`1`, `2`, …).
pub const RETRY_NUM_HEADER: &str = "x-slack-retry-num";
/// How far a request's timestamp may be from now, in seconds (Slack: five minutes).
pub const MAX_SKEW_SECS: i64 = 5 * 60;

/// Why a request was refused before anything else looked at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The timestamp or signature header is missing or not text.
    #[error("missing Slack signature headers")]
    MissingHeaders,
    /// The timestamp is not a number, or further than [`MAX_SKEW_SECS`] from now.
    #[error("stale or invalid request timestamp")]
    StaleTimestamp,
    /// The signature does not match the body and timestamp.
    #[error("invalid request signature")]
    BadSignature,
}

impl Refusal {
    /// The HTTP status answered for this refusal.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::MissingHeaders => StatusCode::BAD_REQUEST,
            Refusal::StaleTimestamp | Refusal::BadSignature => StatusCode::UNAUTHORIZED,
        }
    }
}

/// The signature Slack would send for `body` at `timestamp`: `v0=` and 64 hex digits.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail; an empty secret is refused by
    // `verify` before it gets here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable_key());
    mac.update(b"v0:");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

#[cold]
fn unreachable_key() -> Hmac<Sha256> {
    // `Hmac::new_from_slice` only fails for fixed-size keys; keep a value of the right type
    // without panicking.
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

/// Checks a request's signature headers against its raw body, at `now` (Unix seconds).
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER)) else {
        return Err(Refusal::MissingHeaders);
    };
    let ts: i64 = ts.trim().parse().map_err(|_| Refusal::StaleTimestamp)?;
    if (now - ts).abs() > MAX_SKEW_SECS {
        return Err(Refusal::StaleTimestamp);
    }
    if secret.is_empty() {
        return Err(Refusal::BadSignature);
    }
    let given = sig
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(Refusal::BadSignature)?;
    mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| Refusal::BadSignature)
}

/// The current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            TIMESTAMP_HEADER,
            HeaderValue::from_str(&ts.to_string()).unwrap(),
        );
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn slack_documentation_example() {
        // The example of Slack's "Verifying requests from Slack" page.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let ts = 1531420618;
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, ts, body), expected);
        assert_eq!(
            verify(secret, &headers(ts, expected), body, ts + 10),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let body = b"payload";
        let now = 1_700_000_000;
        let good = sign("s3cret", now, body);
        assert_eq!(verify("s3cret", &headers(now, &good), body, now), Ok(()));
        assert_eq!(
            verify("other", &headers(now, &good), body, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify("s3cret", &headers(now, &good), b"payload2", now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(
                "s3cret",
                &headers(now, &good),
                body,
                now + MAX_SKEW_SECS + 1
            ),
            Err(Refusal::StaleTimestamp)
        );
        assert_eq!(
            verify(
                "s3cret",
                &headers(now, &good),
                body,
                now - MAX_SKEW_SECS - 1
            ),
            Err(Refusal::StaleTimestamp)
        );
        assert_eq!(
            verify("s3cret", &headers(now, "v0=zz"), body, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify("", &headers(now, &sign("", now, body)), body, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify("s3cret", &HeaderMap::new(), body, now),
            Err(Refusal::MissingHeaders)
        );
    }
}
