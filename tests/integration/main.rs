//! Integration tests: the adapters and functions through the real AWS SDK clients against
//! ministack, and the Graph client against a local HTTP server. One test binary, a module per
//! capability.
//!
//! Run them with `scripts/test` (starts ministack and sets `AWS_ENDPOINT_URL`).

mod support;

mod actions;
mod apps;
mod budget;
mod cloud_api_2026;
mod dedupe;
mod graph_http;
mod identity;
mod media;
mod media_out;
mod messages;
mod poller;
mod queue;
mod reconcile;
mod secrets;
mod sender;
mod sessions;
mod templates;
mod usage;
mod wactl;
mod webhook;
