//! dcmgr's canonical ids, `<prefix>-<id>`: here the prefix and the 32 hex digits of the
//! ledger's uuid (the instance's `i-` id is its short id). Input takes the prefixed form,
//! dashed or not, or the bare uuid.

use uuid::Uuid;

pub const ACCOUNT: &str = "a";
pub const IMAGE: &str = "wmi";
pub const SPEC: &str = "is";
pub const SSH_KEY: &str = "ssh";
pub const SECURITY_GROUP: &str = "sg";
pub const NETWORK: &str = "nw";
pub const VIF: &str = "vif";

pub fn show(prefix: &str, id: Uuid) -> String {
    format!("{prefix}-{}", id.simple())
}

/// The uuid of a `<prefix>-<uuid>` (or a bare uuid).
pub fn parse(prefix: &str, raw: &str) -> Option<Uuid> {
    let raw = raw.trim();
    let rest = raw
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or(raw);
    Uuid::try_parse(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_dashed_and_bare_forms_name_the_same_uuid() {
        let id = Uuid::from_u128(0xabc);
        for raw in [show(IMAGE, id), format!("wmi-{id}"), id.to_string()] {
            assert_eq!(parse(IMAGE, &raw), Some(id), "{raw}");
        }
        assert_eq!(parse(IMAGE, "wmi-lucid5"), None);
        assert_eq!(parse(SPEC, &show(IMAGE, id)), None, "another kind's prefix");
    }
}
