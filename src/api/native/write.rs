//! The writes that name their object by path: [`Act`] extracts, once, what each of them
//! takes from its request (server state, path id, context, body) and submits it.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::instances::{respond, view_of};
use super::{Body, Ctx, NativeError};
use crate::api::{AppState, Failure};
use crate::domain::instance::{Command, Sizing};
use crate::query;
use crate::service::{Reply, Sizes, WriteCommand, WriteRequest};

/// A write to the object a path names: what every such write takes from its request,
/// extracted once.
pub struct Act {
    state: web::Data<AppState>,
    /// The path's id (an instance's uuid or short id, a customer's or project's uuid).
    pub id: String,
    ctx: Ctx,
    pub body: Body,
}

impl FromRequest for Act {
    type Error = NativeError;
    type Future = LocalBoxFuture<'static, Result<Act, NativeError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let id = req.match_info().get("id").unwrap_or_default().to_string();
        let ctx = Ctx::from_request(req, payload).into_inner();
        let body = Body::from_request(req, payload);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| Failure::Internal("application state missing".into()))?;
            Ok(Act {
                state,
                id,
                ctx: ctx?,
                body: body.await?,
            })
        })
    }
}

impl Act {
    /// Submits one command with this request's provenance and preconditions.
    pub async fn write(&self, command: WriteCommand) -> Result<Reply, NativeError> {
        let request = WriteRequest {
            command,
            meta: self.ctx.meta(&self.body.bytes),
            expected_version: self.ctx.if_match,
        };
        Ok(self.state.ledger.submit(request).await?)
    }

    /// Applies commands to the instance, in order, all or nothing.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Reply, NativeError> {
        let raw = self.id.clone();
        let id = query::read(&self.state.ledger, &self.ctx.principal, move |r| {
            r.resolve(&raw)
        })
        .await?;
        self.write(WriteCommand::Instance { id, commands }).await
    }

    /// Checks that a user the body names exists.
    pub async fn user_must_exist(&self, user_id: Uuid) -> Result<(), NativeError> {
        Ok(self.state.ledger.user_must_exist(user_id).await?)
    }

    /// Applies commands and answers with the instance's view.
    pub async fn view(
        &self,
        commands: Vec<Command>,
        status: StatusCode,
    ) -> Result<HttpResponse, NativeError> {
        let reply = self.submit(commands).await?;
        Ok(respond(status, &reply, Some(view_of(&reply)?)))
    }

    /// Applies commands and answers with no body.
    pub async fn bare(
        &self,
        commands: Vec<Command>,
        status: StatusCode,
    ) -> Result<HttpResponse, NativeError> {
        let reply = self.submit(commands).await?;
        Ok(respond(status, &reply, None::<()>))
    }

    /// The sizes a resize to a flavor gives the instance, checked against its project.
    pub async fn sizing(
        &self,
        flavor_id: Uuid,
        sizes: Option<Sizes>,
    ) -> Result<Sizing, NativeError> {
        let raw = self.id.clone();
        let project = query::read(&self.state.ledger, &self.ctx.principal, move |r| {
            Ok(r.instance(&raw)?.spec.project_id)
        })
        .await?;
        Ok(self
            .state
            .ledger
            .flavor_sizing(flavor_id, Some(project), sizes)
            .await?)
    }
}
