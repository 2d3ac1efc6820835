//! Exhaustive transition-table tests and replay determinism properties.

use super::*;
use crate::domain::lifecycle::State::*;
use proptest::prelude::*;

fn at(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + n, 0).expect("valid timestamp")
}

fn sizing(n: u32) -> Sizing {
    Sizing {
        flavor_id: Uuid::from_u128(0xf1 + n as u128),
        vcpus: n,
        memory_mb: 1024 * n as u64,
        disk_gb: 10 * n as u64,
    }
}

fn spec() -> Spec {
    Spec {
        short_id: "i-abcdef12".into(),
        name: "web-1".into(),
        hostname: Some("web-1".into()),
        description: None,
        project_id: Uuid::from_u128(1),
        customer_id: Uuid::from_u128(2),
        sizing: sizing(1),
        image_id: Uuid::from_u128(3),
        network_ids: vec![],
        ssh_key_id: None,
        security_groups: vec!["default".into()],
        availability_zone: Some("az1".into()),
        user_data: None,
        tags: BTreeMap::new(),
        ip_address: None,
        attributes: Default::default(),
        created_by: None,
    }
}

fn created() -> Instance {
    evolve(
        None,
        Uuid::from_u128(9),
        &Event::Created(Box::new(spec())),
        1,
        at(0),
    )
}

fn in_state(state: State) -> Instance {
    let mut inst = created();
    inst.state = state;
    if state.is_transitional() {
        inst.target_power_state = Some(TargetPower::On);
        inst.pending_operation = Some(Operation::Start);
    } else {
        inst.target_power_state = None;
        inst.pending_operation = None;
    }
    inst
}

/// One command per operation (plus creation), covering both force/soft variants.
fn every_command() -> Vec<Command> {
    vec![
        Command::Create(Box::new(spec())),
        Command::Start,
        Command::Stop { force: false },
        Command::Stop { force: true },
        Command::Reboot { soft: false },
        Command::Reboot { soft: true },
        Command::Resize(sizing(2)),
        Command::Update(Patch {
            name: Some("renamed".into()),
            ..Patch::default()
        }),
        Command::Destroy { force: false },
        Command::Destroy { force: true },
        Command::Delete { purge: false },
        Command::Delete { purge: true },
        Command::RequestResize(sizing(3)),
        Command::Recover,
        Command::Purge,
        Command::Complete,
        Command::Fail {
            reason: "boom".into(),
        },
        Command::Lock {
            by: LockHolder::Owner,
        },
        Command::Lock {
            by: LockHolder::Admin,
        },
        Command::ChangeNetwork {
            network_id: Uuid::from_u128(0x4e7),
            ip_address: Some("10.0.0.9".into()),
        },
        Command::AssociateSshKey {
            ssh_key_id: Uuid::from_u128(0x55),
        },
        Command::AttachIso {
            iso_id: Uuid::from_u128(0x150),
        },
        Command::ResetPassword { digest: "d".into() },
    ]
}

/// The native table written out independently of `allowed_states`: for each command, the
/// legal source states and the state the instance lands in.
fn expected(command: &Command, from: State) -> Option<State> {
    let table: &[(State, State)] = match command {
        Command::Create(_) => &[],
        Command::Start => &[(Stopped, Starting)],
        Command::Stop { force: false } => &[
            (Running, Stopping),
            (Starting, Stopping),
            (Stopping, Stopping),
        ],
        Command::Stop { force: true } => {
            &[(Running, Stopped), (Starting, Stopped), (Stopping, Stopped)]
        }
        Command::Reboot { .. } => &[(Running, Rebooting), (Stopped, Rebooting)],
        Command::Resize(_) => &[(Stopped, Stopped)],
        Command::Update(_) => &[
            (Provisioning, Provisioning),
            (Starting, Starting),
            (Running, Running),
            (Stopping, Stopping),
            (Stopped, Stopped),
            (Rebooting, Rebooting),
            (Resizing, Resizing),
            (Error, Error),
        ],
        Command::Destroy { force: false } => &[(Stopped, Destroyed), (Error, Destroyed)],
        Command::Destroy { force: true } => &[
            (Stopped, Destroyed),
            (Error, Destroyed),
            (Running, Destroyed),
        ],
        Command::Delete { .. } => &[
            (Provisioning, Deleting),
            (Starting, Deleting),
            (Running, Deleting),
            (Stopping, Deleting),
            (Stopped, Deleting),
            (Rebooting, Deleting),
            (Resizing, Deleting),
            (Error, Deleting),
        ],
        Command::RequestResize(_) => &[(Stopped, Resizing), (Running, Resizing)],
        Command::Recover => &[(Destroyed, Stopped)],
        Command::Purge => &[(Destroyed, Purged)],
        // `in_state` leaves every instance powered off with a pending start.
        Command::Complete => &[
            (Provisioning, Running),
            (Starting, Running),
            (Stopping, Stopped),
            (Rebooting, Running),
            (Resizing, Stopped),
            (Deleting, Destroyed),
        ],
        Command::Fail { .. } => &[
            (Provisioning, Error),
            (Starting, Error),
            (Stopping, Error),
            (Rebooting, Error),
            (Resizing, Error),
            (Deleting, Error),
        ],
        // Locking never moves the state; `in_state` leaves every instance unlocked.
        Command::Lock { .. } => &[
            (Provisioning, Provisioning),
            (Starting, Starting),
            (Running, Running),
            (Stopping, Stopping),
            (Stopped, Stopped),
            (Rebooting, Rebooting),
            (Resizing, Resizing),
            (Error, Error),
            (Destroyed, Destroyed),
            (Deleting, Deleting),
        ],
        // Unlocking an unlocked instance emits nothing, so it is tested on its own below;
        // so is detaching (`in_state` has no ISO attached).
        Command::Unlock { .. } | Command::DetachIso => &[],
        Command::ChangeNetwork { .. }
        | Command::AssociateSshKey { .. }
        | Command::AttachIso { .. }
        | Command::ResetPassword { .. } => &[(Running, Running), (Stopped, Stopped)],
    };
    table.iter().find(|(f, _)| *f == from).map(|(_, to)| *to)
}

#[test]
fn transition_table_every_state_times_every_command() {
    let mut cells = 0;
    for from in State::ALL {
        for command in every_command() {
            cells += 1;
            let inst = in_state(from);
            let result = decide(Some(&inst), &command);
            match (expected(&command, from), result) {
                (Some(to), Ok(events)) => {
                    assert!(!events.is_empty(), "{command:?} from {from}");
                    let mut state = Some(inst.clone());
                    for (i, e) in events.iter().enumerate() {
                        state = Some(evolve(
                            state,
                            inst.id,
                            e,
                            inst.version + 1 + i as u64,
                            at(5),
                        ));
                    }
                    let after = state.expect("folded");
                    assert_eq!(after.state, to, "{command:?} from {from}");
                    assert_eq!(after.version, inst.version + events.len() as u64);
                    // Settled states never carry a target; transitional ones always do.
                    assert_eq!(
                        after.target_power_state.is_some(),
                        to.is_transitional(),
                        "{command:?} from {from}"
                    );
                }
                (
                    None,
                    Err(DomainError::InvalidTransition {
                        operation,
                        current,
                        allowed,
                    }),
                ) => {
                    assert_eq!(current, from);
                    assert_eq!(Some(operation), command.operation());
                    assert!(!allowed.contains(&from));
                    for legal in allowed {
                        assert!(
                            expected(&command, *legal).is_some(),
                            "{operation} lists {legal} as allowed but the table does not"
                        );
                    }
                }
                (None, Err(DomainError::AlreadyExists)) => {
                    assert!(matches!(command, Command::Create(_)))
                }
                (want, got) => panic!("{command:?} from {from}: expected {want:?}, got {got:?}"),
            }
        }
    }
    assert_eq!(cells, State::ALL.len() * every_command().len());
}

#[test]
fn commands_on_a_missing_instance_are_not_found_except_create() {
    for command in every_command() {
        let result = decide(None, &command);
        match command {
            Command::Create(_) => assert_eq!(result.map(|e| e.len()), Ok(1)),
            _ => assert_eq!(result, Err(DomainError::NotFound), "{command:?}"),
        }
    }
}

#[test]
fn created_instance_is_provisioning_with_power_target_on() {
    let inst = created();
    assert_eq!(inst.state, Provisioning);
    assert_eq!(inst.power_state, PowerState::Off);
    assert_eq!(inst.target_power_state, Some(TargetPower::On));
    assert_eq!(inst.version, 1);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    let inst = in_state(Running);
    let same = Command::Update(Patch {
        name: Some(inst.spec.name.clone()),
        hostname: Some(inst.spec.hostname.clone()),
        ..Patch::default()
    });
    assert_eq!(decide(Some(&inst), &same), Ok(vec![]));
}

#[test]
fn resize_records_new_sizing_and_failure_records_pending_operation() {
    let inst = in_state(Stopped);
    let events = decide(Some(&inst), &Command::Resize(sizing(4))).expect("legal");
    let after = evolve(Some(inst.clone()), inst.id, &events[0], 2, at(1));
    assert_eq!(after.spec.sizing, sizing(4));

    let starting = evolve(Some(after), inst.id, &Event::StartRequested {}, 3, at(2));
    let failed = decide(
        Some(&starting),
        &Command::Fail {
            reason: "no host".into(),
        },
    )
    .expect("legal");
    assert_eq!(
        failed,
        vec![Event::Failed {
            operation: Operation::Start,
            reason: "no host".into()
        }]
    );
}

#[test]
fn a_requested_deletion_ends_destroyed_or_purged_and_a_running_resize_comes_back_on() {
    let running = evolve(
        Some(in_state(Stopped)),
        Uuid::from_u128(9),
        &Event::Started {},
        2,
        at(1),
    );
    for (purge, end) in [(false, Destroyed), (true, Purged)] {
        let mut inst = running.clone();
        for command in [Command::Delete { purge }, Command::Complete] {
            for e in decide(Some(&inst), &command).expect("legal") {
                inst = evolve(Some(inst), inst_id(), &e, 3, at(2));
            }
        }
        assert_eq!(inst.state, end, "purge {purge}");
        assert_eq!(inst.target_power_state, None);
    }
    let mut inst = running;
    for command in [Command::RequestResize(sizing(5)), Command::Complete] {
        for e in decide(Some(&inst), &command).expect("legal") {
            inst = evolve(Some(inst), inst_id(), &e, 4, at(3));
        }
    }
    assert_eq!((inst.state, inst.power_state), (Running, PowerState::On));
    assert_eq!(inst.spec.sizing, sizing(5));
}

#[test]
fn a_lock_holds_back_power_and_deletion_from_all_but_staff_and_only_its_kind_lifts_it() {
    let inst = in_state(Running);
    let lock = |inst: &Instance, by| {
        let mut inst = inst.clone();
        for e in decide(Some(&inst), &Command::Lock { by }).expect("lockable") {
            let version = inst.version + 1;
            inst = evolve(Some(inst), inst_id(), &e, version, at(1));
        }
        inst
    };
    let locked = lock(&inst, LockHolder::Owner);
    assert_eq!(locked.locked, Some(LockHolder::Owner));
    for command in every_command() {
        let held = check_lock(&locked, &command, false);
        assert_eq!(held.is_err(), command.respects_lock(), "{command:?}");
        assert_eq!(check_lock(&locked, &command, true), Ok(()), "{command:?}");
        assert_eq!(check_lock(&inst, &command, false), Ok(()), "{command:?}");
    }
    // Locking again as the owner is a no-op; staff take the lock over.
    assert_eq!(
        decide(
            Some(&locked),
            &Command::Lock {
                by: LockHolder::Owner
            }
        ),
        Ok(vec![])
    );
    let taken = lock(&locked, LockHolder::Admin);
    assert_eq!(taken.locked, Some(LockHolder::Admin));
    assert_eq!(
        decide(
            Some(&taken),
            &Command::Unlock {
                by: LockHolder::Owner
            }
        ),
        Err(DomainError::LockHeld)
    );
    assert_eq!(
        decide(
            Some(&taken),
            &Command::Unlock {
                by: LockHolder::Admin
            }
        ),
        Ok(vec![Event::Unlocked {}])
    );
    // Unlocking what is not locked changes nothing, in every state that has a lock.
    for from in State::ALL {
        let result = decide(
            Some(&in_state(from)),
            &Command::Unlock {
                by: LockHolder::Owner,
            },
        );
        if from == Purged {
            assert!(result.is_err(), "purged instances have no lock");
        } else {
            assert_eq!(result, Ok(vec![]), "{from}");
        }
    }
}

#[test]
fn the_first_provisioning_sets_the_launch_time_and_a_failure_is_kept_as_the_fault() {
    let inst = created();
    assert_eq!((inst.launched_at, inst.fault.clone()), (None, None));
    let running = evolve(Some(inst), inst_id(), &Event::Provisioned {}, 2, at(3));
    assert_eq!(running.launched_at, Some(at(3)));
    let rebooting = evolve(
        Some(running),
        inst_id(),
        &Event::RebootRequested { soft: false },
        3,
        at(4),
    );
    let failed = evolve(
        Some(rebooting),
        inst_id(),
        &Event::Failed {
            operation: Operation::Reboot,
            reason: "no power".into(),
        },
        4,
        at(5),
    );
    assert_eq!(failed.launched_at, Some(at(3)), "the launch time stays");
    assert_eq!(
        failed.fault,
        Some(Fault {
            operation: Operation::Reboot,
            reason: "no power".into(),
            at: at(5)
        })
    );
}

#[test]
fn one_iso_at_a_time_and_a_network_change_moves_the_address() {
    let inst = in_state(Stopped);
    let iso = Uuid::from_u128(0x150);
    assert_eq!(
        decide(Some(&inst), &Command::DetachIso),
        Err(DomainError::NoIso)
    );
    let events = decide(Some(&inst), &Command::AttachIso { iso_id: iso }).expect("attach");
    let attached = evolve(Some(inst.clone()), inst_id(), &events[0], 2, at(1));
    assert_eq!(attached.iso_id, Some(iso));
    assert_eq!(
        decide(Some(&attached), &Command::AttachIso { iso_id: iso }),
        Err(DomainError::IsoAttached)
    );
    let detached = evolve(
        Some(attached.clone()),
        inst_id(),
        &decide(Some(&attached), &Command::DetachIso).expect("detach")[0],
        3,
        at(2),
    );
    assert_eq!(detached.iso_id, None);
    let net = Uuid::from_u128(0x4e7);
    let change = Command::ChangeNetwork {
        network_id: net,
        ip_address: Some("10.1.0.5".into()),
    };
    let moved = evolve(
        Some(detached.clone()),
        inst_id(),
        &decide(Some(&detached), &change).expect("change")[0],
        4,
        at(3),
    );
    assert_eq!(moved.spec.network_ids, vec![net]);
    assert_eq!(moved.spec.ip_address.as_deref(), Some("10.1.0.5"));
    let same = Command::ChangeNetwork {
        network_id: net,
        ip_address: None,
    };
    assert_eq!(decide(Some(&moved), &same), Ok(vec![]), "already there");
}

fn inst_id() -> Uuid {
    Uuid::from_u128(9)
}

#[test]
fn events_round_trip_through_their_stored_json_shape() {
    let events = vec![
        Event::Created(Box::new(spec())),
        Event::Provisioned {},
        Event::StopRequested {
            mode: StopMode::Forced,
        },
        Event::Resized(sizing(3)),
        Event::Updated(Patch {
            hostname: Some(None),
            ..Patch::default()
        }),
        Event::Failed {
            operation: Operation::Reboot,
            reason: "x".into(),
        },
    ];
    for e in events {
        let json = serde_json::to_value(&e).expect("serialize");
        assert_eq!(json["type"], e.type_name());
        assert!(json["data"].is_object(), "{json}");
        let back: Event = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, e);
    }
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Start),
        any::<bool>().prop_map(|force| Command::Stop { force }),
        any::<bool>().prop_map(|soft| Command::Reboot { soft }),
        (1u32..8).prop_map(|n| Command::Resize(sizing(n))),
        "[a-c]{1,2}".prop_map(|name| Command::Update(Patch {
            name: Some(name),
            ..Patch::default()
        })),
        any::<bool>().prop_map(|force| Command::Destroy { force }),
        any::<bool>().prop_map(|purge| Command::Delete { purge }),
        (1u32..8).prop_map(|n| Command::RequestResize(sizing(n))),
        Just(Command::Recover),
        Just(Command::Purge),
        Just(Command::Complete),
        Just(Command::Complete),
        Just(Command::Fail { reason: "r".into() }),
        prop_oneof![Just(LockHolder::Owner), Just(LockHolder::Admin)]
            .prop_map(|by| Command::Lock { by }),
        prop_oneof![Just(LockHolder::Owner), Just(LockHolder::Admin)]
            .prop_map(|by| Command::Unlock { by }),
        (0u128..3).prop_map(|n| Command::ChangeNetwork {
            network_id: Uuid::from_u128(n),
            ip_address: Some(format!("10.0.0.{}", n + 2)),
        }),
        (0u128..3).prop_map(|n| Command::AssociateSshKey {
            ssh_key_id: Uuid::from_u128(n)
        }),
        (0u128..3).prop_map(|n| Command::AttachIso {
            iso_id: Uuid::from_u128(n)
        }),
        Just(Command::DetachIso),
        "[a-f]{4}".prop_map(|digest| Command::ResetPassword { digest }),
    ]
}

proptest! {
    /// Folding the log of any command sequence from scratch yields exactly the live state,
    /// and the live state keeps its invariants along the way.
    #[test]
    fn replay_of_the_log_equals_the_live_state(commands in proptest::collection::vec(arb_command(), 0..60)) {
        let id = Uuid::from_u128(42);
        let mut log: Vec<(Event, u64, DateTime<Utc>)> = Vec::new();
        let mut live = None;
        let mut all = vec![Command::Create(Box::new(spec()))];
        all.extend(commands);
        for (step, command) in all.iter().enumerate() {
            let before = live.clone();
            match decide(live.as_ref(), command) {
                Ok(events) => {
                    for e in events {
                        let version = log.len() as u64 + 1;
                        live = Some(evolve(live, id, &e, version, at(step as i64)));
                        log.push((e, version, at(step as i64)));
                    }
                }
                Err(_) => prop_assert_eq!(&live, &before, "a refused command changed state"),
            }
            let inst = live.as_ref().expect("created first");
            prop_assert_eq!(inst.target_power_state.is_some(), inst.state.is_transitional());
            prop_assert_eq!(inst.pending_operation.is_some(), inst.state.is_transitional());
            prop_assert_eq!(inst.version, log.len() as u64);
        }
        let mut replayed = None;
        for (e, version, t) in &log {
            // Each event survives its stored JSON form unchanged.
            let json = serde_json::to_vec(e).expect("serialize");
            let decoded: Event = serde_json::from_slice(&json).expect("deserialize");
            replayed = Some(evolve(replayed, id, &decoded, *version, *t));
        }
        prop_assert_eq!(replayed, live);
    }
}
