//! The immutable short id (`i-` + 8 lowercase base-36 characters) used by the EC2- and
//! Wakame-style dialects, and its ordinal: a fixed permutation maps the short ids onto
//! the numbers below 36^8 and back. New ids are the images of increasing ordinals (the
//! writer uses log positions), so they look unrelated to each other while the stores can
//! keep them in ordinal order: a batch of creations then writes its short ids side by
//! side instead of into random pages of a large table. Uniqueness is still checked by
//! the writer against the ledger (ids minted at random before keep their ordinals too).

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

/// How many short ids there are: 36^8.
pub const SPACE: u64 = 2_821_109_907_456;

/// The short id of ordinal `n` (taken modulo [`SPACE`]).
pub fn from_ordinal(n: u64) -> String {
    from_random(permute(n % SPACE))
}

/// The ordinal of a well-formed short id; every one has exactly one.
pub fn ordinal(s: &str) -> Option<u64> {
    if !is_valid(s) {
        return None;
    }
    // [`from_random`] writes the least significant digit first.
    let value = s.as_bytes()[2..].iter().rev().fold(0u64, |v, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            _ => b - b'a' + 10,
        };
        v * 36 + u64::from(digit)
    });
    Some(unpermute(value))
}

/// A balanced Feistel network on 42 bits (2^42 > 36^8): invertible by construction.
const HALF_BITS: u32 = 21;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const ROUND_KEYS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

fn round(half: u64, key: u64) -> u64 {
    ((half ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) & HALF_MASK
}

fn feistel(x: u64) -> u64 {
    let (mut l, mut r) = (x >> HALF_BITS, x & HALF_MASK);
    for key in ROUND_KEYS {
        (l, r) = (r, l ^ round(r, key));
    }
    (l << HALF_BITS) | r
}

fn feistel_inverse(y: u64) -> u64 {
    let (mut l, mut r) = (y >> HALF_BITS, y & HALF_MASK);
    for key in ROUND_KEYS.iter().rev() {
        (l, r) = (r ^ round(l, *key), l);
    }
    (l << HALF_BITS) | r
}

/// A permutation of `0..SPACE`: the network's images are walked until one falls inside
/// the space again (cycle walking), on average 1.56 steps.
fn permute(x: u64) -> u64 {
    let mut y = feistel(x);
    while y >= SPACE {
        y = feistel(y);
    }
    y
}

fn unpermute(y: u64) -> u64 {
    let mut x = feistel_inverse(y);
    while x >= SPACE {
        x = feistel_inverse(x);
    }
    x
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
    fn ordinals_and_ids_map_onto_each_other() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..20_000).chain(SPACE - 20_000..SPACE) {
            let id = from_ordinal(n);
            assert!(is_valid(&id), "{id}");
            assert_eq!(ordinal(&id), Some(n), "{id}");
            assert!(seen.insert(id), "ordinal {n} repeats an id");
        }
        assert_eq!(from_ordinal(SPACE + 7), from_ordinal(7));
    }

    #[test]
    fn every_random_id_has_an_ordinal_that_gives_it_back() {
        // A fixed linear congruential sequence stands in for the caller's randomness.
        let mut x = 0x0123_4567_89ab_cdef_u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let id = from_random(x >> 11);
            let n = ordinal(&id).expect("a valid id has an ordinal");
            assert!(n < SPACE);
            assert_eq!(from_ordinal(n), id);
        }
        assert_eq!(ordinal("i-0000000A"), None);
        assert_eq!(
            ordinal("i-00000000").map(from_ordinal).as_deref(),
            Some("i-00000000")
        );
    }

    #[test]
    fn consecutive_ordinals_do_not_look_consecutive() {
        let ids: Vec<String> = (1000..1100).map(from_ordinal).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_ne!(ids, sorted, "ids of consecutive ordinals came out in order");
        // No shared prefix beyond what chance gives: the first characters vary.
        let firsts: std::collections::HashSet<u8> = ids.iter().map(|i| i.as_bytes()[2]).collect();
        assert!(firsts.len() > 20, "{firsts:?}");
    }

    #[test]
    fn the_network_is_inverted_exactly() {
        for x in [0, 1, HALF_MASK, 1 << 41, (1 << 42) - 1, 123_456_789_012] {
            assert_eq!(feistel_inverse(feistel(x)), x);
            assert_eq!(feistel(feistel_inverse(x)), x);
        }
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
