//! WhatsApp policy as pure functions over plain values: no I/O, no clock. Callers pass `now`.
//!
//! All times are epoch seconds (UTC).

mod consent;
mod health;
mod limits;
mod pricing;
mod status;
mod template;
mod tier;
mod window;

pub use consent::*;
pub use health::*;
pub use limits::*;
pub use pricing::*;
pub use status::*;
pub use template::*;
pub use tier::*;
pub use window::*;

/// One hour in seconds.
pub const HOUR: i64 = 3600;
