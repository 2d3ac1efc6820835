//! Arguments as Tornado 2.4's `get_argument` saw them: the query string, then a
//! form-encoded body (so the body wins), the last of repeated values winning, blank values
//! dropped and surrounding whitespace stripped. A JSON body is never parsed, as the
//! original never parsed one.

use actix_web::web;

/// The request's arguments, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<(String, String)>);

fn pairs(raw: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(raw)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

impl Args {
    pub fn parse(query: &str, content_type: Option<&str>, body: &[u8]) -> Args {
        let mut all = pairs(query);
        let form = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|c| c == "application/x-www-form-urlencoded");
        if form {
            all.extend(pairs(&String::from_utf8_lossy(body)));
        }
        Args(
            all.into_iter()
                .map(|(k, v)| (k, v.trim().to_string()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    /// The last value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, each split at commas (a list argument, either way).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A boolean argument: `true`/`True`/`1` or `false`/`False`/`0` (the documented meaning,
/// not boto's "any non-empty string").
pub fn boolean(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_wins_blank_is_absent_and_lists_take_both_forms() {
        let a = Args::parse(
            "image_id=q&min_count=&security_groups=web",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"image_id=%20b%20&security_groups=db,ssh",
        );
        assert_eq!(a.get("image_id"), Some("b"));
        assert_eq!(a.get("min_count"), None);
        assert_eq!(a.list("security_groups"), ["web", "db", "ssh"]);
        let json = Args::parse("", Some("application/json"), b"{\"image_id\": \"x\"}");
        assert_eq!(json.get("image_id"), None, "JSON bodies are not arguments");
        assert_eq!(boolean("False"), Some(false));
        assert_eq!(boolean("yes"), None);
    }
}
