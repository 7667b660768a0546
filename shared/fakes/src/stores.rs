//! The stores in memory: windows, idempotency records, consent, messages, templates, phone state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use whatsapp_core::identity::Successor;
use whatsapp_core::policy::{Consent, WindowState, merge_status, status_advances};
use whatsapp_core::ports::{
    Begin, Claim, ConsentEvent, ContactStore, DedupeStore, MessageRecord, MessageStore,
    PhoneStateStore, PreviousHold, SessionStore, StatusUpdate, StoreError, TemplateDefinition,
    TemplateRecord, TemplateStore, UserKey, WindowRecord,
};
use whatsapp_core::webhook::{
    AccountUpdate, BusinessCapabilityUpdate, PhoneNumberQualityUpdate, TemplateCategoryUpdate,
    TemplateStatusUpdate,
};

use crate::lock;

#[derive(Debug, Default)]
pub struct MemorySessions {
    pub items: Mutex<HashMap<UserKey, WindowState>>,
    /// Identities that moved away: old key → where to.
    pub moved: Mutex<HashMap<UserKey, Successor>>,
}

impl SessionStore for MemorySessions {
    async fn window(&self, key: &UserKey) -> Result<WindowState, StoreError> {
        Ok(lock(&self.items).get(key).copied().unwrap_or_default())
    }

    async fn window_record(&self, key: &UserKey) -> Result<WindowRecord, StoreError> {
        Ok(WindowRecord {
            state: lock(&self.items).get(key).copied().unwrap_or_default(),
            moved_to: lock(&self.moved).get(key).cloned(),
        })
    }

    async fn record_inbound(
        &self,
        key: &UserKey,
        at: i64,
        has_referral: bool,
    ) -> Result<WindowState, StoreError> {
        let mut items = lock(&self.items);
        let s = items.entry(key.clone()).or_default();
        *s = s.with_inbound(at, has_referral);
        Ok(*s)
    }

    async fn record_business_reply(
        &self,
        key: &UserKey,
        at: i64,
    ) -> Result<WindowState, StoreError> {
        let mut items = lock(&self.items);
        let s = items.entry(key.clone()).or_default();
        *s = s.with_business_reply(at);
        Ok(*s)
    }
}

#[derive(Debug, Clone)]
struct Record {
    done: bool,
    hash: String,
    owner: String,
    in_progress_until_ms: i64,
    expires_at: i64,
    result: Option<String>,
    checkpoint: Option<String>,
    generation: Option<String>,
}

#[derive(Debug, Default)]
pub struct MemoryDedupe {
    claims: Mutex<HashMap<String, i64>>,
    records: Mutex<HashMap<String, Record>>,
    /// Makes `complete` fail (a store outage at the worst moment).
    pub fail_complete: std::sync::atomic::AtomicBool,
}

impl DedupeStore for MemoryDedupe {
    async fn claim(&self, key: &str, now: i64, expires_at: i64) -> Result<Claim, StoreError> {
        let mut claims = lock(&self.claims);
        match claims.get(key) {
            Some(&exp) if exp >= now => Ok(Claim::Duplicate),
            _ => {
                claims.insert(key.to_owned(), expires_at);
                Ok(Claim::First)
            }
        }
    }

    async fn begin(
        &self,
        key: &str,
        hash: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
        expires_at: i64,
    ) -> Result<Begin, StoreError> {
        let mut records = lock(&self.records);
        let mut previous = None;
        let mut generation = Some(owner.to_owned());
        if let Some(r) = records.get(key) {
            let expired = r.expires_at < now_ms.div_euclid(1000);
            let lapsed = !r.done && r.in_progress_until_ms < now_ms && r.hash == hash;
            if !expired && !lapsed {
                return Ok(if r.hash != hash {
                    Begin::PayloadMismatch
                } else if r.done {
                    Begin::Completed {
                        result: r.result.clone(),
                    }
                } else {
                    Begin::InProgress {
                        until_ms: r.in_progress_until_ms,
                    }
                });
            }
            if !expired {
                previous = Some(PreviousHold {
                    held_until_ms: r.in_progress_until_ms,
                    checkpoint: r.checkpoint.clone(),
                });
                generation = r.generation.clone();
            }
        }
        records.insert(
            key.to_owned(),
            Record {
                done: false,
                hash: hash.to_owned(),
                owner: owner.to_owned(),
                in_progress_until_ms: until_ms,
                expires_at,
                result: None,
                checkpoint: None,
                generation: generation.clone(),
            },
        );
        Ok(Begin::Started {
            previous,
            generation,
        })
    }

    async fn checkpoint(
        &self,
        key: &str,
        owner: &str,
        until_ms: i64,
        checkpoint: &str,
    ) -> Result<(), StoreError> {
        match lock(&self.records).get_mut(key) {
            Some(r) if !r.done && r.owner == owner => {
                r.in_progress_until_ms = until_ms;
                r.checkpoint = Some(checkpoint.to_owned());
                Ok(())
            }
            _ => Err(StoreError::new(
                "idempotency.checkpoint",
                "record is not in progress under this owner",
            )),
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        result: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        if self.fail_complete.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new("idempotency.complete", "injected failure"));
        }
        match lock(&self.records).get_mut(key) {
            Some(r) if r.owner == owner => {
                r.done = true;
                r.result = result.map(str::to_owned);
                r.expires_at = expires_at;
                Ok(())
            }
            _ => Err(StoreError::new(
                "idempotency.complete",
                "record is not held by this owner",
            )),
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut records = lock(&self.records);
        if records.get(key).is_some_and(|r| r.owner != owner) {
            return Err(StoreError::new(
                "idempotency.release",
                "record is not held by this owner",
            ));
        }
        records.remove(key);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct MemoryContacts {
    pub consent: Mutex<HashMap<UserKey, Consent>>,
    pub aliases: Mutex<HashMap<(String, String), String>>,
    /// (business number, business-scoped id) → phone number: the reverse alias.
    pub phones: Mutex<HashMap<(String, String), String>>,
}

impl ContactStore for MemoryContacts {
    async fn record_consent(
        &self,
        key: &UserKey,
        event: ConsentEvent,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut all = lock(&self.consent);
        let c = all.entry(key.clone()).or_default();
        let slot = match event {
            ConsentEvent::OptIn => &mut c.opt_in_at,
            ConsentEvent::OptOut => &mut c.opt_out_at,
            ConsentEvent::MarketingStop => &mut c.marketing_stop_at,
            ConsentEvent::MarketingResume => &mut c.marketing_resume_at,
            ConsentEvent::MarketingHeld => &mut c.marketing_held_at,
        };
        *slot = Some(slot.map_or(at, |t| t.max(at)));
        Ok(())
    }

    async fn consent(&self, key: &UserKey) -> Result<Consent, StoreError> {
        Ok(lock(&self.consent).get(key).copied().unwrap_or_default())
    }

    async fn record_alias(
        &self,
        phone: &str,
        wa_id: &str,
        user_id: &str,
        _at: i64,
    ) -> Result<(), StoreError> {
        lock(&self.aliases).insert((phone.to_owned(), wa_id.to_owned()), user_id.to_owned());
        lock(&self.phones).insert((phone.to_owned(), user_id.to_owned()), wa_id.to_owned());
        Ok(())
    }

    async fn phone_of(&self, phone: &str, user_id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.phones)
            .get(&(phone.to_owned(), user_id.to_owned()))
            .cloned())
    }

    async fn resolve_alias(&self, phone: &str, wa_id: &str) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.aliases)
            .get(&(phone.to_owned(), wa_id.to_owned()))
            .cloned())
    }
}

#[derive(Debug, Default)]
pub struct MemoryMessages {
    pub items: Mutex<HashMap<String, MessageRecord>>,
}

impl MessageStore for MemoryMessages {
    async fn merge_status(&self, u: StatusUpdate<'_>) -> Result<bool, StoreError> {
        let mut items = lock(&self.items);
        let m = items.entry(u.wamid.to_owned()).or_default();
        if let Some(p) = u.pricing
            && m.priced_at.is_none_or(|t| t > u.at)
        {
            m.priced_at = Some(u.at);
            m.waba_id = Some(u.waba_id.to_owned());
            m.pricing_category = Some(p.category.to_string());
            m.pricing_type = p.kind.as_ref().map(ToString::to_string);
            m.pricing_model = p.pricing_model.as_ref().map(ToString::to_string);
            m.billable = p.billable;
            if let Some(c) = u.conversation {
                m.conversation_id = Some(c.id.clone());
            }
        }
        if let Some(r) = u.recipient {
            m.recipient = Some(r.to_owned());
        }
        if whatsapp_core::ports::status_time_attribute(u.status).is_some()
            && !m.status_times.iter().any(|(k, _)| k == u.status)
        {
            m.status_times.push((u.status.clone(), u.at));
            m.status_times
                .sort_by_key(|(k, at)| (*at, whatsapp_core::policy::status_rank(k)));
        }
        let advances = status_advances(m.status.as_ref(), u.status);
        if advances {
            m.status = Some(merge_status(m.status.as_ref(), u.status));
            m.status_at = Some(u.at);
            m.error_code = u.error.map(|e| e.code).or(m.error_code);
            m.callback_data = u
                .callback_data
                .map(str::to_owned)
                .or(m.callback_data.take());
        }
        Ok(advances)
    }

    async fn message(&self, wamid: &str) -> Result<Option<MessageRecord>, StoreError> {
        Ok(lock(&self.items).get(wamid).cloned())
    }

    async fn find_by_callback(
        &self,
        _phone_number_id: &str,
        callback_data: &str,
        _from: i64,
        _until: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.items)
            .iter()
            .find(|(_, m)| m.callback_data.as_deref() == Some(callback_data))
            .map(|(wamid, _)| wamid.clone()))
    }
}

#[derive(Debug, Default)]
pub struct MemoryTemplates {
    pub items: Mutex<HashMap<String, TemplateRecord>>,
    /// When each template's category was last set (the adapter's `category_at`).
    category_at: Mutex<HashMap<String, i64>>,
}

impl TemplateStore for MemoryTemplates {
    async fn record_status(
        &self,
        waba: &str,
        u: &TemplateStatusUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut items = lock(&self.items);
        let t = items
            .entry(format!(
                "{waba}#{}#{}",
                u.message_template_name, u.message_template_language
            ))
            .or_default();
        if t.status_at.is_some_and(|s| s > at) {
            return Ok(false);
        }
        t.status = Some(u.event.clone());
        t.status_at = Some(at);
        t.reason = u.reason.clone();
        t.template_id = Some(u.message_template_id.clone());
        Ok(true)
    }

    async fn record_category(
        &self,
        waba: &str,
        u: &TemplateCategoryUpdate,
        at: i64,
    ) -> Result<bool, StoreError> {
        // As the DynamoDB adapter: only the completed form sets the category, versioned by `at`.
        let Some(new) = u
            .new_category
            .as_ref()
            .filter(|_| u.previous_category.is_some())
        else {
            return Ok(false);
        };
        let mut items = lock(&self.items);
        let key = format!(
            "{waba}#{}#{}",
            u.message_template_name, u.message_template_language
        );
        let mut versions = lock(&self.category_at);
        if versions.get(&key).is_some_and(|&v| v > at) {
            return Ok(false);
        }
        versions.insert(key.clone(), at);
        let t = items.entry(key).or_default();
        t.category = Some(new.clone());
        t.template_id = Some(u.message_template_id.clone());
        Ok(true)
    }

    async fn template(
        &self,
        waba: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateRecord>, StoreError> {
        Ok(lock(&self.items)
            .get(&format!("{waba}#{name}#{language}"))
            .cloned())
    }

    async fn put_definition(
        &self,
        waba: &str,
        d: &TemplateDefinition,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut items = lock(&self.items);
        let t = items
            .entry(format!("{waba}#{}#{}", d.name, d.language))
            .or_default();
        if t.status_at.is_some_and(|s| s > at) {
            return Ok(false);
        }
        t.status = Some(d.status.clone());
        t.status_at = Some(at);
        t.category = Some(d.category.clone());
        t.components = Some(d.components.to_string());
        t.parameter_format = Some(
            d.parameter_format
                .clone()
                .unwrap_or_else(|| "POSITIONAL".into()),
        );
        if let Some(id) = &d.template_id {
            t.template_id = Some(id.clone());
        }
        t.reason = d.rejected_reason.clone();
        Ok(true)
    }

    async fn record_edit(
        &self,
        waba: &str,
        name: &str,
        language: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        lock(&self.items)
            .entry(format!("{waba}#{name}#{language}"))
            .or_default()
            .edits
            .push(at);
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct MemoryPhones {
    pub items: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl PhoneStateStore for MemoryPhones {
    async fn record_quality(
        &self,
        waba: &str,
        u: &PhoneNumberQualityUpdate,
        _at: i64,
    ) -> Result<bool, StoreError> {
        let mut items = lock(&self.items);
        items
            .entry(format!("PN#{waba}#{}", u.display_phone_number))
            .or_default()
            .insert("quality_event".into(), u.event.to_string());
        Ok(true)
    }

    async fn record_capability(
        &self,
        waba: &str,
        u: &BusinessCapabilityUpdate,
        _at: i64,
    ) -> Result<bool, StoreError> {
        if let Some(t) = &u.max_daily_conversations_per_business {
            lock(&self.items)
                .entry(format!("WABA#{waba}"))
                .or_default()
                .insert("messaging_limit".into(), t.to_string());
        }
        Ok(true)
    }

    async fn record_account(
        &self,
        waba: &str,
        u: &AccountUpdate,
        _at: i64,
    ) -> Result<bool, StoreError> {
        lock(&self.items)
            .entry(format!("WABA#{waba}"))
            .or_default()
            .insert("account_event".into(), u.event.clone());
        Ok(true)
    }

    async fn state(&self, pk: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(lock(&self.items).get(pk).cloned().unwrap_or_default())
    }
}
