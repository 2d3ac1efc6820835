//! Whole-answer listings for surfaces whose vendors page by offset, sort by a field and
//! filter by containment (NodeConductor, Wakame, CloudMC): every visible instance that
//! matches is gathered, filtered, sorted and cut. This costs in proportion to the
//! matching instances, not to the page, so it is bounded by [`limits::LISTING_MAX`]; the
//! native API's cursor pages stay the scalable path.

use std::cmp::Ordering;
use std::collections::HashMap;

use uuid::Uuid;

use super::instances::InstanceQuery;
use super::{QueryError, Reader};
use crate::domain::instance::Instance;
use crate::domain::lifecycle::State;
use crate::limits;
use crate::projection::Filter;

/// A text field matched by case-insensitive containment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Hostname,
    Name,
    ProjectName,
    CustomerName,
    /// Any of the instance's security groups.
    SecurityGroup,
}

/// What a listing may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Hostname,
    Name,
    State,
    /// Creation order (ids grow with creation).
    Created,
}

#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Exact filters, ANDed.
    pub filters: Vec<Filter>,
    /// The instance must be in one of these states (empty: any state).
    pub states: Vec<State>,
    /// Case-insensitive containment, ANDed.
    pub contains: Vec<(TextField, String)>,
    /// Sort keys in order, each ascending unless `true`; ties keep creation order.
    pub order: Vec<(SortKey, bool)>,
    pub offset: usize,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Listed {
    pub items: Vec<Instance>,
    /// How many matched in all.
    pub total: u64,
}

fn text(inst: &Instance, field: TextField, names: &HashMap<Uuid, String>) -> String {
    let s = &inst.spec;
    match field {
        TextField::Hostname => s.hostname.clone().unwrap_or_default(),
        TextField::Name => s.name.clone(),
        TextField::ProjectName => names.get(&s.project_id).cloned().unwrap_or_default(),
        TextField::CustomerName => names.get(&s.customer_id).cloned().unwrap_or_default(),
        TextField::SecurityGroup => String::new(),
    }
    .to_lowercase()
}

fn contains(
    inst: &Instance,
    field: TextField,
    needle: &str,
    names: &HashMap<Uuid, String>,
) -> bool {
    match field {
        TextField::SecurityGroup => inst
            .spec
            .security_groups
            .iter()
            .any(|g| g.to_lowercase().contains(needle)),
        other => text(inst, other, names).contains(needle),
    }
}

fn compare(a: &Instance, b: &Instance, key: SortKey) -> Ordering {
    match key {
        SortKey::Hostname => a.spec.hostname.cmp(&b.spec.hostname),
        SortKey::Name => a.spec.name.cmp(&b.spec.name),
        SortKey::State => a.state.as_str().cmp(b.state.as_str()),
        SortKey::Created => a.id.cmp(&b.id),
    }
}

impl Reader<'_> {
    /// Every instance the caller may read that matches, filtered, sorted and cut.
    pub fn listing(&self, l: &Listing) -> Result<Listed, QueryError> {
        let mut found = Vec::new();
        let alternatives: Vec<Option<State>> = if l.states.is_empty() {
            vec![None]
        } else {
            l.states.iter().copied().map(Some).collect()
        };
        for state in alternatives {
            let mut q = InstanceQuery {
                filters: l.filters.clone(),
                limit: limits::PAGE_MAX,
                cursor: None,
                at: None,
            };
            q.filters.extend(state.map(Filter::State));
            loop {
                let page = self.instances(&q)?;
                found.extend(page.items);
                if found.len() > limits::LISTING_MAX {
                    return Err(QueryError::Invalid(format!(
                        "more than {} instances match; narrow the filters",
                        limits::LISTING_MAX
                    )));
                }
                match page.next {
                    Some(next) => q.cursor = Some(next),
                    None => break,
                }
            }
        }
        if !l.contains.is_empty() {
            let mut names: HashMap<Uuid, String> = HashMap::new();
            let needs_names = l
                .contains
                .iter()
                .any(|(f, _)| matches!(f, TextField::ProjectName | TextField::CustomerName));
            if needs_names {
                for inst in &found {
                    for id in [inst.spec.project_id, inst.spec.customer_id] {
                        if !names.contains_key(&id)
                            && let Some(r) = self.snap.resource(id)?
                        {
                            names.insert(id, r.name().to_string());
                        }
                    }
                }
            }
            let needles: Vec<(TextField, String)> = l
                .contains
                .iter()
                .map(|(f, n)| (*f, n.to_lowercase()))
                .collect();
            found.retain(|inst| {
                needles
                    .iter()
                    .all(|(f, needle)| contains(inst, *f, needle, &names))
            });
        }
        // Creation order first, so that equal keys keep it (the sort is stable).
        found.sort_by_key(|i| i.id);
        found.sort_by(|a, b| {
            l.order
                .iter()
                .map(|(key, descending)| {
                    let o = compare(a, b, *key);
                    if *descending { o.reverse() } else { o }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        let total = found.len() as u64;
        let items = found
            .into_iter()
            .skip(l.offset)
            .take(l.limit.unwrap_or(usize::MAX))
            .collect();
        Ok(Listed { items, total })
    }
}
