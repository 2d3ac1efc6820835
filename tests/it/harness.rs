//! Black-box harness: starts the real `ledger` binary on a free port with a temporary data
//! directory and talks HTTP to it. A test runs on the embedded store by default; declared
//! with [`on_each_backend!`] it runs once on each backend (`<test>::redb`, `<test>::postgres`),
//! and on PostgreSQL every server gets a fresh database per data directory (see
//! [`postgres`]).
#![allow(dead_code)]

use std::cell::Cell;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-token-0123456789";

/// The store a test's servers and stores run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Redb) };
}

impl Backend {
    /// Makes this the backend of the test running on this thread (each test has its own
    /// thread; a test's servers are started from it).
    pub fn enter(self) {
        BACKEND.with(|b| b.set(self));
    }

    pub fn current() -> Backend {
        BACKEND.with(Cell::get)
    }
}

/// Declares a test that runs once per backend, as `<name>::redb` and `<name>::postgres`:
/// `on_each_backend!(#[tokio::test] async fn name);` above a plain `async fn name()`.
macro_rules! on_each_backend {
    ($(#[$attr:meta])* async fn $name:ident) => {
        mod $name {
            $(#[$attr])*
            async fn redb() {
                $crate::harness::Backend::Redb.enter();
                super::$name().await
            }
            $(#[$attr])*
            // The guard is held by the test's own thread for its whole run, on purpose.
            #[allow(clippy::await_holding_lock)]
            async fn postgres() {
                $crate::harness::Backend::Postgres.enter();
                let _server = $crate::harness::postgres_shared();
                super::$name().await
            }
        }
    };
    ($(#[$attr:meta])* fn $name:ident) => {
        mod $name {
            $(#[$attr])*
            fn redb() {
                $crate::harness::Backend::Redb.enter();
                super::$name()
            }
            $(#[$attr])*
            fn postgres() {
                $crate::harness::Backend::Postgres.enter();
                let _server = $crate::harness::postgres_shared();
                super::$name()
            }
        }
    };
}

/// PostgreSQL tests share one server; a test that restarts it runs alone.
static POSTGRES_SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held by every test on PostgreSQL for its whole run.
pub fn postgres_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    POSTGRES_SERVER.read().unwrap_or_else(|e| e.into_inner())
}

/// Held by a test that takes the PostgreSQL server away (a restart).
pub fn postgres_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    POSTGRES_SERVER.write().unwrap_or_else(|e| e.into_inner())
}

/// Declares a test about the PostgreSQL backend only, as `<name>::postgres`; with
/// `alone`, no other PostgreSQL test runs meanwhile (it restarts the server).
macro_rules! on_postgres {
    (alone $(#[$attr:meta])* async fn $name:ident) => {
        mod $name {
            $(#[$attr])*
            // The guard is held by the test's own thread for its whole run, on purpose.
            #[allow(clippy::await_holding_lock)]
            async fn postgres() {
                $crate::harness::Backend::Postgres.enter();
                let _server = $crate::harness::postgres_alone();
                super::$name().await
            }
        }
    };
    ($(#[$attr:meta])* async fn $name:ident) => {
        mod $name {
            $(#[$attr])*
            // The guard is held by the test's own thread for its whole run, on purpose.
            #[allow(clippy::await_holding_lock)]
            async fn postgres() {
                $crate::harness::Backend::Postgres.enter();
                let _server = $crate::harness::postgres_shared();
                super::$name().await
            }
        }
    };
    ($(#[$attr:meta])* fn $name:ident) => {
        mod $name {
            $(#[$attr])*
            fn postgres() {
                $crate::harness::Backend::Postgres.enter();
                let _server = $crate::harness::postgres_shared();
                super::$name()
            }
        }
    };
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub client: Client,
}

/// A data directory that outlives its first server (restart tests).
pub struct DataDir(tempfile::TempDir);

impl std::ops::Deref for DataDir {
    type Target = tempfile::TempDir;
    fn deref(&self) -> &tempfile::TempDir {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if postgres::enabled() {
            postgres::drop_database_for(self.0.path());
        }
    }
}

/// The PostgreSQL side of the harness.
pub mod postgres {
    use std::path::Path;

    /// Whether the running test's servers and stores are on PostgreSQL.
    pub fn enabled() -> bool {
        super::Backend::current() == super::Backend::Postgres
    }

    /// The server the tests use; any database on it works, each test gets its own.
    pub fn admin_url() -> String {
        std::env::var("LEDGER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// The URL of `name` on the test server.
    pub fn url_of(name: &str) -> String {
        let admin = admin_url();
        let (base, _) = admin.rsplit_once('/').unwrap_or((&admin, ""));
        let base = base.split('?').next().unwrap_or(base);
        format!("{base}/{name}")
    }

    /// Runs `f` with a connection to the test server's admin database, on its own thread
    /// (the blocking client cannot run inside the tests' async runtime). Panics with a
    /// clear message when the server is unreachable: PostgreSQL tests never skip.
    pub fn admin<T: Send + 'static>(
        f: impl FnOnce(&mut ::postgres::Client) -> T + Send + 'static,
    ) -> T {
        on(admin_url(), f)
    }

    /// Runs `f` with a connection to `url`, on its own thread (see [`admin`]).
    pub fn on<T: Send + 'static>(
        url: String,
        f: impl FnOnce(&mut ::postgres::Client) -> T + Send + 'static,
    ) -> T {
        std::thread::spawn(move || {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls)
                .or_else(|e| {
                    start_local_cluster();
                    ::postgres::Client::connect(&url, ::postgres::NoTls).map_err(|_| e)
                })
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL tests need a server at {url} (set LEDGER_TEST_POSTGRES_URL; \
                         with the default, the local cluster is started if it is down): {e}"
                    )
                });
            f(&mut client)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// With the default URL, starts the machine's own PostgreSQL cluster if it is down (once
    /// per test binary), so `cargo test` needs no set-up on a fresh machine.
    fn start_local_cluster() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        if std::env::var("LEDGER_TEST_POSTGRES_URL").is_ok() {
            return;
        }
        ONCE.call_once(|| {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start \
                     && for i in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done",
                )
                .status();
        });
    }

    /// A fresh database named after the data directory (so a restart on the same
    /// directory finds the same ledger); created on first use.
    pub fn database_for(dir: &Path) -> String {
        let name = database_name(dir);
        let create = name.clone();
        admin(move |c| {
            let exists = c
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&create])
                .expect("list databases")
                .is_some();
            if !exists {
                c.batch_execute(&format!("CREATE DATABASE {create}"))
                    .expect("create the test database");
            }
        });
        url_of(&name)
    }

    pub fn database_name(dir: &Path) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(dir.display().to_string().as_bytes());
        let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
        format!("ledger_t_{hex}")
    }

    /// Drops the database of a data directory (the test is done with it). Runs from
    /// destructors, so it never panics: a database it cannot drop is left behind.
    pub fn drop_database_for(dir: &Path) {
        let name = database_name(dir);
        let url = admin_url();
        let dropped = std::thread::spawn(move || {
            let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).ok()?;
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .ok()
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop a test database; it is left behind");
        }
    }
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_with(extra, &[])
    }

    /// Starts a server on a fresh data directory with extra environment variables.
    pub fn start_with(extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in_with(&dir, extra, envs);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data directory (e.g. after a crash).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Server::start_in_with(dir, extra, &[])
    }

    /// Starts another node on the PostgreSQL database of `shared` (a data directory a
    /// first node was started on), with a data directory of its own.
    pub fn start_node(shared: &Path, extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::launch(&dir, Some(shared), extra, &[]);
        s._tmp = Some(tmp);
        s
    }

    pub fn start_in_with(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::launch(dir, Some(dir), extra, envs)
    }

    /// `database` names the data directory whose PostgreSQL database to use (PostgreSQL
    /// binaries only).
    fn launch(
        dir: &Path,
        database: Option<&Path>,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .ok();
        std::fs::create_dir_all(dir).expect("data dir");
        let log = log.or_else(|| std::fs::File::create(dir.join("server.log")).ok());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ledger"));
        cmd.arg("serve").arg("--data-dir").arg(dir);
        // A free port unless the test names one (a restart on the same address).
        if !extra.contains(&"--listen") {
            cmd.arg("--listen").arg("127.0.0.1:0");
        }
        if let Some(db) = database.filter(|_| postgres::enabled()) {
            cmd.args(["--backend", "postgres", "--postgres-url"])
                .arg(postgres::database_for(db));
        }
        cmd.args(extra)
            .env("LEDGER_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(f) => Stdio::from(f),
                None => Stdio::null(),
            });
        let mut child = cmd.spawn().expect("spawn ledger");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("server did not report its address; log:\n{log}");
            }
        };
        Server {
            child: Some(child),
            base,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            client: Client::new(),
        }
    }

    /// SIGKILL: no chance to flush or shut down.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("server did not stop within 20 s of SIGTERM");
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Hands the temporary directory over so it outlives this server (for restarts); on
    /// PostgreSQL its database goes when the directory does.
    pub fn take_dir(&mut self) -> Option<DataDir> {
        self._tmp.take().map(DataDir)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(TOKEN);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: &'static str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(TOKEN)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.expect("request")).await
    }

    /// A request without the admin token: a dialect's client sets its own headers.
    pub fn http(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
    }

    /// Sends a request built with [`Server::http`].
    pub async fn send(req: reqwest::RequestBuilder) -> Resp {
        Resp::from(req.send().await.expect("request")).await
    }

    /// A user (staff or not) and a token for it: (user id, token).
    pub async fn user(&self, name: &str, staff: bool) -> (String, String) {
        let u = self
            .post(
                "/v1/users",
                json!({"username": name, "email": format!("{name}@example.com"), "is_staff": staff}),
            )
            .await;
        assert_eq!(u.status, StatusCode::CREATED, "{}", u.body);
        let id = u.id();
        let t = self
            .post(&format!("/v1/users/{id}/tokens"), json!({"name": "test"}))
            .await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
        (id, t.body["token"].as_str().expect("token").to_string())
    }

    /// A user who administers `project`, and a token for it: (user id, token).
    pub async fn administrator(&self, name: &str, project: &str) -> (String, String) {
        let (user, token) = self.user(name, false).await;
        let r = self
            .post(
                &format!("/v1/projects/{project}/members"),
                json!({"user_id": user, "role": "administrator"}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
        (user, token)
    }

    /// Polls an instance through the native API until `done` holds for its view.
    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/v1/instances/{id}")).await;
            if done(&r.body) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "instance {id} never {what}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    /// The head of the log: the last global position.
    pub async fn position(&self) -> u64 {
        let r = self.get("/v1/ledger/head").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["position"].as_u64().expect("position")
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                let bare = k.split('{').next()?;
                (bare == name).then(|| v.parse::<f64>().ok()).flatten()
            })
            .sum()
    }

    /// Polls until the instance reaches `state` (bounded so a broken driver fails the test).
    pub async fn wait_for_state(&self, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/v1/instances/{id}")).await;
            if r.body["state"] == state {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "instance {id} never reached {state}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // A server that owns its directory is not restarted: its database goes with it
        // (nodes started on another's database find none of their own to drop).
        if postgres::enabled() && self._tmp.is_some() {
            postgres::drop_database_for(&self.data_dir);
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(if text.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        });
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_string()
    }

    /// Asserts a problem+json error with the given status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status, "{}", self.body);
    }
}

/// Catalog entries every instance test needs.
pub struct Catalog {
    pub customer: String,
    pub project: String,
    pub project2: String,
    pub flavor: String,
    pub flavor_big: String,
    pub image: String,
    pub network: String,
    pub ssh_key: String,
}

impl Catalog {
    pub async fn create(s: &Server) -> Catalog {
        let mk = |path: &'static str, body: Value| async move {
            let r = s.post(path, body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
            r.id()
        };
        let customer = mk("/v1/customers", json!({"name": "acme"})).await;
        let project = mk(
            "/v1/projects",
            json!({"name": "web", "customer_id": customer}),
        )
        .await;
        let project2 = mk(
            "/v1/projects",
            json!({"name": "db", "customer_id": customer}),
        )
        .await;
        let flavor = mk(
            "/v1/flavors",
            json!({"name": "m1.small", "vcpus": 1, "memory_mb": 1024, "disk_gb": 10}),
        )
        .await;
        let flavor_big = mk(
            "/v1/flavors",
            json!({"name": "m1.large", "vcpus": 4, "memory_mb": 8192, "disk_gb": 80}),
        )
        .await;
        let image = mk("/v1/images", json!({"name": "debian-12"})).await;
        let network = mk(
            "/v1/networks",
            json!({"name": "private", "cidr": "10.0.0.0/24"}),
        )
        .await;
        let ssh_key = mk("/v1/ssh-keys", json!({"name": "ops", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx ops@example"})).await;
        Catalog {
            customer,
            project,
            project2,
            flavor,
            flavor_big,
            image,
            network,
            ssh_key,
        }
    }

    pub fn instance(&self, name: &str) -> Value {
        json!({
            "name": name,
            "project_id": self.project,
            "flavor_id": self.flavor,
            "image_id": self.image,
        })
    }
}

/// The store under a store-level test: the embedded one, or PostgreSQL (a fresh database)
/// when the test runs on it.
pub struct TestStore {
    pub store: std::sync::Arc<dyn instance_ledger::store::EventStore>,
    dir: tempfile::TempDir,
}

impl TestStore {
    pub fn open() -> TestStore {
        let dir = tempfile::tempdir().expect("dir");
        let store: std::sync::Arc<dyn instance_ledger::store::EventStore> = if postgres::enabled() {
            let url = postgres::database_for(dir.path());
            std::sync::Arc::new(
                instance_ledger::store::postgres::PgStore::connect(&url, Duration::ZERO)
                    .expect("open the PostgreSQL store"),
            )
        } else {
            std::sync::Arc::new(
                instance_ledger::store::redb::RedbStore::open(dir.path()).expect("open"),
            )
        };
        TestStore { store, dir }
    }

    /// The backend's full check: the hash chain, and every projection against a rebuild
    /// from the log.
    pub fn verify(
        &self,
    ) -> Result<instance_ledger::store::VerifyReport, instance_ledger::store::StoreError> {
        self.store.verify()
    }

    /// Runs SQL on the PostgreSQL test database (PostgreSQL tests only).
    pub fn sql(&self, sql: &str) {
        let sql = sql.to_string();
        postgres::on(postgres::database_for(self.dir.path()), move |c| {
            c.batch_execute(&sql).expect("sql")
        });
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if postgres::enabled() {
            postgres::drop_database_for(self.dir.path());
        }
    }
}

/// Runs `ledgerctl` with `args`, free of the caller's `LEDGER_*` settings: exit code,
/// stdout, stderr.
pub fn ledgerctl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ledgerctl"))
        .args(args)
        .env_remove("LEDGER_DATA_DIR")
        .env_remove("LEDGER_POSTGRES_URL")
        .output()
        .expect("run ledgerctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

impl Server {
    /// Where this server's ledger lives, as `ledgerctl`'s flags say it.
    pub fn ledgerctl_location(&self) -> Vec<String> {
        if postgres::enabled() {
            vec![
                "--postgres-url".into(),
                postgres::database_for(&self.data_dir),
            ]
        } else {
            vec!["--data-dir".into(), self.data_dir.display().to_string()]
        }
    }
}
