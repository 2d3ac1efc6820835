//! Projections: the current instance views and the filter indexes behind list queries.
//! This module says *what* they hold; each store backend writes them in the append's own
//! transaction (so a client reads its own writes) and can rebuild them from the log.

pub mod index;
pub mod view;

pub use index::{Filter, IndexKey, Page};
pub use view::{InstanceView, PowerView, ResourceView};
