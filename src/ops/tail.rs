//! Following a running server's live feed (`GET /v1/events/stream`, Server-Sent Events):
//! every event as it commits, and after a disconnect (a restart, a network blip) a new
//! connection that resumes with `Last-Event-ID`, so nothing is missed or repeated.
//!
//! A small HTTP/1.1 client over a TCP stream, written here because one streaming GET
//! does not earn the build time of an HTTP client stack in the server's binary. Plain
//! `http://` only: reach a TLS endpoint through a local tunnel or proxy.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::OpsError;

/// Where to follow and what.
#[derive(Debug, Clone)]
pub struct Follow {
    /// `http://host:port`, optionally with a path prefix.
    pub url: String,
    pub token: String,
    /// The feed's filters as query parameters (`instance_id`, `project_id`, `type`,
    /// `actor`, `request_id`, `since`, `until`).
    pub filters: Vec<(String, String)>,
    /// Start after this position (default: the server's default, the beginning).
    pub after: Option<u64>,
}

/// One message of the feed: the position, the event type and the event as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub id: u64,
    pub event: String,
    pub data: String,
}

/// Reconnection backoff: the first wait (or the server's `retry:`), and its ceiling.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Why one connection ended.
enum Ended {
    /// The connection dropped or could not be made: try again.
    Retry(String),
    /// The server refused the request as asked: trying again would not help.
    Refused(OpsError),
}

struct Address {
    host_port: String,
    host: String,
    prefix: String,
}

fn parse_url(url: &str) -> Result<Address, OpsError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        OpsError::Usage(format!(
            "--url must start with http:// (got {url:?}); reach TLS through a tunnel"
        ))
    })?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(OpsError::Usage(format!("--url {url:?} names no host")));
    }
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Address {
        host_port,
        host: authority.to_string(),
        prefix: match path.trim_end_matches('/') {
            "" => String::new(),
            p => format!("/{p}"),
        },
    })
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Follows the feed until `on_event` fails or the server refuses; reconnects after
/// every other ending, resuming after the last event delivered. `on_notice` hears about
/// disconnects. Returns only with an error: the caller stops it (Ctrl-C) by dropping it.
pub async fn follow(
    f: &Follow,
    on_event: &mut dyn FnMut(FeedEvent) -> Result<(), OpsError>,
    on_notice: &mut dyn FnMut(String),
) -> Result<(), OpsError> {
    let address = parse_url(&f.url)?;
    let mut last = f.after;
    let mut retry = FIRST_RETRY;
    loop {
        let resume = last;
        let mut delivered = false;
        let ended = {
            let mut on = |e: FeedEvent| {
                last = Some(e.id);
                delivered = true;
                on_event(e)
            };
            connection(&address, f, resume, &mut on, &mut retry).await
        };
        match ended {
            Ended::Refused(e) => return Err(e),
            Ended::Retry(why) => {
                if delivered {
                    retry = FIRST_RETRY;
                }
                on_notice(format!(
                    "feed disconnected ({why}); resuming after {} in {} ms",
                    last.map_or("the start".to_string(), |p| format!("position {p}")),
                    retry.as_millis()
                ));
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

/// One connection: the request, the response head, then messages until it ends.
async fn connection(
    address: &Address,
    f: &Follow,
    last: Option<u64>,
    on_event: &mut dyn FnMut(FeedEvent) -> Result<(), OpsError>,
    retry: &mut Duration,
) -> Ended {
    let stream = match TcpStream::connect(&address.host_port).await {
        Ok(s) => s,
        Err(e) => return Ended::Retry(format!("cannot connect to {}: {e}", address.host_port)),
    };
    let mut query: Vec<String> = f
        .filters
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if let (None, Some(after)) = (last, f.after) {
        query.push(format!("after={after}"));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let mut request = format!(
        "GET {}/v1/events/stream{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n",
        address.prefix, address.host, f.token
    );
    if let Some(p) = last {
        request.push_str(&format!("Last-Event-ID: {p}\r\n"));
    }
    request.push_str("\r\n");
    let mut reader = BufReader::new(stream);
    if let Err(e) = reader.get_mut().write_all(request.as_bytes()).await {
        return Ended::Retry(e.to_string());
    }
    let head = match response_head(&mut reader).await {
        Ok(h) => h,
        Err(e) => return Ended::Retry(e),
    };
    if head.status != 200 {
        let mut body = vec![0u8; 2048];
        let n = reader.read(&mut body).await.unwrap_or(0);
        let detail = String::from_utf8_lossy(&body[..n]).trim().to_string();
        let message = format!("the server answered {}: {detail}", head.status);
        return match head.status {
            401 | 403 => Ended::Refused(OpsError::Open(message)),
            400..=499 => Ended::Refused(OpsError::Usage(message)),
            _ => Ended::Retry(message),
        };
    }
    let mut body = Body {
        reader,
        chunked: head.chunked,
        left: 0,
    };
    let mut message = Message::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        match body.read_line(&mut line).await {
            Ok(0) => return Ended::Retry("the server closed the stream".into()),
            Ok(_) => {}
            Err(e) => return Ended::Retry(e),
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if let Some(event) = message.take()
                && let Err(e) = on_event(event)
            {
                return Ended::Refused(e);
            }
            continue;
        }
        if text.starts_with(':') {
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => message.id = value.parse().ok(),
            "event" => message.event = value.to_string(),
            "data" => {
                if !message.data.is_empty() {
                    message.data.push('\n');
                }
                message.data.push_str(value);
            }
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    *retry = Duration::from_millis(ms).min(MAX_RETRY);
                }
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct Message {
    id: Option<u64>,
    event: String,
    data: String,
}

impl Message {
    /// The message gathered so far, if it carried an id; resets for the next one.
    fn take(&mut self) -> Option<FeedEvent> {
        let m = std::mem::take(self);
        Some(FeedEvent {
            id: m.id?,
            event: m.event,
            data: m.data,
        })
    }
}

struct Head {
    status: u16,
    chunked: bool,
}

async fn response_head(reader: &mut BufReader<TcpStream>) -> Result<Head, String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", line.trim()))?;
    let mut chunked = false;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed inside the response head".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Head { status, chunked });
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
}

/// The response body, de-chunked when it is chunked.
struct Body {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: usize,
}

impl Body {
    /// Appends one line (through its `\n`) to `out`; 0 at the end of the body.
    async fn read_line(&mut self, out: &mut Vec<u8>) -> Result<usize, String> {
        if !self.chunked {
            return self
                .reader
                .read_until(b'\n', out)
                .await
                .map_err(|e| e.to_string());
        }
        let start = out.len();
        loop {
            if self.left == 0 && !self.next_chunk().await? {
                return Ok(out.len() - start);
            }
            let available = self.reader.fill_buf().await.map_err(|e| e.to_string())?;
            if available.is_empty() {
                return Err("the connection closed inside a chunk".into());
            }
            let take = available.len().min(self.left);
            let slice = &available[..take];
            let (used, done) = match slice.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (take, false),
            };
            out.extend_from_slice(&slice[..used]);
            self.reader.consume(used);
            self.left -= used;
            if self.left == 0 {
                // Each chunk ends with CRLF.
                let mut crlf = [0u8; 2];
                self.reader
                    .read_exact(&mut crlf)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if done {
                return Ok(out.len() - start);
            }
        }
    }

    /// Reads the next chunk's size line; false at the last (empty) chunk.
    async fn next_chunk(&mut self) -> Result<bool, String> {
        let mut size = String::new();
        let n = self
            .reader
            .read_line(&mut size)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(false);
        }
        let hex = size.trim().split(';').next().unwrap_or("");
        self.left =
            usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {hex:?}"))?;
        Ok(self.left > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_prefix() {
        let a = parse_url("http://127.0.0.1:8080").expect("url");
        assert_eq!(
            (a.host_port.as_str(), a.prefix.as_str()),
            ("127.0.0.1:8080", "")
        );
        let a = parse_url("http://ledger.internal/base/").expect("url");
        assert_eq!(
            (a.host_port.as_str(), a.prefix.as_str()),
            ("ledger.internal:80", "/base")
        );
        assert!(matches!(parse_url("https://x"), Err(OpsError::Usage(_))));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
