//! The service layer against the real redb store: backpressure when the writer's queue is
//! full, and random command sequences whose projections equal a rebuild from the log.

use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use instance_ledger::domain::catalog::{Kind, Spec as ResourceSpec};
use instance_ledger::domain::instance::{self, Command, Sizing};
use instance_ledger::service::{
    Ledger, Outcome, RequestMeta, ServiceError, WriteCommand, WriteRequest, WriterConfig,
};
use instance_ledger::store::redb::RedbStore;
use instance_ledger::store::{
    EventStore, ExportRange, Head, Maintenance, Snapshot, StoreError, VerifyReport, WriteTxn,
};
use proptest::prelude::*;
use uuid::Uuid;

fn meta() -> RequestMeta {
    RequestMeta {
        actor: "test".into(),
        token_id: None,
        request_id: "r".into(),
        origin: "native".into(),
        idempotency: None,
        staff: false,
    }
}

fn resource(kind: Kind, spec: ResourceSpec) -> WriteRequest {
    WriteRequest {
        command: WriteCommand::CreateResource { kind, spec },
        meta: meta(),
        expected_version: None,
    }
}

/// A small instance's spec, its short id left to the writer.
pub fn spec(project: Uuid, customer: Uuid, flavor: Uuid, image: Uuid) -> instance::Spec {
    instance::Spec {
        short_id: String::new(),
        name: "vm".into(),
        hostname: None,
        description: None,
        project_id: project,
        customer_id: customer,
        sizing: Sizing {
            flavor_id: flavor,
            vcpus: 1,
            memory_mb: 512,
            disk_gb: 5,
        },
        image_id: image,
        network_ids: vec![],
        ssh_key_id: None,
        security_groups: vec!["default".into()],
        availability_zone: None,
        user_data: None,
        tags: Default::default(),
        ip_address: None,
        attributes: Default::default(),
        created_by: None,
    }
}

/// A store whose writes wait for a go-ahead, so a test can hold the writer busy.
struct Gated {
    inner: RedbStore,
    entered: Mutex<std_mpsc::Sender<()>>,
    release: Mutex<std_mpsc::Receiver<()>>,
}

/// The wrapped store's maintenance, unchanged.
macro_rules! maintenance_of_inner {
    ($ty:ty) => {
        impl Maintenance for $ty {
            fn check_tail(&self) -> Result<Head, StoreError> {
                self.inner.check_tail()
            }
            fn verify_with(&self, progress: &dyn Fn(u64)) -> Result<VerifyReport, StoreError> {
                self.inner.verify_with(progress)
            }
            fn rebuild_with(&self, progress: &dyn Fn(u64)) -> Result<u64, StoreError> {
                self.inner.rebuild_with(progress)
            }
            fn export(
                &self,
                range: &ExportRange,
                out: &mut dyn std::io::Write,
                progress: &dyn Fn(u64),
            ) -> Result<u64, StoreError> {
                self.inner.export(range, out, progress)
            }
            fn projection_version(&self) -> Result<u32, StoreError> {
                self.inner.projection_version()
            }
        }
    };
}

maintenance_of_inner!(Gated);

impl EventStore for Gated {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _ = self.entered.lock().expect("lock").send(());
        let _ = self.release.lock().expect("lock").recv();
        self.inner.write(f)
    }
    fn read(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        self.inner.read()
    }
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_and_queued_work_still_commits() {
    let dir = tempfile::tempdir().expect("dir");
    let (entered_tx, entered_rx) = std_mpsc::channel();
    let (release_tx, release_rx) = std_mpsc::channel();
    let store = Gated {
        inner: RedbStore::open(dir.path()).expect("open"),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    };
    let config = WriterConfig {
        queue_capacity: 1,
        batch_limit: 1,
    };
    let (ledger, writer) = Ledger::start(Arc::new(store), config, None).expect("start");
    let named = |n: &str| ResourceSpec::Named { name: n.into() };

    let l = ledger.clone();
    let first = tokio::spawn(async move { l.submit(resource(Kind::Image, named("a"))).await });
    tokio::task::spawn_blocking(move || entered_rx.recv())
        .await
        .expect("join")
        .expect("writer entered");
    let l = ledger.clone();
    let second = tokio::spawn(async move { l.submit(resource(Kind::Image, named("b"))).await });
    while ledger.queue_depth() < 1 {
        tokio::task::yield_now().await;
    }
    let third = ledger.submit(resource(Kind::Image, named("c"))).await;
    assert!(matches!(third, Err(ServiceError::Overloaded)), "{third:?}");

    release_tx.send(()).expect("release");
    release_tx.send(()).expect("release");
    assert!(first.await.expect("join").is_ok());
    assert!(second.await.expect("join").is_ok());
    drop(ledger);
    writer.join().expect("writer");
}

#[derive(Debug, Clone)]
enum Op {
    Create,
    Act(usize, Command),
    Patch(usize, String),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let command = prop_oneof![
        Just(Command::Start),
        any::<bool>().prop_map(|force| Command::Stop { force }),
        any::<bool>().prop_map(|soft| Command::Reboot { soft }),
        any::<bool>().prop_map(|force| Command::Destroy { force }),
        Just(Command::Recover),
        Just(Command::Purge),
        Just(Command::Complete),
        Just(Command::Complete),
        Just(Command::Fail { reason: "x".into() }),
    ];
    prop_oneof![
        1 => Just(Op::Create),
        5 => (0usize..4, command).prop_map(|(i, c)| Op::Act(i, c)),
        1 => (0usize..4, "[ab]{1,2}").prop_map(|(i, n)| Op::Patch(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever commands arrive, the stored projections (views, short ids, filter indexes,
    /// counts) equal a rebuild from the log, and each view equals a fold of its stream.
    #[test]
    fn projections_equal_a_rebuild_from_the_log(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(RedbStore::open(dir.path()).expect("open"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let ids = rt.block_on(async {
            let (ledger, writer) = Ledger::start(store.clone(), WriterConfig::default(), None).expect("start");
            let mut made = Vec::new();
            for (kind, spec) in [
                (Kind::Customer, ResourceSpec::Named { name: "c".into() }),
                (Kind::Image, ResourceSpec::Named { name: "i".into() }),
            ] {
                match ledger.submit(resource(kind, spec)).await.expect("catalog").outcome {
                    Outcome::Resource(r) => made.push(r.id),
                    other => panic!("{other:?}"),
                }
            }
            let (customer, image) = (made[0], made[1]);
            let project = Uuid::now_v7();
            let flavor = Uuid::now_v7();
            let mut ids: Vec<Uuid> = Vec::new();
            for op in ops {
                let command = match op {
                    Op::Create => WriteCommand::CreateInstance(Box::new(spec(project, customer, flavor, image))),
                    Op::Act(_, _) | Op::Patch(_, _) if ids.is_empty() => continue,
                    Op::Act(i, c) => WriteCommand::Instance { id: ids[i % ids.len()], commands: vec![c] },
                    Op::Patch(i, name) => WriteCommand::Instance {
                        id: ids[i % ids.len()],
                        commands: vec![Command::Update(instance::Patch { name: Some(name), ..Default::default() })],
                    },
                };
                if let Ok(reply) = ledger.submit(WriteRequest { command, meta: meta(), expected_version: None }).await
                    && let Outcome::Instance(inst) = reply.outcome
                    && !ids.contains(&inst.id)
                {
                    ids.push(inst.id);
                }
            }
            drop(ledger);
            writer.join().expect("writer");
            ids
        });
        let report = store.verify().expect("projections match a rebuild");
        let snap = store.read().expect("read");
        prop_assert_eq!(report.events, snap.head().expect("head").position);
        for id in ids {
            let mut folded = None;
            for e in snap.stream(id).expect("stream") {
                let instance_ledger::store::envelope::Payload::Instance(ev) = e.payload().expect("payload") else {
                    panic!("not an instance event");
                };
                folded = Some(instance::evolve(folded, id, &ev, e.version, e.at));
            }
            prop_assert_eq!(snap.instance(id).expect("view"), folded);
        }
    }
}

/// A store whose next writes fail, like a full disk.
struct Failing {
    inner: RedbStore,
    failures_left: Mutex<u32>,
}

maintenance_of_inner!(Failing);

impl EventStore for Failing {
    fn write(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut left = self.failures_left.lock().expect("lock");
        if *left > 0 {
            *left -= 1;
            return Err(StoreError::Io("No space left on device".into()));
        }
        drop(left);
        self.inner.write(f)
    }
    fn read(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        self.inner.read()
    }
}

#[tokio::test]
async fn a_failed_commit_is_not_acknowledged_and_makes_the_writer_unhealthy_until_a_success() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Failing {
        inner: RedbStore::open(dir.path()).expect("open"),
        failures_left: Mutex::new(1),
    };
    let (ledger, writer) =
        Ledger::start(Arc::new(store), WriterConfig::default(), None).expect("start");
    let named = |n: &str| ResourceSpec::Named { name: n.into() };
    assert_eq!(ledger.writer_health(), Ok(()));
    let failed = ledger.submit(resource(Kind::Image, named("a"))).await;
    assert!(
        matches!(failed, Err(ServiceError::Unavailable(_))),
        "{failed:?}"
    );
    let health = ledger.writer_health();
    assert!(
        health.as_ref().is_err_and(|e| e.contains("No space left")),
        "{health:?}"
    );
    assert_eq!(
        ledger
            .store()
            .read()
            .expect("read")
            .head()
            .expect("head")
            .position,
        0,
        "nothing was written"
    );

    ledger
        .submit(resource(Kind::Image, named("b")))
        .await
        .expect("the store recovered");
    assert_eq!(ledger.writer_health(), Ok(()));
    drop(ledger);
    writer.join().expect("writer");
}

#[tokio::test]
async fn one_request_creates_as_many_instances_as_addresses_allow_at_least_min_or_none() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(RedbStore::open(dir.path()).expect("open"));
    let (ledger, writer) =
        Ledger::start(store.clone(), WriterConfig::default(), None).expect("start");
    let id_of = |r: Result<instance_ledger::service::Reply, ServiceError>| match r {
        Ok(instance_ledger::service::Reply {
            outcome: Outcome::Resource(r),
            ..
        }) => r.id,
        other => panic!("{other:?}"),
    };
    // A /30 leaves one address for instances (network, gateway, broadcast are taken);
    // a /29 five.
    let network = id_of(
        ledger
            .submit(resource(
                Kind::Network,
                ResourceSpec::Network {
                    name: "tiny".into(),
                    cidr: "10.9.0.0/29".into(),
                },
            ))
            .await,
    );
    let mut base = spec(
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    base.network_ids = vec![network];
    let many = |min: usize, max: usize| WriteRequest {
        command: WriteCommand::CreateInstances {
            spec: Box::new(base.clone()),
            min,
            max,
            hostname_lease: false,
        },
        meta: meta(),
        expected_version: None,
    };
    let head = || store.read().expect("read").head().expect("head").position;

    let before = head();
    let refused = ledger.submit(many(6, 8)).await;
    assert!(
        matches!(refused, Err(ServiceError::Address { .. })),
        "{refused:?}"
    );
    assert_eq!(head(), before, "fewer than min: nothing appended");

    let made = match ledger.submit(many(1, 8)).await {
        Ok(instance_ledger::service::Reply {
            outcome: Outcome::Instances(made),
            ..
        }) => made,
        other => panic!("{other:?}"),
    };
    assert_eq!(made.len(), 5, "as many as the network has addresses");
    let mut addresses: Vec<_> = made.iter().map(|i| i.spec.ip_address.clone()).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 5, "each its own address");
    assert_eq!(head(), before + 5, "five creations, one request");
    // Each short id is the one of its creation's position: stored side by side.
    for (k, inst) in made.iter().enumerate() {
        assert_eq!(
            instance_ledger::domain::short_id::ordinal(&inst.spec.short_id),
            Some(before + 1 + k as u64),
            "{}",
            inst.spec.short_id
        );
    }
    drop(ledger);
    writer.join().expect("writer");
}

#[tokio::test]
async fn a_host_name_lease_is_unique_among_the_customers_live_instances() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(RedbStore::open(dir.path()).expect("open"));
    let (ledger, writer) =
        Ledger::start(store.clone(), WriterConfig::default(), None).expect("start");
    let (customer, other) = (Uuid::now_v7(), Uuid::now_v7());
    let leased = |customer: Uuid, hostname: Option<&str>, count: usize| {
        let mut s = spec(Uuid::now_v7(), customer, Uuid::now_v7(), Uuid::now_v7());
        s.hostname = hostname.map(str::to_string);
        WriteRequest {
            command: WriteCommand::CreateInstances {
                spec: Box::new(s),
                min: count,
                max: count,
                hostname_lease: true,
            },
            meta: meta(),
            expected_version: None,
        }
    };
    let made = |r: Result<instance_ledger::service::Reply, ServiceError>| match r {
        Ok(instance_ledger::service::Reply {
            outcome: Outcome::Instances(made),
            ..
        }) => made,
        other => panic!("{other:?}"),
    };
    let first = made(ledger.submit(leased(customer, Some("web"), 1)).await);
    let taken = ledger.submit(leased(customer, Some("web"), 1)).await;
    assert!(
        matches!(&taken, Err(ServiceError::HostnameTaken(h)) if h == "web"),
        "{taken:?}"
    );
    made(ledger.submit(leased(other, Some("web"), 1)).await);
    // Two of one request cannot share one explicit name; without one, each gets its id.
    assert!(
        ledger
            .submit(leased(customer, Some("db"), 2))
            .await
            .is_err()
    );
    let pair = made(ledger.submit(leased(customer, None, 2)).await);
    for inst in &pair {
        assert_eq!(
            inst.spec.hostname.as_deref(),
            inst.spec.short_id.strip_prefix("i-")
        );
    }
    // Destroying the holder frees the name.
    let destroy = WriteRequest {
        command: WriteCommand::Instance {
            id: first[0].id,
            commands: vec![Command::Complete, Command::Destroy { force: true }],
        },
        meta: meta(),
        expected_version: None,
    };
    ledger.submit(destroy).await.expect("destroy");
    made(ledger.submit(leased(customer, Some("web"), 1)).await);
    drop(ledger);
    writer.join().expect("writer");
}
