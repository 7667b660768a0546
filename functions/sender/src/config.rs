//! The sender's settings, from the environment (names as in the SAM template and the README).

use std::collections::HashMap;
use std::time::Duration;

use whatsapp_core::config::{ConfigError, Env};
use whatsapp_core::gates::CategorySet;
use whatsapp_core::policy::MessagingTier;

pub use whatsapp_core::config::{NumberHome, parse_numbers};

/// Policy and pacing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SenderConfig {
    /// `PHONE_NUMBERS`: `phone_number_id:waba_id[:portfolio_id]`, comma-separated. Jobs for any
    /// other number are rejected (`unknown_phone_number`). Without a portfolio id the WABA id
    /// stands for it.
    pub numbers: HashMap<String, NumberHome>,
    /// `REQUIRE_OPT_IN` (default `true`): a business-initiated message (the service window is
    /// closed) needs a recorded opt-in.
    pub require_opt_in: bool,
    /// `OPT_OUT_EXEMPT_CATEGORIES` (default `AUTHENTICATION`; empty for none): template
    /// categories an opted-out user still receives. Every other template, and every
    /// business-initiated message, is refused with `opted_out`.
    pub opt_out_exempt: CategorySet,
    /// `DEFAULT_MPS` (80): a number's cap until the quality poller stores its throughput.
    pub default_mps: u32,
    /// `DEFAULT_MESSAGING_TIER` (`TIER_250`): the portfolio's tier until the poller stores it.
    pub default_tier: MessagingTier,
    /// `PAIR_RATE_GAP_MS` (6000): the least time between two messages to one user.
    pub pair_gap_ms: i64,
    /// `RECONCILE_AFTER_SECONDS` (300): how long a send whose outcome we never saw waits for a
    /// status webhook before it is sent again.
    pub reconcile_after_ms: i64,
    /// `SEND_MAX_ATTEMPTS` (5): failed attempts (retryable Graph errors) before a job is failed and
    /// dead-lettered with `retries_exhausted`.
    pub max_attempts: u32,
    /// `IDEMPOTENCY_TTL_SECONDS` (7 days): how long a key is remembered; longer than the send
    /// queue's retention so that no redelivery outlives its record.
    pub idempotency_ttl_s: i64,
    /// `THROUGHPUT_MAX_WAIT_MS` (2000): the longest a job waits in process for a throughput slot;
    /// beyond it the job goes back to the queue.
    pub throughput_max_wait_ms: i64,
    /// `RECORD_CONCURRENCY` (10): records of one batch in flight at once.
    pub concurrency: usize,
    /// `NUMBER_LIMITS_CACHE_SECONDS` (30): how long a number's stored limits are reused.
    pub limits_cache: Duration,
    /// `SEND_QUEUE_RETENTION_SECONDS` (345600, the template's `MessageRetentionSeconds`): a job
    /// whose wait would outlive it is put back as a fresh copy.
    pub queue_retention_s: i64,
    /// `SEND_QUEUE_MAX_RECEIVES` (20, the send queue's `maxReceiveCount`): a job one receive from
    /// it is put back as a fresh copy instead of being dead-lettered without a verdict.
    pub queue_max_receives: u32,
    /// `SEND_QUEUE_VISIBILITY_SECONDS` (180, the send queue's `VisibilityTimeout`).
    pub queue_visibility_s: u32,
    /// `MARKETING_MESSAGES_NUMBERS` (empty): phone-number ids whose marketing templates go
    /// through the Marketing Messages API (`marketing_messages`); every other number sends
    /// them through the Cloud API (`cloud`). Other messages always go through the Cloud API.
    pub marketing_messages_numbers: std::collections::BTreeSet<String>,
    /// `MARKETING_MESSAGES_FALLBACK` (false): a marketing template the Cloud API refuses with
    /// 131063 (marketing disabled there for the WABA) is sent again through the Marketing
    /// Messages API, once, instead of failing `marketing_messages_required`. The alert fires
    /// either way.
    pub marketing_messages_fallback: bool,
    /// `MEDIA_SOURCE_BUCKETS` (empty): the buckets a job's media may name as `s3` (the sender's
    /// role may read only these; any other is refused `invalid`).
    pub media_source_buckets: std::collections::BTreeSet<String>,
    /// `MEDIA_ID_TTL_SECONDS` (29 days): how long an uploaded media id is reused for the same
    /// object version; below Meta's 30 days, so that no job is sent with an id about to lapse.
    pub media_id_ttl_s: i64,
    /// Caps every back-off before its jitter (131049's 24 h included) for runs that compress
    /// time, such as the fault run. Not read from the environment: `None` in every deployment.
    pub backoff_cap_ms: Option<i64>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            numbers: HashMap::new(),
            require_opt_in: true,
            opt_out_exempt: CategorySet::AUTHENTICATION,
            default_mps: 80,
            default_tier: MessagingTier::Tier250,
            pair_gap_ms: whatsapp_core::policy::PAIR_RATE_GAP_MS,
            reconcile_after_ms: 300_000,
            max_attempts: 5,
            idempotency_ttl_s: 7 * 24 * 3600,
            throughput_max_wait_ms: 2_000,
            concurrency: 10,
            limits_cache: Duration::from_secs(30),
            queue_retention_s: 345_600,
            queue_max_receives: 20,
            queue_visibility_s: 180,
            marketing_messages_numbers: Default::default(),
            marketing_messages_fallback: false,
            media_source_buckets: Default::default(),
            media_id_ttl_s: 29 * 86_400,
            backoff_cap_ms: None,
        }
    }
}

/// A comma-separated list setting (empty when unset).
fn list(env: &impl Env, name: &str) -> std::collections::BTreeSet<String> {
    env.get(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

impl SenderConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = SenderConfig::default();
        let tier: String = env.parsed_or("DEFAULT_MESSAGING_TIER", "TIER_250".to_owned())?;
        Ok(SenderConfig {
            numbers: parse_numbers(&env.required("PHONE_NUMBERS")?)?,
            require_opt_in: env.parsed_or("REQUIRE_OPT_IN", d.require_opt_in)?,
            opt_out_exempt: match env.get("OPT_OUT_EXEMPT_CATEGORIES") {
                None => d.opt_out_exempt,
                Some(list) => CategorySet::parse(&list).map_err(|reason| ConfigError::Invalid {
                    name: "OPT_OUT_EXEMPT_CATEGORIES",
                    reason,
                })?,
            },
            default_mps: env.parsed_or("DEFAULT_MPS", d.default_mps)?,
            default_tier: tier.parse().unwrap_or(MessagingTier::Tier250),
            pair_gap_ms: env.parsed_or("PAIR_RATE_GAP_MS", d.pair_gap_ms)?,
            reconcile_after_ms: env.parsed_or("RECONCILE_AFTER_SECONDS", 300i64)? * 1000,
            max_attempts: env.parsed_or("SEND_MAX_ATTEMPTS", d.max_attempts)?.max(1),
            idempotency_ttl_s: env.parsed_or("IDEMPOTENCY_TTL_SECONDS", d.idempotency_ttl_s)?,
            throughput_max_wait_ms: env
                .parsed_or("THROUGHPUT_MAX_WAIT_MS", d.throughput_max_wait_ms)?,
            concurrency: env.parsed_or("RECORD_CONCURRENCY", d.concurrency)?.max(1),
            limits_cache: Duration::from_secs(env.parsed_or("NUMBER_LIMITS_CACHE_SECONDS", 30u64)?),
            marketing_messages_numbers: list(env, "MARKETING_MESSAGES_NUMBERS"),
            media_source_buckets: list(env, "MEDIA_SOURCE_BUCKETS"),
            media_id_ttl_s: env
                .parsed_or("MEDIA_ID_TTL_SECONDS", d.media_id_ttl_s)?
                .clamp(60, 30 * 86_400 - 3_600),
            marketing_messages_fallback: env
                .parsed_or("MARKETING_MESSAGES_FALLBACK", d.marketing_messages_fallback)?,
            queue_retention_s: env
                .parsed_or("SEND_QUEUE_RETENTION_SECONDS", d.queue_retention_s)?,
            queue_max_receives: env
                .parsed_or("SEND_QUEUE_MAX_RECEIVES", d.queue_max_receives)?
                .max(2),
            queue_visibility_s: env
                .parsed_or("SEND_QUEUE_VISIBILITY_SECONDS", d.queue_visibility_s)?,
            backoff_cap_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_with_and_without_portfolio() {
        let n = parse_numbers("106540352242922:102290129340398, 1065:1022:77").unwrap();
        assert_eq!(n["106540352242922"].portfolio_id, "102290129340398");
        assert_eq!(n["1065"].portfolio_id, "77");
        assert!(parse_numbers("abc:1").is_err());
        assert!(parse_numbers("1").is_err());
        assert_eq!(
            parse_numbers(" , "),
            Err(ConfigError::Missing("PHONE_NUMBERS"))
        );
    }

    #[test]
    fn defaults_apply() {
        let c = SenderConfig::from_env(&[("PHONE_NUMBERS", "1:2")]).unwrap();
        assert!(c.require_opt_in);
        assert_eq!(
            (c.default_mps, c.pair_gap_ms, c.max_attempts),
            (80, 6000, 5)
        );
        assert_eq!(c.reconcile_after_ms, 300_000);
        let c = SenderConfig::from_env(&[("PHONE_NUMBERS", "1:2"), ("REQUIRE_OPT_IN", "false")])
            .unwrap();
        assert!(!c.require_opt_in);
        assert!(SenderConfig::from_env(&[("PHONE_NUMBERS", "1:2"), ("DEFAULT_MPS", "x")]).is_err());
        assert_eq!(c.opt_out_exempt, CategorySet::AUTHENTICATION);
        let none = [("PHONE_NUMBERS", "1:2"), ("OPT_OUT_EXEMPT_CATEGORIES", "")];
        assert_eq!(
            SenderConfig::from_env(&none).unwrap().opt_out_exempt,
            CategorySet::NONE
        );
        let bad = [
            ("PHONE_NUMBERS", "1:2"),
            ("OPT_OUT_EXEMPT_CATEGORIES", "service"),
        ];
        assert!(matches!(
            SenderConfig::from_env(&bad),
            Err(ConfigError::Invalid {
                name: "OPT_OUT_EXEMPT_CATEGORIES",
                ..
            })
        ));
        let d = SenderConfig::from_env(&[("PHONE_NUMBERS", "1:2")]).unwrap();
        assert!(d.marketing_messages_numbers.is_empty() && !d.marketing_messages_fallback);
        let mm = SenderConfig::from_env(&[
            ("PHONE_NUMBERS", "1:2,3:2"),
            ("MARKETING_MESSAGES_NUMBERS", " 1, 3 ,"),
            ("MARKETING_MESSAGES_FALLBACK", "true"),
        ])
        .unwrap();
        assert_eq!(
            mm.marketing_messages_numbers,
            ["1".to_owned(), "3".to_owned()].into()
        );
        assert!(mm.marketing_messages_fallback);
    }
}

#[cfg(test)]
mod template_tests {
    /// The sender is told the send queue's limits; they must be the queue's own.
    #[test]
    fn the_sender_knows_the_send_queue_s_real_limits() {
        let queue = whatsapp_fakes::template_resource("SendQueue");
        let sender = whatsapp_fakes::template_resource("SenderFunction");
        assert!(queue.contains("maxReceiveCount: 20"), "{queue}");
        assert!(queue.contains("VisibilityTimeout: 180"), "{queue}");
        assert!(queue.contains("MessageRetentionPeriod: !Ref MessageRetentionSeconds"));
        assert!(sender.contains("SEND_QUEUE_MAX_RECEIVES: \"20\""));
        assert!(sender.contains("SEND_QUEUE_VISIBILITY_SECONDS: \"180\""));
        assert!(sender.contains("SEND_QUEUE_RETENTION_SECONDS: !Ref MessageRetentionSeconds"));
        assert!(sender.contains("MARKETING_MESSAGES_NUMBERS: !Ref MarketingMessagesNumbers"));
        assert!(sender.contains("MARKETING_MESSAGES_FALLBACK: !Ref MarketingMessagesFallback"));
    }
}
