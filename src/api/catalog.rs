//! Catalog and tenancy resources: customers, projects, flavors, images, networks and SSH
//! keys. Each kind has create, list and show; all are event-sourced like instances.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::instances::list_params;
use super::openapi::{BadRequest, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType};
use super::problem::ApiError;
use super::request::{Body, Ctx};
use super::{AppState, gate, read, validate};
use crate::authz::{Action, Object, Principal};
use crate::domain::catalog::{Kind, Spec};
use crate::projection::{ResourceView, index};
use crate::service::{Outcome, WriteCommand, WriteRequest};
use crate::store::Snapshot;

/// A kind's request body: how it validates into a resource spec.
pub trait ResourceBody: DeserializeOwned {
    const KIND: Kind;
    /// The plural path segment under `/v1`.
    const PATH: &'static str;
    /// Validates the body, resolving references as the caller may see them.
    fn into_spec(self, snap: &dyn Snapshot, caller: &Principal) -> Result<Spec, ApiError>;
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    name: String,
}

impl ResourceBody for CustomerBody {
    const KIND: Kind = Kind::Customer;
    const PATH: &'static str = "customers";
    fn into_spec(self, _: &dyn Snapshot, _: &Principal) -> Result<Spec, ApiError> {
        Ok(Spec::Named {
            name: validate::name("name", &self.name)?,
        })
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
    fn into_spec(self, snap: &dyn Snapshot, caller: &Principal) -> Result<Spec, ApiError> {
        let name = validate::name("name", &self.name)?;
        let unknown = || ApiError::UnknownReference {
            field: "customer_id".into(),
            id: self.customer_id.to_string(),
            kind: Kind::Customer.as_str(),
        };
        match snap.resource(self.customer_id)? {
            Some(r) if r.kind == Kind::Customer => {}
            _ => return Err(unknown()),
        }
        // A customer the caller has no relation with does not exist for it.
        let object = Object::Customer {
            id: self.customer_id,
        };
        gate::check(caller, Action::CreateProject, &object, unknown())?;
        Ok(Spec::Project {
            name,
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
}

impl ResourceBody for FlavorBody {
    const KIND: Kind = Kind::Flavor;
    const PATH: &'static str = "flavors";
    fn into_spec(self, _: &dyn Snapshot, _: &Principal) -> Result<Spec, ApiError> {
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageBody {
    name: String,
}

impl ResourceBody for ImageBody {
    const KIND: Kind = Kind::Image;
    const PATH: &'static str = "images";
    fn into_spec(self, _: &dyn Snapshot, _: &Principal) -> Result<Spec, ApiError> {
        Ok(Spec::Named {
            name: validate::name("name", &self.name)?,
        })
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
    fn into_spec(self, _: &dyn Snapshot, _: &Principal) -> Result<Spec, ApiError> {
        Ok(Spec::Network {
            name: validate::name("name", &self.name)?,
            cidr: validate::cidr(&self.cidr)?,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshKeyBody {
    name: String,
    public_key: String,
}

impl ResourceBody for SshKeyBody {
    const KIND: Kind = Kind::SshKey;
    const PATH: &'static str = "ssh-keys";
    fn into_spec(self, _: &dyn Snapshot, _: &Principal) -> Result<Spec, ApiError> {
        Ok(Spec::SshKey {
            name: validate::name("name", &self.name)?,
            public_key: validate::public_key(&self.public_key)?,
        })
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
) -> Result<HttpResponse, ApiError> {
    let parsed: B = body.json()?;
    let caller = ctx.principal.clone();
    let spec = read(&state, move |snap| parsed.into_spec(snap, &caller)).await?;
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
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    let params = list_params(req.query_string(), false)?;
    let caller = ctx.principal.clone();
    let body = read(&state, move |snap| {
        let page = match visible_tenancy(snap, B::KIND, &caller)? {
            None => snap.page(
                &[index::resource_kind_key(B::KIND)],
                params.cursor,
                params.limit,
            )?,
            Some(ids) => page_of(ids, params.cursor, params.limit),
        };
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            if let Some(r) = snap.resource(*id)? {
                items.push(ResourceView::from(&r));
            }
        }
        Ok(ResourceList {
            items,
            next_cursor: page.next.map(|id| id.simple().to_string()),
            total: page.total,
        })
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

/// The customers or projects a caller may see, sorted; `None` when it may see all of that
/// kind. Tenancy lists are small per caller, so they are assembled from its grants.
fn visible_tenancy(
    snap: &dyn Snapshot,
    kind: Kind,
    caller: &Principal,
) -> Result<Option<Vec<Uuid>>, ApiError> {
    if caller.staff || !matches!(kind, Kind::Customer | Kind::Project) {
        return Ok(None);
    }
    let mut ids: Vec<Uuid> = match kind {
        Kind::Customer => caller
            .owned_customers
            .iter()
            .copied()
            .chain(caller.project_roles.values().map(|(_, c)| *c))
            .collect(),
        _ => {
            let mut ids: Vec<Uuid> = caller.project_roles.keys().copied().collect();
            for customer in &caller.owned_customers {
                let mut after = None;
                loop {
                    let page = snap.page(&[index::projects_of_key(*customer)], after, 1000)?;
                    ids.extend(&page.ids);
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
            ids
        }
    };
    ids.sort();
    ids.dedup();
    Ok(Some(ids))
}

fn page_of(ids: Vec<Uuid>, cursor: Option<Uuid>, limit: usize) -> crate::projection::Page {
    let total = ids.len() as u64;
    let mut rest: Vec<Uuid> = ids
        .into_iter()
        .filter(|id| cursor.is_none_or(|c| *id > c))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    crate::projection::Page {
        next: if more { rest.last().copied() } else { None },
        ids: rest,
        total,
    }
}

/// The documented, per-kind handlers; each delegates to the generic one.
macro_rules! kind_handlers {
    ($body:ty, $create:ident, $list:ident, $show:ident, $collection:literal, $item:literal) => {
        #[utoipa::path(post, path = $collection, tag = "catalog", request_body = $body,
            params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and request return the original answer")),
            responses(
                (status = 201, description = "Created", body = ResourceView, headers(("Location" = String))),
                (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge),
                (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable),
            ))]
        pub async fn $create(state: web::Data<AppState>, ctx: Ctx, body: Body) -> Result<HttpResponse, ApiError> {
            create::<$body>(state, ctx, body).await
        }

        #[utoipa::path(get, path = $collection, tag = "catalog",
            params(("limit" = Option<u32>, Query, description = "1 to 1000, default 50"),
                   ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
            responses((status = 200, description = "A page in creation order", body = ResourceList), (status = 400, response = BadRequest)))]
        pub async fn $list(state: web::Data<AppState>, req: HttpRequest, ctx: Ctx) -> Result<HttpResponse, ApiError> {
            list::<$body>(state, req, ctx).await
        }

        #[utoipa::path(get, path = $item, tag = "catalog", params(("id" = Uuid, Path)),
            responses((status = 200, description = "The resource", body = ResourceView), (status = 404, response = NotFound)))]
        pub async fn $show(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
            show::<$body>(state, path).await
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
