//! Account-level webhooks: templates, phone-number quality, business capability, account
//! restrictions and users' marketing preferences.

use serde::{Deserialize, Serialize};

use super::MessagingTier;
use super::{Contact, Metadata};
use crate::serde_util::open_enum;

open_enum! {
    /// A template's review or lifecycle status (also the `event` of a status update).
    pub enum TemplateStatus {
        Approved = "APPROVED",
        Pending = "PENDING",
        Rejected = "REJECTED",
        Paused = "PAUSED",
        Disabled = "DISABLED",
        InAppeal = "IN_APPEAL",
        Archived = "ARCHIVED",
        Unarchived = "UNARCHIVED",
        Deleted = "DELETED",
        PendingDeletion = "PENDING_DELETION",
        Reinstated = "REINSTATED",
        Flagged = "FLAGGED",
        LimitExceeded = "LIMIT_EXCEEDED",
    }
}

open_enum! {
    /// A template's category.
    pub enum TemplateCategory {
        Marketing = "MARKETING",
        Utility = "UTILITY",
        Authentication = "AUTHENTICATION",
    }
}

open_enum! {
    /// `phone_number_quality_update.event`.
    pub enum QualityEvent {
        Flagged = "FLAGGED",
        Unflagged = "UNFLAGGED",
        Upgrade = "UPGRADE",
        Downgrade = "DOWNGRADE",
        Onboarding = "ONBOARDING",
        ThroughputUpgrade = "THROUGHPUT_UPGRADE",
    }
}

open_enum! {
    /// `user_preferences[].value`.
    pub enum PreferenceValue { Stop = "stop", Resume = "resume" }
}

/// `message_template_status_update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    pub event: TemplateStatus,
    #[serde(deserialize_with = "crate::serde_util::id_string")]
    pub message_template_id: String,
    pub message_template_name: String,
    pub message_template_language: String,
    /// Rejection reason (`INVALID_FORMAT`, `NONE`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_category: Option<TemplateCategory>,
    /// Only on disable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_info: Option<serde_json::Value>,
    /// Only on lock/unlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_info: Option<serde_json::Value>,
}

/// `template_category_update`: either completed (`previous_category` → `new_category`) or
/// impending (`correct_category`, `category_update_timestamp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateCategoryUpdate {
    #[serde(deserialize_with = "crate::serde_util::id_string")]
    pub message_template_id: String,
    pub message_template_name: String,
    pub message_template_language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<TemplateCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_category: Option<TemplateCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_category: Option<TemplateCategory>,
    #[serde(
        default,
        deserialize_with = "crate::serde_util::opt_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub category_update_timestamp: Option<i64>,
}

/// `phone_number_quality_update`. `current_limit` was removed by Meta in Feb 2026 in favour of
/// `max_daily_conversations_per_business`; both are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumberQualityUpdate {
    #[serde(default)]
    pub display_phone_number: String,
    pub event: QualityEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_limit: Option<MessagingTier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_limit: Option<MessagingTier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<MessagingTier>,
}

impl PhoneNumberQualityUpdate {
    /// The portfolio's messaging limit after this event, from whichever field carries it.
    pub fn new_limit(&self) -> Option<&MessagingTier> {
        self.max_daily_conversations_per_business
            .as_ref()
            .or(self.current_limit.as_ref())
    }
}

/// `business_capability_update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessCapabilityUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<MessagingTier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_business: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_waba: Option<i64>,
}

/// `account_update`: violations, restrictions, bans and other account events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    pub event: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restriction_info: Vec<Restriction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation_info: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban_info: Option<serde_json::Value>,
    /// `VOLUME_BASED_PRICING_TIER_UPDATE` (since 1 Oct 2025): the account's volume tier for a
    /// pricing category, region and month. One object in partners' samples; a list is accepted.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_tier_info: Vec<VolumeTierInfo>,
}

/// The event of a volume-tier change.
pub const VOLUME_TIER_EVENT: &str = "VOLUME_BASED_PRICING_TIER_UPDATE";

/// One volume tier: what finance needs to price the month at the tier's rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeTierInfo {
    /// `YYYY-MM`.
    #[serde(default)]
    pub effective_month: String,
    #[serde(default)]
    pub pricing_category: String,
    #[serde(default)]
    pub region: String,
    #[serde(default, deserialize_with = "crate::serde_util::id_string")]
    pub tier: String,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<VolumeTierInfo>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(VolumeTierInfo),
        Many(Vec<VolumeTierInfo>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(v)) => vec![v],
        Some(OneOrMany::Many(v)) => v,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    pub restriction_type: String,
    #[serde(
        default,
        deserialize_with = "crate::serde_util::opt_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration: Option<i64>,
}

/// `user_preferences`: a user stopped or resumed marketing messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPreferencesValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub user_preferences: Vec<UserPreference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPreference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `marketing_messages`.
    pub category: String,
    pub value: PreferenceValue,
    #[serde(deserialize_with = "crate::serde_util::epoch_seconds")]
    pub timestamp: i64,
}

impl UserPreference {
    /// The identifier to key per-user state on: the BSUID when present, else the phone number.
    pub fn user_key(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.wa_id.as_deref())
    }
}
