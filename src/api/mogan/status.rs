//! The mapping between the native lifecycle and Mogan's vocabulary, written down once:
//! the FSM `status` a client polls, the Ironic-style `power_state` and
//! `target_power_state`, the FSM events of its messages, and the power targets a client
//! may ask for with the state each is legal from.

use crate::domain::instance::{Command, Instance};
use crate::domain::lifecycle::{Operation, PowerState, State, TargetPower};

/// The FSM status of a core state (`mogan/common/states.py`). A resize has no Mogan
/// name; it shows as the rebuild, the one transition that also ends back where it began.
pub fn status(state: State) -> &'static str {
    match state {
        State::Provisioning => "building",
        State::Starting => "powering-on",
        State::Running => "active",
        State::Stopping => "powering-off",
        State::Stopped => "stopped",
        State::Rebooting => "rebooting",
        State::Resizing => "rebuilding",
        State::Error => "error",
        State::Deleting => "deleting",
        State::Destroyed | State::Purged => "deleted",
    }
}

/// The core states a `status` filter names (an unknown status names none).
pub fn states_named(name: &str) -> Vec<State> {
    State::ALL
        .into_iter()
        .filter(|s| s.is_live() && status(*s) == name)
        .collect()
}

/// Ironic's power state: unknown (`None`) until the instance was first deployed.
pub fn power_state(inst: &Instance) -> Option<&'static str> {
    inst.launched_at?;
    Some(match inst.power_state {
        PowerState::On => "power on",
        PowerState::Off => "power off",
    })
}

/// Set while a power transition is pending, cleared by its completion.
pub fn target_power_state(inst: &Instance) -> Option<&'static str> {
    inst.target_power_state.map(|t| match t {
        TargetPower::On => "power on",
        TargetPower::Off => "power off",
        TargetPower::Reboot => "rebooting",
    })
}

/// The FSM event of an operation, as the original's transition errors name it.
pub fn event(op: Operation) -> &'static str {
    match op {
        Operation::Start => "start",
        Operation::Stop | Operation::ForceStop => "stop",
        Operation::Reboot => "reboot",
        Operation::Delete | Operation::Expunge | Operation::Destroy | Operation::ForceDestroy => {
            "delete"
        }
        Operation::Resize | Operation::RequestResize => "rebuild",
        Operation::Complete => "done",
        Operation::Fail => "error",
        other => other.as_str(),
    }
}

/// A power target of `PUT states/power`: its FSM event, the command, and the one state
/// the original allowed it from.
pub struct Target {
    pub event: &'static str,
    pub command: Command,
    pub from: State,
}

/// The targets of `PUT states/power`: the mature five, and the seed sample's Ironic
/// spellings (`power on`, `power off`, `rebooting`). Mogan's hard and soft power-off are
/// both the ledger's asynchronous stop (its forced stop completes at once, which the
/// original never did).
pub fn target(raw: &str) -> Option<Target> {
    let (event, command, from) = match raw {
        "on" | "power on" => ("start", Command::Start, State::Stopped),
        "off" | "power off" => ("stop", Command::Stop { force: false }, State::Running),
        "soft_off" => ("soft_stop", Command::Stop { force: false }, State::Running),
        "reboot" | "rebooting" => ("reboot", Command::Reboot { soft: false }, State::Running),
        "soft_reboot" => (
            "soft_reboot",
            Command::Reboot { soft: true },
            State::Running,
        ),
        _ => return None,
    };
    Some(Target {
        event,
        command,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_live_state_has_a_status_that_filters_back_to_it() {
        for state in State::ALL.into_iter().filter(|s| s.is_live()) {
            assert!(states_named(status(state)).contains(&state), "{state}");
        }
        assert!(states_named("deleted").is_empty(), "deleted ones are gone");
    }

    #[test]
    fn power_targets_are_legal_only_from_the_original_fsm_states() {
        for (raw, from) in [
            ("on", State::Stopped),
            ("power on", State::Stopped),
            ("off", State::Running),
            ("power off", State::Running),
            ("soft_off", State::Running),
            ("reboot", State::Running),
            ("soft_reboot", State::Running),
        ] {
            assert_eq!(target(raw).map(|t| t.from), Some(from), "{raw}");
        }
        assert!(target("hibernate").is_none());
        assert!(target("ON").is_none(), "targets are case-sensitive");
    }
}
