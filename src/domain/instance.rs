//! The instance aggregate: its state, the commands it accepts, the events it emits,
//! `decide` (command + state -> events) and `evolve` (state + event -> state).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DomainError;
use super::lifecycle::{Operation, PowerState, State, TargetPower, allowed_states, is_allowed};

/// A flavor as copied into the instance: events carry the sizes so a replay never needs
/// the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Sizing {
    pub flavor_id: Uuid,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

/// Everything an instance is created with, references already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Spec {
    pub short_id: String,
    pub name: String,
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub project_id: Uuid,
    pub customer_id: Uuid,
    #[serde(flatten)]
    pub sizing: Sizing,
    pub image_id: Uuid,
    pub network_ids: Vec<Uuid>,
    pub ssh_key_id: Option<Uuid>,
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The private address on the first network, assigned at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Free-form attributes a surface keeps with the instance (Mogan's `extra`, EC2's
    /// shutdown behaviour...). Not indexed, unlike tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The principal that created it (its id, or `admin`), as dialects show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Who locked an instance: a locked instance refuses power and delete operations to all
/// but staff, and only the same kind of holder may unlock it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LockHolder {
    /// A member of the instance's project (or its customer's owner).
    Owner,
    /// Staff.
    Admin,
}

/// A partial update; `None` leaves a field alone. For the optional text fields,
/// `Some(None)` clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Patch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub hostname: Option<Option<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Replaces the attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub user_data: Option<Option<String>>,
}

/// Tells an explicit `null` (clear the field) from an absent key (leave it alone).
pub fn present_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create(Box<Spec>),
    Start,
    Stop {
        force: bool,
    },
    Reboot {
        soft: bool,
    },
    Resize(Sizing),
    Update(Patch),
    Destroy {
        force: bool,
    },
    /// Asks a driver to delete the instance, from any live state; with `purge` it is
    /// purged once deleted.
    Delete {
        purge: bool,
    },
    /// Asks a driver to resize the instance (from stopped, or from running with a reboot).
    RequestResize(Sizing),
    Recover,
    Purge,
    /// A driver reports that the pending transition finished.
    Complete,
    /// A driver reports that the pending transition failed.
    Fail {
        reason: String,
    },
    Lock {
        by: LockHolder,
    },
    Unlock {
        by: LockHolder,
    },
    /// Moves the instance to another network; the writer assigns the address when none
    /// is given.
    ChangeNetwork {
        network_id: Uuid,
        ip_address: Option<String>,
    },
    /// Replaces the instance's SSH key.
    AssociateSshKey {
        ssh_key_id: Uuid,
    },
    /// Attaches an ISO (one at a time).
    AttachIso {
        iso_id: Uuid,
    },
    DetachIso,
    /// A new password for the guest; only its SHA-256 digest enters the log.
    ResetPassword {
        digest: String,
    },
}

impl Command {
    /// The operation this command is checked against; `None` for creation.
    pub fn operation(&self) -> Option<Operation> {
        Some(match self {
            Command::Create(_) => return None,
            Command::Start => Operation::Start,
            Command::Stop { force: false } => Operation::Stop,
            Command::Stop { force: true } => Operation::ForceStop,
            Command::Reboot { .. } => Operation::Reboot,
            Command::Resize(_) => Operation::Resize,
            Command::Update(_) => Operation::Update,
            Command::Destroy { force: false } => Operation::Destroy,
            Command::Destroy { force: true } => Operation::ForceDestroy,
            Command::Delete { purge: false } => Operation::Delete,
            Command::Delete { purge: true } => Operation::Expunge,
            Command::RequestResize(_) => Operation::RequestResize,
            Command::Recover => Operation::Recover,
            Command::Purge => Operation::Purge,
            Command::Complete => Operation::Complete,
            Command::Fail { .. } => Operation::Fail,
            Command::Lock { .. } => Operation::Lock,
            Command::Unlock { .. } => Operation::Unlock,
            Command::ChangeNetwork { .. } => Operation::ChangeNetwork,
            Command::AssociateSshKey { .. } => Operation::AssociateSshKey,
            Command::AttachIso { .. } => Operation::AttachIso,
            Command::DetachIso => Operation::DetachIso,
            Command::ResetPassword { .. } => Operation::ResetPassword,
        })
    }

    /// Whether a lock holds this command back from callers other than staff.
    pub fn respects_lock(&self) -> bool {
        matches!(
            self,
            Command::Start
                | Command::Stop { .. }
                | Command::Reboot { .. }
                | Command::Resize(_)
                | Command::RequestResize(_)
                | Command::Destroy { .. }
                | Command::Delete { .. }
                | Command::Purge
        )
    }
}

/// How a stop was asked for. An enum (schema version 2 of `StopRequested`; version 1
/// stored `{"force": bool}`) so that modes such as hibernation can join later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// Ask the guest to shut down; a driver reports `Stopped`.
    Graceful,
    /// Cut the power at once.
    Forced,
}

/// Instance events, stored as `{"type": <variant>, "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    Created(Box<Spec>),
    Provisioned {},
    StartRequested {},
    Started {},
    StopRequested {
        mode: StopMode,
    },
    Stopped {},
    RebootRequested {
        soft: bool,
    },
    Rebooted {},
    ResizeRequested(Sizing),
    Resized(Sizing),
    Updated(Patch),
    Destroyed {
        force: bool,
    },
    /// A deletion was asked of a driver; `purge`: purge it once deleted.
    DestroyRequested {
        purge: bool,
    },
    Recovered {},
    Purged {},
    Failed {
        operation: Operation,
        reason: String,
    },
    Locked {
        by: LockHolder,
    },
    Unlocked {},
    NetworkChanged {
        network_id: Uuid,
        ip_address: Option<String>,
    },
    SshKeyAssociated {
        ssh_key_id: Uuid,
    },
    IsoAttached {
        iso_id: Uuid,
    },
    IsoDetached {},
    /// The SHA-256 (hex) of the new password, so an auditor can check a password
    /// against the log without the log holding it.
    PasswordReset {
        digest: String,
    },
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Created(_) => "Created",
            Event::Provisioned {} => "Provisioned",
            Event::StartRequested {} => "StartRequested",
            Event::Started {} => "Started",
            Event::StopRequested { .. } => "StopRequested",
            Event::Stopped {} => "Stopped",
            Event::RebootRequested { .. } => "RebootRequested",
            Event::Rebooted {} => "Rebooted",
            Event::ResizeRequested(_) => "ResizeRequested",
            Event::Resized(_) => "Resized",
            Event::Updated(_) => "Updated",
            Event::Destroyed { .. } => "Destroyed",
            Event::DestroyRequested { .. } => "DestroyRequested",
            Event::Recovered {} => "Recovered",
            Event::Purged {} => "Purged",
            Event::Failed { .. } => "Failed",
            Event::Locked { .. } => "Locked",
            Event::Unlocked {} => "Unlocked",
            Event::NetworkChanged { .. } => "NetworkChanged",
            Event::SshKeyAssociated { .. } => "SshKeyAssociated",
            Event::IsoAttached { .. } => "IsoAttached",
            Event::IsoDetached {} => "IsoDetached",
            Event::PasswordReset { .. } => "PasswordReset",
        }
    }
}

/// The folded state of one instance stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: Spec,
    pub state: State,
    pub power_state: PowerState,
    pub target_power_state: Option<TargetPower>,
    /// The operation a driver is expected to complete, if any.
    pub pending_operation: Option<Operation>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while the instance is locked, to who locked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<LockHolder>,
    /// When provisioning first completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<DateTime<Utc>>,
    /// The last failure a driver reported, kept until the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// The ISO attached, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_id: Option<Uuid>,
}

/// A failure a driver reported: what it was doing, why it failed, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct Fault {
    pub operation: Operation,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Refuses a command a lock holds back, unless the caller is staff.
pub fn check_lock(inst: &Instance, command: &Command, staff: bool) -> Result<(), DomainError> {
    match (inst.locked, command.operation()) {
        (Some(_), Some(operation)) if !staff && command.respects_lock() => {
            Err(DomainError::Locked { operation })
        }
        _ => Ok(()),
    }
}

fn check(op: Operation, current: State) -> Result<(), DomainError> {
    if is_allowed(op, current) {
        Ok(())
    } else {
        Err(DomainError::InvalidTransition {
            operation: op,
            current,
            allowed: allowed_states(op),
        })
    }
}

/// Decides which events a command produces against the current state (`None`: the stream
/// does not exist yet).
pub fn decide(state: Option<&Instance>, command: &Command) -> Result<Vec<Event>, DomainError> {
    let inst = match (state, command) {
        (None, Command::Create(spec)) => return Ok(vec![Event::Created(spec.clone())]),
        (Some(_), Command::Create(_)) => return Err(DomainError::AlreadyExists),
        (None, _) => return Err(DomainError::NotFound),
        (Some(inst), _) => inst,
    };
    if let Some(op) = command.operation() {
        check(op, inst.state)?;
    }
    let events = match command {
        Command::Create(_) => unreachable!("handled above"),
        Command::Start => vec![Event::StartRequested {}],
        // A forced stop cuts the power at once: nothing is left for a driver to do.
        Command::Stop { force: true } => vec![
            Event::StopRequested {
                mode: StopMode::Forced,
            },
            Event::Stopped {},
        ],
        Command::Stop { force: false } => vec![Event::StopRequested {
            mode: StopMode::Graceful,
        }],
        Command::Reboot { soft } => vec![Event::RebootRequested { soft: *soft }],
        Command::Resize(sizing) => vec![Event::Resized(sizing.clone())],
        Command::Update(patch) => {
            let effective = effective_patch(inst, patch);
            // Setting fields to the values they have is a successful no-op: the log
            // records only real changes.
            if effective == Patch::default() {
                return Ok(Vec::new());
            }
            vec![Event::Updated(effective)]
        }
        Command::Destroy { force } => vec![Event::Destroyed { force: *force }],
        Command::Delete { purge } => vec![Event::DestroyRequested { purge: *purge }],
        Command::RequestResize(sizing) => vec![Event::ResizeRequested(sizing.clone())],
        Command::Recover => vec![Event::Recovered {}],
        Command::Purge => vec![Event::Purged {}],
        Command::Complete => complete(inst),
        Command::Fail { reason } => vec![Event::Failed {
            operation: inst.pending_operation.unwrap_or(Operation::Complete),
            reason: reason.clone(),
        }],
        // An owner locking a locked instance changes nothing; staff take a lock over.
        Command::Lock { by } => match inst.locked {
            Some(held) if held == *by || *by == LockHolder::Owner => Vec::new(),
            _ => vec![Event::Locked { by: *by }],
        },
        Command::Unlock { by } => match inst.locked {
            None => Vec::new(),
            Some(held) if held == *by => vec![Event::Unlocked {}],
            Some(_) => return Err(DomainError::LockHeld),
        },
        Command::ChangeNetwork {
            network_id,
            ip_address,
        } => {
            if inst.spec.network_ids == [*network_id] && ip_address.is_none() {
                return Ok(Vec::new());
            }
            vec![Event::NetworkChanged {
                network_id: *network_id,
                ip_address: ip_address.clone(),
            }]
        }
        Command::AssociateSshKey { ssh_key_id } => {
            if inst.spec.ssh_key_id == Some(*ssh_key_id) {
                return Ok(Vec::new());
            }
            vec![Event::SshKeyAssociated {
                ssh_key_id: *ssh_key_id,
            }]
        }
        Command::AttachIso { iso_id } => match inst.iso_id {
            Some(_) => return Err(DomainError::IsoAttached),
            None => vec![Event::IsoAttached { iso_id: *iso_id }],
        },
        Command::DetachIso => match inst.iso_id {
            None => return Err(DomainError::NoIso),
            Some(_) => vec![Event::IsoDetached {}],
        },
        Command::ResetPassword { digest } => vec![Event::PasswordReset {
            digest: digest.clone(),
        }],
    };
    Ok(events)
}

/// The events that finish the pending transition.
fn complete(inst: &Instance) -> Vec<Event> {
    match inst.state {
        State::Provisioning => vec![Event::Provisioned {}],
        State::Starting => vec![Event::Started {}],
        State::Stopping => vec![Event::Stopped {}],
        State::Rebooting => vec![Event::Rebooted {}],
        State::Resizing => vec![Event::Resized(inst.spec.sizing.clone())],
        State::Deleting => {
            let destroyed = Event::Destroyed {
                force: inst.power_state == PowerState::On,
            };
            match inst.pending_operation {
                Some(Operation::Expunge) => vec![destroyed, Event::Purged {}],
                _ => vec![destroyed],
            }
        }
        // check() admits only transitional states; anything else completes nothing.
        _ => Vec::new(),
    }
}

/// Drops the parts of a patch that would not change anything.
fn effective_patch(inst: &Instance, patch: &Patch) -> Patch {
    Patch {
        name: patch.name.clone().filter(|n| *n != inst.spec.name),
        hostname: patch.hostname.clone().filter(|h| *h != inst.spec.hostname),
        description: patch
            .description
            .clone()
            .filter(|d| *d != inst.spec.description),
        tags: patch.tags.clone().filter(|t| *t != inst.spec.tags),
        attributes: patch
            .attributes
            .clone()
            .filter(|a| *a != inst.spec.attributes),
        user_data: patch
            .user_data
            .clone()
            .filter(|d| *d != inst.spec.user_data),
    }
}

/// Folds one event into the state. `version` and `at` come from the event's envelope.
/// Events are facts: evolve never refuses one.
pub fn evolve(
    state: Option<Instance>,
    id: Uuid,
    event: &Event,
    version: u64,
    at: DateTime<Utc>,
) -> Instance {
    let mut inst = match (state, event) {
        (_, Event::Created(spec)) => Instance {
            id,
            spec: (**spec).clone(),
            state: State::Provisioning,
            power_state: PowerState::Off,
            target_power_state: Some(TargetPower::On),
            pending_operation: Some(Operation::Complete),
            version,
            created_at: at,
            updated_at: at,
            locked: None,
            launched_at: None,
            fault: None,
            iso_id: None,
        },
        (Some(inst), _) => inst,
        // A non-creation event on an empty stream cannot be produced by decide; fold it
        // onto a placeholder so a damaged log still replays (verify reports the damage).
        (None, _) => return placeholder(id, version, at),
    };
    inst.version = version;
    inst.updated_at = at;
    let settle = |inst: &mut Instance, state: State, power: PowerState| {
        inst.state = state;
        inst.power_state = power;
        inst.target_power_state = None;
        inst.pending_operation = None;
    };
    let request = |inst: &mut Instance, state: State, target: TargetPower, op: Operation| {
        inst.state = state;
        inst.target_power_state = Some(target);
        inst.pending_operation = Some(op);
    };
    match event {
        Event::Created(_) => {}
        Event::Provisioned {} => {
            inst.launched_at.get_or_insert(at);
            settle(&mut inst, State::Running, PowerState::On)
        }
        Event::Started {} | Event::Rebooted {} => settle(&mut inst, State::Running, PowerState::On),
        Event::StartRequested {} => request(
            &mut inst,
            State::Starting,
            TargetPower::On,
            Operation::Start,
        ),
        Event::StopRequested { mode } => request(
            &mut inst,
            State::Stopping,
            TargetPower::Off,
            match mode {
                StopMode::Forced => Operation::ForceStop,
                StopMode::Graceful => Operation::Stop,
            },
        ),
        Event::Stopped {} => settle(&mut inst, State::Stopped, PowerState::Off),
        Event::RebootRequested { .. } => request(
            &mut inst,
            State::Rebooting,
            TargetPower::Reboot,
            Operation::Reboot,
        ),
        Event::ResizeRequested(sizing) => {
            inst.spec.sizing = sizing.clone();
            // A running instance is resized with a reboot and comes back on.
            let target = match inst.power_state {
                PowerState::On => TargetPower::Reboot,
                PowerState::Off => TargetPower::Off,
            };
            request(&mut inst, State::Resizing, target, Operation::RequestResize)
        }
        Event::Resized(sizing) => {
            inst.spec.sizing = sizing.clone();
            let power = inst.power_state;
            let state = match power {
                PowerState::On => State::Running,
                PowerState::Off => State::Stopped,
            };
            settle(&mut inst, state, power)
        }
        Event::Updated(patch) => {
            if let Some(name) = &patch.name {
                inst.spec.name = name.clone();
            }
            if let Some(hostname) = &patch.hostname {
                inst.spec.hostname = hostname.clone();
            }
            if let Some(description) = &patch.description {
                inst.spec.description = description.clone();
            }
            if let Some(tags) = &patch.tags {
                inst.spec.tags = tags.clone();
            }
            if let Some(attributes) = &patch.attributes {
                inst.spec.attributes = attributes.clone();
            }
            if let Some(user_data) = &patch.user_data {
                inst.spec.user_data = user_data.clone();
            }
        }
        Event::Locked { by } => inst.locked = Some(*by),
        Event::Unlocked {} => inst.locked = None,
        Event::NetworkChanged {
            network_id,
            ip_address,
        } => {
            inst.spec.network_ids = vec![*network_id];
            inst.spec.ip_address = ip_address.clone();
        }
        Event::SshKeyAssociated { ssh_key_id } => inst.spec.ssh_key_id = Some(*ssh_key_id),
        Event::IsoAttached { iso_id } => inst.iso_id = Some(*iso_id),
        Event::IsoDetached {} => inst.iso_id = None,
        Event::PasswordReset { .. } => {}
        Event::Destroyed { .. } => settle(&mut inst, State::Destroyed, PowerState::Off),
        Event::DestroyRequested { purge } => request(
            &mut inst,
            State::Deleting,
            TargetPower::Off,
            if *purge {
                Operation::Expunge
            } else {
                Operation::Delete
            },
        ),
        Event::Recovered {} => settle(&mut inst, State::Stopped, PowerState::Off),
        Event::Purged {} => settle(&mut inst, State::Purged, PowerState::Off),
        Event::Failed { operation, reason } => {
            inst.fault = Some(Fault {
                operation: *operation,
                reason: reason.clone(),
                at,
            });
            let power = inst.power_state;
            settle(&mut inst, State::Error, power)
        }
    }
    inst
}

fn placeholder(id: Uuid, version: u64, at: DateTime<Utc>) -> Instance {
    Instance {
        id,
        spec: Spec {
            short_id: String::new(),
            name: String::new(),
            hostname: None,
            description: None,
            project_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            sizing: Sizing {
                flavor_id: Uuid::nil(),
                vcpus: 0,
                memory_mb: 0,
                disk_gb: 0,
            },
            image_id: Uuid::nil(),
            network_ids: Vec::new(),
            ssh_key_id: None,
            security_groups: Vec::new(),
            availability_zone: None,
            user_data: None,
            tags: BTreeMap::new(),
            ip_address: None,
            attributes: BTreeMap::new(),
            created_by: None,
        },
        state: State::Error,
        power_state: PowerState::Off,
        target_power_state: None,
        pending_operation: None,
        version,
        created_at: at,
        updated_at: at,
        locked: None,
        launched_at: None,
        fault: None,
        iso_id: None,
    }
}

#[cfg(test)]
mod tests;
