//! The read-only resources NodeConductor's create body links to, so a client can find
//! what to reference: `iaas-templates/` (images), `flavors/`, `projects/`, `customers/`,
//! `keys/` (the caller's own SSH keys) and `security-groups/`. Lists are paged like the
//! instance list; each item carries its `url` and `uuid`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::links::{self, Paging, hex, url};
use super::repr::DetailBody;
use super::{Caller, NcError};
use crate::api::AppState;
use crate::domain::catalog::{Kind, Resource, Spec};
use crate::query::{self, QueryError, Reader};

/// How one resource of a collection is shown.
fn item(
    origin: &str,
    collection: &str,
    res: &Resource,
    r: &Reader<'_>,
) -> Result<Value, QueryError> {
    let head = |extra: Value| {
        let mut v = json!({
            "url": url(origin, collection, res.id),
            "uuid": hex(res.id),
            "name": res.name(),
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    };
    Ok(match &res.spec {
        Spec::Flavor {
            vcpus,
            memory_mb,
            disk_gb,
            ..
        } => head(json!({
            "ram": *memory_mb as f64 / 1024.0,
            "disk": *disk_gb as f64,
            "cores": vcpus,
        })),
        Spec::Project { customer_id, .. } => {
            let customer = r.resource_of(*customer_id)?;
            head(json!({
                "customer": url(origin, "customers", *customer_id),
                "customer_name": customer.map(|c| c.name().to_string()).unwrap_or_default(),
                "project_groups": [],
                "resource_quota": null,
                "clouds": [],
            }))
        }
        Spec::SshKey { public_key, .. } => head(json!({ "public_key": public_key })),
        _ if res.kind == Kind::Image => head(json!({
            "description": null,
            "icon_url": null,
            "os": "",
            "setup_fee": null,
            "monthly_fee": null,
        })),
        _ => head(json!({})),
    })
}

/// The collection's path segment for a kind.
fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "iaas-templates",
        Kind::Flavor => "flavors",
        Kind::Project => "projects",
        Kind::Customer => "customers",
        Kind::SshKey => "keys",
        Kind::Network => "networks",
        Kind::SecurityGroup => "security-groups",
        // NodeConductor had no ISOs; nothing links to one.
        Kind::Iso => "isos",
    }
}

/// The resources of a kind this caller sees through NodeConductor.
fn visible(r: &Reader<'_>, kind: Kind) -> Result<Vec<Resource>, QueryError> {
    match kind {
        Kind::Flavor => r.usable_flavors(),
        Kind::SshKey => r.ssh_keys_of(r.caller().user_id),
        other => r.all_resources(other),
    }
}

async fn list_of(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    kind: Kind,
) -> Result<HttpResponse, NcError> {
    let paging = Paging::from_pairs(&links::url_pairs(req.query_string()))?;
    let origin = links::origin(req);
    let items = query::read(&state.ledger, caller, move |r| {
        visible(r, kind)?
            .iter()
            .map(|res| item(&origin, collection(kind), res, r))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let total = items.len();
    let (page, last) = paging.resolve(total)?;
    let shown: Vec<&Value> = items
        .iter()
        .skip((page - 1) * paging.size)
        .take(paging.size)
        .collect();
    Ok(links::paged(req, &shown, total, page, last))
}

async fn one_of(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    kind: Kind,
    raw: &str,
) -> Result<HttpResponse, NcError> {
    let id = links::path_uuid(raw)?;
    let origin = links::origin(req);
    let body = query::read(&state.ledger, caller, move |r| {
        let res = visible(r, kind)?
            .into_iter()
            .find(|res| res.id == id)
            .ok_or_else(|| QueryError::not_found(kind.as_str(), id))?;
        item(&origin, collection(kind), &res, r)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

macro_rules! collection_handlers {
    ($($list:ident, $one:ident => $kind:expr, $collection:literal, $item:literal;)*) => {$(
        #[utoipa::path(get, path = $collection, tag = "nodeconductor",
            params(("page" = Option<String>, Query), ("page_size" = Option<u32>, Query)),
            responses((status = 200, description = "One page; `url`, `uuid`, `name` and the kind's fields", body = Vec<Object>,
                headers(("Link" = String), ("X-Result-Count" = u64))),
                (status = 401, body = DetailBody)),
            security(("nodeconductor_token" = [])))]
        pub async fn $list(state: web::Data<AppState>, req: HttpRequest, caller: Caller) -> Result<HttpResponse, NcError> {
            list_of(&state, &req, &caller, $kind).await
        }

        #[utoipa::path(get, path = $item, tag = "nodeconductor", params(("uuid" = String, Path)),
            responses((status = 200, body = Object), (status = 401, body = DetailBody), (status = 404, body = DetailBody)),
            security(("nodeconductor_token" = [])))]
        pub async fn $one(
            state: web::Data<AppState>,
            req: HttpRequest,
            path: web::Path<String>,
            caller: Caller,
        ) -> Result<HttpResponse, NcError> {
            one_of(&state, &req, &caller, $kind, &path).await
        }
    )*};
}

collection_handlers! {
    templates, template => Kind::Image, "/nodeconductor/api/iaas-templates/", "/nodeconductor/api/iaas-templates/{uuid}/";
    flavors, flavor => Kind::Flavor, "/nodeconductor/api/flavors/", "/nodeconductor/api/flavors/{uuid}/";
    projects, project => Kind::Project, "/nodeconductor/api/projects/", "/nodeconductor/api/projects/{uuid}/";
    customers, customer => Kind::Customer, "/nodeconductor/api/customers/", "/nodeconductor/api/customers/{uuid}/";
    keys, key => Kind::SshKey, "/nodeconductor/api/keys/", "/nodeconductor/api/keys/{uuid}/";
}

/// Every security group, unpaged, with its rule (as the original listed its fixed set).
#[utoipa::path(get, path = "/nodeconductor/api/security-groups/", tag = "nodeconductor",
    responses((status = 200, body = Vec<Object>), (status = 401, body = DetailBody)),
    security(("nodeconductor_token" = [])))]
pub async fn security_groups(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, NcError> {
    let groups = query::read(&state.ledger, &caller, |r| {
        Ok(r.all_resources(Kind::SecurityGroup)?
            .into_iter()
            .filter_map(|g| match g.spec {
                Spec::SecurityGroup {
                    name,
                    description,
                    protocol,
                    from_port,
                    to_port,
                    ip_range,
                } => Some(json!({
                    "name": name,
                    "protocol": protocol,
                    "from_port": from_port,
                    "to_port": to_port,
                    "ip_range": ip_range,
                    "description": description.unwrap_or_default(),
                })),
                _ => None,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(groups))
}
