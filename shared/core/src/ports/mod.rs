//! Narrow ports, one per capability. Handlers are generic over them; the `whatsapp-aws` crate
//! holds the AWS and HTTP implementations and `whatsapp-fakes` the in-memory ones.

mod control;
mod graph;
mod media;
mod queues;
mod secrets;
mod stores;

pub use control::*;
pub use graph::*;
pub use media::*;
pub use queues::*;
pub use secrets::*;
pub use stores::*;

/// The wall clock, read by each function's entry point once per invocation (library code takes
/// the time as a parameter, so tests choose it).
pub trait Clock: Send + Sync {
    /// Epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// A failure of a store. Always retryable from the caller's point of view: the data is fine,
/// the store was not reachable or refused the call.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed")]
pub struct StoreError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            operation,
            source: source.into(),
        }
    }
}

/// One user as seen by one business number: the key of windows and consent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    pub phone_number_id: String,
    /// The business-scoped user id when known, else the phone number.
    pub user: String,
}
