//! How a job is named: its idempotency record, the callback data Meta echoes, the payload hash.

use sha2::{Digest, Sha256};
use whatsapp_core::job::SendJob;

/// The key of a job's idempotency record: producers' keys are scoped by sending number.
pub fn record_key(job: &SendJob) -> String {
    format!("send#{}#{}", job.phone_number_id, job.idempotency_key)
}

/// What we send as `biz_opaque_callback_data`: a digest of the record key, so status webhooks
/// can be matched to the job without showing Meta the producer's key.
pub fn callback_data(record_key: &str) -> String {
    let digest = Sha256::digest(record_key.as_bytes());
    format!("j1.{}", &hex::encode(digest)[..32])
}

/// The hash of a job's payload: SHA-256 of its canonical JSON (sorted keys), so a redelivery of
/// the same job matches whatever the producer's key order was.
pub fn payload_hash(job: &SendJob) -> String {
    let canonical = serde_json::to_value(job)
        .map(|v| v.to_string())
        .unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}
