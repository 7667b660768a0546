//! Statuses of messages the business sent (`statuses[]` in a `messages` change), with both
//! pricing shapes: per-message pricing (PMP, v24.0+) and conversation-based pricing (CBP, ≤ v23.0).

use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::serde_util::open_enum;

open_enum! {
    /// Delivery status of an outbound message.
    pub enum StatusKind {
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        /// A voice message was played.
        Played = "played",
        Failed = "failed",
        Deleted = "deleted",
    }
}

open_enum! {
    /// `pricing.pricing_model`.
    pub enum PricingModel { Pmp = "PMP", Cbp = "CBP" }
}

open_enum! {
    /// `pricing.category` (and CBP `conversation.origin.type`). New categories are kept as
    /// `Other`, never rejected.
    pub enum PricingCategory {
        Marketing = "marketing",
        MarketingLite = "marketing_lite",
        Utility = "utility",
        Authentication = "authentication",
        /// Meta writes `authentication-international`; some SDKs use an underscore.
        AuthenticationInternational = "authentication_international" | "authentication-international",
        Service = "service",
        /// Free entry point (click-to-WhatsApp) conversions.
        ReferralConversion = "referral_conversion",
    }
}

open_enum! {
    /// `pricing.type` under per-message pricing.
    pub enum PricingType {
        Regular = "regular",
        FreeCustomerService = "free_customer_service",
        FreeEntryPoint = "free_entry_point",
    }
}

impl PricingType {
    /// Whether Meta charges for a message of this type. Unknown types count as charged so that
    /// finance sees them rather than silently losing cost.
    pub fn is_charged(&self) -> bool {
        !matches!(
            self,
            PricingType::FreeCustomerService | PricingType::FreeEntryPoint
        )
    }
}

/// A status update for one outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The wamid of our message.
    pub id: String,
    pub status: StatusKind,
    #[serde(
        deserialize_with = "crate::serde_util::epoch_seconds",
        serialize_with = "crate::serde_util::epoch_as_string"
    )]
    pub timestamp: i64,
    /// The recipient's phone number; may be omitted for users with a username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// The recipient's business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// Echo of what we sent in `biz_opaque_callback_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ApiError>,
}

impl Status {
    /// The identifier to key per-user state on: the BSUID when present, else the phone number.
    pub fn user_key(&self) -> Option<&str> {
        self.recipient_user_id
            .as_deref()
            .or(self.recipient_id.as_deref())
    }
}

/// The `pricing` object of a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Deprecated by Meta; derive billability from `type` and `category` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<PricingModel>,
    pub category: PricingCategory,
    /// Present under PMP; absent in CBP payloads.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<PricingType>,
}

/// The CBP `conversation` object (API versions ≤ v23.0 only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    #[serde(
        default,
        deserialize_with = "crate::serde_util::opt_epoch_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ConversationOrigin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationOrigin {
    #[serde(rename = "type")]
    pub kind: PricingCategory,
}
