//! Field validation for request bodies, shared by every surface: a clear failure naming
//! the field, before any command reaches the writer. Bounds come from [`crate::limits`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::failure::{Failure, Input};
use crate::limits;

fn invalid(field: &str, why: impl std::fmt::Display) -> Failure {
    Failure::bad_request(Input::InvalidField, format!("{field}: {why}"))
}

/// A display name: 1 to [`limits::NAME_CHARS`] characters, no control characters.
pub fn name(field: &str, value: &str) -> Result<String, Failure> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > limits::NAME_CHARS {
        return Err(invalid(
            field,
            format!("must be at most {} characters", limits::NAME_CHARS),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_string())
}

/// An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn hostname(value: &str) -> Result<String, Failure> {
    let ok = !value.is_empty()
        && value.len() <= limits::HOSTNAME_BYTES
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= limits::HOSTNAME_LABEL_BYTES
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(invalid(
            "hostname",
            "must be a valid host name (letters, digits, hyphens and dots; labels up to 63 characters)",
        ))
    }
}

/// Free text of at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, Failure> {
    if value.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(value.to_string())
}

pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), Failure> {
    if tags.len() > limits::TAGS {
        return Err(invalid(
            "tags",
            format!("at most {} tags are allowed", limits::TAGS),
        ));
    }
    for (k, v) in tags {
        if k.is_empty()
            || k.chars().count() > limits::TAG_KEY_CHARS
            || k.chars().any(char::is_control)
        {
            return Err(invalid(
                "tags",
                format!(
                    "key {k:?} must be 1 to {} printable characters",
                    limits::TAG_KEY_CHARS
                ),
            ));
        }
        if v.chars().count() > limits::TAG_VALUE_CHARS || v.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!(
                    "value of {k:?} must be at most {} printable characters",
                    limits::TAG_VALUE_CHARS
                ),
            ));
        }
    }
    Ok(())
}

/// Attributes: at most [`limits::ATTRIBUTES`], keys and values bounded like tags.
pub fn attributes(attributes: &BTreeMap<String, String>) -> Result<(), Failure> {
    if attributes.len() > limits::ATTRIBUTES {
        return Err(invalid(
            "attributes",
            format!("at most {} attributes are allowed", limits::ATTRIBUTES),
        ));
    }
    for (k, v) in attributes {
        if k.is_empty()
            || k.chars().count() > limits::TAG_KEY_CHARS
            || k.chars().any(char::is_control)
        {
            return Err(invalid(
                "attributes",
                format!(
                    "key {k:?} must be 1 to {} printable characters",
                    limits::TAG_KEY_CHARS
                ),
            ));
        }
        if v.chars().count() > limits::TAG_VALUE_CHARS {
            return Err(invalid(
                "attributes",
                format!(
                    "value of {k:?} must be at most {} characters",
                    limits::TAG_VALUE_CHARS
                ),
            ));
        }
    }
    Ok(())
}

pub fn security_groups(groups: &[String]) -> Result<Vec<String>, Failure> {
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let g = name("security_groups", g)?;
        if out.contains(&g) {
            return Err(invalid("security_groups", format!("{g:?} is listed twice")));
        }
        out.push(g);
    }
    Ok(out)
}

/// An IPv4 or IPv6 network in CIDR notation.
pub fn cidr(value: &str) -> Result<String, Failure> {
    let bad = || {
        invalid(
            "cidr",
            format!("{value:?} is not a CIDR block like 10.0.0.0/24"),
        )
    };
    let (addr, len) = value.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok(value.to_string())
}

pub fn range(field: &str, value: u64, min: u64, max: u64) -> Result<(), Failure> {
    if value < min || value > max {
        return Err(invalid(field, format!("must be between {min} and {max}")));
    }
    Ok(())
}

pub fn public_key(value: &str) -> Result<String, Failure> {
    let v = value.trim();
    let known = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| v.starts_with(p));
    if !known || v.len() > limits::PUBLIC_KEY_BYTES || v.split_whitespace().count() < 2 {
        return Err(invalid(
            "public_key",
            "must be an OpenSSH public key like \"ssh-ed25519 AAAA... comment\"",
        ));
    }
    Ok(v.to_string())
}

/// A login name: 1 to [`limits::USERNAME_BYTES`] lowercase letters, digits, dots,
/// hyphens and underscores.
pub fn username(value: &str) -> Result<String, Failure> {
    let ok = !value.is_empty()
        && value.len() <= limits::USERNAME_BYTES
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(invalid(
            "username",
            "must be 1 to 64 of a-z, 0-9, '.', '_' and '-'",
        ))
    }
}

pub fn email(value: &str) -> Result<String, Failure> {
    let v = value.trim();
    let ok = v.len() <= limits::EMAIL_BYTES
        && v.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(v.to_string())
    } else {
        Err(invalid("email", format!("{v:?} is not an email address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(
            hostname("Web-1.example").ok().as_deref(),
            Some("web-1.example")
        );
        for bad in ["", "-a", "a-", "a..b", "a_b", &"x".repeat(64)] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert!(cidr("10.0.0.0/24").is_ok());
        assert!(cidr("fd00::/64").is_ok());
        for bad in ["10.0.0.0", "10.0.0.0/33", "x/8", "fd00::/129"] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_groups() {
        assert!(name("name", "  ").is_err());
        assert!(name("name", "a\u{7}").is_err());
        assert_eq!(name("name", " web ").ok().as_deref(), Some("web"));
        assert!(security_groups(&["a".into(), "a".into()]).is_err());
    }
}
