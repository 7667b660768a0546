//! A user's change of number or business-scoped id ([`whatsapp_core::identity`]), applied to
//! the sessions and contacts tables in one `TransactWriteItems`.
//!
//! Per identity the move writes, in one transaction:
//! - the new key's sessions and contacts items: every timestamp the later of the new key's and
//!   the old keys' (each `SET` guarded so that it never lowers a value written meanwhile);
//! - each old key's sessions and contacts items: `moved_to`, `moved_wa_id` and `moved_at`,
//!   guarded on the timestamps being those the merge read, so that a write to the old key
//!   between the read and the transaction cancels it, and the move reads again.
//!
//! The old items keep their timestamps, so a reader that resolved the old key just before the
//! transaction still finds them: windows and consent are on one key or both, never on neither.
//! The sessions pointer outlives the old windows ([`POINTER_TTL_SECONDS`]); the contacts one
//! has no TTL, like consent.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use super::{DynamoContactStore, Item, n, num, s, text};
use whatsapp_core::identity::IdentityMove;
use whatsapp_core::ports::{IdentityStore, StoreError};

/// How long the sessions table keeps an old identity's pointer: a job for the old identity
/// that arrives within this time is sent to the new one.
pub const POINTER_TTL_SECONDS: i64 = 400 * 24 * 3600;

/// How many times a move reads again after a concurrent write cancelled its transaction.
const ATTEMPTS: usize = 6;

/// The timestamps of a sessions item.
const WINDOW_ATTRIBUTES: [&str; 3] = ["last_inbound_at", "last_referral_at", "fep_opened_at"];
/// The timestamps of a contacts (consent) item.
const CONSENT_ATTRIBUTES: [&str; 5] = [
    "opt_in_at",
    "opt_out_at",
    "marketing_stop_at",
    "marketing_resume_at",
    "marketing_held_at",
];

#[derive(Debug, Clone)]
pub struct DynamoIdentityStore {
    client: Client,
    sessions_table: String,
    contacts_table: String,
    contacts: DynamoContactStore,
}

impl DynamoIdentityStore {
    pub fn new(
        client: Client,
        sessions_table: impl Into<String>,
        contacts_table: impl Into<String>,
    ) -> Self {
        let contacts_table = contacts_table.into();
        DynamoIdentityStore {
            contacts: DynamoContactStore::new(client.clone(), contacts_table.clone()),
            client,
            sessions_table: sessions_table.into(),
            contacts_table,
        }
    }

    async fn get(&self, table: &str, pk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new("identity.get", e))?
            .item)
    }

    /// One attempt: read, merge, write. `Ok(false)` when a concurrent write cancelled it.
    async fn attempt(&self, m: &IdentityMove) -> Result<bool, StoreError> {
        let key = |u: &str| format!("PN#{}#U#{}", m.phone_number_id, u);
        let new_pk = key(&m.to);
        let new_session = self.get(&self.sessions_table, &new_pk).await?;
        let new_contact = self.get(&self.contacts_table, &new_pk).await?;
        let mut olds = Vec::new();
        for from in &m.from {
            let pk = key(from);
            let session = self.get(&self.sessions_table, &pk).await?;
            let contact = self.get(&self.contacts_table, &pk).await?;
            olds.push((pk, session, contact));
        }
        // A later move away from an old key already happened: this one is stale for that key.
        olds.retain(|(_, session, contact)| {
            let later = |i: &Option<Item>| {
                i.as_ref()
                    .and_then(|i| num(i, "moved_at"))
                    .is_some_and(|t| t > m.at)
            };
            !later(session) && !later(contact)
        });
        if olds.is_empty() {
            return Ok(true);
        }
        let sessions: Vec<&Option<Item>> = olds.iter().map(|(_, s, _)| s).collect();
        let contacts: Vec<&Option<Item>> = olds.iter().map(|(_, _, c)| c).collect();
        let mut items = vec![
            merge_into(
                &self.sessions_table,
                &new_pk,
                &WINDOW_ATTRIBUTES,
                new_session.as_ref(),
                &sessions,
                m.at,
                true,
            )?,
            merge_into(
                &self.contacts_table,
                &new_pk,
                &CONSENT_ATTRIBUTES,
                new_contact.as_ref(),
                &contacts,
                m.at,
                false,
            )?,
        ];
        for (pk, session, contact) in &olds {
            items.push(pointer(
                &self.sessions_table,
                pk,
                &WINDOW_ATTRIBUTES,
                session.as_ref(),
                m,
                Some(m.at.saturating_add(POINTER_TTL_SECONDS)),
            )?);
            items.push(pointer(
                &self.contacts_table,
                pk,
                &CONSENT_ATTRIBUTES,
                contact.as_ref(),
                m,
                None,
            )?);
        }
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if super::cancelled_by_a_concurrent_write(&e) => Ok(false),
            Err(e) => Err(StoreError::new("identity.move", e)),
        }
    }
}

/// The later of each timestamp over `current` and `others`.
fn merged(
    attributes: &[&str],
    current: Option<&Item>,
    others: &[&Option<Item>],
) -> Vec<(String, i64)> {
    attributes
        .iter()
        .filter_map(|a| {
            let mine = current.and_then(|i| num(i, a));
            let theirs = others
                .iter()
                .filter_map(|o| o.as_ref().and_then(|i| num(i, a)));
            mine.into_iter()
                .chain(theirs)
                .max()
                .map(|v| ((*a).to_owned(), v))
        })
        .collect()
}

/// The update that merges `others` into the item `pk`: each timestamp set to the later value,
/// guarded so that none is lowered.
fn merge_into(
    table: &str,
    pk: &str,
    attributes: &[&str],
    current: Option<&Item>,
    others: &[&Option<Item>],
    at: i64,
    with_ttl: bool,
) -> Result<TransactWriteItem, StoreError> {
    let values = merged(attributes, current, others);
    let mut sets = Vec::new();
    let mut guards = Vec::new();
    let mut update = Update::builder().table_name(table).key("pk", s(pk));
    for (i, (a, v)) in values.iter().enumerate() {
        sets.push(format!("{a} = :v{i}"));
        guards.push(format!("(attribute_not_exists({a}) OR {a} <= :v{i})"));
        update = update.expression_attribute_values(format!(":v{i}"), n(*v));
    }
    if with_ttl {
        // The item lives as long as the longest-lived of the merged ones.
        let ttl = merged(&["expires_at"], current, others);
        if let Some((_, t)) = ttl.first() {
            sets.push("expires_at = :exp".into());
            update = update.expression_attribute_values(":exp", n(*t));
        }
    }
    // When the latest move merged into this item (and a valid update when nothing is to
    // be merged).
    sets.push("merged_at = :merged".into());
    update = update.expression_attribute_values(":merged", n(at));
    let mut update = update.update_expression(format!("SET {}", sets.join(", ")));
    if !guards.is_empty() {
        update = update.condition_expression(guards.join(" AND "));
    }
    Ok(TransactWriteItem::builder()
        .update(
            update
                .build()
                .map_err(|e| StoreError::new("identity.merge_build", e))?,
        )
        .build())
}

/// The update that leaves on the old item `pk` a pointer to the new identity, guarded on the
/// timestamps being those the merge read.
fn pointer(
    table: &str,
    pk: &str,
    attributes: &[&str],
    current: Option<&Item>,
    m: &IdentityMove,
    expires_at: Option<i64>,
) -> Result<TransactWriteItem, StoreError> {
    let mut sets = vec!["moved_to = :to".to_owned(), "moved_at = :at".to_owned()];
    let mut update = Update::builder()
        .table_name(table)
        .key("pk", s(pk))
        .expression_attribute_values(":to", s(&m.to))
        .expression_attribute_values(":at", n(m.at));
    let mut guards = vec!["(attribute_not_exists(moved_at) OR moved_at <= :at)".to_owned()];
    for (i, a) in attributes.iter().enumerate() {
        match current.and_then(|c| num(c, a)) {
            Some(v) => {
                guards.push(format!("{a} = :o{i}"));
                update = update.expression_attribute_values(format!(":o{i}"), n(v));
            }
            None => guards.push(format!("attribute_not_exists({a})")),
        }
    }
    let mut removes = Vec::new();
    match &m.new_wa_id {
        Some(w) => {
            sets.push("moved_wa_id = :w".into());
            update = update.expression_attribute_values(":w", s(w));
        }
        None => removes.push("moved_wa_id"),
    }
    if let Some(t) = expires_at {
        let current_ttl = current.and_then(|i| num(i, "expires_at")).unwrap_or(0);
        sets.push("expires_at = :exp".into());
        update = update.expression_attribute_values(":exp", n(t.max(current_ttl)));
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    Ok(TransactWriteItem::builder()
        .update(
            update
                .update_expression(expression)
                .condition_expression(guards.join(" AND "))
                .build()
                .map_err(|e| StoreError::new("identity.pointer_build", e))?,
        )
        .build())
}

/// The pointer an item holds, if its identity moved.
pub(crate) fn successor_of(item: &Item) -> Option<whatsapp_core::identity::Successor> {
    Some(whatsapp_core::identity::Successor {
        user: text(item, "moved_to")?,
        wa_id: text(item, "moved_wa_id"),
        at: num(item, "moved_at").unwrap_or(0),
    })
}

impl IdentityStore for DynamoIdentityStore {
    async fn move_identity(&self, m: &IdentityMove) -> Result<(), StoreError> {
        if m.from.is_empty() || m.from.contains(&m.to) {
            return Ok(());
        }
        let mut moved = false;
        for _ in 0..ATTEMPTS {
            if self.attempt(m).await? {
                moved = true;
                break;
            }
        }
        if !moved {
            return Err(StoreError::new(
                "identity.move",
                "the items kept changing under the transaction",
            ));
        }
        // The aliases after the state: until they move, a job by phone number still resolves
        // to the old id, whose pointer leads to the new one.
        whatsapp_core::identity::move_aliases(&self.contacts, m).await
    }
}
