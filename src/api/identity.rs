//! Principals and grants: users and their tokens, customer owners, project members, and
//! `/v1/me`. Every change is an event; token secrets are shown once and never stored.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth;
use super::instances::list_params;
use super::openapi::{
    BadRequest, Conflict as ConflictResponse, Forbidden, NotFound, Unprocessable,
};
use super::problem::{ApiError, ProblemCode};
use super::request::{Body, Ctx};
use super::{AppState, read, validate};
use crate::domain::catalog::{Grant, Resource};
use crate::domain::identity::{NewUser, Role, User, UserCommand};
use crate::projection::index;
use crate::service::{Outcome, WriteCommand, WriteRequest};
use crate::store::Snapshot;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub is_staff: bool,
    pub agent: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            is_staff: u.is_staff,
            agent: u.agent,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

/// A token's metadata; the secret is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}

/// A new token: `token` is the bearer secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub id: Uuid,
    pub token: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectRole {
    pub project_id: Uuid,
    pub customer_id: Uuid,
    pub role: Role,
}

/// Who the caller is and what it can reach.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The actor recorded in events (a user id, or `admin` for the bootstrap token).
    pub id: String,
    pub username: Option<String>,
    pub token_id: Option<Uuid>,
    pub is_staff: bool,
    pub agent: bool,
    /// Customers the caller owns: every instance of their projects is reachable.
    pub owned_customers: Vec<Uuid>,
    /// Projects the caller holds a role on.
    pub projects: Vec<ProjectRole>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Owner {
    pub user_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerList {
    pub items: Vec<Owner>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<Member>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    username: String,
    email: String,
    #[serde(default)]
    is_staff: bool,
    /// An infrastructure agent: reads every instance and reports completions.
    #[serde(default)]
    agent: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerBody {
    user_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    user_id: Uuid,
    /// Required when adding; ignored when removing.
    role: Option<Role>,
}

fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::NotFound(format!("{what} {raw}")))
}

fn user_must_exist(snap: &dyn Snapshot, user_id: Uuid) -> Result<(), ApiError> {
    match snap.user(user_id)? {
        Some(_) => Ok(()),
        None => Err(ApiError::UnknownReference {
            field: "user_id".into(),
            id: user_id.to_string(),
            kind: "user",
        }),
    }
}

fn owners_of(res: &Resource) -> OwnerList {
    OwnerList {
        items: res.owners.iter().map(|u| Owner { user_id: *u }).collect(),
    }
}

fn members_of(res: &Resource) -> MemberList {
    MemberList {
        items: res
            .members
            .iter()
            .map(|(u, r)| Member {
                user_id: *u,
                role: *r,
            })
            .collect(),
    }
}

async fn submit(
    state: &AppState,
    ctx: &Ctx,
    body: &[u8],
    command: WriteCommand,
) -> Result<Outcome, ApiError> {
    let reply = state
        .ledger
        .submit(WriteRequest {
            command,
            meta: ctx.meta(body),
            expected_version: None,
        })
        .await?;
    Ok(reply.outcome)
}

/// Who the caller is and what it can reach.
#[utoipa::path(get, path = "/v1/me", tag = "identity", responses((status = 200, description = "The caller", body = Me)))]
pub async fn me(state: web::Data<AppState>, ctx: Ctx) -> Result<HttpResponse, ApiError> {
    let p = ctx.principal.clone();
    let username = match p.user_id {
        Some(id) => read(&state, move |snap| Ok(snap.user(id)?.map(|u| u.username))).await?,
        None => None,
    };
    Ok(HttpResponse::Ok().json(Me {
        id: p.id.clone(),
        username,
        token_id: p.token_id,
        is_staff: p.staff,
        agent: p.agent,
        owned_customers: p.owned_customers.iter().copied().collect(),
        projects: p
            .project_roles
            .iter()
            .map(|(project, (role, customer))| ProjectRole {
                project_id: *project,
                customer_id: *customer,
                role: *role,
            })
            .collect(),
    }))
}

/// Creates a user (staff only).
#[utoipa::path(post, path = "/v1/users", tag = "identity", request_body = CreateUserBody,
    responses((status = 201, description = "Created", body = UserView, headers(("Location" = String))),
        (status = 400, response = BadRequest), (status = 403, response = Forbidden), (status = 409, response = ConflictResponse)))]
pub async fn create_user(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: CreateUserBody = body.json()?;
    let new = NewUser {
        username: validate::username(&b.username)?,
        email: validate::email(&b.email)?,
        is_staff: b.is_staff,
        agent: b.agent,
    };
    match submit(&state, &ctx, &body.0, WriteCommand::CreateUser(new)).await? {
        Outcome::User(user) => Ok(HttpResponse::Created()
            .insert_header(("Location", format!("/v1/users/{}", user.id)))
            .json(UserView::from(&*user))),
        _ => Err(ApiError::Internal("expected a user outcome".into())),
    }
}

/// Lists users (staff only).
#[utoipa::path(get, path = "/v1/users", tag = "identity",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "A page", body = UserList), (status = 400, response = BadRequest), (status = 403, response = Forbidden)))]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = list_params(req.query_string(), false)?;
    let body = read(&state, move |snap| {
        let page = snap.page(&[index::users_key()], params.cursor, params.limit)?;
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            if let Some(u) = snap.user(*id)? {
                items.push(UserView::from(&u));
            }
        }
        Ok(UserList {
            items,
            next_cursor: page.next.map(|id| id.simple().to_string()),
            total: page.total,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// Shows a user (staff, or the user itself).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The user", body = UserView), (status = 404, response = NotFound)))]
pub async fn show_user(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path, "user")?;
    let user = read(&state, move |snap| Ok(snap.user(id)?)).await?;
    let user = user.ok_or_else(|| ApiError::NotFound(format!("user {id}")))?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

/// Issues a token for the user; the secret is in this answer only.
#[utoipa::path(post, path = "/v1/users/{id}/tokens", tag = "identity", request_body(content = Option<TokenBody>),
    params(("id" = Uuid, Path)),
    responses((status = 201, description = "Issued", body = IssuedToken), (status = 400, response = BadRequest), (status = 404, response = NotFound)))]
pub async fn issue_token(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path, "user")?;
    let b: TokenBody = body.json_or_default()?;
    let name = b
        .name
        .as_deref()
        .map(|n| validate::name("name", n))
        .transpose()?;
    let issued = auth::issue();
    let command = WriteCommand::User {
        id,
        command: UserCommand::IssueToken {
            token_id: issued.token_id,
            name: name.clone(),
            digest: issued.digest,
        },
    };
    let user = match submit(&state, &ctx, &body.0, command).await {
        Ok(Outcome::User(user)) => user,
        Ok(_) => return Err(ApiError::Internal("expected a user outcome".into())),
        Err(ApiError::NotFound(_)) => return Err(ApiError::NotFound(format!("user {id}"))),
        Err(e) => return Err(e),
    };
    let created_at = user
        .tokens
        .get(&issued.token_id)
        .map(|t| t.created_at)
        .unwrap_or(user.created_at);
    Ok(HttpResponse::Created().json(IssuedToken {
        id: issued.token_id,
        token: issued.token,
        name,
        created_at,
    }))
}

/// Lists the user's tokens: ids and metadata, never secrets.
#[utoipa::path(get, path = "/v1/users/{id}/tokens", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Tokens", body = TokenList), (status = 404, response = NotFound)))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path, "user")?;
    let user = read(&state, move |snap| Ok(snap.user(id)?)).await?;
    let user = user.ok_or_else(|| ApiError::NotFound(format!("user {id}")))?;
    Ok(HttpResponse::Ok().json(TokenList {
        items: user
            .tokens
            .iter()
            .map(|(id, t)| TokenView {
                id: *id,
                name: t.name.clone(),
                created_at: t.created_at,
                revoked_at: t.revoked_at,
            })
            .collect(),
    }))
}

/// Revokes a token at once: the next request with it gets 401.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, response = NotFound)))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    body.empty()?;
    let token_id = path_id(&path, "token")?;
    let user = read(&state, move |snap| {
        Ok(snap
            .page(&[index::token_key(token_id)], None, 1)?
            .ids
            .first()
            .copied())
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("token {token_id}")))?;
    let command = WriteCommand::User {
        id: user,
        command: UserCommand::RevokeToken { token_id },
    };
    submit(&state, &ctx, &body.0, command).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn grant(
    state: &AppState,
    ctx: &Ctx,
    raw: &str,
    body: &Body,
    make: impl FnOnce(Uuid) -> Result<Grant, ApiError>,
    user_id: Uuid,
) -> Result<Resource, ApiError> {
    let id = path_id(raw, "resource")?;
    read(state, move |snap| user_must_exist(snap, user_id)).await?;
    let command = WriteCommand::Grant {
        resource_id: id,
        grant: make(user_id)?,
    };
    match submit(state, ctx, &body.0, command).await {
        Ok(Outcome::Resource(res)) => Ok(res),
        Ok(_) => Err(ApiError::Internal("expected a resource outcome".into())),
        Err(e) => Err(e),
    }
}

async fn load_resource(
    state: &AppState,
    raw: &str,
    what: &'static str,
) -> Result<Resource, ApiError> {
    let id = path_id(raw, what)?;
    read(state, move |snap| Ok(snap.resource(id)?))
        .await?
        .filter(|r| r.kind.as_str() == what)
        .ok_or_else(|| ApiError::NotFound(format!("{what} {id}")))
}

/// The customer's owners.
#[utoipa::path(get, path = "/v1/customers/{id}/owners", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Owners", body = OwnerList), (status = 404, response = NotFound)))]
pub async fn list_owners(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let res = load_resource(&state, &path, "customer").await?;
    Ok(HttpResponse::Ok().json(owners_of(&res)))
}

/// Makes a user an owner of the customer (staff only).
#[utoipa::path(post, path = "/v1/customers/{id}/owners", tag = "identity", request_body = OwnerBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The owners now", body = OwnerList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn add_owner(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: OwnerBody = body.json()?;
    let res = grant(
        &state,
        &ctx,
        &path,
        &body,
        |u| Ok(Grant::AddOwner(u)),
        b.user_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(owners_of(&res)))
}

/// Removes an owner (staff only).
#[utoipa::path(delete, path = "/v1/customers/{id}/owners", tag = "identity", request_body = OwnerBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The owners now", body = OwnerList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn remove_owner(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: OwnerBody = body.json()?;
    let res = grant(
        &state,
        &ctx,
        &path,
        &body,
        |u| Ok(Grant::RemoveOwner(u)),
        b.user_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(owners_of(&res)))
}

/// The project's members and their roles.
#[utoipa::path(get, path = "/v1/projects/{id}/members", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Members", body = MemberList), (status = 404, response = NotFound)))]
pub async fn list_members(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let res = load_resource(&state, &path, "project").await?;
    Ok(HttpResponse::Ok().json(members_of(&res)))
}

/// Gives a user a role on the project (staff or an owner of its customer).
#[utoipa::path(post, path = "/v1/projects/{id}/members", tag = "identity", request_body = MemberBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The members now", body = MemberList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn add_member(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: MemberBody = body.json()?;
    let role = b.role;
    let make = move |u| {
        role.map(|r| Grant::AddMember(u, r)).ok_or_else(|| {
            ApiError::bad_request(
                ProblemCode::InvalidBody,
                "role is required: administrator or manager",
            )
        })
    };
    let res = grant(&state, &ctx, &path, &body, make, b.user_id).await?;
    Ok(HttpResponse::Ok().json(members_of(&res)))
}

/// Removes a member (staff or an owner of its customer).
#[utoipa::path(delete, path = "/v1/projects/{id}/members", tag = "identity", request_body = MemberBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The members now", body = MemberList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn remove_member(
    state: web::Data<AppState>,
    path: web::Path<String>,
    ctx: Ctx,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let b: MemberBody = body.json()?;
    let res = grant(
        &state,
        &ctx,
        &path,
        &body,
        |u| Ok(Grant::RemoveMember(u)),
        b.user_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(members_of(&res)))
}
