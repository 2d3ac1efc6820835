//! Catalog and tenancy resources: customers, projects, flavors, images, networks and SSH
//! keys. Each kind has create, list and show; all are event-sourced like instances.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use super::instances::list_params;
use super::problem::ApiError;
use super::request::{Body, Ctx};
use super::{AppState, read, validate};
use crate::domain::catalog::{Kind, Spec};
use crate::projection::{ResourceView, index};
use crate::service::{Outcome, WriteCommand, WriteRequest};
use crate::store::Snapshot;

/// A kind's request body: how it validates into a resource spec.
pub trait ResourceBody: DeserializeOwned {
    const KIND: Kind;
    /// The plural path segment under `/v1`.
    const PATH: &'static str;
    fn into_spec(self, snap: &dyn Snapshot) -> Result<Spec, ApiError>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    name: String,
}

impl ResourceBody for CustomerBody {
    const KIND: Kind = Kind::Customer;
    const PATH: &'static str = "customers";
    fn into_spec(self, _: &dyn Snapshot) -> Result<Spec, ApiError> {
        Ok(Spec::Named {
            name: validate::name("name", &self.name)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectBody {
    name: String,
    customer_id: Uuid,
}

impl ResourceBody for ProjectBody {
    const KIND: Kind = Kind::Project;
    const PATH: &'static str = "projects";
    fn into_spec(self, snap: &dyn Snapshot) -> Result<Spec, ApiError> {
        let name = validate::name("name", &self.name)?;
        match snap.resource(self.customer_id)? {
            Some(r) if r.kind == Kind::Customer => {}
            _ => {
                return Err(ApiError::UnknownReference {
                    field: "customer_id".into(),
                    id: self.customer_id.to_string(),
                    kind: Kind::Customer.as_str(),
                });
            }
        }
        Ok(Spec::Project {
            name,
            customer_id: self.customer_id,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorBody {
    name: String,
    vcpus: u32,
    memory_mb: u64,
    disk_gb: u64,
}

impl ResourceBody for FlavorBody {
    const KIND: Kind = Kind::Flavor;
    const PATH: &'static str = "flavors";
    fn into_spec(self, _: &dyn Snapshot) -> Result<Spec, ApiError> {
        validate::range("vcpus", self.vcpus.into(), 1, 1024)?;
        validate::range("memory_mb", self.memory_mb, 1, 64 * 1024 * 1024)?;
        validate::range("disk_gb", self.disk_gb, 0, 1024 * 1024)?;
        Ok(Spec::Flavor {
            name: validate::name("name", &self.name)?,
            vcpus: self.vcpus,
            memory_mb: self.memory_mb,
            disk_gb: self.disk_gb,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageBody {
    name: String,
}

impl ResourceBody for ImageBody {
    const KIND: Kind = Kind::Image;
    const PATH: &'static str = "images";
    fn into_spec(self, _: &dyn Snapshot) -> Result<Spec, ApiError> {
        Ok(Spec::Named {
            name: validate::name("name", &self.name)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkBody {
    name: String,
    cidr: String,
}

impl ResourceBody for NetworkBody {
    const KIND: Kind = Kind::Network;
    const PATH: &'static str = "networks";
    fn into_spec(self, _: &dyn Snapshot) -> Result<Spec, ApiError> {
        Ok(Spec::Network {
            name: validate::name("name", &self.name)?,
            cidr: validate::cidr(&self.cidr)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeyBody {
    name: String,
    public_key: String,
}

impl ResourceBody for SshKeyBody {
    const KIND: Kind = Kind::SshKey;
    const PATH: &'static str = "ssh-keys";
    fn into_spec(self, _: &dyn Snapshot) -> Result<Spec, ApiError> {
        Ok(Spec::SshKey {
            name: validate::name("name", &self.name)?,
            public_key: validate::public_key(&self.public_key)?,
        })
    }
}

pub async fn create<B: ResourceBody + Send + 'static>(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let parsed: B = body.json()?;
    let spec = read(&state, move |snap| parsed.into_spec(snap)).await?;
    let reply = state
        .ledger
        .submit(WriteRequest {
            command: WriteCommand::CreateResource {
                kind: B::KIND,
                spec,
            },
            meta: ctx.meta(&body.0),
            expected_version: None,
        })
        .await?;
    let Outcome::Resource(resource) = &reply.outcome else {
        return Err(ApiError::Internal("expected a resource outcome".into()));
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
) -> Result<HttpResponse, ApiError> {
    let params = list_params(req.query_string(), false)?;
    let body = read(&state, move |snap| {
        let page = snap.page(
            &[index::resource_kind_key(B::KIND)],
            params.cursor,
            params.limit,
        )?;
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            if let Some(r) = snap.resource(*id)? {
                items.push(ResourceView::from(&r));
            }
        }
        Ok(json!({
            "items": items,
            "next_cursor": page.next.map(|id| id.simple().to_string()),
            "total": page.total,
        }))
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

pub async fn show<B: ResourceBody>(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let not_found = || ApiError::NotFound(format!("{} {raw}", B::KIND.as_str()));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let resource = read(&state, move |snap| Ok(snap.resource(id)?)).await?;
    match resource {
        Some(r) if r.kind == B::KIND => Ok(HttpResponse::Ok().json(ResourceView::from(&r))),
        _ => Err(not_found()),
    }
}
