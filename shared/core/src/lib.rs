//! The WhatsApp domain of the middleware, pure: no AWS, no HTTP, no async runtime. The
//! adapters that implement its ports live in `whatsapp-aws`; in-memory ones in `whatsapp-fakes`.
//!
//! - [`webhook`]: Meta's webhook payloads, parsed liberally.
//! - [`job`]: the send-job contract producers put on SQS, parsed strictly, with its JSON Schema.
//! - [`graph`]: Graph API request, response and error types, and the error classification.
//! - [`policy`]: WhatsApp's rules as pure functions (windows, pricing, status merge, tiers).
//! - [`gates`]: the sender's gates in order, one pure decision over gathered facts.
//! - [`signature`]: `X-Hub-Signature-256` and constant-time secret comparison.
//! - [`ports`]: narrow traits for stores, queues, secrets and the Graph API.
//! - [`media`]: which inbound messages carry a file, where it is kept, how it is checked.
//! - [`identity`]: a user's change of number or business-scoped id, and where their state goes.
//! - [`ingest`]: what one webhook item does, exactly once, over the ports.
//! - [`foreign`]: the Meta events we do not own, as published for others.
//! - [`config`]: typed configuration from the environment.
//! - [`metrics`]: CloudWatch metrics in the embedded metric format.
//! - [`usage`]: how a priced message is filed for finance (its usage day and partition).

pub mod config;
pub mod foreign;
pub mod gates;
pub mod graph;
pub mod identity;
pub mod ingest;
pub mod job;
pub mod media;
pub mod metrics;
pub mod policy;
pub mod ports;
mod serde_util;
pub mod signature;
pub mod template_sync;
pub mod templates;
pub mod usage;
pub mod webhook;

/// A pseudo-random delay in `0..max_ms` to spread retries (not for cryptography): each call
/// hashes a process-wide counter with a randomly keyed hasher.
pub fn jitter_ms(max_ms: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if max_ms == 0 {
        return 0;
    }
    let mut h = STATE.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish() % max_ms
}

/// A token no other call returns (in practice: 128 bits from a randomly keyed hasher over a
/// process-wide counter and the time), to fence a lease: the idempotency record's owner.
pub fn unique_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: std::sync::OnceLock<(
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    )> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, b) = STATE.get_or_init(Default::default);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let word = |s: &std::collections::hash_map::RandomState| {
        let mut h = s.build_hasher();
        h.write_u64(n);
        h.finish()
    };
    format!("{:016x}{:016x}", word(a), word(b))
}
