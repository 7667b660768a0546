//! How a job is named: its idempotency record, the callback data Meta echoes, the payload hash.

use sha2::{Digest, Sha256};
use whatsapp_core::job::SendJob;

/// The key of a job's idempotency record: producers' keys are scoped by sending number.
pub fn record_key(job: &SendJob) -> String {
    format!("send#{}#{}", job.phone_number_id, job.idempotency_key)
}

/// What we send as `biz_opaque_callback_data`: a digest of the record key and the record's
/// generation, so status webhooks can be matched to this use of the key without showing Meta
/// the producer's key. A key used again after its record expired is a new generation: its
/// reconciliation can never find the earlier job's message (#16 defect 14). Records from before
/// generations were stored (`None`) keep the first form, `j1.`.
pub fn callback_data(record_key: &str, generation: Option<&str>) -> String {
    match generation {
        None => format!(
            "j1.{}",
            &hex::encode(Sha256::digest(record_key.as_bytes()))[..32]
        ),
        Some(g) => {
            let mut h = Sha256::new();
            h.update(record_key.as_bytes());
            h.update(b"\0");
            h.update(g.as_bytes());
            format!("j2.{}", &hex::encode(h.finalize())[..32])
        }
    }
}

/// The hash of a job's payload: SHA-256 of its canonical JSON (sorted keys), so a redelivery of
/// the same job matches whatever the producer's key order was.
pub fn payload_hash(job: &SendJob) -> String {
    let canonical = serde_json::to_value(job)
        .map(|v| v.to_string())
        .unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::callback_data;

    #[test]
    fn callback_data_names_the_generation_and_keeps_the_first_form_without_one() {
        let key = "send#106540352242922#order-1";
        assert_eq!(callback_data(key, None), callback_data(key, None));
        assert!(callback_data(key, None).starts_with("j1."));
        let (a, b) = (
            callback_data(key, Some("g1")),
            callback_data(key, Some("g2")),
        );
        assert_ne!(a, b, "a reused key does not match its earlier generation");
        assert_ne!(a, callback_data(key, None));
        assert_eq!(a.len(), 35, "well under Meta's 512 characters");
    }
}
