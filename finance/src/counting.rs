//! The counting rule, pure: one number's priced messages of one UTC day in, that day's usage
//! counters out. The aggregator writes its result as absolute values, so counting is a function
//! of the stored messages, and the stored messages do not depend on how often or in what order
//! their statuses arrived (the messages table keeps the pricing of the earliest priced status).
//!
//! - Per-message pricing (PMP, `pricing_model` `PMP`): every priced message counts once in
//!   `messages`; it is `charged` unless its `type` is `free_customer_service` or
//!   `free_entry_point` (an unknown type counts as charged, so finance sees it).
//! - Conversation-based pricing (CBP, ≤ v23.0): messages count in `messages`; each conversation
//!   counts once in `conversations`, on the first day any of its messages was priced, and is
//!   `charged` unless `billable` is false. Its `pricing_type` is `regular` or `free`.
//! - Categories are kept as Meta names them (`authentication-international` written
//!   `authentication_international`); a new category is its own value.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::country::recipient_country;

/// A priced message, as the messages table's usage index projects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedMessage {
    pub wamid: String,
    pub waba_id: String,
    pub phone_number_id: String,
    pub priced_at: i64,
    pub category: String,
    pub pricing_type: Option<String>,
    pub pricing_model: Option<String>,
    pub billable: Option<bool>,
    pub conversation_id: Option<String>,
    /// BSUID or phone number: only its country is kept in usage.
    pub recipient: Option<String>,
}

/// What one usage counter is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UsageKey {
    pub day: NaiveDate,
    pub waba_id: String,
    pub phone_number_id: String,
    pub category: String,
    pub pricing_type: String,
    pub country: String,
    pub pricing_model: String,
}

/// The counters of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Priced messages.
    pub messages: u64,
    /// Units Meta charges for: messages (PMP) or conversations (CBP).
    pub charged: u64,
    /// CBP conversations opened (0 under PMP).
    pub conversations: u64,
}

impl Counts {
    /// Whether every counter is at least `other`'s.
    pub fn covers(&self, other: &Counts) -> bool {
        self.messages >= other.messages
            && self.charged >= other.charged
            && self.conversations >= other.conversations
    }

    pub fn add(&mut self, other: &Counts) {
        self.messages += other.messages;
        self.charged += other.charged;
        self.conversations += other.conversations;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// A counter as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub key: UsageKey,
    pub counts: Counts,
}

pub const PMP: &str = "PMP";
pub const CBP: &str = "CBP";

/// Whether a pricing type is charged.
pub fn is_charged(pricing_type: &str) -> bool {
    !matches!(
        pricing_type,
        "free_customer_service" | "free_entry_point" | "free"
    )
}

/// Meta's category spelled as usage stores it: lower case, `-` as `_`.
pub fn normalize_category(category: &str) -> String {
    category.trim().to_ascii_lowercase().replace('-', "_")
}

fn model(m: &PricedMessage) -> &'static str {
    match m.pricing_model.as_deref() {
        Some(CBP) => CBP,
        Some(_) => PMP,
        None if m.conversation_id.is_some() => CBP,
        None => PMP,
    }
}

fn key(day: NaiveDate, m: &PricedMessage) -> UsageKey {
    let model = model(m);
    let pricing_type = match (&m.pricing_type, model) {
        (Some(t), PMP) => t.clone(),
        _ if m.billable == Some(false) => "free".to_owned(),
        _ => "regular".to_owned(),
    };
    UsageKey {
        day,
        waba_id: m.waba_id.clone(),
        phone_number_id: m.phone_number_id.clone(),
        category: normalize_category(&m.category),
        pricing_type,
        country: m.recipient.as_deref().map_or_else(
            || crate::country::UNKNOWN_COUNTRY.to_owned(),
            recipient_country,
        ),
        pricing_model: model.to_owned(),
    }
}

/// The counters of `day` from the messages priced that day, given the conversation ids of the
/// day before (a CBP conversation counts on the first day it was priced).
pub fn count_day(
    day: NaiveDate,
    messages: &[PricedMessage],
    conversations_before: &HashSet<String>,
) -> BTreeMap<UsageKey, Counts> {
    let mut out: BTreeMap<UsageKey, Counts> = BTreeMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut wamids: HashSet<&str> = HashSet::new();
    for m in messages {
        // The index holds one item per message; a page boundary must not make it two.
        if !wamids.insert(&m.wamid) {
            continue;
        }
        let k = key(day, m);
        let charged = is_charged(&k.pricing_type);
        let c = out.entry(k).or_default();
        c.messages += 1;
        match (model(m), m.conversation_id.as_deref()) {
            (CBP, Some(conv)) => {
                if !conversations_before.contains(conv) && seen.insert(conv) {
                    c.conversations += 1;
                    c.charged += u64::from(charged);
                }
            }
            _ => c.charged += u64::from(charged),
        }
    }
    out
}

/// The conversation ids among a day's messages.
pub fn conversations(messages: &[PricedMessage]) -> HashSet<String> {
    messages
        .iter()
        .filter_map(|m| m.conversation_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        "2026-11-23".parse().unwrap()
    }

    pub(crate) fn pmp(wamid: &str, category: &str, kind: &str, to: &str) -> PricedMessage {
        PricedMessage {
            wamid: wamid.into(),
            waba_id: "W".into(),
            phone_number_id: "P".into(),
            priced_at: 1_795_435_200,
            category: category.into(),
            pricing_type: Some(kind.into()),
            pricing_model: Some(PMP.into()),
            billable: None,
            conversation_id: None,
            recipient: Some(to.into()),
        }
    }

    fn cbp(wamid: &str, conv: &str, category: &str, billable: bool) -> PricedMessage {
        PricedMessage {
            pricing_type: None,
            pricing_model: Some(CBP.into()),
            billable: Some(billable),
            conversation_id: Some(conv.into()),
            ..pmp(wamid, category, "", "5516992318222")
        }
    }

    fn counts(
        out: &BTreeMap<UsageKey, Counts>,
        category: &str,
        kind: &str,
        country: &str,
    ) -> Counts {
        out.iter()
            .find(|(k, _)| k.category == category && k.pricing_type == kind && k.country == country)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    #[test]
    fn pmp_counts_messages_and_charges_only_regular_ones() {
        let msgs = [
            pmp("a", "marketing", "regular", "5516992318222"),
            pmp("b", "marketing", "regular", "BR.77"),
            pmp("c", "utility", "free_customer_service", "919876543210"),
            pmp(
                "d",
                "authentication-international",
                "regular",
                "919876543210",
            ),
            pmp("e", "service", "free_customer_service", "447700900123"),
            pmp("f", "marketing_lite", "some_new_type", "447700900123"),
            pmp("a", "marketing", "regular", "5516992318222"),
        ];
        let out = count_day(day(), &msgs, &HashSet::new());
        assert_eq!(
            counts(&out, "marketing", "regular", "BR"),
            Counts {
                messages: 2,
                charged: 2,
                conversations: 0
            }
        );
        assert_eq!(
            counts(&out, "utility", "free_customer_service", "IN").charged,
            0
        );
        assert_eq!(
            counts(&out, "authentication_international", "regular", "IN").charged,
            1
        );
        assert_eq!(
            counts(&out, "service", "free_customer_service", "GB").messages,
            1
        );
        assert_eq!(
            counts(&out, "marketing_lite", "some_new_type", "GB").charged,
            1
        );
    }

    #[test]
    fn cbp_counts_conversations_once_on_their_first_day() {
        let msgs = [
            cbp("a", "c1", "marketing", true),
            cbp("b", "c1", "marketing", true),
            cbp("c", "c2", "service", false),
            cbp("d", "c0", "marketing", true),
        ];
        let before: HashSet<String> = ["c0".to_owned()].into();
        let out = count_day(day(), &msgs, &before);
        assert_eq!(
            counts(&out, "marketing", "regular", "BR"),
            Counts {
                messages: 3,
                charged: 1,
                conversations: 1
            }
        );
        assert_eq!(
            counts(&out, "service", "free", "BR"),
            Counts {
                messages: 1,
                charged: 0,
                conversations: 1
            }
        );
    }
}
