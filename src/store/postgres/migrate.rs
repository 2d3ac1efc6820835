//! Schema migrations: the SQL files of `schema/postgres/`, embedded in the binary, applied
//! once each and in order under an advisory lock (nodes may start together), with their
//! checksums recorded so an edited migration is refused.

use postgres::Client;

use super::super::StoreError;
use super::pg;

/// The migrations, in order: (version, name, SQL). Embedded so a node needs no files.
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_ledger.sql",
        include_str!("../../../schema/postgres/0001_ledger.sql"),
    ),
    (
        2,
        "0002_driver_claims.sql",
        include_str!("../../../schema/postgres/0002_driver_claims.sql"),
    ),
    (
        3,
        "0003_projection_version.sql",
        include_str!("../../../schema/postgres/0003_projection_version.sql"),
    ),
    (
        4,
        "0004_count_blocks.sql",
        include_str!("../../../schema/postgres/0004_count_blocks.sql"),
    ),
];

/// Arbitrary constant for the advisory lock that serializes migrations across nodes.
const MIGRATION_LOCK: i64 = 0x6c65_6467_6572;

/// Applies the embedded migrations not yet applied, under an advisory lock, checking the
/// checksums of those already applied.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    apply(client)?;
    // A new ledger is projected by this code from its first event on.
    client
        .execute(
            "INSERT INTO projection_version (version)
             SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM events)
             ON CONFLICT (singleton) DO NOTHING",
            &[&i32::try_from(super::super::projection::VERSION).unwrap_or(i32::MAX)],
        )
        .map_err(pg)?;
    Ok(())
}

fn apply(client: &mut Client) -> Result<(), StoreError> {
    use sha2::{Digest, Sha256};
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    let result = (|| {
        let exists = client
            .query_one("SELECT to_regclass('ledger_migrations') IS NOT NULL", &[])
            .map_err(pg)?
            .get::<_, bool>(0);
        if !exists {
            client
                .batch_execute(
                    "CREATE TABLE ledger_migrations (
                     version    int PRIMARY KEY,
                     name       text NOT NULL,
                     checksum   bytea NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
                )
                .map_err(pg)?;
        }
        for (version, name, sql) in MIGRATIONS {
            let checksum = Sha256::digest(sql.as_bytes()).to_vec();
            let applied = client
                .query_opt(
                    "SELECT checksum FROM ledger_migrations WHERE version = $1",
                    &[version],
                )
                .map_err(pg)?;
            match applied {
                Some(row) if row.get::<_, Vec<u8>>(0) == checksum => continue,
                Some(_) => {
                    return Err(StoreError::Io(format!(
                        "migration {name} was changed after it was applied; restore it and add a new migration instead"
                    )));
                }
                None => {
                    let mut tx = client.transaction().map_err(pg)?;
                    tx.batch_execute(sql).map_err(pg)?;
                    tx.execute(
                        "INSERT INTO ledger_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        &[version, name, &checksum],
                    )
                    .map_err(pg)?;
                    tx.commit().map_err(pg)?;
                    tracing::info!(migration = name, "applied");
                }
            }
        }
        Ok(())
    })();
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(pg);
    result.and(unlocked.map(|_| ()))
}
