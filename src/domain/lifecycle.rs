//! The canonical lifecycle: states, power states and the native transition table
//! (DESIGN.md §3). Dialects may be stricter, never looser.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Provisioning,
    Starting,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Resizing,
    Error,
    Destroyed,
    Purged,
    /// A deletion was requested and waits for a driver (it ends `destroyed`, or `purged`
    /// when the request asked for that too).
    Deleting,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Provisioning,
        State::Starting,
        State::Running,
        State::Stopping,
        State::Stopped,
        State::Rebooting,
        State::Resizing,
        State::Error,
        State::Destroyed,
        State::Purged,
        State::Deleting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Provisioning => "provisioning",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Rebooting => "rebooting",
            State::Resizing => "resizing",
            State::Error => "error",
            State::Destroyed => "destroyed",
            State::Purged => "purged",
            State::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// States that wait for a driver to report completion.
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            State::Provisioning
                | State::Starting
                | State::Stopping
                | State::Rebooting
                | State::Resizing
                | State::Deleting
        )
    }

    /// Live states: everything but soft-deleted and purged.
    pub fn is_live(self) -> bool {
        !matches!(self, State::Destroyed | State::Purged)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    On,
    Off,
}

/// What a pending request wants the power to become; cleared by its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetPower {
    On,
    Off,
    Reboot,
}

/// Everything that can be asked of an existing instance, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Start,
    Stop,
    ForceStop,
    Reboot,
    Resize,
    Update,
    Destroy,
    ForceDestroy,
    Recover,
    Purge,
    /// A driver reports that the pending transition finished.
    Complete,
    /// A driver reports that the pending transition failed.
    Fail,
    /// Ask a driver to delete the instance (it ends destroyed, recoverable).
    Delete,
    /// Ask a driver to delete the instance and purge it.
    Expunge,
    /// Ask a driver to resize the instance (stopped, or running with a reboot).
    RequestResize,
    Lock,
    Unlock,
    ChangeNetwork,
    AssociateSshKey,
    AttachIso,
    DetachIso,
    ResetPassword,
}

impl Operation {
    pub const ALL: [Operation; 22] = [
        Operation::Start,
        Operation::Stop,
        Operation::ForceStop,
        Operation::Reboot,
        Operation::Resize,
        Operation::Update,
        Operation::Destroy,
        Operation::ForceDestroy,
        Operation::Recover,
        Operation::Purge,
        Operation::Complete,
        Operation::Fail,
        Operation::Delete,
        Operation::Expunge,
        Operation::RequestResize,
        Operation::Lock,
        Operation::Unlock,
        Operation::ChangeNetwork,
        Operation::AssociateSshKey,
        Operation::AttachIso,
        Operation::DetachIso,
        Operation::ResetPassword,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::ForceStop => "force_stop",
            Operation::Reboot => "reboot",
            Operation::Resize => "resize",
            Operation::Update => "update",
            Operation::Destroy => "destroy",
            Operation::ForceDestroy => "force_destroy",
            Operation::Recover => "recover",
            Operation::Purge => "purge",
            Operation::Complete => "complete",
            Operation::Fail => "fail",
            Operation::Delete => "delete",
            Operation::Expunge => "expunge",
            Operation::RequestResize => "request_resize",
            Operation::Lock => "lock",
            Operation::Unlock => "unlock",
            Operation::ChangeNetwork => "change_network",
            Operation::AssociateSshKey => "associate_ssh_key",
            Operation::AttachIso => "attach_iso",
            Operation::DetachIso => "detach_iso",
            Operation::ResetPassword => "reset_password",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use State::*;

const TRANSITIONAL: &[State] = &[
    Provisioning,
    Starting,
    Stopping,
    Rebooting,
    Resizing,
    Deleting,
];
/// Live states an instance may be updated or deleted from (not while being deleted).
const LIVE: &[State] = &[
    Provisioning,
    Starting,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Resizing,
    Error,
];

/// Every state but purged: a lock may be set or lifted whatever the instance does.
const LOCKABLE: &[State] = &[
    Provisioning,
    Starting,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Resizing,
    Error,
    Destroyed,
    Deleting,
];

/// The native transition table: from which states each operation is legal. The
/// asynchronous deletion and resize allow the union of what the dialects document; each
/// dialect narrows them to its own rules.
pub fn allowed_states(op: Operation) -> &'static [State] {
    match op {
        Operation::Start => &[Stopped],
        Operation::Stop | Operation::ForceStop => &[Running, Starting, Stopping],
        Operation::Reboot => &[Running, Stopped],
        Operation::Resize => &[Stopped],
        Operation::Update => LIVE,
        Operation::Destroy => &[Stopped, Error],
        Operation::ForceDestroy => &[Stopped, Error, Running],
        Operation::Recover => &[Destroyed],
        Operation::Purge => &[Destroyed],
        Operation::Complete | Operation::Fail => TRANSITIONAL,
        Operation::Delete | Operation::Expunge => LIVE,
        Operation::RequestResize => &[Stopped, Running],
        Operation::Lock | Operation::Unlock => LOCKABLE,
        // Reconfigurations of a settled instance, running or not.
        Operation::ChangeNetwork
        | Operation::AssociateSshKey
        | Operation::AttachIso
        | Operation::DetachIso
        | Operation::ResetPassword => &[Running, Stopped],
    }
}

pub fn is_allowed(op: Operation, from: State) -> bool {
    allowed_states(op).contains(&from)
}
