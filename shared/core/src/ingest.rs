//! What one webhook item does, exactly once, whichever function runs it (the webhook inline, or
//! the event processor from the events queue).
//!
//! Every effect is either monotonic (windows, consent, status merge, template and phone state:
//! a replay or an older event changes nothing) or gated by an idempotency record (forwarding an
//! inbound message to the bots' queue), so duplicates, retries and reordering are harmless.

use std::future::Future;

use crate::foreign::{self, ForeignEvent, ForeignKind};
use crate::identity;
use crate::policy::{WindowState, fold_keyword, is_keyword};
use crate::ports::{
    Begin, ConsentEvent, ContactStore, DedupeStore, EventPublisher, IdentityStore, MessageQueue,
    MessageStore, PhoneStateStore, Quarantine, QueueError, SessionStore, StatusUpdate, StoreError,
    TemplateStore, UserKey,
};
use crate::webhook::{
    Change, Contact, Entry, Envelope, InboundMessage, Item, ItemContext, MessageContent,
    MessagesValue, Metadata, PreferenceValue, StatusKind, UserPreferencesValue,
};

mod event;

use event::CONTENT_UNAVAILABLE;
pub use event::{InboundEvent, InboundUser};

/// How far ahead of our clock a message's timestamp may be and still be believed.
const MAX_CLOCK_AHEAD_S: i64 = 300;

/// The error Meta reports when a user stopped marketing messages.
const MARKETING_STOPPED: i64 = 131_050;
/// The error Meta reports when it did not deliver marketing to a user (per-user limit).
const MARKETING_LIMITED: i64 = 131_049;

/// The stores and queues ingest writes to.
pub trait IngestPorts: Send + Sync {
    type Sessions: SessionStore;
    type Contacts: ContactStore;
    type Messages: MessageStore;
    type Templates: TemplateStore;
    type Phones: PhoneStateStore;
    type Dedupe: DedupeStore;
    type Inbound: MessageQueue;
    type MediaFetch: MessageQueue;
    type MetaEvents: EventPublisher;
    type Quarantine: Quarantine;
    type Identities: IdentityStore;

    fn sessions(&self) -> &Self::Sessions;
    fn contacts(&self) -> &Self::Contacts;
    fn messages(&self) -> &Self::Messages;
    fn templates(&self) -> &Self::Templates;
    fn phones(&self) -> &Self::Phones;
    fn dedupe(&self) -> &Self::Dedupe;
    /// The queue bots consume inbound messages from.
    fn inbound(&self) -> &Self::Inbound;
    /// The queue of inbound messages with a file: the media fetcher keeps the file, then
    /// forwards the event to [`IngestPorts::inbound`].
    fn media_fetch(&self) -> &Self::MediaFetch;
    /// The topic the Meta events we do not own are published on.
    fn meta_events(&self) -> &Self::MetaEvents;
    /// Where malformed values (and values too large to publish) are kept.
    fn quarantine(&self) -> &Self::Quarantine;
    /// Where a user's change of number or business-scoped id moves their state.
    fn identities(&self) -> &Self::Identities;
}

/// Settings of ingest.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Folded opt-out keywords (`OPT_OUT_KEYWORDS`, default `STOP,UNSUBSCRIBE,CANCEL,STOPP,PARAR,ARRET,BAJA`).
    pub opt_out_keywords: Vec<String>,
    /// Folded opt-in keywords (`OPT_IN_KEYWORDS`, default `START,SUBSCRIBE,UNSTOP`).
    pub opt_in_keywords: Vec<String>,
    /// How long a forwarded message's idempotency record lives: longer than Meta's 7 days of
    /// retries.
    pub dedupe_ttl_seconds: i64,
    /// How long a forward may stay in progress before another delivery may take it over.
    pub in_progress_ms: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            opt_out_keywords: fold_all("STOP,UNSUBSCRIBE,CANCEL,STOPP,PARAR,ARRET,BAJA"),
            opt_in_keywords: fold_all("START,SUBSCRIBE,UNSTOP"),
            dedupe_ttl_seconds: 8 * 24 * 3600,
            in_progress_ms: 30_000,
        }
    }
}

impl IngestConfig {
    /// The defaults, with `OPT_OUT_KEYWORDS` / `OPT_IN_KEYWORDS` (comma-separated) when set and
    /// not empty.
    pub fn from_env(env: &impl crate::config::Env) -> Self {
        let defaults = IngestConfig::default();
        let keywords = |name: &str, default: Vec<String>| {
            env.get(name)
                .filter(|v| !v.trim().is_empty())
                .map_or(default, |v| fold_all(&v))
        };
        IngestConfig {
            opt_out_keywords: keywords("OPT_OUT_KEYWORDS", defaults.opt_out_keywords),
            opt_in_keywords: keywords("OPT_IN_KEYWORDS", defaults.opt_in_keywords),
            ..defaults
        }
    }
}

/// Folds a comma-separated keyword list for matching.
pub fn fold_all(list: &str) -> Vec<String> {
    list.split(',')
        .map(fold_keyword)
        .filter(|k| !k.is_empty())
        .collect()
}

/// What processing an item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Effects applied (or re-applied, harmlessly).
    Applied,
    /// Already done by an earlier delivery.
    Duplicate,
    /// Another delivery is forwarding this message right now.
    InFlight,
    /// Not ours to act on (unknown field, malformed value, system error, no user id):
    /// published verbatim on the Meta events topic. The label is the event's kind, safe to log.
    Published(&'static str),
}

/// Why an item could not be processed; always retryable.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("could not serialise the inbound event")]
    Encode(#[from] serde_json::Error),
}

fn user_key(metadata: &Metadata, user: &str) -> UserKey {
    UserKey {
        phone_number_id: metadata.phone_number_id.clone(),
        user: user.to_owned(),
    }
}

/// The text a consent keyword may be in.
fn keyword_text(m: &InboundMessage) -> Option<&str> {
    match &m.content {
        MessageContent::Text(t) => Some(&t.body),
        MessageContent::Button(b) => Some(&b.text),
        _ => None,
    }
}

/// Processes one item.
// Written out (not `async fn`) so that `Send` is part of the signature callers rely on.
#[allow(clippy::manual_async_fn)]
pub fn process<'a, P: IngestPorts>(
    ports: &'a P,
    config: &'a IngestConfig,
    ctx: ItemContext<'a>,
    item: Item<'a>,
    now_ms: i64,
) -> impl Future<Output = Result<Outcome, IngestError>> + Send + 'a {
    async move {
        let at = ctx.entry_time.unwrap_or(now_ms / 1000);
        match item {
            Item::Message {
                metadata,
                contact,
                message,
            } => inbound(ports, config, ctx, metadata, contact, message, now_ms).await,
            Item::Status { metadata, status } => {
                let update = StatusUpdate {
                    wamid: &status.id,
                    waba_id: ctx.waba_id,
                    phone_number_id: &metadata.phone_number_id,
                    status: &status.status,
                    at: status.timestamp,
                    recipient: status.user_key(),
                    callback_data: status.biz_opaque_callback_data.as_deref(),
                    pricing: status.pricing.as_ref(),
                    conversation: status.conversation.as_ref(),
                    error: status.errors.first(),
                };
                let applied = ports.messages().merge_status(update).await?;
                // A failed status can change what we may send the user next: 131050 is a
                // marketing stop; 131049 holds marketing to them for 24 h from any job.
                let failed_with = |code| {
                    status.status == StatusKind::Failed
                        && status.errors.iter().any(|e| e.code == code)
                };
                let consent = [
                    (MARKETING_STOPPED, ConsentEvent::MarketingStop),
                    (MARKETING_LIMITED, ConsentEvent::MarketingHeld),
                ]
                .into_iter()
                .find(|&(code, _)| failed_with(code));
                if let Some((_, event)) = consent {
                    // A failed status carries no `contacts`, and may name no recipient at all:
                    // the message's record has the recipient an earlier status named.
                    let user = match status.user_key() {
                        Some(u) => Some(u.to_owned()),
                        None => ports
                            .messages()
                            .message(&status.id)
                            .await?
                            .and_then(|r| r.recipient),
                    };
                    match user {
                        Some(user) => {
                            ports
                                .contacts()
                                .record_consent(&user_key(metadata, &user), event, status.timestamp)
                                .await?;
                        }
                        None => tracing::warn!(
                            code = status.errors.first().map(|e| e.code),
                            "a failed status names no recipient and none is on record: the consent change is not kept"
                        ),
                    }
                }
                Ok(if applied {
                    Outcome::Applied
                } else {
                    Outcome::Duplicate
                })
            }
            Item::Error { .. }
            | Item::Unhandled { .. }
            | Item::Malformed { .. }
            | Item::Rejected { .. } => {
                let event = foreign::event_of(ctx, item)
                    .unwrap_or_else(|| foreign::skipped(ctx, item, "unrecognised"));
                publish(ports, event).await
            }
            Item::TemplateStatus(t) => Ok(applied(
                ports.templates().record_status(ctx.waba_id, t, at).await?,
            )),
            Item::TemplateCategory(t) => Ok(applied(
                ports
                    .templates()
                    .record_category(ctx.waba_id, t, at)
                    .await?,
            )),
            Item::PhoneNumberQuality(q) => Ok(applied(
                ports.phones().record_quality(ctx.waba_id, q, at).await?,
            )),
            Item::BusinessCapability(b) => Ok(applied(
                ports.phones().record_capability(ctx.waba_id, b, at).await?,
            )),
            Item::Account(a) => Ok(applied(
                ports.phones().record_account(ctx.waba_id, a, at).await?,
            )),
            Item::UserPreference {
                metadata,
                preference,
            } => {
                let (Some(metadata), Some(user)) = (metadata, preference.user_key()) else {
                    let event = foreign::skipped(ctx, item, "preference_without_user");
                    return publish(ports, event).await;
                };
                let event = match preference.value {
                    PreferenceValue::Stop => ConsentEvent::MarketingStop,
                    PreferenceValue::Resume => ConsentEvent::MarketingResume,
                    PreferenceValue::Other(_) => {
                        let event = foreign::skipped(ctx, item, "unknown_preference");
                        return publish(ports, event).await;
                    }
                };
                ports
                    .contacts()
                    .record_consent(&user_key(metadata, user), event, preference.timestamp)
                    .await?;
                Ok(Outcome::Applied)
            }
        }
    }
}

/// Publishes an event we do not own; a malformed value is kept in the quarantine first, and a
/// value too large for the topic is moved to the quarantine bucket and named by its location.
async fn publish<P: IngestPorts>(
    ports: &P,
    mut event: ForeignEvent,
) -> Result<Outcome, IngestError> {
    let field = foreign::safe_field(&event.field);
    let value = |e: &ForeignEvent| e.value.as_ref().map_or("null", |v| v.get()).to_owned();
    if event.kind == ForeignKind::Malformed {
        let kept = ports
            .quarantine()
            .keep(value(&event).as_bytes(), &format!("malformed/{field}"))
            .await?;
        event.quarantined = Some(kept);
    }
    if event.too_large() {
        let location = match &event.quarantined {
            Some(kept) => kept.clone(),
            None => {
                ports
                    .quarantine()
                    .keep(value(&event).as_bytes(), &format!("oversized/{field}"))
                    .await?
            }
        };
        event.value = None;
        event.value_location = Some(location);
    }
    let body = serde_json::to_string(&event)?;
    ports
        .meta_events()
        .publish(&body, &event.attributes())
        .await?;
    Ok(Outcome::Published(event.kind.label()))
}

fn applied(changed: bool) -> Outcome {
    if changed {
        Outcome::Applied
    } else {
        Outcome::Duplicate
    }
}

async fn inbound<P: IngestPorts>(
    ports: &P,
    config: &IngestConfig,
    ctx: ItemContext<'_>,
    metadata: &Metadata,
    contact: Option<&Contact>,
    message: &InboundMessage,
    now_ms: i64,
) -> Result<Outcome, IngestError> {
    let user_id = message
        .from_user_id
        .as_deref()
        .or(contact.and_then(|c| c.user_id.as_deref()));
    let wa_id = message
        .from
        .as_deref()
        .or(contact.and_then(|c| c.wa_id.as_deref()));
    // A change of identity moves the user's state before the bots hear of it, so that a job
    // they send in answer finds it under the new identity. Its system message names the user
    // only inside `system` when no phone number is shared (`user_changed_user_id`).
    let mut system_user = None;
    if let MessageContent::System(system) = &message.content {
        if let Some(m) = identity::from_system(metadata, message) {
            ports.identities().move_identity(&m).await?;
        }
        system_user = system
            .previous_user_id
            .as_deref()
            .or(system.user_id.as_deref());
    }
    let Some(user) = user_id.or(wa_id).or(system_user) else {
        let item = Item::Message {
            metadata,
            contact,
            message,
        };
        return publish(ports, foreign::skipped(ctx, item, "message_without_user")).await;
    };
    let key = user_key(metadata, user);
    // A message cannot have been sent after we received it. Meta's clock and ours may differ a
    // little; a timestamp further ahead (the fuzz run found `i64::MAX` overflowing the window
    // arithmetic) is taken as now, so that no bad value opens a window for years.
    let sent_at = message.timestamp.min(now_ms / 1000 + MAX_CLOCK_AHEAD_S);
    let mut window = WindowState::default();
    let mut keyword = None;
    if message.is_from_user() {
        // The window, the alias and a consent keyword are independent, idempotent and
        // monotonic: written concurrently (the acknowledgement waits for the slowest, not the
        // sum), and safe to repeat on every delivery.
        let consent = keyword_text(message).and_then(|text| {
            if is_keyword(text, &config.opt_out_keywords) {
                Some((ConsentEvent::OptOut, "opt_out"))
            } else if is_keyword(text, &config.opt_in_keywords) {
                Some((ConsentEvent::OptIn, "opt_in"))
            } else {
                None
            }
        });
        let alias = async {
            match (user_id, wa_id) {
                (Some(u), Some(w)) => {
                    ports
                        .contacts()
                        .record_alias(&metadata.phone_number_id, w, u, sent_at)
                        .await
                }
                _ => Ok(()),
            }
        };
        let keyword_write = async {
            match consent {
                Some((event, _)) => ports.contacts().record_consent(&key, event, sent_at).await,
                None => Ok(()),
            }
        };
        let (w, (), ()) = futures_util::future::try_join3(
            ports
                .sessions()
                .record_inbound(&key, sent_at, message.referral.is_some()),
            alias,
            keyword_write,
        )
        .await?;
        window = w;
        keyword = consent.map(|(_, label)| label.to_owned());
    }
    // Forward to bots exactly once.
    let record = format!("in#{}", message.id);
    let owner = crate::unique_token();
    let now_s = now_ms / 1000;
    match ports
        .dedupe()
        .begin(
            &record,
            &message.id,
            &owner,
            now_ms,
            now_ms + config.in_progress_ms,
            now_s + config.dedupe_ttl_seconds,
        )
        .await?
    {
        Begin::Started { .. } => {}
        Begin::InProgress { .. } => return Ok(Outcome::InFlight),
        Begin::Completed { .. } | Begin::PayloadMismatch => return Ok(Outcome::Duplicate),
    }
    let event = InboundEvent {
        version: 1,
        waba_id: ctx.waba_id.to_owned(),
        phone_number_id: metadata.phone_number_id.clone(),
        display_phone_number: metadata.display_phone_number.clone(),
        user: InboundUser {
            key: user.to_owned(),
            user_id: user_id.map(str::to_owned),
            wa_id: wa_id.map(str::to_owned),
            name: contact
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.name.clone()),
            username: contact
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.username.clone()),
        },
        message: message.clone(),
        window_closes_at: window.csw_expires_at(),
        consent_keyword: keyword,
        content_unavailable: message.errors.iter().any(|e| e.code == CONTENT_UNAVAILABLE),
        media: None,
        media_error: None,
    };
    // A message with a file reaches bots through the media fetcher, which keeps the file
    // first (off the webhook's request path); the event it forwards is this one, with `media`
    // or `media_error` set.
    let with_file = crate::media::attachment(message).is_some() && !event.content_unavailable;
    let forwarded = async {
        let body = serde_json::to_string(&event)?;
        if with_file {
            ports.media_fetch().send(&body, None).await?;
        } else {
            ports.inbound().send(&body, None).await?;
        }
        Ok::<_, IngestError>(())
    }
    .await;
    match forwarded {
        Ok(()) => {
            ports
                .dedupe()
                .complete(&record, &owner, None, now_s + config.dedupe_ttl_seconds)
                .await?;
            Ok(Outcome::Applied)
        }
        Err(e) => {
            // Let the retry take the record at once instead of waiting for the lease.
            let _ = ports.dedupe().release(&record, &owner).await;
            Err(e)
        }
    }
}

/// An envelope holding only `item`: what the webhook enqueues for the event processor when it
/// could not process the item inline. Below SQS's message size limit for every owned item; an
/// unhandled value is as large as Meta made it (the caller checks).
pub fn single_item_envelope(ctx: ItemContext<'_>, item: Item<'_>) -> Envelope {
    let change = match item {
        Item::Message {
            metadata,
            contact,
            message,
        } => Change::Messages(MessagesValue {
            messaging_product: Some("whatsapp".into()),
            metadata: metadata.clone(),
            contacts: contact.cloned().into_iter().collect(),
            messages: vec![message.clone()],
            ..MessagesValue::default()
        }),
        Item::Status { metadata, status } => Change::Messages(MessagesValue {
            messaging_product: Some("whatsapp".into()),
            metadata: metadata.clone(),
            statuses: vec![status.clone()],
            ..MessagesValue::default()
        }),
        Item::TemplateStatus(t) => Change::MessageTemplateStatusUpdate(t.clone()),
        Item::TemplateCategory(t) => Change::TemplateCategoryUpdate(t.clone()),
        Item::PhoneNumberQuality(q) => Change::PhoneNumberQualityUpdate(q.clone()),
        Item::BusinessCapability(b) => Change::BusinessCapabilityUpdate(b.clone()),
        Item::Account(a) => Change::AccountUpdate(a.clone()),
        Item::UserPreference {
            metadata,
            preference,
        } => Change::UserPreferences(UserPreferencesValue {
            messaging_product: Some("whatsapp".into()),
            metadata: metadata.cloned(),
            contacts: Vec::new(),
            user_preferences: vec![preference.clone()],
        }),
        Item::Error { metadata, error } => Change::Messages(MessagesValue {
            messaging_product: Some("whatsapp".into()),
            metadata: metadata.clone(),
            errors: vec![error.clone()],
            ..MessagesValue::default()
        }),
        Item::Rejected { metadata, part } => Change::Messages(MessagesValue {
            messaging_product: Some("whatsapp".into()),
            metadata: metadata.clone(),
            rejected: vec![part.clone()],
            ..MessagesValue::default()
        }),
        Item::Unhandled { field, value } => Change::Other {
            field: field.to_owned(),
            value: value.to_owned(),
        },
        Item::Malformed {
            field,
            error,
            value,
        } => Change::Malformed {
            field: field.to_owned(),
            error: error.to_owned(),
            value: value.to_owned(),
        },
    };
    Envelope {
        object: "whatsapp_business_account".into(),
        entry: vec![Entry {
            id: ctx.waba_id.to_owned(),
            time: ctx.entry_time,
            changes: vec![change],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_come_from_the_environment_and_empty_means_default() {
        let c = IngestConfig::from_env(&[
            ("OPT_OUT_KEYWORDS", "Halt, ARRÊT"),
            ("OPT_IN_KEYWORDS", " "),
        ]);
        assert_eq!(c.opt_out_keywords, ["halt", "arret"]);
        assert_eq!(c.opt_in_keywords, IngestConfig::default().opt_in_keywords);
    }
}
