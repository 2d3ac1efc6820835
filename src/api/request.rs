//! What handlers take from a request besides the path: the caller, the request id, the
//! preconditions (`If-Match`, `Idempotency-Key`) and a bounded body, parsed strictly as
//! JSON on demand. Both extractors are generic over the [`Surface`] that received the
//! request: it sets the events' `origin` and renders what goes wrong.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::failure::{Failure, Input};
use super::surface::Surface;
use crate::authz::Principal;
use crate::limits;
use crate::service::{IdempotencyKey, RequestMeta};

/// A page size: 1 to [`limits::PAGE_MAX`].
pub fn page_limit(raw: &str) -> Result<usize, Failure> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=limits::PAGE_MAX).contains(n))
        .ok_or_else(|| {
            Failure::parameter(format!(
                "limit must be an integer from 1 to {}",
                limits::PAGE_MAX
            ))
        })
}

/// The request's id: the caller's `X-Request-Id` when usable, else a fresh one.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The authenticated caller, for reads (which take nothing else from the head).
#[derive(Debug)]
pub struct Caller<S> {
    pub principal: Principal,
    surface: PhantomData<S>,
}

impl<S> std::ops::Deref for Caller<S> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<S: Surface> FromRequest for Caller<S> {
    type Error = S::Error;
    type Future = Ready<Result<Caller<S>, S::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let principal = req.extensions().get::<Principal>().cloned();
        ready(match principal {
            Some(principal) => Ok(Caller {
                principal,
                surface: PhantomData,
            }),
            None => Err(Failure::Unauthenticated.into()),
        })
    }
}

/// Everything a write needs from the request head.
#[derive(Debug)]
pub struct Ctx<S> {
    pub principal: Principal,
    pub request_id: String,
    pub if_match: Option<u64>,
    idempotency_key: Option<String>,
    method: String,
    path: String,
    surface: PhantomData<S>,
}

impl<S: Surface> Ctx<S> {
    /// The request's provenance for the log; the idempotency fingerprint covers the
    /// method, the path with its query, and the body.
    pub fn meta(&self, body: &[u8]) -> RequestMeta {
        RequestMeta {
            actor: self.principal.id.clone(),
            token_id: self.principal.token_id.map(|t| t.to_string()),
            request_id: self.request_id.clone(),
            origin: S::ORIGIN.into(),
            idempotency: self
                .idempotency_key
                .clone()
                .map(|k| IdempotencyKey::new(k, &self.method, &self.path, body)),
            staff: self.principal.staff,
        }
    }

    fn parse(req: &HttpRequest) -> Result<Ctx<S>, Failure> {
        let principal = req
            .extensions()
            .get::<Principal>()
            .cloned()
            .ok_or(Failure::Unauthenticated)?;
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
                let visible = key.bytes().all(|b| b.is_ascii_graphic());
                if key.is_empty() || !visible || key.len() > limits::IDEMPOTENCY_KEY_BYTES {
                    return Err(Failure::bad_request(
                        Input::InvalidHeader,
                        format!(
                            "Idempotency-Key must be 1 to {} visible ASCII characters",
                            limits::IDEMPOTENCY_KEY_BYTES
                        ),
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
            surface: PhantomData,
        })
    }
}

/// `"7"` (the ETag we hand out) or `*`; weak tags are accepted as their version.
fn parse_if_match(raw: &str) -> Result<Option<u64>, Failure> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(None);
    }
    let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    tag.parse::<u64>().map(Some).map_err(|_| {
        Failure::bad_request(
            Input::InvalidHeader,
            format!("If-Match must be an ETag this API issued, like \"3\"; got {raw:?}"),
        )
    })
}

impl<S: Surface> FromRequest for Ctx<S> {
    type Error = S::Error;
    type Future = Ready<Result<Ctx<S>, S::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ctx::parse(req).map_err(S::Error::from))
    }
}

/// The raw request body, at most [`limits::BODY_BYTES`] bytes.
#[derive(Debug, Clone)]
pub struct Body<S> {
    pub bytes: Bytes,
    surface: PhantomData<S>,
}

impl<S> Body<S> {
    fn is_empty(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }

    /// Parses a required JSON body strictly (unknown fields are refused by the target
    /// types).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        if self.is_empty() {
            return Err(Failure::bad_request(
                Input::InvalidBody,
                "a JSON request body is required",
            ));
        }
        parse_json(&self.bytes)
    }

    /// Parses an optional JSON body; an empty body means all defaults.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, Failure> {
        if self.is_empty() {
            return Ok(T::default());
        }
        parse_json(&self.bytes)
    }

    /// For requests that take no body at all.
    pub fn empty(&self) -> Result<(), Failure> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Failure::bad_request(
                Input::InvalidBody,
                "this request takes no body",
            ))
        }
    }
}

/// Parses JSON strictly, telling malformed JSON from a body of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        let input = if e.is_syntax() || e.is_eof() {
            Input::MalformedJson
        } else {
            Input::InvalidBody
        };
        Failure::bad_request(input, format!("invalid request body: {e}"))
    })
}

/// Reads a body of at most `limit` bytes; a declared or actual size above it is refused
/// before the rest is read.
async fn collect(
    declared: Option<usize>,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, Failure> {
    if declared.is_some_and(|n| n > limit) {
        return Err(Failure::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Failure::bad_request(Input::InvalidBody, format!("cannot read the body: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(Failure::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The media type of a request, lowercased, without parameters.
pub fn media_type(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

impl<S: Surface> FromRequest for Body<S> {
    type Error = S::Error;
    type Future = LocalBoxFuture<'static, Result<Body<S>, S::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let content_type = media_type(req);
        let payload = payload.take();
        Box::pin(async move {
            let bytes = collect(declared, payload, limits::BODY_BYTES).await?;
            let json_ok = match content_type.as_deref() {
                None => true,
                Some(ct) => ct == "application/json" || ct.ends_with("+json"),
            };
            if S::JSON_BODIES && !bytes.is_empty() && !json_ok {
                return Err(Failure::UnsupportedMediaType.into());
            }
            Ok(Body {
                bytes,
                surface: PhantomData,
            })
        })
    }
}

/// A write to the object a path names, extracted once: the server state, the path's id
/// (its first parameter), the request context and the body. Each surface adds the
/// methods that answer in its shape.
pub struct Act<S> {
    pub state: actix_web::web::Data<super::AppState>,
    pub id: String,
    pub ctx: Ctx<S>,
    pub body: Body<S>,
}

impl<S: Surface> FromRequest for Act<S> {
    type Error = S::Error;
    type Future = LocalBoxFuture<'static, Result<Act<S>, S::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<actix_web::web::Data<super::AppState>>()
            .cloned();
        let id = req
            .match_info()
            .iter()
            .next()
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let ctx = Ctx::<S>::parse(req);
        let body = Body::<S>::from_request(req, payload);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                S::Error::from(Failure::Internal("application state missing".into()))
            })?;
            Ok(Act {
                state,
                id,
                ctx: ctx.map_err(S::Error::from)?,
                body: body.await?,
            })
        })
    }
}

impl<S: Surface> Act<S> {
    /// Submits one command with this request's provenance and preconditions.
    pub async fn write(
        &self,
        command: crate::service::WriteCommand,
    ) -> Result<crate::service::Reply, S::Error> {
        let request = crate::service::WriteRequest {
            command,
            meta: self.ctx.meta(&self.body.bytes),
            expected_version: self.ctx.if_match,
        };
        self.state
            .ledger
            .submit(request)
            .await
            .map_err(|e| S::Error::from(Failure::from(e)))
    }

    /// Applies commands to one instance, in order, all or nothing.
    pub async fn operate(
        &self,
        id: uuid::Uuid,
        commands: Vec<crate::domain::instance::Command>,
    ) -> Result<crate::service::Reply, S::Error> {
        self.write(crate::service::WriteCommand::Instance { id, commands })
            .await
    }

    /// Applies commands to one instance only if it is still at `version`: a surface that
    /// checked its own preconditions against that version gets a `VersionMismatch`
    /// instead of a write its rules would have refused.
    pub async fn operate_at(
        &self,
        id: uuid::Uuid,
        version: u64,
        commands: Vec<crate::domain::instance::Command>,
    ) -> Result<crate::service::Reply, S::Error> {
        let request = crate::service::WriteRequest {
            command: crate::service::WriteCommand::Instance { id, commands },
            meta: self.ctx.meta(&self.body.bytes),
            expected_version: Some(version),
        };
        self.state
            .ledger
            .submit(request)
            .await
            .map_err(|e| S::Error::from(Failure::from(e)))
    }

    /// Prepares and submits `min` to `max` instances as the caller asks for them.
    pub async fn create_instances(
        &self,
        request: crate::service::InstanceRequest,
        count: (usize, usize),
    ) -> Result<crate::service::Reply, S::Error> {
        self.state
            .ledger
            .create_instances(
                &self.ctx.principal,
                self.ctx.meta(&self.body.bytes),
                request,
                count,
            )
            .await
            .map_err(|e| S::Error::from(Failure::from(e)))
    }

    /// Who a lock this caller sets (or lifts) belongs to.
    pub fn lock_holder(&self) -> crate::domain::instance::LockHolder {
        if self.ctx.principal.staff {
            crate::domain::instance::LockHolder::Admin
        } else {
            crate::domain::instance::LockHolder::Owner
        }
    }

    /// Prepares and submits a new instance as the caller asks for it.
    pub async fn create_instance(
        &self,
        request: crate::service::InstanceRequest,
    ) -> Result<crate::service::Reply, S::Error> {
        self.state
            .ledger
            .create_instance(
                &self.ctx.principal,
                self.ctx.meta(&self.body.bytes),
                request,
            )
            .await
            .map_err(|e| S::Error::from(Failure::from(e)))
    }
}
