//! The stores the benchmark measures, and their sizes: a fresh PostgreSQL database per
//! scenario (dropped afterwards), and the embedded store's file as it grew and compacted.

use std::path::Path;

fn postgres_admin_url() -> String {
    std::env::var("LEDGER_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database on the benchmark server; dropped with the guard.
pub struct Database {
    pub url: String,
    name: String,
}

impl Database {
    pub fn fresh(name: &str) -> anyhow::Result<Database> {
        let admin = postgres_admin_url();
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .map_err(|e| anyhow::anyhow!("connecting to {admin}: {e:?}"))?;
        // One statement each: neither may run inside a (multi-statement) transaction.
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(Database {
            url: format!("{base}/{name}"),
            name: name.into(),
        })
    }

    pub fn size(&self) -> anyhow::Result<u64> {
        let mut c = postgres::Client::connect(&self.url, postgres::NoTls)?;
        let bytes: i64 = c
            .query_one("SELECT pg_database_size(current_database())", &[])?
            .get(0);
        Ok(bytes.max(0) as u64)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&postgres_admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

pub fn file_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(instance_ledger::store::redb::FILE_NAME)).map_or(0, |m| m.len())
}

/// The size of a compacted copy of a ledger's file (stopped, or idle between commits):
/// the data, without the free pages that copy-on-write commits leave in a growing file.
/// With it, each table's share (its entries, B-tree metadata and unused page space).
pub fn compacted_bytes(dir: &Path) -> anyhow::Result<(u64, Vec<(String, u64)>)> {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
    let copy = dir.join("compacted.redb");
    std::fs::copy(dir.join(instance_ledger::store::redb::FILE_NAME), &copy)?;
    let mut db = redb::Database::open(&copy)?;
    db.compact()?;
    let mut tables = Vec::new();
    {
        let read = db.begin_read()?;
        for handle in read.list_tables()? {
            let name = handle.name().to_string();
            let stats = read.open_untyped_table(handle)?.stats()?;
            let bytes = stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
            tables.push((name, bytes));
        }
    }
    drop(db);
    let bytes = std::fs::metadata(&copy)?.len();
    std::fs::remove_file(&copy)?;
    Ok((bytes, tables))
}
