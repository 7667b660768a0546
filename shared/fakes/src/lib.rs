//! In-memory implementations of the ports, for unit tests (feature `fakes`). They keep the
//! contracts of the real adapters (monotonic windows and timestamps, first-writer-wins records)
//! so that handler tests mean something; the adapters themselves are tested against ministack.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use whatsapp_core::ingest::IngestPorts;
use whatsapp_core::policy::{
    Consent, PairTurn, WindowState, merge_status, pair_turn, status_advances,
};
use whatsapp_core::ports::{
    Begin, Claim, ConsentEvent, ContactStore, DedupeStore, MessageQueue, MessageRecord,
    MessageStore, PhoneStateStore, PreviousHold, Quarantine, QueueError, SecretError, SecretSource,
    Secrets, SessionStore, StatusUpdate, StoreError, TemplateDefinition, TemplateRecord,
    TemplateStore, UserKey,
};
use whatsapp_core::webhook::{
    AccountUpdate, BusinessCapabilityUpdate, PhoneNumberQualityUpdate, TemplateCategoryUpdate,
    TemplateStatusUpdate,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
pub struct MemorySessions {
    pub items: Mutex<HashMap<UserKey, WindowState>>,
}

impl SessionStore for MemorySessions {
    async fn window(&self, key: &UserKey) -> Result<WindowState, StoreError> {
        Ok(lock(&self.items).get(key).copied().unwrap_or_default())
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
            },
        );
        Ok(Begin::Started { previous })
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

    async fn find_by_callback(&self, callback_data: &str) -> Result<Option<String>, StoreError> {
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

/// Records what was sent; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<(String, Option<u32>)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn bodies(&self) -> Vec<String> {
        lock(&self.sent).iter().map(|(b, _)| b.clone()).collect()
    }
}

impl MessageQueue for MemoryQueue {
    async fn send(&self, body: &str, delay_seconds: Option<u32>) -> Result<String, QueueError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError("injected failure".into()));
        }
        let mut sent = lock(&self.sent);
        sent.push((body.to_owned(), delay_seconds));
        Ok(format!("mem-{}", sent.len()))
    }
}

impl whatsapp_core::ports::DeadLetters for MemoryQueue {
    async fn dead_letter(&self, body: &str, reason: &str, _detail: &str) -> Result<(), QueueError> {
        self.send(&format!("{reason}\t{body}"), None)
            .await
            .map(|_| ())
    }
}

/// Records redeliveries instead of making them.
#[derive(Debug, Default)]
pub struct MemoryRedelivery {
    pub delays: Mutex<Vec<(String, u32)>>,
    /// Fresh copies put on the queue: (body, delay).
    pub requeued: Mutex<Vec<(String, u32)>>,
}

impl whatsapp_core::ports::Redelivery for MemoryRedelivery {
    async fn redeliver_in(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        lock(&self.delays).push((receipt_handle.to_owned(), seconds));
        Ok(())
    }

    async fn requeue(&self, body: &str, delay_seconds: u32) -> Result<(), QueueError> {
        lock(&self.requeued).push((body.to_owned(), delay_seconds));
        Ok(())
    }
}

/// The send-control counters in memory, with the adapter's contracts (slots add then grant; a
/// pair turn is taken only when free; the reach budget counts unique users per moving day).
#[derive(Debug, Default)]
pub struct MemorySendControl {
    pub slots: Mutex<HashMap<(String, i64), u64>>,
    pub pairs: Mutex<HashMap<UserKey, i64>>,
    pub reached: Mutex<HashMap<(String, String), i64>>,
    pub budgets: Mutex<HashMap<String, whatsapp_core::policy::ReachBudget>>,
    pub limits: Mutex<HashMap<String, whatsapp_core::ports::NumberLimits>>,
    pub states: Mutex<HashMap<String, whatsapp_core::ports::NumberState>>,
    pub histories: Mutex<HashMap<String, whatsapp_core::ports::HealthHistory>>,
    /// Portfolio → day → users first reached that day.
    pub days: Mutex<HashMap<(String, i64), u64>>,
    /// Makes `number_limits` fail (the table unreachable).
    pub fail_limits: std::sync::atomic::AtomicBool,
}

impl whatsapp_core::ports::NumberStateStore for MemorySendControl {
    async fn number_state(
        &self,
        phone: &str,
    ) -> Result<Option<whatsapp_core::ports::NumberState>, StoreError> {
        Ok(lock(&self.states).get(phone).cloned())
    }

    async fn put_number_state(
        &self,
        phone: &str,
        st: &whatsapp_core::ports::NumberState,
    ) -> Result<(), StoreError> {
        let mut st = st.clone();
        st.backoff_until = None;
        lock(&self.limits).insert(
            phone.to_owned(),
            whatsapp_core::ports::NumberLimits {
                mps: Some(st.health.mps()),
                tier: Some(st.health.messaging_tier()),
                marketing_paused: st.marketing_paused,
            },
        );
        lock(&self.states).insert(phone.to_owned(), st);
        Ok(())
    }

    async fn set_backoff(&self, phone: &str, until: i64) -> Result<(), StoreError> {
        lock(&self.states)
            .entry(phone.to_owned())
            .or_insert_with(|| whatsapp_core::ports::NumberState {
                health: whatsapp_core::policy::NumberHealth::default(),
                marketing_paused: false,
                polled_at: 0,
                backoff_until: None,
            })
            .backoff_until = Some(until);
        Ok(())
    }

    async fn append_history(
        &self,
        phone: &str,
        at_ms: i64,
        changes: &[whatsapp_core::policy::HealthChange],
    ) -> Result<(), StoreError> {
        lock(&self.histories)
            .entry(phone.to_owned())
            .or_default()
            .push((at_ms, changes.to_vec()));
        Ok(())
    }

    async fn history(
        &self,
        phone: &str,
    ) -> Result<whatsapp_core::ports::HealthHistory, StoreError> {
        Ok(lock(&self.histories)
            .get(phone)
            .cloned()
            .unwrap_or_default())
    }

    async fn reached_7d(&self, portfolio: &str, now: i64) -> Result<u64, StoreError> {
        let last = now.div_euclid(86_400);
        let days = lock(&self.days);
        Ok((last - 6..=last)
            .filter_map(|d| days.get(&(portfolio.to_owned(), d)))
            .sum())
    }
}

/// Keeps published alerts in memory.
#[derive(Debug, Default)]
pub struct MemoryAlerts {
    pub published: Mutex<Vec<(String, serde_json::Value)>>,
}

impl whatsapp_core::ports::AlertSink for MemoryAlerts {
    async fn publish(&self, subject: &str, event: &serde_json::Value) -> Result<(), QueueError> {
        lock(&self.published).push((subject.to_owned(), event.clone()));
        Ok(())
    }
}

impl whatsapp_core::ports::SendControl for MemorySendControl {
    async fn add_to_slot(&self, phone: &str, slot: i64, wanted: u32) -> Result<u64, StoreError> {
        let mut slots = lock(&self.slots);
        let c = slots.entry((phone.to_owned(), slot)).or_default();
        *c += u64::from(wanted);
        Ok(*c)
    }

    async fn take_pair_turn(
        &self,
        key: &UserKey,
        now_ms: i64,
        gap_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut pairs = lock(&self.pairs);
        match pair_turn(pairs.get(key).copied(), now_ms, gap_ms) {
            PairTurn::Wait { until_ms } => Ok(Some(until_ms)),
            PairTurn::Take { next_at_ms } => {
                pairs.insert(key.clone(), next_at_ms);
                Ok(None)
            }
        }
    }

    async fn reach(
        &self,
        portfolio: &str,
        user: &str,
        now: i64,
        limit: Option<u32>,
    ) -> Result<whatsapp_core::ports::Reach, StoreError> {
        use whatsapp_core::ports::Reach;
        if limit.is_none() {
            return Ok(Reach::AlreadyCounted);
        }
        let mut reached = lock(&self.reached);
        let key = (portfolio.to_owned(), user.to_owned());
        if whatsapp_core::policy::reach_counted(reached.get(&key).copied(), now) {
            return Ok(Reach::AlreadyCounted);
        }
        let mut budgets = lock(&self.budgets);
        let budget = budgets.remove(portfolio).unwrap_or_default();
        match budget.clone().reserve(now, limit) {
            Ok(b) => {
                budgets.insert(portfolio.to_owned(), b);
                reached.insert(key, now);
                *lock(&self.days)
                    .entry((portfolio.to_owned(), now.div_euclid(86_400)))
                    .or_default() += 1;
                Ok(Reach::Reserved)
            }
            Err(refused) => {
                budgets.insert(portfolio.to_owned(), budget);
                Ok(Reach::Refused(refused))
            }
        }
    }

    async fn number_limits(
        &self,
        phone: &str,
    ) -> Result<whatsapp_core::ports::NumberLimits, StoreError> {
        if self.fail_limits.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new("control.number_limits", "unreachable"));
        }
        Ok(lock(&self.limits).get(phone).cloned().unwrap_or_default())
    }
}

/// Keeps quarantined bodies in memory.
#[derive(Debug, Default)]
pub struct MemoryQuarantine {
    pub kept: Mutex<Vec<(Vec<u8>, String)>>,
}

impl Quarantine for MemoryQuarantine {
    async fn keep(&self, body: &[u8], reason: &str) -> Result<String, StoreError> {
        let mut kept = lock(&self.kept);
        kept.push((body.to_vec(), reason.to_owned()));
        Ok(format!("mem://{reason}/{}", kept.len()))
    }
}

/// Fixed secrets.
#[derive(Debug, Clone)]
pub struct StaticSecrets(pub Arc<Secrets>);

impl StaticSecrets {
    pub fn new(app_secret: &str, verify_token: &str, access_token: &str) -> Self {
        StaticSecrets(Arc::new(Secrets {
            app_secret: app_secret.into(),
            verify_token: verify_token.into(),
            access_token: access_token.into(),
        }))
    }
}

impl SecretSource for StaticSecrets {
    async fn secrets(&self) -> Result<Arc<Secrets>, SecretError> {
        Ok(Arc::clone(&self.0))
    }
    async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
        Ok(Arc::clone(&self.0))
    }
}

/// Every ingest port in memory.
#[derive(Debug, Default)]
pub struct MemoryPorts {
    pub sessions: MemorySessions,
    pub contacts: MemoryContacts,
    pub messages: MemoryMessages,
    pub templates: MemoryTemplates,
    pub phones: MemoryPhones,
    pub dedupe: MemoryDedupe,
    pub inbound: MemoryQueue,
}

impl IngestPorts for MemoryPorts {
    type Sessions = MemorySessions;
    type Contacts = MemoryContacts;
    type Messages = MemoryMessages;
    type Templates = MemoryTemplates;
    type Phones = MemoryPhones;
    type Dedupe = MemoryDedupe;
    type Inbound = MemoryQueue;

    fn sessions(&self) -> &MemorySessions {
        &self.sessions
    }
    fn contacts(&self) -> &MemoryContacts {
        &self.contacts
    }
    fn messages(&self) -> &MemoryMessages {
        &self.messages
    }
    fn templates(&self) -> &MemoryTemplates {
        &self.templates
    }
    fn phones(&self) -> &MemoryPhones {
        &self.phones
    }
    fn dedupe(&self) -> &MemoryDedupe {
        &self.dedupe
    }
    fn inbound(&self) -> &MemoryQueue {
        &self.inbound
    }
}

/// The text of resource `name` in the SAM template (`infra/template.yaml`), for tests that
/// check the template declares what the code emits. Panics when it is not there.
pub fn template_resource(name: &str) -> String {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
    .expect("infra/template.yaml");
    let head = format!("  {name}:");
    let mut lines = template.lines().skip_while(|l| *l != head);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("the template declares {name}"));
    // The resource ends where the next one (two spaces, then a name) or the next section starts.
    let body = lines
        .take_while(|l| l.is_empty() || l.starts_with("   ") || l.trim_start().starts_with('#'));
    std::iter::once(first)
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n")
}
