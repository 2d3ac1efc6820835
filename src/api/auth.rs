//! Bearer-token authentication for every `/v1` route, in one middleware. A token is either
//! the bootstrap staff token or a user token `lt_<token id>_<secret>`: the id finds the
//! record, the SHA-256 of the secret is compared with the stored digest in constant time.
//! Revoked or unknown tokens are refused at once. Tokens are never logged.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::AppState;
use super::problem::ApiError;
use crate::authz::Principal;
use crate::domain::catalog::{Kind, Spec};
use crate::projection::index;
use crate::store::envelope::hex;
use crate::store::{Snapshot, StoreError};

const PREFIX: &str = "lt_";

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
        token: format!("{PREFIX}{}_{secret}", token_id.simple()),
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

/// Finds the user token's owner and loads the grants that make up the principal.
fn user_principal(snap: &dyn Snapshot, token: &str) -> Result<Option<Principal>, StoreError> {
    let Some((id, secret)) = token.strip_prefix(PREFIX).and_then(|t| t.split_once('_')) else {
        return Ok(None);
    };
    let Ok(token_id) = Uuid::try_parse(id) else {
        return Ok(None);
    };
    let Some(user_id) = snap
        .page(&[index::token_key(token_id)], None, 1)?
        .ids
        .first()
        .copied()
    else {
        return Ok(None);
    };
    let Some(user) = snap.user(user_id)? else {
        return Ok(None);
    };
    let Some(record) = user.tokens.get(&token_id) else {
        return Ok(None);
    };
    let presented = hex(&Sha256::digest(secret.as_bytes()));
    let matches = bool::from(presented.as_bytes().ct_eq(record.digest.as_bytes()));
    if !matches || record.revoked_at.is_some() {
        return Ok(None);
    }
    let mut principal = Principal {
        id: user.id.to_string(),
        user_id: Some(user.id),
        token_id: Some(token_id),
        staff: user.is_staff,
        agent: user.agent,
        owned_customers: Default::default(),
        project_roles: Default::default(),
    };
    for customer in all(snap, &index::owner_key(user.id))? {
        principal.owned_customers.insert(customer);
    }
    for project in all(snap, &index::member_key(user.id))? {
        if let Some(res) = snap.resource(project)?
            && res.kind == Kind::Project
            && let (Some(role), Spec::Project { customer_id, .. }) =
                (res.members.get(&user.id), &res.spec)
        {
            principal
                .project_roles
                .insert(project, (*role, *customer_id));
        }
    }
    Ok(Some(principal))
}

fn all(snap: &dyn Snapshot, key: &index::IndexKey) -> Result<Vec<Uuid>, StoreError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = snap.page(std::slice::from_ref(key), after, 1000)?;
        out.extend(&page.ids);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

async fn authenticate(
    state: &AppState,
    authorization: Option<String>,
) -> Result<Principal, ApiError> {
    let token = authorization
        .as_deref()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?
        .to_string();
    if state.tokens.is_admin(&token) {
        return Ok(Principal::bootstrap());
    }
    if !token.starts_with(PREFIX) {
        return Err(ApiError::Unauthorized);
    }
    let store = state.ledger.store().clone();
    let found = web::block(move || {
        let snap = store.read()?;
        user_principal(&*snap, &token)
    })
    .await??;
    found.ok_or(ApiError::Unauthorized)
}

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let principal = match req.app_data::<web::Data<AppState>>() {
        Some(state) => authenticate(state, authorization).await,
        None => Err(ApiError::Internal("application state missing".into())),
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.error_response(e)),
    }
}
