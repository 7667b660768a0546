//! WhatsApp policy as pure functions over plain values: no I/O, no clock. Callers pass `now`.
//!
//! All times are epoch seconds (UTC).

mod consent;
mod health;
mod limits;
mod reach;
mod status;
mod template;
mod window;

pub use consent::*;
pub use health::*;
pub use limits::*;
pub use reach::*;
pub use status::*;
pub use template::*;
pub use window::*;

/// Meta's messaging-limit tiers are a wire value; policy reads them through here too.
pub use crate::webhook::MessagingTier;

/// One hour in seconds.
pub const HOUR: i64 = 3600;
