//! `POST /{phone-number-id}/messages`: the body checked as Meta does it ([`crate::body`]), rate
//! limits, and the asynchronous outcome (statuses with pricing, or a `failed` status with Meta's error).

use serde_json::{Value, json};

use crate::body::{need_str, str_of, template_params, validate};
use crate::model::{Outbound, Priced, Template, World};
use crate::{GraphError, Simulator};

const DAY_S: i64 = 86_400;

/// The outcome of an accepted message, decided when it is accepted.
struct Verdict {
    outcome: Result<(), (i64, &'static str, &'static str)>,
    priced: Priced,
    category: String,
}

impl Simulator {
    /// Handles a send. `version` is the request's API version (`v25.0`).
    /// `POST /{phone}/messages`, or `/marketing_messages` when `marketing_api`: the same body,
    /// for marketing templates only, from a portfolio that accepted that API's terms, and
    /// exempt from 131063 (which tells Cloud API senders to come here).
    pub(crate) fn send_message(
        &self,
        phone_id: &str,
        version: &str,
        body: &Value,
        marketing_api: bool,
    ) -> Result<Value, GraphError> {
        if !marketing_api && str_of(body, "status") == Some("read") {
            return self.mark_read(phone_id, body);
        }
        let kind = validate(body)?;
        let cfg = self.config();
        let now_ms = self.now_ms();
        let now = now_ms / 1000;
        let version_major = version_major(version);
        let mut world = self.world();
        let phone = world
            .phones
            .get(phone_id)
            .cloned()
            .ok_or_else(|| unknown_object(phone_id))?;

        // Template: exists in this language, approved, parameters match.
        let mut template: Option<Template> = None;
        if kind == "template" {
            let t = &body["template"];
            let name = str_of(t, "name").unwrap_or_default();
            let lang = str_of(&t["language"], "code").unwrap_or_default();
            let found = world
                .templates
                .values()
                .find(|x| x.waba_id == phone.waba_id && x.name == name && x.language == lang)
                .cloned();
            let Some(found) = found else {
                return Err(GraphError::new(
                    404,
                    132001,
                    "Template name does not exist in the translation",
                    format!("template name ({name}) does not exist in {lang}"),
                ));
            };
            match found.status.as_str() {
                "APPROVED" => {}
                "PAUSED" => {
                    return Err(GraphError::new(
                        400,
                        132015,
                        "Template is Paused",
                        format!("Template {name} is paused due to low quality"),
                    ));
                }
                "DISABLED" => {
                    return Err(GraphError::new(
                        400,
                        132016,
                        "Template is Disabled",
                        format!("Template {name} has been disabled"),
                    ));
                }
                _ => {
                    return Err(GraphError::new(
                        404,
                        132001,
                        "Template name does not exist in the translation",
                        format!("template {name} is not approved ({})", found.status),
                    ));
                }
            }
            template_params(&found, t, version_major)?;
            template = Some(found);
        }

        if marketing_api {
            crate::restrictions::marketing_api_refusal(&world, &phone, template.as_ref())?;
        }

        // Recipient.
        let (user_id, wa_id) = match (str_of(body, "recipient"), str_of(body, "to")) {
            (Some(bsuid), _) => match world.users.get(bsuid) {
                Some(u) => (u.user_id.clone(), u.wa_id.clone()),
                None => {
                    return Err(GraphError::invalid(format!(
                        "Recipient {bsuid} is not a valid business-scoped user id for this business."
                    )));
                }
            },
            (None, Some(to)) => {
                let digits: String = to.chars().filter(char::is_ascii_digit).collect();
                if digits.len() < 7 || digits.len() > 15 {
                    return Err(GraphError::invalid("Param to is not a valid phone number."));
                }
                let u = world.user_for_wa_id(&digits);
                (u.user_id.clone(), u.wa_id.clone())
            }
            (None, None) => return Err(GraphError::missing("to")),
        };

        crate::restrictions::refusal(
            &world,
            &phone,
            &user_id,
            template.as_ref(),
            body,
            now,
            marketing_api,
        )?;

        // Throughput: a token bucket of `mps` per number.
        let mps = f64::from(phone.mps.max(1));
        let (tokens, last) = world
            .buckets
            .get(phone_id)
            .copied()
            .unwrap_or((mps, now_ms));
        let tokens = (tokens + (now_ms - last) as f64 / 1000.0 * mps).min(mps);
        if tokens < 1.0 {
            world.buckets.insert(phone_id.to_owned(), (tokens, now_ms));
            return Err(GraphError::new(
                429,
                130429,
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
            ));
        }
        world
            .buckets
            .insert(phone_id.to_owned(), (tokens - 1.0, now_ms));

        // Pair rate: one message per gap to one user.
        let pair = (phone_id.to_owned(), user_id.clone());
        if let Some(&last) = world.pair_last.get(&pair)
            && now_ms - last < cfg.pair_rate_gap_ms
        {
            return Err(GraphError::new(
                400,
                131056,
                "(Business Account, Consumer Account) pair rate limit hit",
                "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
            ));
        }
        world.pair_last.insert(pair, now_ms);

        let mut verdict = self.decide(&mut world, &cfg, &phone, &user_id, template.as_ref(), now);
        if verdict.outcome.is_ok()
            && cfg
                .fault_mix
                .as_ref()
                .is_some_and(|m| self.random() < m.failed_status)
        {
            verdict.outcome = Err((
                131_047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number (injected).",
            ));
            verdict.priced = free(&verdict.category);
        }
        let wamid = world.next_wamid("HBgLMTY1");
        let conv_key = (
            phone_id.to_owned(),
            user_id.clone(),
            verdict.category.clone(),
        );
        let (conversation_id, conversation_expires) = match world.conversations.get(&conv_key) {
            Some((id, exp)) if *exp > now => (id.clone(), *exp),
            _ => {
                let id = format!("{:032x}", self.random().to_bits() ^ world.seq);
                world
                    .conversations
                    .insert(conv_key, (id.clone(), now + DAY_S));
                (id, now + DAY_S)
            }
        };
        let country = world
            .users
            .get(&user_id)
            .map(|u| u.country.clone())
            .unwrap_or_default();
        let out = Outbound {
            wamid: wamid.clone(),
            phone_number_id: phone_id.to_owned(),
            user_id: user_id.clone(),
            wa_id: wa_id.clone(),
            country,
            message_type: kind,
            template: template.as_ref().map(|t| t.name.clone()),
            callback_data: str_of(body, "biz_opaque_callback_data").map(str::to_owned),
            accepted_at: now,
            priced: verdict.priced,
            outcome: verdict.outcome.map_err(|e| e.0),
            api: if marketing_api {
                "marketing_messages"
            } else {
                "messages"
            },
            conversation_id,
            conversation_expires,
        };
        world.outbound.insert(wamid.clone(), out.clone());
        world.outbound_order.push(wamid.clone());
        drop(world);
        self.emit_statuses(&phone.waba_id, &phone, &out, verdict.outcome.err(), &cfg);

        let mut contact =
            json!({"input": str_of(body, "to").or(str_of(body, "recipient")).unwrap_or_default()});
        if let Some(w) = &wa_id {
            contact["wa_id"] = json!(w);
        }
        contact["user_id"] = json!(user_id);
        Ok(json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }))
    }

    fn mark_read(&self, phone_id: &str, body: &Value) -> Result<Value, GraphError> {
        let id = need_str(body, "message_id", "")?;
        if let Some(t) = body.get("typing_indicator")
            && t.get("type").and_then(Value::as_str) != Some("text")
        {
            return Err(GraphError::invalid("typing_indicator.type must be text."));
        }
        let now = self.now();
        let mut world = self.world();
        match world.inbound.get_mut(id) {
            Some(m) if m.phone_number_id == phone_id => {
                m.read = true;
                if body.get("typing_indicator").is_some() {
                    m.typing_at = Some(now);
                }
                Ok(json!({"success": true}))
            }
            _ => Err(GraphError::invalid(format!(
                "Message {id} was not received by this phone number."
            ))),
        }
    }

    /// Window, consent, caps and limits: what will happen to an accepted message.
    fn decide(
        &self,
        world: &mut World,
        cfg: &crate::SimConfig,
        phone: &crate::model::Phone,
        user_id: &str,
        template: Option<&Template>,
        now: i64,
    ) -> Verdict {
        let category = template.map_or("service".to_owned(), |t| t.category.to_ascii_lowercase());
        let waba_tier = world.wabas.get(&phone.waba_id).map(|w| w.tier);
        let Some(user) = world.users.get_mut(user_id) else {
            return Verdict {
                outcome: Err((
                    131026,
                    "Message undeliverable",
                    "Unable to deliver message.",
                )),
                priced: free("service"),
                category,
            };
        };
        let last_in = user.last_inbound.get(&phone.id).copied();
        let in_window = last_in.is_some_and(|t| now < t + DAY_S);
        // Our first reply within 24 h of a click-to-WhatsApp message opens the free entry point.
        if let Some(&r) = user.last_referral.get(&phone.id)
            && now < r + DAY_S
            && user.fep_opened.get(&phone.id).is_none_or(|&o| o < r)
        {
            user.fep_opened.insert(phone.id.clone(), now);
        }
        let in_fep = user
            .fep_opened
            .get(&phone.id)
            .is_some_and(|&o| now < o + 3 * DAY_S);
        let fail = |code, title, details| Verdict {
            outcome: Err((code, title, details)),
            priced: free(&category),
            category: category.clone(),
        };

        if !user.on_whatsapp {
            return fail(
                131026,
                "Message undeliverable",
                "Unable to deliver message. The recipient may not be a WhatsApp user.",
            );
        }
        if template.is_none() && !in_window {
            return fail(
                131047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            );
        }
        if category == "marketing" {
            let refused_key = (phone.waba_id.clone(), user_id.to_owned());
            // Meta asks for 24 h before marketing again to a user it refused with 131049, and
            // counts sooner attempts against the account.
            if world
                .marketing_refused
                .get(&refused_key)
                .is_some_and(|&t| now < t + DAY_S)
            {
                *world
                    .excessive_marketing_retries
                    .entry(phone.waba_id.clone())
                    .or_default() += 1;
                return fail(
                    131049,
                    "This message was not delivered to maintain healthy ecosystem engagement.",
                    "Marketing resent to this user within 24 hours of a per-user limit refusal.",
                );
            }
            if world.experiment_users.contains(user_id) {
                return fail(
                    130472,
                    "User's number is part of an experiment",
                    "Failed to send message because this user's phone number is part of an experiment.",
                );
            }
            if user.marketing_stopped {
                return fail(
                    131050,
                    "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
                    "User stopped marketing messages",
                );
            }
            if user.country == "US" {
                world.marketing_refused.insert(refused_key, now);
                return fail(
                    131049,
                    "This message was not delivered to maintain healthy ecosystem engagement.",
                    "Marketing template messages to US phone numbers are not delivered.",
                );
            }
            while user
                .marketing_received
                .front()
                .is_some_and(|&t| t <= now - DAY_S)
            {
                user.marketing_received.pop_front();
            }
            if cfg
                .marketing_cap_per_user
                .is_some_and(|cap| user.marketing_received.len() >= cap as usize)
            {
                world.marketing_refused.insert(refused_key, now);
                return fail(
                    131049,
                    "This message was not delivered to maintain healthy ecosystem engagement.",
                    "Per-user marketing message limit reached.",
                );
            }
            user.marketing_received.push_back(now);
        }
        let country = user.country.clone();
        // Portfolio messaging limit: unique users reached outside a window in a moving 24 h.
        if template.is_some()
            && !in_window
            && let Some(waba) = world.wabas.get_mut(&phone.waba_id)
        {
            waba.reached.retain(|_, &mut t| t > now - DAY_S);
            let already = waba.reached.contains_key(user_id);
            if !already
                && waba_tier
                    .and_then(|t| t.limit())
                    .is_some_and(|limit| waba.reached.len() >= limit)
            {
                return fail(
                    131048,
                    "Spam rate limit hit",
                    "Message failed to send because the business portfolio reached its messaging limit of unique users in 24 hours.",
                );
            }
            waba.reached.insert(user_id.to_owned(), now);
        }
        let charged_from_2026 = cfg.pmp_2026_from.is_some_and(|t| now >= t);
        let priced = if in_fep {
            Priced {
                category: "referral_conversion".into(),
                kind: "free_entry_point".into(),
            }
        } else {
            match category.as_str() {
                "marketing" => regular("marketing"),
                "authentication" if cfg.auth_international_countries.contains(&country) => {
                    regular("authentication-international")
                }
                "authentication" => regular("authentication"),
                c if in_window && !charged_from_2026 => Priced {
                    category: c.into(),
                    kind: "free_customer_service".into(),
                },
                c => regular(c),
            }
        };
        Verdict {
            outcome: Ok(()),
            priced,
            category,
        }
    }

    fn emit_statuses(
        &self,
        waba_id: &str,
        phone: &crate::model::Phone,
        m: &Outbound,
        failure: Option<(i64, &str, &str)>,
        cfg: &crate::SimConfig,
    ) {
        let cbp = cfg
            .webhook_version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|s| s.parse::<u32>().ok())
            .is_some_and(|v| v <= 23);
        let status = |s: &str| {
            let mut st = json!({"id": m.wamid, "status": s, "timestamp": (m.accepted_at).to_string(), "recipient_user_id": m.user_id});
            if let Some(w) = &m.wa_id {
                st["recipient_id"] = json!(w);
            }
            if let Some(cb) = &m.callback_data {
                st["biz_opaque_callback_data"] = json!(cb);
            }
            st
        };
        let value = |st: Value| json!({"messaging_product": "whatsapp", "metadata": {"display_phone_number": phone.display_phone_number, "phone_number_id": phone.id}, "statuses": [st]});
        let d = cfg.status_delay_ms;
        if let Some((code, title, details)) = failure {
            let mut st = status("failed");
            st["errors"] = json!([{"code": code, "title": title, "message": title, "error_data": {"details": details}, "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]);
            self.emit(waba_id, "messages", value(st), d);
            return;
        }
        let mut steps = vec!["sent", "delivered"];
        if cfg.auto_read {
            steps.push("read");
        }
        for (i, s) in steps.into_iter().enumerate() {
            let mut st = status(s);
            if cbp {
                st["conversation"] = json!({"id": m.conversation_id, "expiration_timestamp": m.conversation_expires.to_string(), "origin": {"type": m.priced.category}});
                st["pricing"] = json!({"billable": m.priced.billable(), "pricing_model": "CBP", "category": m.priced.category});
            } else {
                st["pricing"] = json!({"billable": m.priced.billable(), "pricing_model": "PMP", "type": m.priced.kind, "category": m.priced.category});
            }
            self.emit(waba_id, "messages", value(st), d * (i as u64 + 1));
        }
    }
}

fn regular(category: &str) -> Priced {
    Priced {
        category: category.into(),
        kind: "regular".into(),
    }
}

fn free(category: &str) -> Priced {
    Priced {
        category: category.into(),
        kind: "free_customer_service".into(),
    }
}

/// The major version of a request path's `vNN.N` (25 when unreadable).
pub(crate) fn version_major(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
}

pub(crate) fn unknown_object(id: &str) -> GraphError {
    GraphError {
        http: 400,
        code: 100,
        subcode: Some(33),
        message: format!(
            "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
        details: None,
    }
}
