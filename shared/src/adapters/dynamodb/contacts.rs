//! The contacts table (no TTL: consent must not expire): consent timestamps per user
//! (`PN#<phone_number_id>#U#<user>`) and aliases from phone number to business-scoped id
//! (`PN#<phone_number_id>#W#<wa_id>` → `user_id`).

use aws_sdk_dynamodb::Client;

use super::{n, num, s, text, update_conditionally};
use crate::policy::Consent;
use crate::ports::{ConsentEvent, ContactStore, StoreError, UserKey};

#[derive(Debug, Clone)]
pub struct DynamoContactStore {
    client: Client,
    table: String,
}

impl DynamoContactStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoContactStore {
            client,
            table: table.into(),
        }
    }
}

fn attribute(e: ConsentEvent) -> &'static str {
    match e {
        ConsentEvent::OptIn => "opt_in_at",
        ConsentEvent::OptOut => "opt_out_at",
        ConsentEvent::MarketingStop => "marketing_stop_at",
        ConsentEvent::MarketingResume => "marketing_resume_at",
    }
}

fn user_pk(key: &UserKey) -> String {
    format!("PN#{}#U#{}", key.phone_number_id, key.user)
}

impl ContactStore for DynamoContactStore {
    async fn record_consent(
        &self,
        key: &UserKey,
        event: ConsentEvent,
        at: i64,
    ) -> Result<(), StoreError> {
        let a = attribute(event);
        update_conditionally(
            &self.client,
            &self.table,
            s(user_pk(key)),
            "contacts.record_consent",
            &format!("SET {a} = :t"),
            &format!("attribute_not_exists({a}) OR {a} < :t"),
            vec![(":t", n(at))],
        )
        .await?;
        Ok(())
    }

    async fn consent(&self, key: &UserKey) -> Result<Consent, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("contacts.consent", e))?;
        Ok(out.item.map_or_else(Consent::default, |i| Consent {
            opt_in_at: num(&i, "opt_in_at"),
            opt_out_at: num(&i, "opt_out_at"),
            marketing_stop_at: num(&i, "marketing_stop_at"),
            marketing_resume_at: num(&i, "marketing_resume_at"),
        }))
    }

    async fn record_alias(
        &self,
        phone_number_id: &str,
        wa_id: &str,
        user_id: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        // A BSUID changes when the user changes number: the latest mapping wins.
        update_conditionally(
            &self.client,
            &self.table,
            s(format!("PN#{phone_number_id}#W#{wa_id}")),
            "contacts.record_alias",
            "SET user_id = :u, seen_at = :t",
            "attribute_not_exists(seen_at) OR seen_at < :t",
            vec![(":u", s(user_id)), (":t", n(at))],
        )
        .await?;
        Ok(())
    }

    async fn resolve_alias(
        &self,
        phone_number_id: &str,
        wa_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("PN#{phone_number_id}#W#{wa_id}")))
            .send()
            .await
            .map_err(|e| StoreError::new("contacts.resolve_alias", e))?;
        Ok(out.item.and_then(|i| text(&i, "user_id")))
    }
}
