//! The scheduler's HTTP endpoints (REST API, health probes), through a minimal HTTP/1.1
//! client: the client needs a few plain requests, not an HTTP stack.

use pickleball_codec::token::ClusterToken;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A scheduler's HTTP port, and the token its REST API requires, if any.
#[derive(Debug, Clone)]
pub struct SchedulerHttp {
    pub host: String,
    pub port: u16,
    pub token: Option<ClusterToken>,
}

impl SchedulerHttp {
    /// Status and body of `method path` (HTTP/1.1, body read to the end of the connection).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let Self { host, port, token } = self;
        let fail = |e: std::io::Error| format!("{method} {path} on {host}:{port}: {e}");
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map_err(fail)?;
        let authorization = token
            .as_ref()
            .map(|t| format!("Authorization: {}\r\n", t.bearer()))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{authorization}Content-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(fail)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(fail)?;
        parse_response(method, path, &response)
    }
}

/// Status and body of a whole HTTP/1.1 response (not chunked).
fn parse_response(
    method: &str,
    path: &str,
    response: &[u8],
) -> std::result::Result<(u16, Vec<u8>), String> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no HTTP response"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{method} {path}: no HTTP status"))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!("{method} {path}: chunked responses are not read"));
    }
    Ok((status, response[split + 4..].to_vec()))
}
