//! The paging rules, written once for every backend: where a cursor starts, how the runs
//! of several filter keys are intersected, how a page and its `total` are cut, now and as
//! of a past position. Backends only supply the index primitives of [`Snapshot`].

use uuid::Uuid;

use super::{Cut, Snapshot, StoreError};
use crate::projection::{IndexKey, Page};

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

/// One key: the maintained count. Several: the size of the intersection, which costs in
/// proportion to the smallest run rather than the fleet.
fn total<S: Snapshot + ?Sized>(snap: &S, keys: &[IndexKey]) -> Result<u64, StoreError> {
    match keys {
        [] => Ok(0),
        [one] => snap.count(one),
        many => Ok(intersect(many, 0, usize::MAX, |k, t| snap.seek(k, t))?.len() as u64),
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
    let total = match keys {
        [] => 0,
        [one] => snap.count_at(one, position)?,
        many => intersect(many, 0, usize::MAX, seek)?.len() as u64,
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
    fn a_page_reports_a_cursor_only_when_more_follow() {
        let page = paged(vec![1, 2, 3], 2, 3);
        assert_eq!(page.next, Some(Uuid::from_u128(2)));
        assert_eq!(paged(vec![1, 2], 2, 2).next, None);
        assert_eq!(start(Some(Uuid::from_u128(u128::MAX))), None);
        assert_eq!(start(None), Some(0));
    }
}
