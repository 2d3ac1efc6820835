//! The log as a caller may see it: the global feed after a position with audit filters,
//! and the digest that attests a position (its chained hash and the fleet's state hash).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Envelope, Point, QueryError, Reader, StreamKind};
use crate::authz::{Action, Decision, Object, Principal, can};
use crate::limits;
use crate::store::Snapshot;

/// Audit filters over the feed; every one given must match.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub instance_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl FeedFilter {
    /// Whether an event passes the filters (visibility is checked separately).
    fn matches(&self, e: &Envelope, project: Option<Uuid>) -> bool {
        self.instance_id.is_none_or(|id| id == e.stream_id)
            && self.project_id.is_none_or(|p| Some(p) == project)
            && self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.request_id.as_ref().is_none_or(|r| *r == e.request_id)
            && self.since.is_none_or(|t| e.at >= t)
    }
}

/// One step of the feed: the events found, and the position to continue after.
#[derive(Debug, Clone)]
pub struct FeedStep {
    pub items: Vec<Envelope>,
    pub next_after: u64,
}

/// What a digest attests.
#[derive(Debug, Clone)]
pub struct Digest {
    pub position: u64,
    /// The chained hash of the event at `position` (zeros for an empty ledger).
    pub hash: [u8; 32],
    pub at: Option<DateTime<Utc>>,
    pub state_hash: [u8; 32],
}

impl Reader<'_> {
    /// The matching events the caller may see after `after`, at most `limit`, looking at
    /// no more than [`limits::FEED_MAX_SCAN`] events; and where to continue.
    pub fn feed(&self, q: &FeedFilter, after: u64, limit: usize) -> Result<FeedStep, QueryError> {
        let mut visible = Visibility::new(self.caller);
        let mut items = Vec::new();
        let mut next_after = after;
        if let Some(since) = q.since {
            // Events are in time order: skip straight past everything before `since`.
            let before = self
                .snap
                .position_at(since - chrono::Duration::nanoseconds(1))?;
            next_after = next_after.max(before);
        }
        let mut scanned = 0;
        while items.len() < limit && scanned < limits::FEED_MAX_SCAN {
            let batch = self.snap.read_all(next_after, limit.max(100))?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if q.until.is_some_and(|t| e.at > t) {
                    return Ok(FeedStep { items, next_after });
                }
                scanned += 1;
                next_after = e.position;
                if let Some(project) = visible.event(self.snap, &e)?
                    && q.matches(&e, project)
                {
                    items.push(e);
                    if items.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(FeedStep { items, next_after })
    }

    /// The event at `position`, if the caller may see it.
    pub fn event_at(&self, position: u64) -> Result<Option<Envelope>, QueryError> {
        if position == 0 {
            return Ok(None);
        }
        let Some(e) = self
            .snap
            .read_all(position - 1, 1)?
            .into_iter()
            .find(|e| e.position == position)
        else {
            return Ok(None);
        };
        let mut visible = Visibility::new(self.caller);
        Ok(visible.event(self.snap, &e)?.map(|_| e))
    }

    /// Whether the caller may see one event (`Some(project)` for instance events).
    pub(super) fn visibility(&self) -> Visibility<'_> {
        Visibility::new(self.caller)
    }

    /// The digest of the log at a point (the head when none is given).
    pub fn digest(&self, point: Option<Point>) -> Result<Digest, QueryError> {
        let head = self.snap.head()?;
        let position = match point {
            None => head.position,
            Some(p) => self.bounded(p)?,
        };
        let event = match position {
            0 => None,
            p => self.snap.read_all(p - 1, 1)?.into_iter().next(),
        };
        let hash = match (&event, position == head.position) {
            (_, true) => head.hash,
            (Some(e), false) => self.snap.event_hash(e.position)?,
            (None, false) => [0u8; 32],
        };
        Ok(Digest {
            position,
            hash,
            at: event.map(|e| e.at),
            state_hash: self.snap.state_hash_at(position)?,
        })
    }
}

/// Decides, per event, whether the caller may see it, and finds the project of instance
/// events: staff see everything; agents every instance event; others the events of
/// instances they may read. `None`: hidden; `Some(project)`: visible.
pub(super) struct Visibility<'a> {
    caller: &'a Principal,
    instances: HashMap<Uuid, Option<(bool, Uuid)>>,
}

impl<'a> Visibility<'a> {
    fn new(caller: &'a Principal) -> Visibility<'a> {
        Visibility {
            caller,
            instances: HashMap::new(),
        }
    }

    pub(super) fn event(
        &mut self,
        snap: &dyn Snapshot,
        e: &Envelope,
    ) -> Result<Option<Option<Uuid>>, QueryError> {
        if e.stream_kind != StreamKind::Instance {
            return Ok(self.caller.staff.then_some(None));
        }
        let known = match self.instances.get(&e.stream_id) {
            Some(k) => *k,
            None => {
                let k = snap.instance(e.stream_id)?.map(|i| {
                    let object = Object::Instance {
                        project: i.spec.project_id,
                        customer: i.spec.customer_id,
                    };
                    (
                        can(self.caller, Action::ReadInstance, &object) == Decision::Allow,
                        i.spec.project_id,
                    )
                });
                self.instances.insert(e.stream_id, k);
                k
            }
        };
        Ok(match known {
            Some((true, project)) => Some(Some(project)),
            _ => None,
        })
    }
}
