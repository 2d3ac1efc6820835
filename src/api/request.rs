//! What handlers take from a request besides the path: the caller, the request id, the
//! preconditions (`If-Match`, `Idempotency-Key`) and a bounded, strictly parsed JSON body.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, ProblemCode};
use crate::authz::Principal;
use crate::service::{IdempotencyKey, RequestMeta};

/// The refusal of a query parameter the route does not take.
pub fn unknown_parameter(name: &str) -> ApiError {
    ApiError::bad_request(
        ProblemCode::InvalidParameter,
        format!("unknown query parameter {name:?}"),
    )
}

/// A page size: 1 to 1000.
pub fn page_limit(raw: &str) -> Result<usize, ApiError> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::InvalidParameter,
                "limit must be an integer from 1 to 1000",
            )
        })
}

/// Bodies above this size are refused with 413 before they are parsed.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The request's id: the caller's `X-Request-Id` when usable, else a fresh one.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Everything a write needs from the request head.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Principal,
    pub request_id: String,
    pub if_match: Option<u64>,
    idempotency_key: Option<String>,
    method: String,
    path: String,
}

impl Ctx {
    /// The request's provenance for the log; the idempotency fingerprint covers the
    /// method, the path with its query, and the body.
    pub fn meta(&self, body: &[u8]) -> RequestMeta {
        RequestMeta {
            actor: self.principal.id.clone(),
            token_id: self.principal.token_id.map(|t| t.to_string()),
            request_id: self.request_id.clone(),
            origin: "native".into(),
            idempotency: self
                .idempotency_key
                .clone()
                .map(|k| IdempotencyKey::new(k, &self.method, &self.path, body)),
        }
    }

    fn parse(req: &HttpRequest) -> Result<Ctx, ApiError> {
        let principal = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let if_match = match req.headers().get(header::IF_MATCH) {
            None => None,
            Some(v) => parse_if_match(v.to_str().unwrap_or(""))?,
        };
        let idempotency_key = match req.headers().get("idempotency-key") {
            None => None,
            Some(v) => {
                let key = v.to_str().unwrap_or("").trim();
                if key.is_empty() || key.len() > 255 {
                    return Err(ApiError::bad_request(
                        ProblemCode::InvalidHeader,
                        "Idempotency-Key must be 1 to 255 visible ASCII characters",
                    ));
                }
                Some(key.to_string())
            }
        };
        let path = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        Ok(Ctx {
            principal,
            request_id,
            if_match,
            idempotency_key,
            method: req.method().to_string(),
            path,
        })
    }
}

/// `"7"` (the ETag we hand out) or `*`; weak tags are accepted as their version.
fn parse_if_match(raw: &str) -> Result<Option<u64>, ApiError> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    tag.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            ProblemCode::InvalidHeader,
            format!("If-Match must be an ETag this API issued, like \"3\"; got {raw:?}"),
        )
    })
}

impl FromRequest for Ctx {
    type Error = ApiError;
    type Future = Ready<Result<Ctx, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ctx::parse(req))
    }
}

/// The raw request body, at most [`BODY_LIMIT`] bytes, JSON or empty.
#[derive(Debug, Clone)]
pub struct Body(pub Bytes);

impl Body {
    /// Parses a required JSON body strictly (unknown fields are refused by the target
    /// types).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                ProblemCode::InvalidBody,
                "a JSON request body is required",
            ));
        }
        parse(&self.0)
    }

    /// Parses an optional JSON body; an empty body means all defaults.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        parse(&self.0)
    }

    /// For requests that take no body at all.
    pub fn empty(&self) -> Result<(), ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(ApiError::bad_request(
                ProblemCode::InvalidBody,
                "this request takes no body",
            ))
        }
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            ProblemCode::MalformedJson
        } else {
            ProblemCode::InvalidBody
        };
        ApiError::bad_request(code, format!("invalid request body: {e}"))
    })
}

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > BODY_LIMIT) {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
            }
            let mut buf = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(
                        ProblemCode::InvalidBody,
                        format!("cannot read the body: {e}"),
                    )
                })?;
                if buf.len() + chunk.len() > BODY_LIMIT {
                    return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
                }
                buf.extend_from_slice(&chunk);
            }
            let json_ok = match content_type.as_deref() {
                None => true,
                Some(ct) => ct == "application/json" || ct.ends_with("+json"),
            };
            if !buf.is_empty() && !json_ok {
                return Err(ApiError::UnsupportedMediaType);
            }
            Ok(Body(buf.freeze()))
        })
    }
}
