//! Principals and grants: users and their tokens, customer owners, project members, and
//! `/v1/me`. Every change is an event; token secrets are shown once and never stored.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::{
    BadRequest, Conflict as ConflictResponse, Forbidden, NotFound, Unprocessable,
};
use super::params::page;
use super::write::Act;
use super::{Body, Caller, Ctx, NativeError};
use crate::api::failure::{Failure, Input};
use crate::api::{AppState, auth, validate};
use crate::domain::catalog::{Grant, Kind, Resource};
use crate::domain::identity::{NewUser, Role, User, UserCommand};
use crate::query;
use crate::service::{Outcome, WriteCommand, WriteRequest};

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

// Not-found answers name the kind only, as every native 404 does (see `Failure::from`).
fn path_id(raw: &str, what: &str) -> Result<Uuid, Failure> {
    Uuid::try_parse(raw).map_err(|_| Failure::NotFound(what.to_string()))
}

fn not_found(what: &str, _id: impl std::fmt::Display) -> NativeError {
    Failure::NotFound(what.to_string()).into()
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
) -> Result<Outcome, NativeError> {
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
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, NativeError> {
    let p = caller.principal.clone();
    let username = match p.user_id {
        Some(id) => {
            query::read(&state.ledger, &p, move |r| {
                Ok(r.user(id)?.map(|u| u.username))
            })
            .await?
        }
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
) -> Result<HttpResponse, NativeError> {
    let b: CreateUserBody = body.json()?;
    let new = NewUser {
        username: validate::username(&b.username)?,
        email: validate::email(&b.email)?,
        is_staff: b.is_staff,
        agent: b.agent,
    };
    match submit(&state, &ctx, &body.bytes, WriteCommand::CreateUser(new)).await? {
        Outcome::User(user) => Ok(HttpResponse::Created()
            .insert_header(("Location", format!("/v1/users/{}", user.id)))
            .json(UserView::from(&*user))),
        _ => Err(Failure::Internal("expected a user outcome".into()).into()),
    }
}

/// Lists users (staff only).
#[utoipa::path(get, path = "/v1/users", tag = "identity",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "A page", body = UserList), (status = 400, response = BadRequest), (status = 403, response = Forbidden)))]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let page = page(&state, &caller, req.query_string(), |r, cursor, limit| {
        r.users(cursor, limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(UserList {
        items: page.items.iter().map(UserView::from).collect(),
        next_cursor: page.next.map(|id| id.simple().to_string()),
        total: page.total,
    }))
}

async fn load_user(state: &AppState, caller: &Caller, raw: &str) -> Result<User, NativeError> {
    let id = path_id(raw, "user")?;
    query::read(&state.ledger, caller, move |r| r.user(id))
        .await?
        .ok_or_else(|| not_found("user", id))
}

/// Shows a user (staff, or the user itself).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "The user", body = UserView), (status = 404, response = NotFound)))]
pub async fn show_user(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let user = load_user(&state, &caller, &path).await?;
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
) -> Result<HttpResponse, NativeError> {
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
    let user = match submit(&state, &ctx, &body.bytes, command).await {
        Ok(Outcome::User(user)) => user,
        Ok(_) => return Err(Failure::Internal("expected a user outcome".into()).into()),
        Err(NativeError(Failure::NotFound(_))) => return Err(not_found("user", id)),
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
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let user = load_user(&state, &caller, &path).await?;
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
) -> Result<HttpResponse, NativeError> {
    body.empty()?;
    let token_id = path_id(&path, "token")?;
    let user = query::read(&state.ledger, &ctx.principal, move |r| {
        r.token_owner(token_id)
    })
    .await?
    .ok_or_else(|| not_found("token", token_id))?;
    let command = WriteCommand::User {
        id: user,
        command: UserCommand::RevokeToken { token_id },
    };
    submit(&state, &ctx, &body.bytes, command).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds or removes a grant on the customer or project the path names.
async fn grant(act: &Act, grant: Grant, user_id: Uuid) -> Result<Resource, NativeError> {
    let resource_id = path_id(&act.id, "resource")?;
    act.user_must_exist(user_id).await?;
    match act
        .write(WriteCommand::Grant { resource_id, grant })
        .await?
        .outcome
    {
        Outcome::Resource(res) => Ok(res),
        _ => Err(Failure::Internal("expected a resource outcome".into()).into()),
    }
}

async fn load_resource(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    kind: Kind,
) -> Result<Resource, NativeError> {
    let raw = raw.to_string();
    Ok(query::read(&state.ledger, caller, move |r| r.resource(kind, &raw)).await?)
}

/// The customer's owners.
#[utoipa::path(get, path = "/v1/customers/{id}/owners", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Owners", body = OwnerList), (status = 404, response = NotFound)))]
pub async fn list_owners(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let res = load_resource(&state, &caller, &path, Kind::Customer).await?;
    Ok(HttpResponse::Ok().json(owners_of(&res)))
}

/// Makes a user an owner of the customer (staff only).
#[utoipa::path(post, path = "/v1/customers/{id}/owners", tag = "identity", request_body = OwnerBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The owners now", body = OwnerList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn add_owner(act: Act) -> Result<HttpResponse, NativeError> {
    let b: OwnerBody = act.body.json()?;
    let res = grant(&act, Grant::AddOwner(b.user_id), b.user_id).await?;
    Ok(HttpResponse::Ok().json(owners_of(&res)))
}

/// Removes an owner (staff only).
#[utoipa::path(delete, path = "/v1/customers/{id}/owners", tag = "identity", request_body = OwnerBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The owners now", body = OwnerList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn remove_owner(act: Act) -> Result<HttpResponse, NativeError> {
    let b: OwnerBody = act.body.json()?;
    let res = grant(&act, Grant::RemoveOwner(b.user_id), b.user_id).await?;
    Ok(HttpResponse::Ok().json(owners_of(&res)))
}

/// The project's members and their roles.
#[utoipa::path(get, path = "/v1/projects/{id}/members", tag = "identity", params(("id" = Uuid, Path)),
    responses((status = 200, description = "Members", body = MemberList), (status = 404, response = NotFound)))]
pub async fn list_members(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
) -> Result<HttpResponse, NativeError> {
    let res = load_resource(&state, &caller, &path, Kind::Project).await?;
    Ok(HttpResponse::Ok().json(members_of(&res)))
}

/// Gives a user a role on the project (staff or an owner of its customer).
#[utoipa::path(post, path = "/v1/projects/{id}/members", tag = "identity", request_body = MemberBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The members now", body = MemberList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn add_member(act: Act) -> Result<HttpResponse, NativeError> {
    let b: MemberBody = act.body.json()?;
    let role = b.role.ok_or_else(|| {
        Failure::bad_request(
            Input::InvalidBody,
            "role is required: administrator or manager",
        )
    })?;
    let res = grant(&act, Grant::AddMember(b.user_id, role), b.user_id).await?;
    Ok(HttpResponse::Ok().json(members_of(&res)))
}

/// Removes a member (staff or an owner of its customer).
#[utoipa::path(delete, path = "/v1/projects/{id}/members", tag = "identity", request_body = MemberBody, params(("id" = Uuid, Path)),
    responses((status = 200, description = "The members now", body = MemberList), (status = 400, response = BadRequest),
        (status = 403, response = Forbidden), (status = 404, response = NotFound), (status = 422, response = Unprocessable)))]
pub async fn remove_member(act: Act) -> Result<HttpResponse, NativeError> {
    let b: MemberBody = act.body.json()?;
    let res = grant(&act, Grant::RemoveMember(b.user_id), b.user_id).await?;
    Ok(HttpResponse::Ok().json(members_of(&res)))
}
