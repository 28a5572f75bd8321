//! A minimal HTTP/1.1 client over a plain [`tokio::net::TcpStream`], enough for the example
//! programs and their tests to talk to a service on loopback without another crate: one
//! request per connection (`Connection: close`), the response read to the end.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: the status code, the status line as sent, and the body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code (`200`, `403`, …).
    pub status: u16,
    /// The status line, e.g. `HTTP/1.1 403 Forbidden`.
    pub status_line: String,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// Sends `method path` to `addr` with an optional JSON `body` and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Reply> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if let Some(body) = body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.flush().await?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw).context("response is not UTF-8")?;
    let Some((head, body)) = raw.split_once("\r\n\r\n") else {
        bail!("malformed response: {raw:?}");
    };
    if head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"))
    {
        bail!("chunked responses are not supported by this minimal client");
    }
    let status_line = head.lines().next().unwrap_or_default().to_string();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed status line: {status_line:?}"))?;
    Ok(Reply {
        status,
        status_line,
        body: body.to_string(),
    })
}
