//! Bearer-token authentication for every `/v1` route, enforced in one middleware.
//! Tokens are compared as SHA-256 digests in constant time and never logged.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::problem::ApiError;
use super::request::Principal;

/// The tokens this server accepts. Until identities exist there is one staff token.
pub struct Tokens {
    admin_digest: [u8; 32],
}

impl Tokens {
    pub fn new(admin_token: &str) -> Tokens {
        Tokens {
            admin_digest: Sha256::digest(admin_token.as_bytes()).into(),
        }
    }

    fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.admin_digest)) {
            Ok(Principal {
                id: "admin".into(),
                staff: true,
            })
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let principal = {
        let state = req.app_data::<web::Data<AppState>>();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match state {
            Some(state) => state.tokens.authenticate(authorization),
            None => Err(ApiError::Internal("application state missing".into())),
        }
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.error_response(e)),
    }
}
