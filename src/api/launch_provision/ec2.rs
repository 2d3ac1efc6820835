//! EC2 as the wrapper passed it through: the instance states and their codes, what each
//! action does from each state (EC2's own rules, since the wrapper checked none), the
//! 13 attributes of `GET attributes`, and the texts of its errors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::instance::{Command, Instance};
use crate::domain::lifecycle::{PowerState, State};

/// EC2's state name and code of a core state. EC2 has no error state: a failed launch
/// ends terminated (as EC2 put failed launches), a later failure shows stopped.
pub fn state(inst: &Instance) -> (&'static str, u8) {
    match inst.state {
        State::Provisioning | State::Starting => ("pending", 0),
        State::Running | State::Rebooting => ("running", 16),
        State::Stopping => ("stopping", 64),
        State::Stopped => ("stopped", 80),
        State::Resizing => match inst.power_state {
            PowerState::On => ("running", 16),
            PowerState::Off => ("stopped", 80),
        },
        State::Deleting => ("shutting-down", 32),
        State::Destroyed | State::Purged => ("terminated", 48),
        State::Error if inst.launched_at.is_none() => ("terminated", 48),
        State::Error => ("stopped", 80),
    }
}

/// What an action asks of an instance in its current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Submit these commands.
    Do(Vec<Command>),
    /// EC2 accepts it and nothing changes (starting a running instance, rebooting a
    /// terminated one, terminating twice): 200, nothing appended.
    Nothing,
    /// EC2's `IncorrectInstanceState`.
    Refuse,
}

/// EC2's rules for `start`, `stop`, `terminate` and `reboot`.
pub fn plan(action: &str, inst: &Instance, force: bool) -> Plan {
    use State::*;
    let s = inst.state;
    match action {
        "start" => match s {
            Stopped => Plan::Do(vec![Command::Start]),
            Provisioning | Starting | Running | Rebooting => Plan::Nothing,
            _ => Plan::Refuse,
        },
        "stop" => match s {
            Running => Plan::Do(vec![Command::Stop { force }]),
            Stopping if force => Plan::Do(vec![Command::Stop { force: true }]),
            Stopping | Stopped => Plan::Nothing,
            Error if inst.launched_at.is_some() => Plan::Nothing,
            _ => Plan::Refuse,
        },
        "terminate" => match s {
            Destroyed | Deleting => Plan::Nothing,
            Error if inst.launched_at.is_none() => Plan::Nothing,
            // A forced terminate cuts the power now, where the core allows it.
            Running | Stopped | Error if force => Plan::Do(vec![Command::Destroy { force: true }]),
            Purged => Plan::Refuse,
            _ => Plan::Do(vec![Command::Delete { purge: false }]),
        },
        "reboot" => match s {
            Running => Plan::Do(vec![Command::Reboot { soft: false }]),
            Rebooting | Destroyed => Plan::Nothing,
            _ => Plan::Refuse,
        },
        _ => Plan::Refuse,
    }
}

/// The verb of EC2's refusal message for an action.
fn verb(action: &str) -> &'static str {
    match action {
        "start" => "started",
        "stop" => "stopped",
        "terminate" => "terminated",
        _ => "rebooted",
    }
}

/// The wrapper's 408 for a refused action: its fixed prefix (which says "stop" whatever
/// the action) and boto's `str(EC2ResponseError)`.
pub fn incorrect_state(short_id: &str, action: &str, request_id: &str) -> String {
    format!(
        "Error while trying to stop instance via EC2 API. EC2ResponseError: 400 Bad Request\n\
         <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Response><Errors><Error><Code>IncorrectInstanceState</Code><Message>The instance '{short_id}' is not in a state from which it can be {}.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
        verb(action)
    )
}

/// The wrapper's 408 for a launch EC2 refused.
pub const RUN_FAILED: &str =
    "Error while trying to run instance.  Possible malformed request or unavailable endpoint.";
pub const MISSING_LAUNCH: &str = "Required arguments not provided.";
pub const MISSING_MODIFY: &str = "Required arguments attribute and value not provided";
pub const NOT_STOPPED: &str = "Instance must be stopped to modify attributes.";
pub const MODIFY_FAILED: &str = "Instance modification failed.";
pub const MODIFIED: &str = "Instance modification succeeded";
pub const NOT_FOUND: &str = "Instance not found";

/// `GET attributes`: the 13 fields of the document, as boto read them from EC2 (absent
/// addresses null, absent DNS names and group empty).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = launch_provision::Attributes)]
pub struct Attributes {
    /// The `i-` id.
    pub id: String,
    pub public_dns_name: String,
    pub private_dns_name: String,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: &'static str,
    /// 0, 16, 32, 48, 64, 80.
    pub state_code: u8,
    pub key_name: Option<String>,
    /// The flavor's name.
    pub instance_type: String,
    /// `YYYY-MM-DDTHH:MM:SS.000Z`.
    pub launch_time: String,
    /// The image's name (its AMI id).
    pub image_id: String,
    /// The availability zone.
    pub placement: Option<String>,
    pub placement_group: String,
    pub private_ip_address: Option<String>,
    /// There are no public addresses here.
    pub ip_address: Option<String>,
}

/// EC2's `launchTime`.
pub fn launch_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}

/// The attributes of an instance, given the names of its flavor, image and key.
pub fn attributes(
    inst: &Instance,
    flavor: String,
    image: String,
    key: Option<String>,
) -> Attributes {
    let (state, state_code) = state(inst);
    let ip = inst.spec.ip_address.clone();
    Attributes {
        id: inst.spec.short_id.clone(),
        public_dns_name: String::new(),
        private_dns_name: ip
            .as_deref()
            .map(|a| format!("ip-{}.ec2.internal", a.replace(['.', ':'], "-")))
            .unwrap_or_default(),
        state,
        state_code,
        key_name: key,
        instance_type: flavor,
        launch_time: launch_time(inst.created_at),
        image_id: image,
        placement: inst.spec.availability_zone.clone(),
        placement_group: inst
            .spec
            .attributes
            .get("placement_group")
            .cloned()
            .unwrap_or_default(),
        private_ip_address: ip,
        ip_address: None,
    }
}

/// `?filter=a,b`: split at commas as given (no trimming), unknown names dropped.
pub fn filtered(all: &Attributes, filter: Option<&str>) -> BTreeMap<String, Value> {
    let Ok(Value::Object(map)) = serde_json::to_value(all) else {
        return BTreeMap::new();
    };
    match filter {
        None => map.into_iter().collect(),
        Some(f) => {
            let wanted: Vec<&str> = f.split(',').collect();
            map.into_iter()
                .filter(|(k, _)| wanted.contains(&k.as_str()))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_state(state: State, launched: bool) -> Instance {
        let spec = crate::domain::instance::Spec {
            short_id: "i-0000abcd".into(),
            name: "n".into(),
            hostname: None,
            description: None,
            project_id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::nil(),
            sizing: crate::domain::instance::Sizing {
                flavor_id: uuid::Uuid::nil(),
                vcpus: 1,
                memory_mb: 1,
                disk_gb: 1,
            },
            image_id: uuid::Uuid::nil(),
            network_ids: vec![],
            ssh_key_id: None,
            security_groups: vec![],
            availability_zone: None,
            user_data: None,
            tags: BTreeMap::new(),
            ip_address: None,
            attributes: BTreeMap::new(),
            created_by: None,
        };
        let mut inst = crate::domain::instance::evolve(
            None,
            uuid::Uuid::nil(),
            &crate::domain::instance::Event::Created(Box::new(spec)),
            1,
            DateTime::UNIX_EPOCH,
        );
        inst.state = state;
        inst.launched_at = launched.then_some(DateTime::UNIX_EPOCH);
        if !state.is_transitional() {
            inst.target_power_state = None;
            inst.pending_operation = None;
        }
        inst
    }

    #[test]
    fn every_planned_write_is_one_the_core_accepts_in_every_state() {
        for state in State::ALL {
            for launched in [false, true] {
                let inst = in_state(state, launched);
                for action in ["start", "stop", "terminate", "reboot"] {
                    for force in [false, true] {
                        if let Plan::Do(commands) = plan(action, &inst, force) {
                            for c in commands {
                                assert!(
                                    crate::domain::instance::decide(Some(&inst), &c).is_ok(),
                                    "{action} force={force} from {state}: {c:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        // The EC2 rules that matter to a client, spelled out.
        let running = in_state(State::Running, true);
        assert_eq!(plan("start", &running, false), Plan::Nothing);
        assert_eq!(
            plan("reboot", &in_state(State::Destroyed, true), false),
            Plan::Nothing
        );
        assert_eq!(
            plan("start", &in_state(State::Destroyed, true), false),
            Plan::Refuse
        );
        assert_eq!(state(&in_state(State::Error, false)), ("terminated", 48));
        assert_eq!(state(&in_state(State::Error, true)), ("stopped", 80));
    }

    #[test]
    fn launch_time_has_the_codes_colons() {
        let t = DateTime::parse_from_rfc3339("2012-10-29T14:52:37.123Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(launch_time(t), "2012-10-29T14:52:37.000Z");
    }

    #[test]
    fn the_refusal_text_keeps_the_wrappers_fixed_stop_and_ec2s_code() {
        let text = incorrect_state("i-0000abcd", "start", "req-1");
        assert!(text.starts_with(
            "Error while trying to stop instance via EC2 API. EC2ResponseError: 400 Bad Request\n"
        ));
        assert!(text.contains("<Code>IncorrectInstanceState</Code>"));
        assert!(text.contains("can be started."));
    }
}
