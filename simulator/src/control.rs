//! The control side: set up businesses, numbers, tokens and users; make users write; change
//! quality, status and tier; inject faults; inspect what happened. Available as Rust methods,
//! and as HTTP under `/_sim/` ([`crate::control_http`]).

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Delivery, Outbound, Phone, RequestRecord, Tier, User, Waba, country_of};
use crate::{Simulator, lock};

/// Which Graph routes a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultRoute {
    Messages,
    Templates,
    PhoneNumbers,
    Analytics,
    /// `POST /{phone}/media`, `GET` and `DELETE /{media-id}`.
    Media,
    /// The download URL `GET /{media-id}` hands out.
    MediaDownload,
    Any,
}

/// A fault on a route: latency, an error answer, or a hang before or after the request is
/// processed (after: the message is accepted but the caller times out, the ambiguous case).
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub route: FaultRoute,
    #[serde(default)]
    pub latency_ms: u64,
    /// (HTTP status, Meta error code), e.g. (503, 2) or (429, 130429).
    #[serde(default)]
    pub error: Option<(u16, i64)>,
    #[serde(default)]
    pub hang_before_ms: Option<u64>,
    #[serde(default)]
    pub hang_after_ms: Option<u64>,
    /// Applies to this many requests, then is spent; `None`: until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// A message a simulated user sends.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundSpec {
    pub phone_number_id: String,
    /// The message body as Meta shapes it: `{"type": "text", "text": {"body": "hi"}}`.
    pub message: Value,
    /// A click-to-WhatsApp referral, if the user came through an ad.
    #[serde(default)]
    pub referral: Option<Value>,
    /// Reply context (`{"id": "wamid..."}`).
    #[serde(default)]
    pub context: Option<Value>,
    /// Omit the phone number from the webhook (a user with a username).
    #[serde(default)]
    pub hide_phone_number: bool,
    /// The file of an image, audio, video, document or sticker message: stored as Meta
    /// stores it, and named in the message by `id`, `mime_type`, `sha256` and `url`.
    #[serde(default)]
    pub media: Option<InboundMedia>,
}

/// A file a simulated user sends: its bytes given (`data_base64`) or made up (`size_bytes` of
/// deterministic bytes starting with the type's signature).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboundMedia {
    pub mime_type: String,
    #[serde(default)]
    pub data_base64: Option<String>,
    #[serde(default)]
    pub size_bytes: Option<usize>,
    #[serde(default)]
    pub filename: Option<String>,
    /// Raw bytes (Rust callers).
    #[serde(skip)]
    pub bytes: Option<Vec<u8>>,
}

impl Simulator {
    pub(crate) fn take_fault(&self, route: FaultRoute) -> Option<Fault> {
        let mut faults = lock(&self.inner.faults);
        let i = faults
            .iter()
            .position(|f| f.route == route || f.route == FaultRoute::Any)?;
        let fault = faults[i].clone();
        if let Some(n) = &mut faults[i].times {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(i);
            }
        }
        Some(fault)
    }

    /// A fault drawn from the configured [`crate::FaultMix`], for sends only.
    pub(crate) fn mixed_fault(&self, route: FaultRoute) -> Option<Fault> {
        let mix = self.config().fault_mix?;
        if route != FaultRoute::Messages {
            return None;
        }
        let fault = |error, hang_after_ms| Fault {
            route,
            latency_ms: 0,
            error,
            hang_before_ms: None,
            hang_after_ms,
            times: Some(1),
        };
        let r = self.random();
        let mut edge = mix.server_error;
        if r < edge {
            return Some(fault(Some((503, 2)), None));
        }
        edge += mix.throttled;
        if r < edge {
            return Some(fault(Some((429, 130_429)), None));
        }
        edge += mix.per_user_limit;
        if r < edge {
            return Some(fault(Some((400, 131_049)), None));
        }
        edge += mix.hang_after;
        if r < edge {
            return Some(fault(None, Some(mix.hang_ms)));
        }
        None
    }

    pub fn inject_fault(&self, fault: Fault) {
        lock(&self.inner.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    pub fn create_waba(&self, id: &str, tier: Tier) {
        let currency = self.config().currency;
        self.world().wabas.insert(
            id.to_owned(),
            Waba {
                id: id.to_owned(),
                name: format!("Business {id}"),
                currency,
                tier,
                app_secret: None,
                reached: HashMap::new(),
            },
        );
    }

    /// Subscribes the account `waba_id` to another Meta app: its webhooks are signed with
    /// `app_secret` instead of the simulator's.
    pub fn subscribe_app(&self, waba_id: &str, app_secret: &str) {
        if let Some(w) = self.world().wabas.get_mut(waba_id) {
            w.app_secret = Some(app_secret.to_owned());
        }
    }

    pub fn create_phone_number(&self, id: &str, waba_id: &str, display_phone_number: &str) {
        let mps = self.config().default_mps;
        self.world().phones.insert(
            id.to_owned(),
            Phone {
                id: id.to_owned(),
                waba_id: waba_id.to_owned(),
                display_phone_number: display_phone_number.to_owned(),
                verified_name: format!("Business {waba_id}"),
                quality_rating: "GREEN".into(),
                status: "CONNECTED".into(),
                name_status: "APPROVED".into(),
                throughput_level: "STANDARD".into(),
                mps,
            },
        );
    }

    /// Creates (or updates) a user; returns their business-scoped user id.
    pub fn add_user(
        &self,
        wa_id: Option<&str>,
        user_id: Option<&str>,
        on_whatsapp: bool,
    ) -> String {
        let mut world = self.world();
        let uid = match (user_id, wa_id) {
            (Some(u), _) => u.to_owned(),
            (None, Some(w)) => world.user_for_wa_id(w).user_id.clone(),
            (None, None) => world.next_id("ZZ."),
        };
        let country = uid
            .split('.')
            .next()
            .filter(|c| c.len() == 2)
            .map(str::to_owned)
            .or_else(|| wa_id.map(|w| country_of(w).to_owned()))
            .unwrap_or_else(|| "ZZ".into());
        let user = world.users.entry(uid.clone()).or_insert_with(|| User {
            user_id: uid.clone(),
            wa_id: wa_id.map(str::to_owned),
            name: "Simulated User".into(),
            country,
            on_whatsapp,
            marketing_stopped: false,
            last_inbound: HashMap::new(),
            last_referral: HashMap::new(),
            fep_opened: HashMap::new(),
            marketing_received: VecDeque::new(),
        });
        user.on_whatsapp = on_whatsapp;
        if let Some(w) = wa_id {
            user.wa_id = Some(w.to_owned());
            world.wa_index.insert(w.to_owned(), uid.clone());
        }
        uid
    }

    /// A user writes to a business number: records the service window (and referral), then
    /// delivers the inbound-message webhook. Returns the new wamid.
    pub fn user_sends(&self, user: &str, spec: InboundSpec) -> Result<String, String> {
        let now = self.now();
        let mut world = self.world();
        let uid = if world.users.contains_key(user) {
            user.to_owned()
        } else {
            world.user_for_wa_id(user).user_id.clone()
        };
        let phone = world
            .phones
            .get(&spec.phone_number_id)
            .cloned()
            .ok_or("unknown phone number")?;
        let mut message = spec.message.clone();
        if let Some(media) = spec.media {
            let kind = message["type"]
                .as_str()
                .filter(|k| ["image", "audio", "video", "document", "sticker"].contains(k))
                .ok_or("media needs a message of type image, audio, video, document or sticker")?
                .to_owned();
            let bytes = match (media.bytes, media.data_base64, media.size_bytes) {
                (Some(b), _, _) => b,
                (None, Some(b64), _) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        .map_err(|_| "data_base64 is not base64")?
                }
                (None, None, Some(n)) => {
                    crate::media::synthetic_bytes(&media.mime_type, n, world.seq)
                }
                (None, None, None) => return Err("media needs data_base64 or size_bytes".into()),
            };
            drop(world);
            let fields =
                self.inbound_media_fields(&phone.id, &media.mime_type, bytes, media.filename);
            world = self.world();
            let body = message
                .as_object_mut()
                .ok_or("message must be an object")?
                .entry(kind)
                .or_insert_with(|| json!({}));
            if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
                b.extend(f.clone());
            }
        }
        let wamid = world.next_wamid("HBgLINBOUND");
        let u = world.users.get_mut(&uid).ok_or("unknown user")?;
        u.last_inbound.insert(phone.id.clone(), now);
        if spec.referral.is_some() {
            u.last_referral.insert(phone.id.clone(), now);
        }
        let obj = message.as_object_mut().ok_or("message must be an object")?;
        obj.insert("id".into(), json!(wamid));
        obj.insert("timestamp".into(), json!(now.to_string()));
        obj.insert("from_user_id".into(), json!(u.user_id));
        let show_phone = !spec.hide_phone_number && u.wa_id.is_some();
        if show_phone {
            obj.insert("from".into(), json!(u.wa_id));
        }
        if let Some(r) = spec.referral {
            obj.insert("referral".into(), r);
        }
        if let Some(c) = spec.context {
            obj.insert("context".into(), c);
        }
        let mut contact = json!({"profile": {"name": u.name}, "user_id": u.user_id});
        if show_phone {
            contact["wa_id"] = json!(u.wa_id);
        }
        world.inbound.insert(
            wamid.clone(),
            crate::model::Inbound {
                wamid: wamid.clone(),
                phone_number_id: phone.id.clone(),
                user_id: uid,
                at: now,
                read: false,
                typing_at: None,
            },
        );
        drop(world);
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": phone.display_phone_number, "phone_number_id": phone.id},
            "contacts": [contact],
            "messages": [message],
        });
        self.emit(&phone.waba_id, "messages", value, 0);
        Ok(wamid)
    }

    /// Sets a user's last message time on a number directly (to test windows).
    pub fn set_last_inbound(&self, user_id: &str, phone_number_id: &str, at: i64) {
        if let Some(u) = self.world().users.get_mut(user_id) {
            u.last_inbound.insert(phone_number_id.to_owned(), at);
        }
    }

    /// The user stops (or resumes) marketing messages: emits `user_preferences`.
    pub fn set_marketing_preference(
        &self,
        user_id: &str,
        phone_number_id: &str,
        stop: bool,
    ) -> Result<(), String> {
        let now = self.now();
        let mut world = self.world();
        let phone = world
            .phones
            .get(phone_number_id)
            .cloned()
            .ok_or("unknown phone number")?;
        let u = world.users.get_mut(user_id).ok_or("unknown user")?;
        u.marketing_stopped = stop;
        let mut pref = json!({
            "user_id": u.user_id,
            "detail": if stop { "User requested to stop marketing messages" } else { "User requested to resume marketing messages" },
            "category": "marketing_messages", "value": if stop { "stop" } else { "resume" }, "timestamp": now,
        });
        let mut contact = json!({"profile": {"name": u.name}, "user_id": u.user_id});
        if let Some(w) = &u.wa_id {
            pref["wa_id"] = json!(w);
            contact["wa_id"] = json!(w);
        }
        drop(world);
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": phone.display_phone_number, "phone_number_id": phone.id},
            "contacts": [contact], "user_preferences": [pref],
        });
        self.emit(&phone.waba_id, "user_preferences", value, 0);
        Ok(())
    }

    /// Changes a number's quality, status, throughput level or its portfolio's tier, emitting the
    /// webhooks Meta sends for each change.
    pub fn set_phone_state(
        &self,
        phone_number_id: &str,
        change: PhoneChange,
    ) -> Result<(), String> {
        let mut world = self.world();
        let phone = world
            .phones
            .get(phone_number_id)
            .cloned()
            .ok_or("unknown phone number")?;
        let mut events: Vec<(&'static str, Value)> = Vec::new();
        if let Some(q) = &change.quality_rating {
            let was = phone.quality_rating.clone();
            if q == "RED" && was != "RED" {
                events.push((
                    "phone_number_quality_update",
                    json!({"display_phone_number": phone.display_phone_number, "event": "FLAGGED"}),
                ));
            } else if q != "RED" && was == "RED" {
                events.push(("phone_number_quality_update", json!({"display_phone_number": phone.display_phone_number, "event": "UNFLAGGED"})));
            }
        }
        if let Some(s) = &change.status
            && s == "RESTRICTED"
        {
            events.push(("account_update", json!({"phone_number": phone.display_phone_number, "event": "ACCOUNT_RESTRICTION", "restriction_info": [{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": self.now() + 86_400}]})));
        }
        if let Some(level) = &change.throughput_level
            && level == "HIGH"
            && phone.throughput_level != "HIGH"
        {
            events.push(("phone_number_quality_update", json!({"display_phone_number": phone.display_phone_number, "event": "THROUGHPUT_UPGRADE"})));
        }
        if let Some(tier) = change.tier {
            let old = world
                .wabas
                .get(&phone.waba_id)
                .map_or(Tier::T250, |w| w.tier);
            if old != tier {
                let up = tier.limit().unwrap_or(usize::MAX) > old.limit().unwrap_or(usize::MAX);
                events.push(("phone_number_quality_update", json!({"display_phone_number": phone.display_phone_number, "event": if up { "UPGRADE" } else { "DOWNGRADE" }, "old_limit": old.name(), "max_daily_conversations_per_business": tier.number().to_string()})));
                events.push(("business_capability_update", json!({"max_daily_conversations_per_business": tier.number(), "max_phone_numbers_per_business": 20})));
                if let Some(w) = world.wabas.get_mut(&phone.waba_id) {
                    w.tier = tier;
                }
            }
        }
        let p = world
            .phones
            .get_mut(phone_number_id)
            .ok_or("unknown phone number")?;
        if let Some(q) = change.quality_rating {
            p.quality_rating = q;
        }
        if let Some(s) = change.status {
            p.status = s;
        }
        if let Some(l) = change.throughput_level {
            p.mps = if l == "HIGH" {
                1_000
            } else {
                self.config().default_mps
            };
            p.throughput_level = l;
        }
        if let Some(mps) = change.mps {
            p.mps = mps;
        }
        let waba = p.waba_id.clone();
        drop(world);
        for (field, value) in events {
            self.emit(&waba, field, value, 0);
        }
        Ok(())
    }

    /// Every Graph request so far.
    /// The wamids of the messages `user_id` sent, oldest first.
    pub fn messages_from(&self, user_id: &str) -> Vec<String> {
        let world = self.world();
        let mut all: Vec<&crate::model::Inbound> = world
            .inbound
            .values()
            .filter(|m| m.user_id == user_id)
            .collect();
        all.sort_by_key(|m| (m.at, m.wamid.clone()));
        all.into_iter().map(|m| m.wamid.clone()).collect()
    }

    /// A message a user sent, with whether it was marked read (and typing shown).
    pub fn inbound_message(&self, wamid: &str) -> Option<crate::model::Inbound> {
        self.world().inbound.get(wamid).cloned()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.world().requests.clone()
    }

    /// Every webhook POST attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.world().deliveries.clone()
    }

    /// Every accepted message, in order.
    pub fn messages(&self) -> Vec<Outbound> {
        let w = self.world();
        w.outbound_order
            .iter()
            .filter_map(|id| w.outbound.get(id).cloned())
            .collect()
    }

    /// How many messages were accepted carrying this `biz_opaque_callback_data` (the
    /// middleware puts the job's idempotency key there): exactly-once means 1.
    pub fn sent_count(&self, callback_data: &str) -> usize {
        self.world()
            .outbound
            .values()
            .filter(|m| m.callback_data.as_deref() == Some(callback_data))
            .count()
    }

    /// The id of the template `name`/`language` on `waba_id`.
    pub fn template_id(&self, waba_id: &str, name: &str, language: &str) -> Option<String> {
        self.world()
            .templates
            .values()
            .find(|t| t.waba_id == waba_id && t.name == name && t.language == language)
            .map(|t| t.id.clone())
    }

    /// Creates and approves a template at once (test setup), bypassing review.
    pub fn seed_template(
        &self,
        waba_id: &str,
        definition: Value,
    ) -> Result<String, crate::GraphError> {
        let out = self.create_template(waba_id, &definition)?;
        let id = out["id"].as_str().unwrap_or_default().to_owned();
        // Approved at once, with the status webhook Meta sends.
        self.set_template_status(&id, "APPROVED", None);
        Ok(id)
    }
}

/// A change to a phone number's state; unset fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PhoneChange {
    pub quality_rating: Option<String>,
    pub status: Option<String>,
    pub throughput_level: Option<String>,
    #[serde(default, deserialize_with = "tier")]
    pub tier: Option<Tier>,
    pub mps: Option<u32>,
}

fn tier<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Tier>, D::Error> {
    let s: Option<Value> = Option::deserialize(d)?;
    Ok(s.and_then(|v| Tier::parse(&v.to_string().replace('"', ""))))
}

#[cfg(test)]
mod tests {
    use crate::{FaultMix, FaultRoute, SimConfig, Simulator};

    #[tokio::test]
    async fn the_fault_mix_draws_each_fault_in_its_proportion_and_only_for_sends() {
        let sim = Simulator::new(SimConfig {
            seed: 7,
            fault_mix: Some(FaultMix {
                server_error: 0.10,
                throttled: 0.05,
                hang_after: 0.01,
                hang_ms: 1,
                per_user_limit: 0.01,
                failed_status: 0.005,
            }),
            ..SimConfig::default()
        });
        let n = 100_000;
        let (mut s503, mut s429, mut s131049, mut hang) = (0, 0, 0, 0);
        for _ in 0..n {
            match sim.mixed_fault(FaultRoute::Messages) {
                Some(f) if f.error == Some((503, 2)) => s503 += 1,
                Some(f) if f.error == Some((429, 130_429)) => s429 += 1,
                Some(f) if f.error == Some((400, 131_049)) => s131049 += 1,
                Some(f) if f.hang_after_ms.is_some() => hang += 1,
                Some(f) => panic!("unexpected {f:?}"),
                None => {}
            }
        }
        let share = |k: i32| f64::from(k) / f64::from(n);
        assert!((share(s503) - 0.10).abs() < 0.005, "{s503}");
        assert!((share(s429) - 0.05).abs() < 0.004, "{s429}");
        assert!((share(s131049) - 0.01).abs() < 0.002, "{s131049}");
        assert!((share(hang) - 0.01).abs() < 0.002, "{hang}");
        assert!(sim.mixed_fault(FaultRoute::Templates).is_none());
    }
}
