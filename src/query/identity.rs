//! Principals and their grants: who a user token belongs to (with the grants that make up
//! the principal), users, and the user a token id belongs to. Token secrets are compared
//! as SHA-256 digests in constant time; nothing here ever sees a stored secret.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{QueryError, Reader, all_with, read_unscoped};
use crate::authz::Principal;
use crate::domain::catalog::{Kind, Spec};
use crate::domain::identity::User;
use crate::projection::{Page, index};
use crate::service::Ledger;
use crate::store::Snapshot;
use crate::store::envelope::hex;

/// The prefix of user tokens: `lt_<token id>_<secret>`.
pub const TOKEN_PREFIX: &str = "lt_";

/// Finds the user token's owner and loads the grants that make up the principal; `None`
/// for an unknown, mismatched or revoked token.
pub async fn principal_for_token(
    ledger: &Ledger,
    token: String,
) -> Result<Option<Principal>, QueryError> {
    read_unscoped(ledger, move |snap| user_principal(snap, &token)).await
}

/// The token id and the secret of a presented `lt_<token id>_<secret>`, or `None` for
/// anything else (whatever bytes a client sends).
pub fn token_parts(token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

fn user_principal(snap: &dyn Snapshot, token: &str) -> Result<Option<Principal>, QueryError> {
    let Some((token_id, secret)) = token_parts(token) else {
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
    for customer in all_with(snap, &index::owner_key(user.id))? {
        principal.owned_customers.insert(customer);
    }
    for project in all_with(snap, &index::member_key(user.id))? {
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

/// A page of users in creation order.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub items: Vec<User>,
    pub next: Option<Uuid>,
    pub total: u64,
}

impl Reader<'_> {
    /// A user by id. Who may ask is the policy's business (the surface checked it).
    pub fn user(&self, id: Uuid) -> Result<Option<User>, QueryError> {
        Ok(self.snap.user(id)?)
    }

    pub fn users(&self, cursor: Option<Uuid>, limit: usize) -> Result<UserPage, QueryError> {
        let Page { ids, next, total } = self.snap.page(&[index::users_key()], cursor, limit)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in &ids {
            items.extend(self.snap.user(*id)?);
        }
        Ok(UserPage { items, next, total })
    }

    /// The user a token id belongs to.
    pub fn token_owner(&self, token_id: Uuid) -> Result<Option<Uuid>, QueryError> {
        Ok(self
            .snap
            .page(&[index::token_key(token_id)], None, 1)?
            .ids
            .first()
            .copied())
    }

    /// A resource of any kind by id, unchecked: grants and members are managed through
    /// routes the policy already guards.
    pub fn grants_of(
        &self,
        id: Uuid,
    ) -> Result<Option<crate::domain::catalog::Resource>, QueryError> {
        Ok(self.snap.resource(id)?)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a client presents is a token's parts or nothing, never a panic.
        #[test]
        fn any_text_is_parts_or_nothing(raw in any::<String>()) {
            if let Some((_, secret)) = token_parts(&raw) {
                prop_assert!(raw.starts_with(TOKEN_PREFIX));
                prop_assert!(raw.ends_with(secret));
            }
        }

        /// An issued token's parts come back whole, whatever its secret holds.
        #[test]
        fn an_issued_token_gives_back_its_parts(id in any::<u128>(), secret in any::<String>()) {
            let id = Uuid::from_u128(id);
            let token = format!("{TOKEN_PREFIX}{}_{secret}", id.simple());
            prop_assert_eq!(token_parts(&token), Some((id, secret.as_str())));
        }
    }
}
