//! The read-only catalog the client calls (flavors, availability zones) and the public
//! version documents.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::instances::{origin, pairs, unknown_argument};
use super::repr::{self, FlavorRepr};
use super::{BARE_MOUNT, Caller, MOUNT, MoganError};
use crate::api::AppState;
use crate::domain::lifecycle::State;
use crate::query::listing::Listing;
use crate::query::{self, QueryError};

fn no_arguments(req: &HttpRequest) -> Result<(), MoganError> {
    match pairs(req)?.first() {
        Some((k, _)) => Err(unknown_argument(k)),
        None => Ok(()),
    }
}

/// The flavors the caller may use: `uuid`, `name`, `description`, `is_public` and
/// `links`; staff see their resources too.
#[utoipa::path(get, path = "/mogan/v1/flavors", tag = "mogan",
    responses((status = 200, description = "`{\"flavors\": [...]}`", body = Vec<FlavorRepr>), (status = 401, body = Object)),
    security(("mogan_token" = [])))]
pub async fn flavors(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    no_arguments(&req)?;
    let origin = origin(&req);
    let full = caller.staff;
    let items = query::read(&state.ledger, &caller, move |r| {
        Ok(r.usable_flavors()?
            .iter()
            .filter_map(|f| repr::flavor(&origin, f, full))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "flavors": items })))
}

/// One flavor, with its resources.
#[utoipa::path(get, path = "/mogan/v1/flavors/{uuid}", tag = "mogan", params(("uuid" = String, Path)),
    responses((status = 200, body = FlavorRepr), (status = 401, body = Object), (status = 404, body = Object)),
    security(("mogan_token" = [])))]
pub async fn flavor(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    no_arguments(&req)?;
    let raw = path.into_inner();
    let origin = origin(&req);
    let id = raw.clone();
    let found = query::read(&state.ledger, &caller, move |r| {
        Ok(r.usable_flavors()?
            .iter()
            .find(|f| f.id.to_string() == id || f.id.simple().to_string() == id)
            .and_then(|f| repr::flavor(&origin, f, true)))
    })
    .await?;
    match found {
        Some(f) => Ok(HttpResponse::Ok().json(f)),
        None => Err(MoganError::client(
            StatusCode::NOT_FOUND,
            format!("Flavor {raw} could not be found."),
        )),
    }
}

/// The zones the caller's instances are in, as plain strings (the client keeps the list
/// entries as they come). Zones are free-form here: any name may be asked for.
#[utoipa::path(get, path = "/mogan/v1/availability_zones", tag = "mogan",
    responses((status = 200, description = "`{\"availability_zones\": [\"az1\", ...]}`", body = Object), (status = 401, body = Object)),
    security(("mogan_token" = [])))]
pub async fn availability_zones(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, MoganError> {
    no_arguments(&req)?;
    let zones = query::read(&state.ledger, &caller, |r| {
        let listing = Listing {
            states: State::ALL.into_iter().filter(|s| s.is_live()).collect(),
            ..Listing::default()
        };
        let zones: BTreeSet<String> = r
            .listing(&listing)?
            .items
            .into_iter()
            .filter_map(|i| i.spec.availability_zone)
            .collect();
        Ok::<_, QueryError>(zones.into_iter().collect::<Vec<_>>())
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "availability_zones": zones })))
}

/// `GET /mogan/`: what the service is (no token needed).
#[utoipa::path(get, path = "/mogan/", tag = "mogan",
    responses((status = 200, description = "`{\"name\", \"description\"}`", body = Object)))]
pub async fn root() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "OpenStack Mogan API",
        "description": "Mogan is an OpenStack project which aims to facilitate baremetal machines management.",
    }))
}

/// `GET /mogan/v1`: links to the collections (no token needed).
#[utoipa::path(get, path = "/mogan/v1", tag = "mogan",
    responses((status = 200, description = "`{\"id\": \"v1\", <collection>: [links]}`", body = Object)))]
pub async fn version(req: HttpRequest) -> HttpResponse {
    let origin = origin(&req);
    let links = |res: &str| {
        json!([
            {"href": format!("{origin}{MOUNT}/{res}/"), "rel": "self"},
            {"href": format!("{origin}{BARE_MOUNT}/{res}/"), "rel": "bookmark"},
        ])
    };
    HttpResponse::Ok().json(json!({
        "id": "v1",
        "instances": links("instances"),
        "servers": links("servers"),
        "flavors": links("flavors"),
        "availability_zones": links("availability_zones"),
    }))
}
