//! The shared core of the WhatsApp Cloud API middleware.
//!
//! - [`webhook`]: Meta's webhook payloads, parsed liberally.
//! - [`job`]: the send-job contract producers put on SQS, parsed strictly, with its JSON Schema.
//! - [`graph`]: Graph API request, response and error types, and the error classification.
//! - [`policy`]: WhatsApp's rules as pure functions (windows, pricing, status merge, tiers).
//! - [`signature`]: `X-Hub-Signature-256` and constant-time secret comparison.
//! - [`ports`]: narrow traits for stores, queues, secrets and the Graph API.
//! - [`adapters`]: their implementations on DynamoDB, SQS, Secrets Manager and reqwest.
//! - [`config`]: typed configuration from the environment.

pub mod adapters;
pub mod config;
pub mod graph;
pub mod ingest;
pub mod job;
pub mod policy;
pub mod ports;
mod serde_util;
pub mod signature;
pub mod webhook;

#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
