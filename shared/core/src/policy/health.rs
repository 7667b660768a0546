//! Number health as the quality poller sees it: what changed, what the sender must enforce
//! (throughput cap, tier, marketing pause), and where the messaging tier is heading.

use serde::{Deserialize, Serialize};

use super::MessagingTier;
use crate::graph::PhoneNumberInfo;

/// The polled fields of one number that matter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberHealth {
    /// GREEN, YELLOW, RED, UNKNOWN.
    pub quality: String,
    /// CONNECTED, FLAGGED, RESTRICTED, ...
    pub status: String,
    pub name_status: String,
    /// STANDARD or HIGH.
    pub throughput_level: String,
    /// The portfolio's messaging limit (`TIER_2K`, ...).
    pub tier: String,
}

impl NumberHealth {
    pub fn from_info(info: &PhoneNumberInfo) -> Self {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "UNKNOWN".into());
        NumberHealth {
            quality: s(&info.quality_rating),
            status: s(&info.status),
            name_status: s(&info.name_status),
            throughput_level: info
                .throughput
                .as_ref()
                .map_or_else(|| "STANDARD".into(), |t| t.level.clone()),
            tier: info
                .whatsapp_business_manager_messaging_limit
                .as_ref()
                .map_or_else(|| "TIER_250".into(), |t| t.as_str().to_owned()),
        }
    }

    /// The number's cap in messages per second: 1,000 once upgraded (HIGH), else 80.
    pub fn mps(&self) -> u32 {
        if self.throughput_level.eq_ignore_ascii_case("HIGH") {
            1_000
        } else {
            80
        }
    }

    pub fn messaging_tier(&self) -> MessagingTier {
        self.tier.parse().unwrap_or(MessagingTier::Tier250)
    }

    /// Whether marketing must pause: the quality or status is one of `pause_on` (e.g. RED,
    /// FLAGGED).
    pub fn pauses_marketing(&self, pause_on: &[String]) -> bool {
        pause_on
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&self.quality) || p.eq_ignore_ascii_case(&self.status))
    }
}

/// A quality rating as a number, higher is better: 3 GREEN (high), 2 YELLOW (medium), 1 RED
/// (low), 0 anything else (UNKNOWN, NA). The `QualityScore` metric, and how a drop is told.
pub fn quality_score(quality: &str) -> u8 {
    match quality.to_ascii_uppercase().as_str() {
        "GREEN" | "HIGH" => 3,
        "YELLOW" | "MEDIUM" => 2,
        "RED" | "LOW" => 1,
        _ => 0,
    }
}

/// One field that changed between two polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthChange {
    /// `quality`, `status`, `name_status`, `throughput_level` or `tier`.
    pub field: String,
    pub from: Option<String>,
    pub to: String,
}

/// What changed from `old` (none on the first poll: everything is new) to `new`.
pub fn health_changes(old: Option<&NumberHealth>, new: &NumberHealth) -> Vec<HealthChange> {
    let pairs = [
        ("quality", old.map(|o| &o.quality), &new.quality),
        ("status", old.map(|o| &o.status), &new.status),
        ("name_status", old.map(|o| &o.name_status), &new.name_status),
        (
            "throughput_level",
            old.map(|o| &o.throughput_level),
            &new.throughput_level,
        ),
        ("tier", old.map(|o| &o.tier), &new.tier),
    ];
    pairs
        .into_iter()
        .filter(|(_, from, to)| *from != Some(*to))
        .map(|(field, from, to)| HealthChange {
            field: field.into(),
            from: from.cloned(),
            to: to.clone(),
        })
        .collect()
}

/// Where the portfolio's messaging tier is heading, by the rules in force since 7 Oct 2025
/// (reference §6a): Meta evaluates upgrades about every 6 h; an upgrade needs the number
/// CONNECTED, quality GREEN or YELLOW (medium or high), and unique users reached in the last 7
/// days of at least half the current limit. Limits are no longer lowered for low quality, so
/// there is no downgrade to project: low quality only blocks the upgrade (and pauses templates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierProjection {
    pub current: String,
    /// `None` at the top tier.
    pub next: Option<String>,
    /// Unique users reached outside a window in the last 7 days (our own send records).
    pub reached_7d: u64,
    /// Half the current limit: what an upgrade needs.
    pub needed_7d: Option<u64>,
    pub upgrade_on_track: bool,
    /// What stands in the way of an upgrade.
    pub blockers: Vec<String>,
    /// When on track: Meta's next evaluation, and so the upgrade, is at most this far away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_expected_within_s: Option<u64>,
}

/// How often Meta evaluates a portfolio for a higher messaging limit (about every 6 h).
pub const UPGRADE_EVALUATION_INTERVAL_S: u64 = 6 * 3600;

pub fn project_tier(h: &NumberHealth, reached_7d: u64) -> TierProjection {
    let tier = h.messaging_tier();
    let next = tier.next();
    let needed = tier.unique_user_limit().map(|l| u64::from(l).div_ceil(2));
    let mut blockers = Vec::new();
    if !h.status.eq_ignore_ascii_case("CONNECTED") {
        blockers.push(format!("status is {}", h.status));
    }
    if !matches!(h.quality.to_ascii_uppercase().as_str(), "GREEN" | "YELLOW") {
        blockers.push(format!("quality is {}", h.quality));
    }
    if let Some(n) = needed
        && reached_7d < n
    {
        blockers.push(format!(
            "{reached_7d} of {n} unique users reached in 7 days"
        ));
    }
    if next.is_none() {
        blockers.push("already at the top tier".into());
    }
    TierProjection {
        current: tier.as_str().to_owned(),
        next: next.as_ref().map(|t| t.as_str().to_owned()),
        reached_7d,
        needed_7d: needed,
        upgrade_on_track: blockers.is_empty(),
        upgrade_expected_within_s: blockers.is_empty().then_some(UPGRADE_EVALUATION_INTERVAL_S),
        blockers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(quality: &str, status: &str, tier: &str) -> NumberHealth {
        NumberHealth {
            quality: quality.into(),
            status: status.into(),
            name_status: "APPROVED".into(),
            throughput_level: "STANDARD".into(),
            tier: tier.into(),
        }
    }

    #[test]
    fn changes_are_field_by_field() {
        let a = health("GREEN", "CONNECTED", "TIER_2K");
        let b = health("RED", "CONNECTED", "TIER_2K");
        assert_eq!(
            health_changes(Some(&a), &b),
            [HealthChange {
                field: "quality".into(),
                from: Some("GREEN".into()),
                to: "RED".into()
            }]
        );
        assert!(health_changes(Some(&a), &a).is_empty());
        assert_eq!(health_changes(None, &a).len(), 5);
    }

    #[test]
    fn marketing_pauses_on_the_configured_states() {
        let pause = vec!["RED".to_owned(), "FLAGGED".to_owned()];
        assert!(health("RED", "CONNECTED", "TIER_2K").pauses_marketing(&pause));
        assert!(health("YELLOW", "FLAGGED", "TIER_2K").pauses_marketing(&pause));
        assert!(!health("YELLOW", "CONNECTED", "TIER_2K").pauses_marketing(&pause));
        assert!(!health("RED", "CONNECTED", "TIER_2K").pauses_marketing(&[]));
    }

    #[test]
    fn the_tier_projection_follows_the_reference() {
        let p = project_tier(&health("GREEN", "CONNECTED", "TIER_2K"), 1_000);
        assert!(p.upgrade_on_track, "{p:?}");
        assert_eq!(p.upgrade_expected_within_s, Some(6 * 3600));
        assert_eq!(
            (p.next.as_deref(), p.needed_7d),
            (Some("TIER_10K"), Some(1_000))
        );
        let p = project_tier(&health("GREEN", "CONNECTED", "TIER_2K"), 999);
        assert!(!p.upgrade_on_track);
        let p = project_tier(&health("RED", "FLAGGED", "TIER_10K"), 10_000);
        assert_eq!(p.blockers.len(), 2);
        // Since 7 Oct 2025 RED blocks the upgrade and lowers nothing: no downgrade is projected.
        assert_eq!(p.upgrade_expected_within_s, None);
        assert!(!serde_json::to_string(&p).unwrap().contains("downgrade"));
        let p = project_tier(&health("GREEN", "CONNECTED", "TIER_UNLIMITED"), 0);
        assert_eq!(
            (p.next, p.needed_7d, p.upgrade_on_track),
            (None, None, false)
        );
    }

    #[test]
    fn upgraded_throughput_is_a_thousand() {
        let mut h = health("GREEN", "CONNECTED", "TIER_UNLIMITED");
        assert_eq!(h.mps(), 80);
        h.throughput_level = "HIGH".into();
        assert_eq!(h.mps(), 1_000);
    }
}
