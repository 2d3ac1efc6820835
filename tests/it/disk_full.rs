//! A full disk, on each backend: the embedded ledger on a small tmpfs, and a PostgreSQL
//! database whose tablespace is on one (the tests run as root, as CI does). Writes answer
//! 507 with a problem body and append nothing, reads keep working, nothing acknowledged is
//! lost, and writes resume by themselves once space is freed, in the same process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{Catalog, Server};

/// A tmpfs of `mb` MiB mounted for the test's life.
/// (The temporary directory is held so it outlives the mount.)
struct SmallDisk(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl SmallDisk {
    fn mount(mb: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "the disk-full test mounts a tmpfs and needs root (as CI runs)"
        );
        SmallDisk(dir.path().to_path_buf(), dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` to the last byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test]
async fn a_full_disk_answers_507_keeps_reads_and_resumes_writes_once_space_is_freed() {
    crate::harness::Backend::Redb.enter();
    let disk = SmallDisk::mount(24);
    let data = disk.0.join("data");
    let s = Server::start_in(&data, &["--driver-delay-ms", "0"]);
    fill_refuse_free_resume(&s, &disk.0.join("filler")).await;
    assert!(
        s.log().contains("reopened the store"),
        "recovered by reopening, not by a restart"
    );

    // And the ledger verifies.
    let mut s = s;
    s.stop();
    let (code, out, err) =
        crate::harness::ledgerctl(&["verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Fills the disk under a running server, checks its refusals and reads, frees the space
/// and checks that writes resume and every acknowledged instance is there.
async fn fill_refuse_free_resume(s: &Server, filler: &Path) {
    let c = Catalog::create(s).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        let r = s
            .post("/v1/instances", c.instance(&format!("before-{i}")))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        acked.push(r.id());
    }
    let head_before = s.position().await;

    fill(filler);
    // The file's free pages may take a few more writes; then the disk is full.
    let mut full = None;
    for i in 0..2000 {
        let r = s
            .post("/v1/instances", c.instance(&format!("during-{i}")))
            .await;
        match r.status {
            StatusCode::CREATED => acked.push(r.id()),
            StatusCode::INSUFFICIENT_STORAGE => {
                full = Some(r);
                break;
            }
            other => panic!("a full disk answered {other}: {}", r.body),
        }
    }
    let full = full.expect("the disk never filled up");
    assert_eq!(full.body["code"], "storage_full", "{}", full.body);
    assert_eq!(full.body["status"], 507, "{}", full.body);
    let head_full = s.position().await;
    assert!(head_full >= head_before);

    // Reads go on; more writes are refused the same way and append nothing.
    for id in &acked {
        let r = s.get(&format!("/v1/instances/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let list = s.get("/v1/instances?limit=1").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for i in 0..3 {
        let r = s
            .post("/v1/instances", c.instance(&format!("refused-{i}")))
            .await;
        assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE, "{}", r.body);
    }
    // Only the driver may have moved the head since: a completion of an acknowledged
    // create is a smaller write than a create, and PostgreSQL may still find it room.
    let feed = s.get(&format!("/v1/events?after={head_full}")).await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.body);
    let appended = feed.body["items"].as_array().expect("items");
    assert!(
        appended.iter().all(|e| e["origin"] == "driver"),
        "refused writes appended nothing: {appended:?}"
    );

    // Space comes back: writes resume in the same process.
    std::fs::remove_file(filler).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.post("/v1/instances", c.instance("after")).await;
        if r.status == StatusCode::CREATED {
            acked.push(r.id());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never resumed: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = s.post("/v1/instances", c.instance("after-2")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    acked.push(r.id());
    for id in &acked {
        let r = s.get(&format!("/v1/instances/{id}")).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged {id} lost: {}",
            r.body
        );
    }
}

/// A tablespace on a small tmpfs and the test database in it; dropped (database, then
/// tablespace, then the mount) when the test ends, however it ends.
struct SmallTablespace {
    disk: SmallDisk,
    name: String,
    data: PathBuf,
}

impl SmallTablespace {
    fn create(mb: u32) -> SmallTablespace {
        use crate::harness::postgres;
        let disk = SmallDisk::mount(mb);
        let location = disk.0.join("pg");
        std::fs::create_dir(&location).expect("tablespace dir");
        let owned = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&location)
            .status()
            .expect("run chown");
        assert!(
            owned.success(),
            "the tablespace directory must be PostgreSQL's"
        );
        let data = disk.0.join("data");
        let database = postgres::database_name(&data);
        let name = format!("ts_{database}");
        let (ts, db, at) = (name.clone(), database, location.display().to_string());
        postgres::admin(move |c| {
            c.batch_execute(&format!("CREATE TABLESPACE {ts} LOCATION '{at}'"))
                .expect("create the tablespace");
            c.batch_execute(&format!("CREATE DATABASE {db} TABLESPACE {ts}"))
                .expect("create the database in it");
        });
        SmallTablespace { disk, name, data }
    }
}

impl Drop for SmallTablespace {
    fn drop(&mut self) {
        crate::harness::postgres::drop_database_for(&self.data);
        let ts = self.name.clone();
        crate::harness::postgres::admin(move |c| {
            let _ = c.batch_execute(&format!("DROP TABLESPACE IF EXISTS {ts}"));
        });
    }
}

#[tokio::test]
async fn a_full_postgresql_tablespace_answers_507_and_resumes_once_space_is_freed() {
    crate::harness::Backend::Postgres.enter();
    let space = SmallTablespace::create(40);
    let mut s = Server::start_in(&space.data, &["--driver-delay-ms", "0"]);
    fill_refuse_free_resume(&s, &space.disk.0.join("filler")).await;
    s.stop();
    let url = crate::harness::postgres::database_for(&space.data);
    let (code, out, err) = crate::harness::ledgerctl(&["verify", "--postgres-url", url.as_str()]);
    assert_eq!(code, 0, "{out}{err}");
}
