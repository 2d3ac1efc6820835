//! The benchmark's load generator: closed-loop HTTP/1.1 keep-alive connections over
//! plain TCP, the same code against the ledger and against every HTTP baseline, so the
//! ratios compare servers and not clients. One request in flight per connection; each
//! latency is from the first byte written to the last byte of the answer read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request of a script.
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub body: Option<String>,
}

impl Req {
    pub fn get(path: String) -> Req {
        Req {
            method: "GET",
            path,
            body: None,
        }
    }

    pub fn post(path: String, body: String) -> Req {
        Req {
            method: "POST",
            path,
            body: Some(body),
        }
    }
}

/// What request connection `conn` sends as its `n`-th.
pub type Script = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

/// How long a run lasts.
#[derive(Clone, Copy)]
pub enum Until {
    Elapsed(Duration),
    /// This many requests per connection.
    Count(u64),
}

#[derive(Default)]
pub struct Outcome {
    pub requests: u64,
    pub non_2xx: u64,
    /// Connection failures (refused, reset, closed mid-answer): the request is lost.
    pub errors: u64,
    pub secs: f64,
    /// Latencies of every answered request, in microseconds, sorted.
    pub latencies: Vec<u32>,
    /// With `collect`: the body of every 2xx answer, with its connection.
    pub bodies: Vec<(usize, Vec<u8>)>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    /// The `q` quantile of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1);
        f64::from(self.latencies[i]) / 1000.0
    }

    pub fn non_2xx_share(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        (self.non_2xx + self.errors) as f64 / (self.requests + self.errors) as f64
    }
}

/// Runs `conns` connections spread over `targets` until `until`, on `rt`.
pub fn run(
    rt: &tokio::runtime::Runtime,
    targets: &[SocketAddr],
    token: Option<&str>,
    conns: usize,
    until: Until,
    collect: bool,
    script: Script,
) -> Outcome {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let started = Instant::now();
    let deadline = match until {
        Until::Elapsed(d) => Some(started + d),
        Until::Count(_) => None,
    };
    let count = match until {
        Until::Count(n) => n,
        Until::Elapsed(_) => u64::MAX,
    };
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let target = targets[c % targets.len()];
            let script = script.clone();
            let auth = auth.clone();
            rt.spawn(connection(
                c, target, auth, deadline, count, collect, script,
            ))
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        if let Ok(o) = rt.block_on(task) {
            total.requests += o.requests;
            total.non_2xx += o.non_2xx;
            total.errors += o.errors;
            total.latencies.extend(o.latencies);
            total.bodies.extend(o.bodies);
        }
    }
    total.secs = started.elapsed().as_secs_f64();
    total.latencies.sort_unstable();
    total
}

async fn connection(
    c: usize,
    target: SocketAddr,
    auth: String,
    deadline: Option<Instant>,
    count: u64,
    collect: bool,
    script: Script,
) -> Outcome {
    let mut out = Outcome::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut n = 0u64;
    while n < count && deadline.is_none_or(|d| Instant::now() < d) {
        let req = script(c, n);
        n += 1;
        let body = req.body.as_deref().unwrap_or("");
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            req.method,
            req.path,
            body.len()
        );
        let t = Instant::now();
        if stream.is_none() {
            match TcpStream::connect(target).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body.as_bytes());
        match exchange(s, &wire, &mut buf).await {
            Ok((status, keep_alive, body_range)) => {
                out.latencies
                    .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                out.requests += 1;
                if (200..300).contains(&status) {
                    if collect {
                        out.bodies.push((c, buf[body_range].to_vec()));
                    }
                } else {
                    out.non_2xx += 1;
                }
                if !keep_alive {
                    stream = None;
                }
            }
            Err(_) => {
                out.errors += 1;
                stream = None;
            }
        }
    }
    out
}

/// Writes one request and reads its answer into `buf`: (status, keep-alive, body range).
async fn exchange(
    s: &mut TcpStream,
    wire: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool, std::ops::Range<usize>)> {
    s.write_all(wire).await?;
    buf.clear();
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let mut length = 0usize;
    let mut keep_alive = true;
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(std::io::Error::other)?;
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(std::io::Error::other(
                "chunked answers are not expected here",
            ));
        }
    }
    while buf.len() < head_end + length {
        read_more(s, buf).await?;
    }
    Ok((status, keep_alive, head_end..head_end + length))
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = s.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request, outside any measurement (set-up): (status, body).
pub fn call(
    rt: &tokio::runtime::Runtime,
    target: SocketAddr,
    token: Option<&str>,
    req: Req,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = req.body.unwrap_or_default();
    let wire = format!(
        "{} {} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        req.method,
        req.path,
        body.len()
    );
    rt.block_on(async move {
        let mut s = TcpStream::connect(target).await?;
        let mut buf = Vec::new();
        let (status, _, range) = exchange(&mut s, wire.as_bytes(), &mut buf).await?;
        let value = serde_json::from_slice(&buf[range]).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    })
}
