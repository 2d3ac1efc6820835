//! Catalog and tenancy resources: customers, projects, flavors, images, networks and SSH
//! keys. Each kind has create, list and show; all are event-sourced like instances.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::{
    BadRequest, Conflict, IdempotencyHeader, NotFound, PayloadTooLarge, Unprocessable,
    UnsupportedMediaType,
};
use super::params::page;
use super::{Body, Caller, Ctx, NativeError};
use crate::api::failure::Input;
use crate::api::{AppState, Failure, validate};
use crate::domain::catalog::{Kind, Spec};
use crate::limits;
use crate::projection::ResourceView;
use crate::query;
use crate::service::{Outcome, Reference, WriteCommand, WriteRequest};

/// A validated body: a spec ready to write once the references it names exist, or a
/// project whose customer the service must still resolve and authorize.
pub enum Draft {
    Ready(Spec),
    Referencing {
        spec: Spec,
        references: Vec<(Reference, Uuid)>,
    },
    Project {
        name: String,
        customer_id: Uuid,
    },
}

/// A kind's request body: how it validates into a resource spec.
pub trait ResourceBody: DeserializeOwned {
    const KIND: Kind;
    /// The plural path segment under `/v1`.
    const PATH: &'static str;
    fn validate(self) -> Result<Draft, Failure>;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    name: String,
}

impl ResourceBody for CustomerBody {
    const KIND: Kind = Kind::Customer;
    const PATH: &'static str = "customers";
    fn validate(self) -> Result<Draft, Failure> {
        Ok(Draft::Ready(Spec::Named {
            name: validate::name("name", &self.name)?,
        }))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    name: String,
    customer_id: Uuid,
}

impl ResourceBody for ProjectBody {
    const KIND: Kind = Kind::Project;
    const PATH: &'static str = "projects";
    fn validate(self) -> Result<Draft, Failure> {
        Ok(Draft::Project {
            name: validate::name("name", &self.name)?,
            customer_id: self.customer_id,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorBody {
    name: String,
    vcpus: u32,
    memory_mb: u64,
    disk_gb: u64,
    /// Only these projects may use it (default: every project).
    #[serde(default)]
    projects: Vec<Uuid>,
    /// Instances name their own vCPUs and memory, up to the flavor's.
    #[serde(default)]
    custom: bool,
}

impl ResourceBody for FlavorBody {
    const KIND: Kind = Kind::Flavor;
    const PATH: &'static str = "flavors";
    fn validate(self) -> Result<Draft, Failure> {
        let (lo, hi) = limits::FLAVOR_VCPUS;
        validate::range("vcpus", self.vcpus.into(), lo, hi)?;
        let (lo, hi) = limits::FLAVOR_MEMORY_MB;
        validate::range("memory_mb", self.memory_mb, lo, hi)?;
        let (lo, hi) = limits::FLAVOR_DISK_GB;
        validate::range("disk_gb", self.disk_gb, lo, hi)?;
        let mut projects = self.projects;
        projects.sort();
        projects.dedup();
        Ok(Draft::Referencing {
            references: projects.iter().map(|p| (Reference::Project, *p)).collect(),
            spec: Spec::Flavor {
                name: validate::name("name", &self.name)?,
                vcpus: self.vcpus,
                memory_mb: self.memory_mb,
                disk_gb: self.disk_gb,
                projects,
                custom: self.custom,
            },
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageBody {
    name: String,
}

impl ResourceBody for ImageBody {
    const KIND: Kind = Kind::Image;
    const PATH: &'static str = "images";
    fn validate(self) -> Result<Draft, Failure> {
        Ok(Draft::Ready(Spec::Named {
            name: validate::name("name", &self.name)?,
        }))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IsoBody {
    name: String,
    /// Bootable ISOs install systems; only the others are attached to instances.
    #[serde(default)]
    bootable: bool,
}

impl ResourceBody for IsoBody {
    const KIND: Kind = Kind::Iso;
    const PATH: &'static str = "isos";
    fn validate(self) -> Result<Draft, Failure> {
        Ok(Draft::Ready(Spec::Iso {
            name: validate::name("name", &self.name)?,
            bootable: self.bootable,
        }))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkBody {
    name: String,
    cidr: String,
}

impl ResourceBody for NetworkBody {
    const KIND: Kind = Kind::Network;
    const PATH: &'static str = "networks";
    fn validate(self) -> Result<Draft, Failure> {
        Ok(Draft::Ready(Spec::Network {
            name: validate::name("name", &self.name)?,
            cidr: validate::cidr(&self.cidr)?,
        }))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshKeyBody {
    name: String,
    public_key: String,
    /// The user whose own key it is (dialects that keep keys per user show it to them).
    user_id: Option<Uuid>,
}

impl ResourceBody for SshKeyBody {
    const KIND: Kind = Kind::SshKey;
    const PATH: &'static str = "ssh-keys";
    fn validate(self) -> Result<Draft, Failure> {
        Ok(Draft::Referencing {
            references: self.user_id.iter().map(|u| (Reference::User, *u)).collect(),
            spec: Spec::SshKey {
                name: validate::name("name", &self.name)?,
                public_key: validate::public_key(&self.public_key)?,
                owner: self.user_id,
            },
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupBody {
    /// Unique among security groups: instances refer to groups by name.
    name: String,
    description: Option<String>,
    /// `tcp`, `udp` or `icmp`.
    protocol: String,
    from_port: u16,
    to_port: u16,
    /// The sources allowed in, as a CIDR block.
    ip_range: String,
}

impl ResourceBody for SecurityGroupBody {
    const KIND: Kind = Kind::SecurityGroup;
    const PATH: &'static str = "security-groups";
    fn validate(self) -> Result<Draft, Failure> {
        let protocol = self.protocol.to_ascii_lowercase();
        if !["tcp", "udp", "icmp"].contains(&protocol.as_str()) {
            return Err(Failure::bad_request(
                Input::InvalidField,
                "protocol: must be tcp, udp or icmp",
            ));
        }
        // The range's two ends, in either order: no schema can require an order, and
        // "80 to 22" names the same ports as "22 to 80".
        let (from_port, to_port) = (
            self.from_port.min(self.to_port),
            self.from_port.max(self.to_port),
        );
        Ok(Draft::Ready(Spec::SecurityGroup {
            name: validate::name("name", &self.name)?,
            description: self
                .description
                .as_deref()
                .map(|d| validate::text("description", d, limits::DESCRIPTION_CHARS))
                .transpose()?,
            protocol,
            from_port,
            to_port,
            ip_range: validate::cidr(&self.ip_range).map_err(|_| {
                Failure::bad_request(
                    Input::InvalidField,
                    "ip_range: must be a CIDR block like 0.0.0.0/0",
                )
            })?,
        }))
    }
}

/// A page of catalog resources in creation order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    pub items: Vec<ResourceView>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

pub async fn create<B: ResourceBody + Send + 'static>(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, NativeError> {
    let parsed: B = body.json()?;
    let spec = match parsed.validate()? {
        Draft::Ready(spec) => spec,
        Draft::Referencing { spec, references } => {
            state.ledger.references_exist(references).await?;
            spec
        }
        Draft::Project { name, customer_id } => {
            state
                .ledger
                .prepare_project(&ctx.principal, name, customer_id)
                .await?
        }
    };
    let reply = state
        .ledger
        .submit(WriteRequest {
            command: WriteCommand::CreateResource {
                kind: B::KIND,
                spec,
            },
            meta: ctx.meta(&body.bytes),
            expected_version: None,
        })
        .await?;
    let Outcome::Resource(resource) = &reply.outcome else {
        return Err(Failure::Internal("expected a resource outcome".into()).into());
    };
    let mut resp = HttpResponse::Created();
    resp.insert_header((header::LOCATION, format!("/v1/{}/{}", B::PATH, resource.id)));
    if reply.replayed {
        resp.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(resp.json(ResourceView::from(resource)))
}

pub async fn list<B: ResourceBody>(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let page = page(&state, &caller, req.query_string(), |r, cursor, limit| {
        r.resources(B::KIND, cursor, limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ResourceList {
        items: page.items.iter().map(ResourceView::from).collect(),
        next_cursor: page.next.map(|id| id.simple().to_string()),
        total: page.total,
    }))
}

pub async fn show<B: ResourceBody>(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let raw = path.into_inner();
    let resource = query::read(&state.ledger, &caller, move |r| r.resource(B::KIND, &raw)).await?;
    Ok(HttpResponse::Ok().json(ResourceView::from(&resource)))
}

/// The documented, per-kind handlers; each delegates to the generic one.
macro_rules! kind_handlers {
    ($body:ty, $create:ident, $list:ident, $show:ident, $collection:literal, $item:literal) => {
        #[utoipa::path(post, path = $collection, tag = "catalog", request_body = $body,
            params(IdempotencyHeader),
            responses(
                (status = 201, description = "Created", body = ResourceView, headers(("Location" = String))),
                (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge),
                (status = 409, response = Conflict), (status = 415, response = UnsupportedMediaType),
                (status = 422, response = Unprocessable),
            ))]
        pub async fn $create(state: web::Data<AppState>, ctx: Ctx, body: Body) -> Result<HttpResponse, NativeError> {
            create::<$body>(state, ctx, body).await
        }

        #[utoipa::path(get, path = $collection, tag = "catalog",
            params(("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
                   ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
            responses((status = 200, description = "A page in creation order", body = ResourceList), (status = 400, response = BadRequest)))]
        pub async fn $list(state: web::Data<AppState>, req: HttpRequest, caller: Caller) -> Result<HttpResponse, NativeError> {
            list::<$body>(state, req, caller).await
        }

        #[utoipa::path(get, path = $item, tag = "catalog", params(("id" = Uuid, Path)),
            responses((status = 200, description = "The resource", body = ResourceView), (status = 404, response = NotFound)))]
        pub async fn $show(state: web::Data<AppState>, path: web::Path<String>, caller: Caller) -> Result<HttpResponse, NativeError> {
            show::<$body>(state, path, caller).await
        }
    };
}

kind_handlers!(
    CustomerBody,
    create_customer,
    list_customers,
    show_customer,
    "/v1/customers",
    "/v1/customers/{id}"
);
kind_handlers!(
    ProjectBody,
    create_project,
    list_projects,
    show_project,
    "/v1/projects",
    "/v1/projects/{id}"
);
kind_handlers!(
    FlavorBody,
    create_flavor,
    list_flavors,
    show_flavor,
    "/v1/flavors",
    "/v1/flavors/{id}"
);
kind_handlers!(
    ImageBody,
    create_image,
    list_images,
    show_image,
    "/v1/images",
    "/v1/images/{id}"
);
kind_handlers!(
    IsoBody,
    create_iso,
    list_isos,
    show_iso,
    "/v1/isos",
    "/v1/isos/{id}"
);
kind_handlers!(
    NetworkBody,
    create_network,
    list_networks,
    show_network,
    "/v1/networks",
    "/v1/networks/{id}"
);
kind_handlers!(
    SshKeyBody,
    create_ssh_key,
    list_ssh_keys,
    show_ssh_key,
    "/v1/ssh-keys",
    "/v1/ssh-keys/{id}"
);
kind_handlers!(
    SecurityGroupBody,
    create_security_group,
    list_security_groups,
    show_security_group,
    "/v1/security-groups",
    "/v1/security-groups/{id}"
);
