//! How NodeConductor showed things: the instance (`InstanceSerializer`) and what create
//! and update answer (`InstanceCreateSerializer`), and the bodies its operations take and
//! give, as schemas for the OpenAPI document.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::links::{hex, url};
use super::states::display;
use crate::domain::catalog::{Kind, Spec};
use crate::domain::instance::Instance;
use crate::query::{QueryError, Reader};

/// A security group named in a create body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = nodeconductor::GroupName)]
#[allow(dead_code)] // read from the raw body; the type documents it
pub struct GroupName {
    name: String,
}

/// The create body: hyperlinks to this server's resources.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = nodeconductor::InstanceCreate)]
#[allow(dead_code)] // read from the raw body (fields are validated one by one)
pub struct CreateBody {
    /// At most 80 characters.
    hostname: String,
    /// At most 200 characters.
    description: Option<String>,
    /// `.../nodeconductor/api/iaas-templates/<uuid>/`
    template: String,
    /// `.../nodeconductor/api/flavors/<uuid>/`; the project must be allowed to use it.
    flavor: String,
    /// `.../nodeconductor/api/projects/<uuid>/`
    project: String,
    /// `.../nodeconductor/api/keys/<uuid>/`: one of the caller's own keys.
    ssh_public_key: String,
    security_groups: Option<Vec<GroupName>>,
}

/// The update body (PUT needs `hostname`; PATCH takes either).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = nodeconductor::InstanceUpdate)]
#[allow(dead_code)] // read from the raw body
pub struct UpdateBody {
    hostname: Option<String>,
    description: Option<String>,
}

/// The resize body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = nodeconductor::Resize)]
#[allow(dead_code)] // read from the raw body
pub struct ResizeBody {
    /// A flavor uuid or URL.
    flavor: String,
}

/// `{"status": "..."}`: a scheduled operation, or a refused transition (409).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = nodeconductor::Status)]
pub struct StatusBody {
    pub status: String,
}

/// `{"detail": "..."}`: how DRF answers most refusals.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = nodeconductor::Detail)]
pub struct DetailBody {
    pub detail: String,
}

/// A security group as an instance shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = nodeconductor::SecurityGroup)]
pub struct GroupRepr {
    pub name: String,
    pub protocol: Option<String>,
    pub from_port: Option<u16>,
    pub to_port: Option<u16>,
    pub ip_range: Option<String>,
}

/// `InstanceSerializer`, field for field.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = nodeconductor::Instance)]
pub struct InstanceRepr {
    pub url: String,
    pub uuid: String,
    pub hostname: String,
    pub description: Option<String>,
    pub start_time: Option<String>,
    pub template: String,
    pub template_name: String,
    pub flavor: String,
    pub flavor_name: String,
    pub project: String,
    pub project_name: String,
    pub customer: String,
    pub customer_name: String,
    pub ssh_public_key: Option<String>,
    pub ssh_public_key_name: String,
    #[schema(value_type = Vec<Object>)]
    pub project_groups: Vec<Value>,
    pub security_groups: Vec<GroupRepr>,
    pub ips: Vec<String>,
    pub state: &'static str,
    /// The seed document calls the field `status`; the code emitted `state`. Both.
    pub status: &'static str,
    #[schema(value_type = Vec<Object>)]
    pub backups: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub backup_schedules: Vec<Value>,
}

/// `InstanceCreateSerializer`: what create and update answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = nodeconductor::CreatedInstance)]
pub struct CreatedRepr {
    pub url: String,
    pub hostname: String,
    pub description: Option<String>,
    pub template: String,
    pub flavor: String,
    pub project: String,
    pub security_groups: Vec<GroupRepr>,
    pub ssh_public_key: Option<String>,
}

fn name_of(r: &Reader<'_>, id: Uuid) -> Result<String, QueryError> {
    Ok(r.resource_of(id)?
        .map(|res| res.name().to_string())
        .unwrap_or_default())
}

fn groups(r: &Reader<'_>, names: &[String]) -> Result<Vec<GroupRepr>, QueryError> {
    names
        .iter()
        .map(|name| {
            let found = r.resource_named(Kind::SecurityGroup, name)?;
            Ok(match found.map(|g| g.spec) {
                Some(Spec::SecurityGroup {
                    protocol,
                    from_port,
                    to_port,
                    ip_range,
                    ..
                }) => GroupRepr {
                    name: name.clone(),
                    protocol: Some(protocol),
                    from_port: Some(from_port),
                    to_port: Some(to_port),
                    ip_range: Some(ip_range),
                },
                _ => GroupRepr {
                    name: name.clone(),
                    protocol: None,
                    from_port: None,
                    to_port: None,
                    ip_range: None,
                },
            })
        })
        .collect()
}

pub fn repr(r: &Reader<'_>, origin: &str, inst: &Instance) -> Result<InstanceRepr, QueryError> {
    let s = &inst.spec;
    let key = s.ssh_key_id;
    let state = display(inst.state);
    Ok(InstanceRepr {
        url: url(origin, "instances", inst.id),
        uuid: hex(inst.id),
        hostname: s.name.clone(),
        description: s.description.clone(),
        start_time: None,
        template: url(origin, "iaas-templates", s.image_id),
        template_name: name_of(r, s.image_id)?,
        flavor: url(origin, "flavors", s.sizing.flavor_id),
        flavor_name: name_of(r, s.sizing.flavor_id)?,
        project: url(origin, "projects", s.project_id),
        project_name: name_of(r, s.project_id)?,
        customer: url(origin, "customers", s.customer_id),
        customer_name: name_of(r, s.customer_id)?,
        ssh_public_key: key.map(|k| url(origin, "keys", k)),
        ssh_public_key_name: match key {
            Some(k) => name_of(r, k)?,
            None => String::new(),
        },
        project_groups: Vec::new(),
        security_groups: groups(r, &s.security_groups)?,
        ips: s.ip_address.iter().cloned().collect(),
        state,
        status: state,
        backups: Vec::new(),
        backup_schedules: Vec::new(),
    })
}

pub fn created_repr(
    r: &Reader<'_>,
    origin: &str,
    inst: &Instance,
) -> Result<CreatedRepr, QueryError> {
    let s = &inst.spec;
    Ok(CreatedRepr {
        url: url(origin, "instances", inst.id),
        hostname: s.name.clone(),
        description: s.description.clone(),
        template: url(origin, "iaas-templates", s.image_id),
        flavor: url(origin, "flavors", s.sizing.flavor_id),
        project: url(origin, "projects", s.project_id),
        security_groups: groups(r, &s.security_groups)?,
        ssh_public_key: s.ssh_key_id.map(|k| url(origin, "keys", k)),
    })
}
