//! Hyperlinks and pages as DRF 2.3 made them: absolute URLs built from the request's host,
//! 32-hex uuids, hyperlinked references parsed back from a body, and the `page` /
//! `page_size` paging with its `Link` and `X-Result-Count` headers.

use actix_web::HttpRequest;
use uuid::Uuid;

use super::{MOUNT, NcError};
use crate::api::Failure;

/// Page size when none (or an unusable one) is asked for, and the most one may ask for.
pub const PAGE_SIZE: usize = 10;
pub const MAX_PAGE_SIZE: usize = 100;

/// The scheme and host the client used, for absolute URLs.
pub fn origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// A uuid as NodeConductor wrote it: 32 lowercase hex digits.
pub fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// The absolute URL of a resource: `<origin>/nodeconductor/api/<collection>/<hex>/`.
pub fn url(origin: &str, collection: &str, id: Uuid) -> String {
    format!("{origin}{MOUNT}/{collection}/{}/", hex(id))
}

/// A path uuid: 32 hex digits, or the dashed form.
pub fn path_uuid(raw: &str) -> Result<Uuid, NcError> {
    Uuid::try_parse(raw).map_err(|_| NcError::Failure(Failure::NoRoute))
}

/// Why a hyperlinked field could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLink {
    NoUrlMatch,
    NoObject,
}

impl BadLink {
    pub fn message(self) -> &'static str {
        match self {
            BadLink::NoUrlMatch => "Invalid hyperlink - No URL match",
            BadLink::NoObject => "Invalid hyperlink - object does not exist.",
        }
    }
}

/// The uuid a hyperlink to `collection` names: the URL's path must end in
/// `/<collection>/<uuid>/` (any host and prefix: clients copy URLs between hosts).
pub fn parse_link(raw: &str, collection: &str) -> Result<Uuid, BadLink> {
    let path = match raw.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => raw,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let id = parts.next().unwrap_or_default();
    if parts.next() != Some(collection) {
        return Err(BadLink::NoUrlMatch);
    }
    Uuid::try_parse(id).map_err(|_| BadLink::NoObject)
}

/// The page a list request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageNumber {
    Number(usize),
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: PageNumber,
    pub size: usize,
}

impl Paging {
    /// Reads `page` and `page_size` from query pairs: a bad page is a 404 (as Django's
    /// paginator answered), a bad size falls back to the default.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Paging, NcError> {
        let mut paging = Paging {
            page: PageNumber::Number(1),
            size: PAGE_SIZE,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "page" if v == "last" => paging.page = PageNumber::Last,
                "page" => match v.parse::<usize>() {
                    Ok(n) if n >= 1 => paging.page = PageNumber::Number(n),
                    _ => return Err(NcError::Failure(Failure::NotFound("page".into()))),
                },
                "page_size" => {
                    paging.size = match v.parse::<usize>() {
                        Ok(n) if n >= 1 => n.min(MAX_PAGE_SIZE),
                        _ => PAGE_SIZE,
                    }
                }
                _ => {}
            }
        }
        Ok(paging)
    }

    /// The 1-based page to show out of `total` items, or 404 past the end (an empty
    /// result still has page 1).
    pub fn resolve(&self, total: usize) -> Result<(usize, usize), NcError> {
        let last = total.div_ceil(self.size).max(1);
        let page = match self.page {
            PageNumber::Last => last,
            PageNumber::Number(n) if n <= last => n,
            PageNumber::Number(_) => {
                return Err(NcError::Failure(Failure::NotFound("page".into())));
            }
        };
        Ok((page, last))
    }
}

/// The request's URL with `page` set to `n` (replaced in place, or appended).
fn with_page(req: &HttpRequest, n: usize) -> String {
    let mut pairs: Vec<(String, String)> = url_pairs(req.query_string()).into_iter().collect();
    match pairs.iter_mut().find(|(k, _)| k == "page") {
        Some(p) => p.1 = n.to_string(),
        None => pairs.push(("page".into(), n.to_string())),
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{}{}?{}", origin(req), req.path(), query.join("&"))
}

/// Query pairs, decoded.
pub fn url_pairs(query: &str) -> Vec<(String, String)> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The `Link` header of page `page` of `last`: next, prev, last, first, the ones that
/// exist, in the order the original sent them.
pub fn link_header(req: &HttpRequest, page: usize, last: usize) -> String {
    let mut links = Vec::with_capacity(4);
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", with_page(req, page + 1)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", with_page(req, page - 1)));
    }
    links.push(format!("<{}>; rel=\"last\"", with_page(req, last)));
    links.push(format!("<{}>; rel=\"first\"", with_page(req, 1)));
    links.join(", ")
}

/// A JSON array answer with the paging headers.
pub fn paged<T: serde::Serialize>(
    req: &HttpRequest,
    items: &[T],
    total: usize,
    page: usize,
    last: usize,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header(("Link", link_header(req, page, last)))
        .insert_header(("X-Result-Count", total.to_string()))
        .json(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperlinks_name_their_collection_and_uuid() {
        let id = Uuid::from_u128(0x1ee385bc043249498cfeb8c7e3e079f0);
        for raw in [
            "http://example.com/api/iaas-templates/1ee385bc043249498cfeb8c7e3e079f0/",
            "https://h:8080/nodeconductor/api/iaas-templates/1ee385bc-0432-4949-8cfe-b8c7e3e079f0",
            "/nodeconductor/api/iaas-templates/1ee385bc043249498cfeb8c7e3e079f0/",
        ] {
            assert_eq!(parse_link(raw, "iaas-templates"), Ok(id), "{raw}");
        }
        assert_eq!(
            parse_link(
                "http://e/api/flavors/1ee385bc043249498cfeb8c7e3e079f0/",
                "iaas-templates"
            ),
            Err(BadLink::NoUrlMatch)
        );
        assert_eq!(
            parse_link("http://e/api/flavors/nope/", "flavors"),
            Err(BadLink::NoObject)
        );
    }

    #[test]
    fn pages_resolve_like_djangos_paginator() {
        let p = |page, size| Paging { page, size };
        assert_eq!(p(PageNumber::Number(1), 10).resolve(0).ok(), Some((1, 1)));
        assert_eq!(p(PageNumber::Last, 5).resolve(13).ok(), Some((3, 3)));
        assert!(p(PageNumber::Number(4), 5).resolve(13).is_err());
        let pairs = vec![("page_size".to_string(), "1000".to_string())];
        assert_eq!(Paging::from_pairs(&pairs).ok().map(|p| p.size), Some(100));
        let pairs = vec![("page".to_string(), "0".to_string())];
        assert!(Paging::from_pairs(&pairs).is_err());
    }
}
