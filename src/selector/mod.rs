//! The selector half: Python's `selectors` module on mio. [`Selector`](crate::Selector)
//! (at the crate root) registers file objects with data and reports them
//! level-triggered; this module holds the types its calls return or take.
//!
//! Nothing here knows about the reactor: `selector/` never imports `reactor/`.

mod key;
mod map;
pub(crate) mod select;

pub use key::{FileObj, SelectorKey};
pub use map::SelectorMap;
