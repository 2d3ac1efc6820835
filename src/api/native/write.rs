//! The native writes that name their object by path: [`Act`] (the shared extractor) with
//! the answers in the native shape.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use uuid::Uuid;

use super::instances::{respond, view_of};
use super::{Native, NativeError};
use crate::api::request;
use crate::domain::instance::{Command, Sizing};
use crate::query;
use crate::service::{Reply, Sizes};

/// A native write to the object a path names.
pub type Act = request::Act<Native>;

impl Act {
    /// Applies commands to the instance the path names, in order, all or nothing.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Reply, NativeError> {
        let raw = self.id.clone();
        let id = query::read(&self.state.ledger, &self.ctx.principal, move |r| {
            r.resolve(&raw)
        })
        .await?;
        self.operate(id, commands).await
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
