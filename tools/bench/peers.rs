//! The baselines the ledger is compared with, measured in the same run on the same
//! machine: the HTTP ceiling (a bare actix-web server parsing the same body), the disk's
//! durable sync rate, a typical peer (one PostgreSQL insert per request through a pool,
//! behind the same kind of HTTP server) and the bare store (redb inserts of the same
//! bytes, 64 per durable commit).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};

/// Connections of the typical peer's pool: what such a service is usually configured
/// with on a small machine, and where pgbench peaked here.
pub const PEER_POOL: usize = 32;

/// A server running on its own thread until dropped.
pub struct Running {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The peer's pool: its connections are closed here, before the server stops, since
    /// PostgreSQL's blocking client must not be dropped inside the server's runtime.
    pool: Option<Arc<Pool>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take()
            && let Ok(mut free) = pool.free.lock()
        {
            free.clear();
        }
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        })
        .join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<F>(build: F) -> anyhow::Result<Running>
where
    F: FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let server = match build(listener) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("baseline server: {e}");
                    return;
                }
            };
            let _ = tx.send(server.handle());
            let _ = server.await;
        });
    });
    let handle = rx.recv_timeout(Duration::from_secs(10))?;
    Ok(Running {
        addr,
        handle,
        thread: Some(thread),
        pool: None,
    })
}

/// The ceiling: parses the create body as JSON and answers 201 with it; nothing stored.
pub fn ceiling() -> anyhow::Result<Running> {
    serve(|listener| {
        Ok(HttpServer::new(|| {
            App::new().route(
                "/v1/instances",
                web::post().to(|body: web::Bytes| async move {
                    match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(v) => HttpResponse::Created().json(v),
                        Err(e) => HttpResponse::BadRequest().body(e.to_string()),
                    }
                }),
            )
        })
        .listen(listener)?
        .run())
    })
}

/// A pool of PostgreSQL connections: take one, use it, give it back.
pub struct Pool {
    free: Mutex<Vec<postgres::Client>>,
    ready: Condvar,
}

impl Pool {
    fn with<T>(&self, f: impl FnOnce(&mut postgres::Client) -> T) -> anyhow::Result<T> {
        let mut free = self
            .free
            .lock()
            .map_err(|_| anyhow::anyhow!("pool poisoned"))?;
        let mut client = loop {
            match free.pop() {
                Some(c) => break c,
                None => {
                    free = self
                        .ready
                        .wait(free)
                        .map_err(|_| anyhow::anyhow!("pool poisoned"))?
                }
            }
        };
        drop(free);
        let out = f(&mut client);
        if let Ok(mut free) = self.free.lock() {
            free.push(client);
        }
        self.ready.notify_one();
        Ok(out)
    }
}

/// The typical peer: every create is one `INSERT` into an events table, its own
/// transaction (durable at commit), through a pool, answered 201 with the stored id.
pub fn peer(url: &str) -> anyhow::Result<Running> {
    let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
    admin.batch_execute(
        "DROP TABLE IF EXISTS bench_events;
         CREATE TABLE bench_events(global_position bigserial PRIMARY KEY, stream_id uuid NOT NULL,
           version int NOT NULL, type text NOT NULL, data jsonb NOT NULL,
           created_at timestamptz NOT NULL DEFAULT now(), UNIQUE(stream_id, version));",
    )?;
    let mut clients = Vec::with_capacity(PEER_POOL);
    for _ in 0..PEER_POOL {
        clients.push(postgres::Client::connect(url, postgres::NoTls)?);
    }
    let pool = Arc::new(Pool {
        free: Mutex::new(clients),
        ready: Condvar::new(),
    });
    let handlers = pool.clone();
    let mut running = serve(move |listener| {
        Ok(HttpServer::new(move || {
            let pool = handlers.clone();
            App::new().app_data(web::Data::new(pool)).route(
                "/v1/instances",
                web::post().to(|pool: web::Data<Arc<Pool>>, body: web::Bytes| async move {
                    let value = match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(v) => v,
                        Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
                    };
                    let pool = pool.get_ref().clone();
                    let id = uuid::Uuid::now_v7();
                    let stored = web::block(move || {
                        pool.with(|c| {
                            c.query_one(
                                "INSERT INTO bench_events(stream_id, version, type, data)
                             VALUES ($1, 1, 'Created', $2::text::jsonb) RETURNING global_position",
                                &[&id, &value.to_string()],
                            )
                            .map(|row| row.get::<_, i64>(0))
                        })
                    })
                    .await;
                    match stored {
                        Ok(Ok(Ok(position))) => HttpResponse::Created()
                            .json(serde_json::json!({ "id": id, "position": position })),
                        _ => HttpResponse::ServiceUnavailable().finish(),
                    }
                }),
            )
        })
        .listen(listener)?
        .run())
    })?;
    running.pool = Some(pool);
    Ok(running)
}

/// The disk: 512-byte appends each followed by `fdatasync`, for `secs`, in `dir`.
/// Returns (syncs/s, median sync in ms).
pub fn disk(dir: &Path, secs: f64) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [b'x'; 512];
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let p50 = times.get(times.len() / 2).copied().unwrap_or(f64::NAN) * 1000.0;
    drop(file);
    std::fs::remove_file(&path)?;
    Ok((rate, p50))
}

const RAW: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw");

/// The store: `events` inserts of `value` into a fresh redb file, 64 per durable commit.
pub fn bare_redb(dir: &Path, events: u64, value: &[u8]) -> anyhow::Result<f64> {
    let path = dir.join("raw.redb");
    let db = redb::Database::create(&path)?;
    let started = Instant::now();
    let mut pos = 0u64;
    while pos < events {
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(RAW)?;
            for _ in 0..64 {
                pos += 1;
                t.insert(pos, value)?;
            }
        }
        txn.commit()?;
    }
    let rate = pos as f64 / started.elapsed().as_secs_f64();
    drop(db);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

const KEYED: redb::TableDefinition<[u8; 16], u32> = redb::TableDefinition::new("keyed");
const APPENDED: redb::TableDefinition<u64, u32> = redb::TableDefinition::new("appended");

/// What a durable commit of `per_commit` small inserts costs when their keys are random
/// 16-byte digests landing all over a table of `entries` (the pages a creation's new key
/// numbers dirty), against the same inserts appended at the end of a table: (random ms,
/// appended ms) per commit, over `commits` commits each.
pub fn random_vs_appended(
    dir: &Path,
    entries: u64,
    per_commit: u64,
    commits: u64,
) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("keyed.redb");
    let db = redb::Database::create(&path)?;
    let txn = db.begin_write()?;
    {
        let mut keyed = txn.open_table(KEYED)?;
        let mut appended = txn.open_table(APPENDED)?;
        for n in 0..entries {
            keyed.insert(rand::random::<u128>().to_le_bytes(), 0)?;
            appended.insert(n, 0)?;
        }
    }
    txn.commit()?;
    let mut next = entries;
    let mut per = |random: bool| -> anyhow::Result<f64> {
        let started = Instant::now();
        for _ in 0..commits {
            let txn = db.begin_write()?;
            {
                let mut keyed = txn.open_table(KEYED)?;
                let mut appended = txn.open_table(APPENDED)?;
                for _ in 0..per_commit {
                    if random {
                        keyed.insert(rand::random::<u128>().to_le_bytes(), 0)?;
                    } else {
                        appended.insert(next, 0)?;
                        next += 1;
                    }
                }
            }
            txn.commit()?;
        }
        Ok(started.elapsed().as_secs_f64() * 1000.0 / commits as f64)
    };
    let random = per(true)?;
    let appended = per(false)?;
    drop(db);
    std::fs::remove_file(&path)?;
    Ok((random, appended))
}
