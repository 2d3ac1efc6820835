//! Token authentication, shared by every surface. A token is either the bootstrap staff
//! token or a user token `lt_<token id>_<secret>` (checked by the query layer against the
//! stored digest in constant time). Each surface says where its clients carry the token
//! ([`Surface::token`]); [`require`] is the middleware that puts the caller's principal in
//! the request or refuses it in the surface's shape. Tokens are never logged.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::AppState;
use super::failure::Failure;
use super::surface::Surface;
use crate::authz::Principal;
use crate::query::identity::{TOKEN_PREFIX, principal_for_token};
use crate::store::envelope::hex;

/// The bootstrap token's digest; user tokens live in the ledger.
pub struct Tokens {
    admin_digest: [u8; 32],
}

/// A freshly issued token: the secret is shown once; the ledger keeps the digest.
pub struct Issued {
    pub token_id: Uuid,
    pub token: String,
    pub digest: String,
}

pub fn issue() -> Issued {
    let token_id = Uuid::now_v7();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex(&secret);
    Issued {
        token_id,
        digest: hex(&Sha256::digest(secret.as_bytes())),
        token: format!("{TOKEN_PREFIX}{}_{secret}", token_id.simple()),
    }
}

impl Tokens {
    pub fn new(admin_token: &str) -> Tokens {
        Tokens {
            admin_digest: Sha256::digest(admin_token.as_bytes()).into(),
        }
    }

    fn is_admin(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&self.admin_digest))
    }
}

/// The principal a presented token stands for, or `Unauthenticated`.
pub async fn authenticate(state: &AppState, token: Option<String>) -> Result<Principal, Failure> {
    let token = token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or(Failure::Unauthenticated)?;
    if state.tokens.is_admin(&token) {
        return Ok(Principal::bootstrap());
    }
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(Failure::BadToken);
    }
    principal_for_token(&state.ledger, token)
        .await?
        .ok_or(Failure::BadToken)
}

/// `Authorization: Bearer <token>`, the scheme matched case-insensitively.
pub fn bearer(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    scheme_token(headers, "bearer")
}

/// The token of `Authorization: <scheme> <token>` (the scheme in any case).
pub fn scheme_token(headers: &actix_web::http::header::HeaderMap, scheme: &str) -> Option<String> {
    let value = headers
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (given, token) = value.split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| token.trim().to_string())
}

/// Authenticates every request of a surface: the principal goes into the request's
/// extensions, a refusal is rendered by the surface.
pub async fn require<S: Surface>(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let token = S::token(req.headers(), req.query_string());
    let principal = match req.app_data::<web::Data<AppState>>() {
        Some(state) => authenticate(state, token).await,
        None => Err(Failure::Internal("application state missing".into())),
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.error_response(S::Error::from(e))),
    }
}
