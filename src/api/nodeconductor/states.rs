//! The mapping between the native lifecycle and NodeConductor's django-fsm states,
//! written down once, as data: each core state with the one-character code and the
//! display name a client polling `GET` sees. While an operation waits for the driver the
//! client sees its "Scheduled" state; the core does not record the driver taking the work
//! up, so the in-progress states (`Provisioning`, `Starting`, ...) are never shown, but
//! their codes are accepted in filters.

use crate::domain::lifecycle::State;

/// (core state, code, display name), in the order filters list them.
pub const STATES: &[(State, char, &str)] = &[
    (State::Provisioning, 'p', "Provisioning Scheduled"),
    (State::Running, '+', "Online"),
    // NodeConductor had no reboot: a rebooting instance is still online to it.
    (State::Rebooting, '+', "Online"),
    (State::Stopped, '-', "Offline"),
    (State::Starting, 'a', "Starting Scheduled"),
    (State::Stopping, 'o', "Stopping Scheduled"),
    (State::Error, 'e', "Erred"),
    (State::Deleting, 'd', "Deletion Scheduled"),
    (State::Resizing, 'r', "Resizing Scheduled"),
    (State::Destroyed, 'x', "Deleted"),
    (State::Purged, 'x', "Deleted"),
];

/// The in-progress codes and names of the original, and the core state they belong to.
const IN_PROGRESS: &[(State, char, &str)] = &[
    (State::Provisioning, 'P', "Provisioning"),
    (State::Starting, 'A', "Starting"),
    (State::Stopping, 'O', "Stopping"),
    (State::Deleting, 'D', "Deleting"),
    (State::Resizing, 'R', "Resizing"),
];

/// The display name of a core state.
pub fn display(state: State) -> &'static str {
    STATES
        .iter()
        .find(|(s, _, _)| *s == state)
        .map(|(_, _, d)| *d)
        .unwrap_or("Erred")
}

/// The states a list shows: deleted instances are gone from NodeConductor's lists.
pub fn listed() -> Vec<State> {
    STATES
        .iter()
        .map(|(s, _, _)| *s)
        .filter(|s| s.is_live() || *s == State::Deleting)
        .collect()
}

/// The core states a `state` filter names: by code (as the original filtered) or by
/// display name (case-insensitive); deleted ones are never listed.
pub fn matching(raw: &str) -> Vec<State> {
    let raw = raw.trim();
    let one_char = raw.chars().count() == 1;
    STATES
        .iter()
        .chain(IN_PROGRESS)
        .filter(|(_, code, name)| {
            (one_char && raw.starts_with(*code)) || name.eq_ignore_ascii_case(raw)
        })
        .map(|(s, _, _)| *s)
        .filter(|s| listed().contains(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_state_has_a_display_name() {
        for s in State::ALL {
            assert!(STATES.iter().any(|(st, _, _)| *st == s), "{s}");
        }
        assert_eq!(display(State::Running), "Online");
        assert_eq!(display(State::Deleting), "Deletion Scheduled");
    }

    #[test]
    fn filters_take_codes_and_display_names() {
        assert_eq!(matching("+"), vec![State::Running, State::Rebooting]);
        assert_eq!(matching("online"), vec![State::Running, State::Rebooting]);
        assert_eq!(matching("-"), vec![State::Stopped]);
        assert_eq!(matching("P"), vec![State::Provisioning]);
        assert_eq!(matching("Stopping"), vec![State::Stopping]);
        assert!(
            matching("x").is_empty(),
            "deleted instances are never listed"
        );
        assert!(matching("bogus").is_empty());
    }
}
