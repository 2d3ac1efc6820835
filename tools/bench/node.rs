//! The ledger under test: the real `ledger` binary started as its own process (embedded
//! store or PostgreSQL), so its peak memory and its start-up time are its own.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::load::{self, Req};

pub const TOKEN: &str = "bench-admin-token-0123456789";

pub struct Node {
    pub addr: SocketAddr,
    child: Child,
    /// How long from spawning until `/healthz` answered 200.
    pub startup: Duration,
}

pub enum Store<'a> {
    Redb(&'a Path),
    Postgres { url: &'a str, log_dir: &'a Path },
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Node {
    /// Starts a server and waits until it answers. The driver completes transitions at
    /// once, so a lifecycle step can follow the previous one after a round trip.
    pub fn start(rt: &tokio::runtime::Runtime, store: Store<'_>) -> anyhow::Result<Node> {
        let addr = free_port()?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ledger"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .env("LEDGER_ADMIN_TOKEN", TOKEN)
            .env("LEDGER_DRIVER_DELAY_MS", "0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        let log_dir = match store {
            Store::Redb(dir) => {
                cmd.arg("--data-dir").arg(dir);
                dir
            }
            Store::Postgres { url, log_dir } => {
                cmd.args(["--backend", "postgres", "--postgres-url", url])
                    .arg("--data-dir")
                    .arg(log_dir);
                log_dir
            }
        };
        std::fs::create_dir_all(log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("server-{}.log", addr.port())))?;
        cmd.stdout(log.try_clone()?).stderr(log);
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        loop {
            if let Ok((200, _)) = load::call(rt, addr, None, Req::get("/healthz".into())) {
                break;
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the server exited while starting ({status}); see {log_dir:?}");
            }
            if started.elapsed() > Duration::from_secs(600) {
                let _ = child.kill();
                anyhow::bail!("the server did not answer within 600 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Node {
            addr,
            child,
            startup: started.elapsed(),
        })
    }

    /// The most resident memory the process ever used (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }

    /// Stops the server the way an operator does (SIGTERM) and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The log's head position, from the digest (staff).
pub fn head(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> anyhow::Result<u64> {
    let (status, body) = load::call(rt, addr, Some(TOKEN), Req::get("/v1/ledger/digest".into()))?;
    anyhow::ensure!(status == 200, "digest answered {status}: {body}");
    body["position"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("digest without a position: {body}"))
}

/// The catalog a create references, made through the API.
pub struct Catalog {
    pub project: String,
    pub small: String,
    pub large: String,
    pub image: String,
}

impl Catalog {
    pub fn create(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> anyhow::Result<Catalog> {
        let post = |path: &str, body: serde_json::Value| -> anyhow::Result<String> {
            let (status, answer) = load::call(
                rt,
                addr,
                Some(TOKEN),
                Req::post(path.into(), body.to_string()),
            )?;
            anyhow::ensure!(status == 201, "{path} answered {status}: {answer}");
            answer["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("{path}: no id in {answer}"))
        };
        let customer = post("/v1/customers", serde_json::json!({"name": "acme"}))?;
        Ok(Catalog {
            project: post(
                "/v1/projects",
                serde_json::json!({"name": "web", "customer_id": customer}),
            )?,
            small: post(
                "/v1/flavors",
                serde_json::json!({"name": "m1.small", "vcpus": 1, "memory_mb": 1024, "disk_gb": 10}),
            )?,
            large: post(
                "/v1/flavors",
                serde_json::json!({"name": "m1.large", "vcpus": 4, "memory_mb": 8192, "disk_gb": 80}),
            )?,
            image: post("/v1/images", serde_json::json!({"name": "debian-12"}))?,
        })
    }

    /// The README's create body, with a name and host name of its own (host names are
    /// unique among a customer's live instances).
    pub fn create_body(&self, name: &str) -> String {
        serde_json::json!({
            "name": name,
            "project_id": self.project,
            "flavor_id": self.small,
            "image_id": self.image,
            "hostname": name,
            "tags": {"env": "prod"},
        })
        .to_string()
    }
}
