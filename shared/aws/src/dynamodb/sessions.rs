//! The sessions table (partition key `pk`, string; TTL attribute `expires_at`):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `PN#<phone_number_id>#U#<user_id or wa_id>` |
//! | `last_inbound_at` | N | epoch s of the user's latest message |
//! | `last_referral_at` | N | epoch s of the user's latest click-to-WhatsApp message |
//! | `fep_opened_at` | N | epoch s of the reply that opened the free entry point |
//! | `expires_at` | N | TTL: when the item may be deleted (after every window it holds) |
//! | `moved_to`, `moved_wa_id`, `moved_at` | S, S, N | the user's identity moved: to which key, their new number, when ([`super::identity`]) |
//! | `merged_at` | N | when the latest identity move merged into this item |
//!
//! Every write is one conditional `UpdateItem`, so concurrent deliveries never move a timestamp
//! backwards. Windows are computed from the timestamps, never from an item's presence.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Item, n, num, update_conditionally};
use whatsapp_core::policy::{CSW_SECONDS, FEP_REPLY_WITHIN_SECONDS, FEP_SECONDS, WindowState};
use whatsapp_core::ports::{SessionStore, StoreError, UserKey, WindowRecord};

/// Kept past the last window the item describes, so late webhooks still find it.
pub const SESSION_TTL_SLACK_SECONDS: i64 = 7 * 24 * 3600;

/// The sessions table.
#[derive(Debug, Clone)]
pub struct DynamoSessionStore {
    client: Client,
    table: String,
}

impl DynamoSessionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoSessionStore {
            client,
            table: table.into(),
        }
    }

    fn pk(key: &UserKey) -> AttributeValue {
        AttributeValue::S(format!("PN#{}#U#{}", key.phone_number_id, key.user))
    }
}

fn state_of(item: &Item) -> WindowState {
    WindowState {
        last_inbound_at: num(item, "last_inbound_at"),
        last_referral_at: num(item, "last_referral_at"),
        fep_opened_at: num(item, "fep_opened_at"),
    }
}

impl DynamoSessionStore {
    async fn conditional_update(
        &self,
        operation: &'static str,
        key: &UserKey,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Item>, StoreError> {
        update_conditionally(
            &self.client,
            &self.table,
            Self::pk(key),
            operation,
            update,
            condition,
            values,
        )
        .await
        .map(|u| u.item)
    }
}

impl SessionStore for DynamoSessionStore {
    async fn window(&self, key: &UserKey) -> Result<WindowState, StoreError> {
        Ok(self.window_record(key).await?.state)
    }

    async fn window_record(&self, key: &UserKey) -> Result<WindowRecord, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", Self::pk(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("sessions.get", e))?;
        Ok(out
            .item
            .as_ref()
            .map_or_else(WindowRecord::default, |i| WindowRecord {
                state: state_of(i),
                moved_to: super::identity::successor_of(i),
            }))
    }

    async fn record_inbound(
        &self,
        key: &UserKey,
        at: i64,
        has_referral: bool,
    ) -> Result<WindowState, StoreError> {
        let (state, item) = self.record_inbound_here(key, at, has_referral).await?;
        // The identity moved away from this key: a message sent before the move belongs to
        // the new identity too; one sent after it means the key is someone's again (a
        // reassigned number), so the pointer goes.
        if let Some(next) = item.as_ref().and_then(super::identity::successor_of) {
            if at <= next.at {
                let to = UserKey {
                    phone_number_id: key.phone_number_id.clone(),
                    user: next.user,
                };
                self.record_inbound_here(&to, at, has_referral).await?;
                // The write above may have shortened the pointer's life to the window's.
                let keep = next.at.saturating_add(super::POINTER_TTL_SECONDS);
                self.conditional_update(
                    "sessions.keep_pointer",
                    key,
                    "SET expires_at = :p",
                    "expires_at < :p",
                    vec![(":p", n(keep))],
                )
                .await?;
            } else {
                self.conditional_update(
                    "sessions.drop_pointer",
                    key,
                    "REMOVE moved_to, moved_wa_id, moved_at",
                    "moved_at < :t",
                    vec![(":t", n(at))],
                )
                .await?;
            }
        }
        Ok(state)
    }

    async fn record_business_reply(
        &self,
        key: &UserKey,
        at: i64,
    ) -> Result<WindowState, StoreError> {
        // The FEP rule of `WindowState::with_business_reply`, as one atomic condition.
        let item = self
            .conditional_update(
                "sessions.record_business_reply",
                key,
                "SET fep_opened_at = :t",
                "last_referral_at <= :t AND last_referral_at > :since \
                 AND (attribute_not_exists(fep_opened_at) OR fep_opened_at < last_referral_at)",
                vec![(":t", n(at)), (":since", n(at - FEP_REPLY_WITHIN_SECONDS))],
            )
            .await?;
        Ok(item.as_ref().map(state_of).unwrap_or_default())
    }
}

impl DynamoSessionStore {
    /// The inbound write on one key, with the item as it is after it (or was, when the
    /// message was older than what the item holds).
    async fn record_inbound_here(
        &self,
        key: &UserKey,
        at: i64,
        has_referral: bool,
    ) -> Result<(WindowState, Option<Item>), StoreError> {
        // The item must outlive the CSW and any FEP a referral up to `at` can open.
        let ttl =
            at + CSW_SECONDS + FEP_REPLY_WITHIN_SECONDS + FEP_SECONDS + SESSION_TTL_SLACK_SECONDS;
        let mut item = self
            .conditional_update(
                "sessions.record_inbound",
                key,
                "SET last_inbound_at = :t, expires_at = :ttl",
                "attribute_not_exists(last_inbound_at) OR last_inbound_at < :t",
                vec![(":t", n(at)), (":ttl", n(ttl))],
            )
            .await?;
        if has_referral {
            item = self
                .conditional_update(
                    "sessions.record_referral",
                    key,
                    "SET last_referral_at = :t",
                    "attribute_not_exists(last_referral_at) OR last_referral_at < :t",
                    vec![(":t", n(at))],
                )
                .await?;
        }
        Ok((item.as_ref().map(state_of).unwrap_or_default(), item))
    }
}
