//! The immutable short id (`i-` + 8 lowercase base-36 characters) used by the EC2- and
//! Wakame-style dialects. The randomness comes from the caller; uniqueness is checked by
//! the writer against the ledger.

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const LEN: usize = 8;

/// Formats 8 base-36 digits taken from `random`.
pub fn from_random(mut random: u64) -> String {
    let mut s = String::with_capacity(2 + LEN);
    s.push_str("i-");
    for _ in 0..LEN {
        s.push(ALPHABET[(random % 36) as usize] as char);
        random /= 36;
    }
    s
}

pub fn is_valid(s: &str) -> bool {
    s.len() == 2 + LEN
        && s.starts_with("i-")
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_ids_are_valid_and_distinct_for_distinct_inputs() {
        let a = from_random(0);
        let b = from_random(1);
        let c = from_random(u64::MAX);
        for id in [&a, &b, &c] {
            assert!(is_valid(id), "{id}");
        }
        assert_eq!(a, "i-00000000");
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "i-0000000",
            "i-000000000",
            "x-00000000",
            "i-0000000A",
            "i-0000-000",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
