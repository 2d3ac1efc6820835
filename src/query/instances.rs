//! Instances as a caller may see them: one by id or short id (now or as of a point),
//! filtered pages bounded by the caller's scopes, and an instance's timeline.

use uuid::Uuid;

use super::{Envelope, Point, QueryError, Reader, StreamKind};
use crate::authz::{self, Action, Decision, Object};
use crate::domain::instance::{self, Command, Instance, LockHolder};
use crate::domain::lifecycle::{Operation, State};
use crate::domain::short_id;
use crate::projection::{Filter, IndexKey, Page, index};

/// A list request: filters (ANDed), page size, cursor and an optional point in the past.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub filters: Vec<Filter>,
    pub limit: usize,
    /// The last id of the previous page.
    pub cursor: Option<Uuid>,
    pub at: Option<Point>,
}

/// A page of instances in creation order.
#[derive(Debug, Clone)]
pub struct InstancePage {
    pub items: Vec<Instance>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Uuid>,
    /// How many instances match, across all pages.
    pub total: u64,
    /// The log position the page was read at.
    pub position: u64,
}

fn object(inst: &Instance) -> Object {
    Object::Instance {
        project: inst.spec.project_id,
        customer: inst.spec.customer_id,
    }
}

impl Reader<'_> {
    /// An instance's id from a path segment: the uuid, or the short id (`i-xxxxxxxx`).
    pub fn resolve(&self, raw: &str) -> Result<Uuid, QueryError> {
        if let Ok(id) = Uuid::parse_str(raw) {
            return Ok(id);
        }
        if short_id::is_valid(raw)
            && let Some(id) = self.snap.instance_by_short_id(raw)?
        {
            return Ok(id);
        }
        Err(QueryError::not_found("instance", raw))
    }

    /// Whether the caller may do `action` to this instance: `NotFound` when it may not
    /// know the instance exists, `Forbidden` when it sees it but may not do this.
    pub fn check(&self, inst: &Instance, action: Action) -> Result<(), QueryError> {
        match authz::can(self.caller, action, &object(inst)) {
            Decision::Allow => Ok(()),
            Decision::Forbidden => Err(QueryError::Forbidden(action)),
            Decision::Hidden => Err(QueryError::not_found("instance", inst.id)),
        }
    }

    /// The instance as it is now, if the caller may read it (purged: `Gone`).
    pub fn instance(&self, raw: &str) -> Result<Instance, QueryError> {
        self.instance_for(raw, Action::ReadInstance)
    }

    /// The instance as it is now, if the caller may do `action` to it.
    pub fn instance_for(&self, raw: &str, action: Action) -> Result<Instance, QueryError> {
        let id = self.resolve(raw)?;
        let inst = self
            .snap
            .instance(id)?
            .ok_or_else(|| QueryError::not_found("instance", raw))?;
        self.check(&inst, action)?;
        if inst.state == State::Purged {
            return Err(QueryError::Gone);
        }
        Ok(inst)
    }

    /// The instance as it was at `point`: not found before its creation, gone after its
    /// purge. Readable by whoever may read it now.
    pub fn instance_at(&self, raw: &str, point: Point) -> Result<Instance, QueryError> {
        let id = self.resolve(raw)?;
        let now = self
            .snap
            .instance(id)?
            .ok_or_else(|| QueryError::not_found("instance", raw))?;
        self.check(&now, Action::ReadInstance)?;
        let at = self.position_of(point)?;
        let inst = self
            .snap
            .instance_at(id, at)?
            .ok_or_else(|| QueryError::not_found("instance", format!("{raw} at position {at}")))?;
        if inst.state == State::Purged {
            return Err(QueryError::Gone);
        }
        Ok(inst)
    }

    /// The view of `id` after `position` (no visibility check: callers hold an id they
    /// were allowed to see).
    pub(super) fn view_at(&self, id: Uuid, position: u64) -> Result<Option<Instance>, QueryError> {
        Ok(self.snap.instance_at(id, position)?)
    }

    /// One page of the instances matching the query, bounded by what the caller may read.
    pub fn instances(&self, q: &InstanceQuery) -> Result<InstancePage, QueryError> {
        let filters: Vec<IndexKey> = q.filters.iter().map(Filter::index_key).collect();
        let at = q.at.map(|p| self.position_of(p)).transpose()?;
        let position = match at {
            Some(p) => p,
            None => self.snap.head()?.position,
        };
        let page = self.scoped_page(filters, q.cursor, q.limit, at)?;
        let mut items = Vec::with_capacity(page.ids.len());
        for id in &page.ids {
            let inst = match at {
                None => self.snap.instance(*id)?,
                Some(p) => self.snap.instance_at(*id, p)?,
            };
            items.extend(inst);
        }
        Ok(InstancePage {
            items,
            next: page.next,
            total: page.total,
            position,
        })
    }

    /// One page of the instances matching `filters`, bounded by the caller's scopes
    /// (`None`: everything). Scopes are disjoint, so their pages merge by id and their
    /// totals add up; each costs in proportion to the page.
    fn scoped_page(
        &self,
        filters: Vec<IndexKey>,
        cursor: Option<Uuid>,
        limit: usize,
        at: Option<u64>,
    ) -> Result<Page, QueryError> {
        let with = |extra: Option<&IndexKey>| {
            let mut keys = filters.clone();
            keys.extend(extra.cloned());
            if keys.is_empty() {
                keys.push(index::all_instances());
            }
            keys.sort();
            keys.dedup();
            keys
        };
        let page = |keys: &[IndexKey]| match at {
            None => self.snap.page(keys, cursor, limit),
            Some(p) => self.snap.page_at(keys, p, cursor, limit),
        };
        let Some(scopes) = authz::instance_scopes(self.caller) else {
            return Ok(page(&with(None))?);
        };
        let mut ids = Vec::new();
        let mut total = 0;
        let mut more = false;
        for scope in &scopes {
            let page = page(&with(Some(scope)))?;
            total += page.total;
            more |= page.next.is_some();
            ids.extend(page.ids);
        }
        ids.sort();
        ids.dedup();
        more |= ids.len() > limit;
        ids.truncate(limit);
        let next = if more { ids.last().copied() } else { None };
        Ok(Page { ids, next, total })
    }

    /// The instance's timeline, purged instances included.
    pub fn timeline(&self, raw: &str) -> Result<Vec<Envelope>, QueryError> {
        let id = self.resolve(raw)?;
        if let Some(inst) = self.snap.instance(id)? {
            self.check(&inst, Action::ReadInstance)?;
        }
        let stream = self.snap.stream(id)?;
        if stream
            .first()
            .is_none_or(|e| e.stream_kind != StreamKind::Instance)
        {
            return Err(QueryError::not_found("instance", raw));
        }
        Ok(stream)
    }

    /// How many instances are in each state now (every state, zeros included). Counts
    /// are fleet-wide, so only staff may ask.
    pub fn state_counts(&self) -> Result<Vec<(State, u64)>, QueryError> {
        if !self.caller.staff {
            return Err(QueryError::Forbidden(Action::ReadInstance));
        }
        State::ALL
            .into_iter()
            .map(|s| Ok((s, self.snap.count(&Filter::State(s).index_key())?)))
            .collect()
    }

    /// The console's actions the caller may perform on the instance now: each one the
    /// policy lets the caller operate, its lock does not hold back, and the state machine
    /// accepts (asked of `decide` itself, so the answer cannot drift from the rules).
    pub fn operations(&self, raw: &str) -> Result<Vec<Operation>, QueryError> {
        let inst = self.instance(raw)?;
        if self.check(&inst, Action::OperateInstance).is_err() {
            return Ok(Vec::new());
        }
        let by = if self.caller.staff {
            LockHolder::Admin
        } else {
            LockHolder::Owner
        };
        let candidates = [
            Command::Start,
            Command::Stop { force: false },
            Command::Stop { force: true },
            Command::Reboot { soft: true },
            Command::Destroy { force: false },
            Command::Recover,
            Command::Purge,
            Command::Lock { by },
            Command::Unlock { by },
        ];
        Ok(candidates
            .iter()
            .filter(|c| {
                instance::check_lock(&inst, c, self.caller.staff).is_ok()
                    && instance::decide(Some(&inst), c).is_ok_and(|events| !events.is_empty())
            })
            .filter_map(Command::operation)
            .collect())
    }
}
