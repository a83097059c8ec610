//! The scheduler's HTTP endpoints (REST API, health probes), through a minimal HTTP/1.1
//! client: the client needs a few plain requests, not an HTTP stack.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status and body of `method path` on the scheduler's HTTP port (HTTP/1.1, body read to the
/// end of the connection).
pub async fn http(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
) -> std::result::Result<(u16, Vec<u8>), String> {
    let fail = |e: std::io::Error| format!("{method} {path} on {host}:{port}: {e}");
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(fail)?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(fail)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(fail)?;
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
