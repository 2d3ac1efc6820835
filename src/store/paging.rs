//! The paging rules, written once for every backend: where a cursor starts, how the runs
//! of several filter keys are intersected, how a page and its `total` are cut, now and as
//! of a past position. Backends only supply the index primitives of [`Snapshot`].

use uuid::Uuid;

use super::{Cut, Snapshot, StoreError};
use crate::limits::TOTAL_CHUNK_IDS;
use crate::projection::{IndexKey, Page, index};

/// The first id a page after `after` may hold; `None` when nothing can follow (the
/// cursor is the largest id).
pub fn start(after: Option<Uuid>) -> Option<u128> {
    match after {
        None => Some(0),
        Some(id) => id.as_u128().checked_add(1),
    }
}

/// Leapfrog intersection of sorted id runs: `seek(key, t)` gives the first id >= t in
/// a key's run. Each step seeks the next candidate in one run, so a page costs seeks
/// in proportion to what it skips and returns, never a scan of the fleet.
pub fn intersect(
    keys: &[IndexKey],
    start: u128,
    limit: usize,
    mut seek: impl FnMut(&[u8], u128) -> Result<Option<u128>, StoreError>,
) -> Result<Vec<u128>, StoreError> {
    let mut out = Vec::new();
    if keys.is_empty() || limit == 0 {
        return Ok(out);
    }
    let mut target = start;
    let mut agreed = 0;
    let mut i = 0;
    loop {
        match seek(&keys[i], target)? {
            None => return Ok(out),
            Some(id) if id == target => agreed += 1,
            Some(id) => {
                target = id;
                agreed = 1;
            }
        }
        if agreed == keys.len() {
            out.push(target);
            if out.len() >= limit || target == u128::MAX {
                return Ok(out);
            }
            target += 1;
            agreed = 0;
        }
        i = (i + 1) % keys.len();
    }
}

/// Cuts a page of `limit` from `ids` (read with one extra to know whether more follow).
pub fn paged(mut ids: Vec<u128>, limit: usize, total: u64) -> Page {
    let next = if ids.len() > limit {
        ids.truncate(limit);
        ids.last().copied().map(Uuid::from_u128)
    } else {
        None
    };
    Page {
        ids: ids.into_iter().map(Uuid::from_u128).collect(),
        next,
        total,
    }
}

/// The size of an intersection of several runs: the smallest run (by its maintained
/// count) is read in chunks and each chunk's ids are looked up in the other runs, the
/// most selective first, keeping only those found. Exact, and in proportion to the
/// smallest run rather than the fleet; a sequential read and a point lookup per id cost
/// about half of what the leapfrog's two seeks per id did, and a backend that pays a
/// round trip per query answers each chunk's lookups in one.
fn intersection_size(
    keys: &[IndexKey],
    count: impl Fn(&[u8]) -> Result<u64, StoreError>,
    chunk: impl Fn(&[u8], u128) -> Result<Vec<u128>, StoreError>,
    members: impl Fn(&[u8], &[u128]) -> Result<Vec<u128>, StoreError>,
) -> Result<u64, StoreError> {
    let mut by_count = Vec::with_capacity(keys.len());
    for key in keys {
        by_count.push((count(key)?, key));
    }
    by_count.sort();
    let Some(((_, smallest), others)) = by_count.split_first() else {
        return Ok(0);
    };
    let mut total = 0u64;
    let mut from = 0u128;
    loop {
        let ids = chunk(smallest, from)?;
        let mut found = ids.clone();
        for (_, key) in others {
            if found.is_empty() {
                break;
            }
            found = members(key, &found)?;
        }
        total += found.len() as u64;
        match ids.last().and_then(|last| last.checked_add(1)) {
            Some(next) if ids.len() >= TOTAL_CHUNK_IDS => from = next,
            _ => return Ok(total),
        }
    }
}

/// One key, or a pair counted per state ([`index::state_pair`]): the maintained count.
/// Several: the size of the intersection.
fn total<S: Snapshot + ?Sized>(snap: &S, keys: &[IndexKey]) -> Result<u64, StoreError> {
    if let Some(pair) = index::state_pair(keys)
        && let Some(n) = snap.count_in_state(&pair.key, pair.state)?
    {
        return Ok(n);
    }
    match keys {
        [] => Ok(0),
        [one] => snap.count(one),
        many => intersection_size(
            many,
            |k| snap.count(k),
            |k, from| snap.run(k, from, TOTAL_CHUNK_IDS),
            |k, ids| snap.members(k, ids),
        ),
    }
}

pub fn page<S: Snapshot + ?Sized>(
    snap: &S,
    keys: &[IndexKey],
    after: Option<Uuid>,
    limit: usize,
) -> Result<Page, StoreError> {
    let ids = match (start(after), keys) {
        (None, _) => Vec::new(),
        (Some(from), [one]) => snap.run(one, from, limit.saturating_add(1))?,
        (Some(from), many) => {
            intersect(many, from, limit.saturating_add(1), |k, t| snap.seek(k, t))?
        }
    };
    Ok(paged(ids, limit, total(snap, keys)?))
}

pub fn page_at<S: Snapshot + ?Sized>(
    snap: &S,
    keys: &[IndexKey],
    position: u64,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Page, StoreError> {
    let Some(last) = snap.last_created(position)? else {
        return Ok(paged(Vec::new(), limit, 0));
    };
    let cut = Cut { position, last };
    let seek = |k: &[u8], t: u128| snap.seek_at(k, t, cut);
    let ids = match (start(after), keys) {
        (None, _) => Vec::new(),
        (Some(from), [one]) => snap.run_at(one, from, cut, limit.saturating_add(1))?,
        (Some(from), many) => intersect(many, from, limit.saturating_add(1), seek)?,
    };
    let counted = match index::state_pair(keys) {
        Some(pair) if pair.history => snap.count_in_state_at(&pair.key, pair.state, position)?,
        _ => None,
    };
    let total = match (counted, keys) {
        (Some(n), _) => n,
        (_, []) => 0,
        (_, [one]) => snap.count_at(one, position)?,
        (_, many) => intersection_size(
            many,
            |k| snap.count_at(k, position),
            |k, from| snap.run_at(k, from, cut, TOTAL_CHUNK_IDS),
            |k, ids| snap.members_at(k, ids, cut),
        )?,
    };
    Ok(paged(ids, limit, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(sets: &[&[u128]]) -> impl FnMut(&[u8], u128) -> Result<Option<u128>, StoreError> {
        let sets: Vec<Vec<u128>> = sets.iter().map(|s| s.to_vec()).collect();
        move |k: &[u8], t: u128| Ok(sets[k[0] as usize].iter().copied().find(|id| *id >= t))
    }

    #[test]
    fn intersection_returns_the_common_ids_in_order() {
        let keys = vec![vec![0u8], vec![1u8]];
        let seek = runs(&[&[1, 3, 5, 7, 9], &[2, 3, 4, 7, 9, 11]]);
        assert_eq!(intersect(&keys, 0, 10, seek).ok(), Some(vec![3, 7, 9]));
        let seek = runs(&[&[1, 3, 5, 7, 9], &[2, 3, 4, 7, 9, 11]]);
        assert_eq!(intersect(&keys, 4, 1, seek).ok(), Some(vec![7]));
    }

    #[test]
    fn intersection_size_counts_the_common_ids_across_chunks() {
        // Runs longer than a chunk, ending at the largest id, and one key never used.
        let mut sets: Vec<Vec<u128>> = (2..=4u128)
            .map(|m| {
                (1..=5 * TOTAL_CHUNK_IDS as u128)
                    .filter(|i| i % m == 0)
                    .collect()
            })
            .collect();
        for set in &mut sets {
            set.push(u128::MAX);
        }
        sets.push(Vec::new());
        let count = |k: &[u8]| Ok(sets[k[0] as usize].len() as u64);
        let chunk = |k: &[u8], from: u128| {
            Ok(sets[k[0] as usize]
                .iter()
                .copied()
                .filter(|id| *id >= from)
                .take(TOTAL_CHUNK_IDS)
                .collect())
        };
        let members = |k: &[u8], ids: &[u128]| {
            Ok(ids
                .iter()
                .copied()
                .filter(|id| sets[k[0] as usize].contains(id))
                .collect())
        };
        let size = |keys: &[IndexKey]| intersection_size(keys, count, chunk, members).ok();
        let common = |of: &[usize]| {
            sets[of[0]]
                .iter()
                .filter(|id| of.iter().all(|k| sets[*k].contains(id)))
                .count() as u64
        };
        for of in [
            vec![0, 1],
            vec![1, 0],
            vec![0, 2],
            vec![0, 1, 2],
            vec![2, 1, 0],
        ] {
            let keys: Vec<IndexKey> = of.iter().map(|k| vec![*k as u8]).collect();
            assert_eq!(size(&keys), Some(common(&of)), "keys {of:?}");
        }
        assert_eq!(size(&[vec![0], vec![3]]), Some(0));
        assert_eq!(common(&[0, 1]), (5 * TOTAL_CHUNK_IDS as u64) / 6 + 1);
    }

    #[test]
    fn a_page_reports_a_cursor_only_when_more_follow() {
        let page = paged(vec![1, 2, 3], 2, 3);
        assert_eq!(page.next, Some(Uuid::from_u128(2)));
        assert_eq!(paged(vec![1, 2], 2, 2).next, None);
        assert_eq!(start(Some(Uuid::from_u128(u128::MAX))), None);
        assert_eq!(start(None), Some(0));
    }
}
