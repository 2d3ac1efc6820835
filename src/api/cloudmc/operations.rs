//! What each change asks of the core, with its documented precondition: the
//! `?operation=`s, the update, and the destroy. Each answers the commands to submit at
//! the version read, or CloudMC's error.

use actix_web::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::body::Fields;
use super::{CmError, Op, code, tasks};
use crate::domain::catalog::{Kind, Spec as CatalogSpec};
use crate::domain::instance::{Command, Instance, Patch};
use crate::domain::lifecycle::State;
use crate::query;
use crate::service::Sizes;

/// The documented operations, as `?operation=` spells them.
pub const OPERATIONS: &[&str] = &[
    "start",
    "stop",
    "reboot",
    "purge",
    "recover",
    "changeComputeOffering",
    "resetPassword",
    "changeNetwork",
    "associateSSHKey",
    "attachIso",
    "detachIso",
];

fn require(inst: &Instance, verb: &str, allowed: &[State]) -> Result<(), CmError> {
    if allowed.contains(&inst.state) {
        Ok(())
    } else {
        Err(CmError::state(inst.id, verb, inst.state, allowed))
    }
}

const RUNNING_OR_STOPPED: &[State] = &[State::Running, State::Stopped];

/// A reboot after a change that needs one, when the instance runs.
fn then_reboot(inst: &Instance, mut commands: Vec<Command>) -> Vec<Command> {
    if inst.state == State::Running {
        commands.push(Command::Reboot { soft: false });
    }
    commands
}

/// The sizes a custom offering needs, refused for a fixed one.
pub async fn sizes(op: &Op, flavor: Uuid, f: &Fields) -> Result<Option<Sizes>, CmError> {
    let caller = op.ctx.principal.clone();
    let custom = query::read(&op.state.ledger, &caller, move |r| {
        Ok(r.resource(Kind::Flavor, &flavor.to_string())
            .ok()
            .map(|res| matches!(res.spec, CatalogSpec::Flavor { custom: true, .. })))
    })
    .await?
    .ok_or_else(|| {
        CmError::invalid(
            "computeOfferingId",
            format!("{flavor} is not a known compute offering"),
        )
    })?;
    let (cpu, memory) = (f.int("cpuCount")?, f.int("memoryInMB")?);
    match (custom, cpu, memory) {
        (true, Some(c), Some(m)) => Ok(Some(Sizes {
            vcpus: u32::try_from(c).map_err(|_| CmError::invalid("cpuCount", "too many CPUs"))?,
            memory_mb: m,
        })),
        (true, None, _) => Err(CmError::missing("cpuCount")),
        (true, _, None) => Err(CmError::missing("memoryInMB")),
        (false, None, None) => Ok(None),
        (false, _, _) => Err(CmError::invalid(
            "cpuCount",
            "cpuCount and memoryInMB may only be given for a custom compute offering",
        )),
    }
}

/// A key by name: the caller's own first, then any the caller may see.
pub async fn key_named(op: &Op, name: &str) -> Result<Uuid, CmError> {
    let caller = op.ctx.principal.clone();
    let wanted = name.to_string();
    let found = query::read(&op.state.ledger, &caller, move |r| {
        let own = r
            .ssh_keys_of(r.caller().user_id)?
            .into_iter()
            .find(|k| k.name() == wanted)
            .map(|k| k.id);
        match own {
            Some(id) => Ok(Some(id)),
            None => Ok(r.resource_named(Kind::SshKey, &wanted)?.map(|k| k.id)),
        }
    })
    .await?;
    found.ok_or_else(|| CmError::invalid("sshKeyName", format!("No SSH key named {name}")))
}

/// The commands of `?operation=<name>` on `inst`.
pub async fn operation(
    op: &Op,
    name: &str,
    inst: &Instance,
    f: &Fields,
    token: &str,
) -> Result<Vec<Command>, CmError> {
    match name {
        "start" => {
            require(inst, "start", &[State::Stopped])?;
            Ok(vec![Command::Start])
        }
        "stop" => {
            require(inst, "stop", &[State::Running, State::Stopping])?;
            // A stop while stopping is always forced.
            let force = f.flag("forceStop")? || inst.state == State::Stopping;
            Ok(vec![Command::Stop { force }])
        }
        "reboot" => {
            require(inst, "reboot", RUNNING_OR_STOPPED)?;
            Ok(vec![Command::Reboot { soft: false }])
        }
        "purge" => {
            require(inst, "purge", &[State::Destroyed])?;
            Ok(vec![Command::Purge])
        }
        "recover" => {
            require(inst, "recover", &[State::Destroyed])?;
            Ok(vec![Command::Recover])
        }
        "changeComputeOffering" => {
            // The Go client sends its network change under this name with a networkId.
            if f.0.contains_key("networkId") && !f.0.contains_key("computeOfferingId") {
                return Box::pin(operation(op, "changeNetwork", inst, f, token)).await;
            }
            let flavor = f.required_uuid("computeOfferingId")?;
            require(inst, "change the compute offering of", RUNNING_OR_STOPPED)?;
            let sizes = sizes(op, flavor, f).await?;
            let sizing = op
                .state
                .ledger
                .flavor_sizing(flavor, Some(inst.spec.project_id), sizes)
                .await
                .map_err(|e| CmError::Failure(e.into()))?;
            Ok(vec![Command::RequestResize(sizing)])
        }
        "resetPassword" => {
            require(inst, "reset the password of", RUNNING_OR_STOPPED)?;
            let password = tasks::password(token, inst.id, inst.version + 1);
            Ok(vec![Command::ResetPassword {
                digest: tasks::digest(&password),
            }])
        }
        "changeNetwork" => {
            let network = f.required_uuid("networkId")?;
            require(inst, "change the network of", RUNNING_OR_STOPPED)?;
            let caller = op.ctx.principal.clone();
            let exists = query::read(&op.state.ledger, &caller, move |r| {
                Ok(r.resource(Kind::Network, &network.to_string()).is_ok())
            })
            .await?;
            if !exists {
                return Err(CmError::invalid(
                    "networkId",
                    format!("{network} is not a known network"),
                ));
            }
            Ok(then_reboot(
                inst,
                vec![Command::ChangeNetwork {
                    network_id: network,
                    ip_address: None,
                }],
            ))
        }
        "associateSSHKey" => {
            let name = f.required_text("sshKeyName")?;
            require(inst, "associate an SSH key to", RUNNING_OR_STOPPED)?;
            let ssh_key_id = key_named(op, &name).await?;
            Ok(vec![Command::AssociateSshKey { ssh_key_id }])
        }
        "attachIso" => {
            let iso = f.required_uuid("isoId")?;
            require(inst, "attach an ISO to", RUNNING_OR_STOPPED)?;
            let caller = op.ctx.principal.clone();
            let bootable = query::read(&op.state.ledger, &caller, move |r| {
                Ok(r.resource(Kind::Iso, &iso.to_string())
                    .ok()
                    .map(|res| matches!(res.spec, CatalogSpec::Iso { bootable: true, .. })))
            })
            .await?;
            match bootable {
                None => Err(CmError::invalid(
                    "isoId",
                    format!("{iso} is not a known ISO"),
                )),
                Some(true) => Err(CmError::invalid(
                    "isoId",
                    "Only a non-bootable ISO can be attached to an instance",
                )),
                Some(false) if inst.iso_id.is_some() => Err(CmError::api(
                    StatusCode::BAD_REQUEST,
                    code::CONFLICT,
                    "An instance may have only one ISO attached at a time",
                    json!({"id": inst.id, "isoId": inst.iso_id, "type": "instances"}),
                )),
                Some(false) => Ok(vec![Command::AttachIso { iso_id: iso }]),
            }
        }
        "detachIso" => {
            require(inst, "detach the ISO from", RUNNING_OR_STOPPED)?;
            if inst.iso_id.is_none() {
                return Err(CmError::api(
                    StatusCode::BAD_REQUEST,
                    code::CONFLICT,
                    "The specified instance has no ISO attached to it",
                    json!({"id": inst.id, "type": "instances"}),
                ));
            }
            Ok(vec![Command::DetachIso])
        }
        other => Err(CmError::api(
            StatusCode::BAD_REQUEST,
            code::UNKNOWN_OPERATION,
            format!("Unknown operation {other:?} on instances"),
            json!({"operation": other, "operations": OPERATIONS, "type": "instances"}),
        )),
    }
}

/// The update: `name` and `hostname`; a hostname change reboots a running instance.
pub fn update(inst: &Instance, f: &Fields) -> Result<Vec<Command>, CmError> {
    let name = f.text("name")?.map(|n| n.trim().to_string());
    let hostname = f.text("hostname")?.map(|h| h.trim().to_string());
    if name.as_deref() == Some("") {
        return Err(CmError::invalid("name", "name must not be empty"));
    }
    if let Some(h) = &hostname
        && (h.is_empty()
            || h.len() > 63
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    {
        return Err(CmError::invalid(
            "hostname",
            "hostname must be 1 to 63 letters, digits, '-', '_' or '.'",
        ));
    }
    if inst.state == State::Purged || inst.state.is_transitional() {
        return Err(CmError::state(
            inst.id,
            "update",
            inst.state,
            &[
                State::Running,
                State::Stopped,
                State::Error,
                State::Destroyed,
            ],
        ));
    }
    let renamed_host = hostname
        .as_ref()
        .is_some_and(|h| Some(h) != inst.spec.hostname.as_ref());
    let patch = Patch {
        name,
        hostname: hostname.map(Some),
        ..Patch::default()
    };
    let commands = vec![Command::Update(patch)];
    Ok(if renamed_host {
        then_reboot(inst, commands)
    } else {
        commands
    })
}

/// The destroy: from Running, Stopped or Error; `purgeImmediately` purges, otherwise it
/// is Destroyed and recoverable (a running one is stopped first).
pub fn destroy(inst: &Instance, f: &Fields) -> Result<Vec<Command>, CmError> {
    require(
        inst,
        "destroy",
        &[State::Running, State::Stopped, State::Error],
    )?;
    // Public IPs, volumes and snapshots are not modelled: there is nothing of the
    // instance's to release, and the flags are only checked for their type.
    f.list("publicIpIdsToRelease")?;
    f.list("volumeIdsToDelete")?;
    f.flag("deleteSnapshots")?;
    Ok(match (f.flag("purgeImmediately")?, inst.state) {
        (true, _) => vec![Command::Delete { purge: true }],
        (false, State::Running) => vec![Command::Delete { purge: false }],
        (false, _) => vec![Command::Destroy { force: false }],
    })
}
