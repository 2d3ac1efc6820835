//! Principals and their grants: users with their API tokens (stored as digests only), and
//! the relations that give access: customer ownership and project roles. Grants live on
//! the customer and project streams (`catalog`), users on their own streams, so the log
//! answers "who could reach project P on date D".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::DomainError;

/// A role on a project.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates, reads and operates the project's instances.
    Administrator,
    /// Reads the project's instances; changes nothing.
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Manager => "manager",
        }
    }
}

/// A token as recorded: never the secret, only its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenRecord {
    pub name: Option<String>,
    /// Hex SHA-256 of the secret.
    pub digest: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub is_staff: bool,
    /// Infrastructure agents report completions of requested transitions.
    pub agent: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub tokens: BTreeMap<Uuid, TokenRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub is_staff: bool,
    pub agent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserCreated(NewUser),
    TokenIssued {
        token_id: Uuid,
        name: Option<String>,
        digest: String,
    },
    TokenRevoked {
        token_id: Uuid,
    },
}

impl UserEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            UserEvent::UserCreated(_) => "UserCreated",
            UserEvent::TokenIssued { .. } => "TokenIssued",
            UserEvent::TokenRevoked { .. } => "TokenRevoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Create(NewUser),
    IssueToken {
        token_id: Uuid,
        name: Option<String>,
        digest: String,
    },
    RevokeToken {
        token_id: Uuid,
    },
}

pub fn decide(state: Option<&User>, command: &UserCommand) -> Result<Vec<UserEvent>, DomainError> {
    match (state, command) {
        (None, UserCommand::Create(new)) => Ok(vec![UserEvent::UserCreated(new.clone())]),
        (Some(_), UserCommand::Create(_)) => Err(DomainError::AlreadyExists),
        (None, _) => Err(DomainError::NotFound),
        (
            Some(_),
            UserCommand::IssueToken {
                token_id,
                name,
                digest,
            },
        ) => Ok(vec![UserEvent::TokenIssued {
            token_id: *token_id,
            name: name.clone(),
            digest: digest.clone(),
        }]),
        (Some(user), UserCommand::RevokeToken { token_id }) => match user.tokens.get(token_id) {
            None => Err(DomainError::NoSuchGrant),
            // Revoking twice changes nothing.
            Some(t) if t.revoked_at.is_some() => Ok(vec![]),
            Some(_) => Ok(vec![UserEvent::TokenRevoked {
                token_id: *token_id,
            }]),
        },
    }
}

pub fn evolve(state: Option<User>, id: Uuid, event: &UserEvent, at: DateTime<Utc>) -> User {
    let mut user = match (state, event) {
        (_, UserEvent::UserCreated(new)) => {
            return User {
                id,
                username: new.username.clone(),
                email: new.email.clone(),
                is_staff: new.is_staff,
                agent: new.agent,
                created_at: at,
                tokens: BTreeMap::new(),
            };
        }
        (Some(user), _) => user,
        // Cannot be produced by decide; keep a damaged log replayable.
        (None, _) => User {
            id,
            username: String::new(),
            email: String::new(),
            is_staff: false,
            agent: false,
            created_at: at,
            tokens: BTreeMap::new(),
        },
    };
    match event {
        UserEvent::UserCreated(_) => {}
        UserEvent::TokenIssued {
            token_id,
            name,
            digest,
        } => {
            user.tokens.insert(
                *token_id,
                TokenRecord {
                    name: name.clone(),
                    digest: digest.clone(),
                    created_at: at,
                    revoked_at: None,
                },
            );
        }
        UserEvent::TokenRevoked { token_id } => {
            if let Some(t) = user.tokens.get_mut(token_id) {
                t.revoked_at = Some(at);
            }
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + n, 0).expect("time")
    }

    #[test]
    fn tokens_are_issued_and_revoked_once() {
        let id = Uuid::from_u128(1);
        let token = Uuid::from_u128(2);
        let new = NewUser {
            username: "ann".into(),
            email: "ann@example.com".into(),
            is_staff: false,
            agent: false,
        };
        let mut user = None;
        for cmd in [
            UserCommand::Create(new),
            UserCommand::IssueToken {
                token_id: token,
                name: None,
                digest: "d".into(),
            },
            UserCommand::RevokeToken { token_id: token },
        ] {
            for e in decide(user.as_ref(), &cmd).expect("legal") {
                user = Some(evolve(user, id, &e, at(1)));
            }
        }
        let user = user.expect("user");
        assert_eq!(user.tokens[&token].revoked_at, Some(at(1)));
        assert_eq!(
            decide(Some(&user), &UserCommand::RevokeToken { token_id: token }),
            Ok(vec![])
        );
        assert_eq!(
            decide(
                Some(&user),
                &UserCommand::RevokeToken {
                    token_id: Uuid::from_u128(9)
                }
            ),
            Err(DomainError::NoSuchGrant)
        );
    }
}
