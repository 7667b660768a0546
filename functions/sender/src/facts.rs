//! Stage 1, continued: gather what the gates decide on (I/O), decide with the one pure policy
//! ([`whatsapp_core::gates`]), and take a messaging-limit slot for a business-initiated message.

use whatsapp_core::gates::{self, Decision, GateSettings, SendFacts};
use whatsapp_core::identity;
use whatsapp_core::job::{Recipient, SendJob};
use whatsapp_core::policy::{Consent, WindowState};
use whatsapp_core::ports::{
    ContactStore, SendControl, SessionStore, StoreError, TemplateRecord, TemplateStore, UserKey,
};

use crate::admit::Taken;
use crate::config::NumberHome;
use crate::keys::callback_data;
use crate::outcome::Outcome;
use crate::step::{Checkpoint, Clock, Ready, Step, delay_seconds, done, stamp};
use crate::{Sender, SenderPorts, Transient};

/// Who the job is for: the key windows and consent are kept under, and the phone-number key a
/// producer's opt-in may sit under before the user ever wrote.
struct Recipients {
    user: UserKey,
    phone: Option<UserKey>,
    /// The job named the business-scoped id: the phone number is found only if consent is read.
    by_user_id: bool,
}

impl<P: SenderPorts> Sender<P> {
    /// Gates 2–5 for a job whose record we hold.
    pub(crate) async fn apply_policy(&self, mut t: Taken, clock: Clock) -> Result<Step, Transient> {
        if gates::is_action(&t.job.message) {
            // Nothing to read: no gate of gates 2–5 applies to a conversation action.
            return Ok(self.ready(t, None, WindowState::default(), false));
        }
        let (to, window) = self.follow(&mut t).await?;
        let template = self.template_record(&t.job, &t.home).await?;
        let now = clock.now_s();
        let kind = gates::kind_of(&t.job.message, template.as_ref());
        let needs = gates::needs(kind, &window, now);
        let consent = match needs.consent {
            true => self.consent(&to).await?,
            false => Consent::default(),
        };
        // Fails closed: a pause we cannot read defers the job rather than send marketing.
        let marketing_paused = needs.marketing_pause
            && self
                .number_limits(&t.job.phone_number_id)
                .await?
                .marketing_paused;
        let facts = SendFacts {
            window,
            consent,
            marketing_paused,
            template: template.as_ref(),
        };
        let settings = GateSettings {
            require_opt_in: self.config.require_opt_in,
            opt_out_exempt: self.config.opt_out_exempt,
        };
        let refusal = match gates::decide(&t.job.message, &facts, now, &settings) {
            Decision::Refuse(r) => Some(r),
            Decision::Defer { until } => return Ok(self.defer(t, until, clock).await?),
            Decision::Pass { business_initiated } => {
                match self.address(&mut t, &to, template.as_ref()).await? {
                    Err(r) => Some(r),
                    Ok(()) => {
                        // Before the messaging-limit slot: a refused file spends none.
                        if let Err(m) = self.resolve_media(&mut t.job, now).await? {
                            return Ok(self.refuse_media(t, m, clock).await?);
                        }
                        match business_initiated {
                            true => self.reach(&t.job, &t.home, &to.user, now).await?.err(),
                            false => None,
                        }
                    }
                }
            }
        };
        if let Some(refusal) = refusal {
            let o = stamp(
                Outcome::refused(&refusal, clock.now_ms()),
                &t.job,
                t.checkpoint.failures,
            );
            self.complete(&t.key, &t.owner, &o, clock).await?;
            return Ok(done(o, None));
        }
        let by_phone = to.by_user_id && matches!(t.job.to, Recipient::WaId(_));
        let marketing = kind
            == whatsapp_core::policy::OutboundKind::Template(
                whatsapp_core::policy::TemplateCategoryKind::Marketing,
            );
        Ok(self.ready(t, Some((to.user, by_phone)), window, marketing))
    }

    /// The job, cleared to go: `to` is the user key it goes to and whether by phone number
    /// (`None` for a conversation action: the key the job names).
    fn ready(
        &self,
        t: Taken,
        to: Option<(UserKey, bool)>,
        window: WindowState,
        marketing: bool,
    ) -> Step {
        let (user, by_phone) = to.unwrap_or_else(|| {
            let user = match &t.job.to {
                Recipient::WaId(w) => w.clone(),
                Recipient::UserId(u) => u.clone(),
            };
            let key = UserKey {
                phone_number_id: t.job.phone_number_id.clone(),
                user,
            };
            (key, false)
        });
        Step::Ready(Box::new(Ready {
            by_phone,
            marketing,
            via_marketing_messages: marketing
                && (t.checkpoint.via_marketing_messages
                    || self
                        .config
                        .marketing_messages_numbers
                        .contains(&t.job.phone_number_id)),
            callback: callback_data(&t.key, t.generation.as_deref()),
            job: t.job,
            key: t.key,
            owner: t.owner,
            user,
            window,
            failures: t.checkpoint.failures,
            // Sending again after an attempt whose outcome stayed unknown.
            uncertain: t.checkpoint.uncertain || (t.previous.is_some() && !t.checkpoint.unsent),
            slot_at_ms: None,
            pair_turn_at_ms: t.checkpoint.pair_turn_at_ms,
        }))
    }

    /// The verdict of a job whose S3 media cannot be sent: `invalid` with the object's
    /// violations, or `media_upload_failed`; dead-lettered with that reason.
    async fn refuse_media(
        &self,
        t: Taken,
        refusal: crate::media::MediaRefusal,
        clock: Clock,
    ) -> Result<Step, StoreError> {
        let (reason, o) = match refusal {
            crate::media::MediaRefusal::Invalid(violations) => {
                let mut o = Outcome::rejected(
                    "invalid",
                    format!("{} media violation(s)", violations.len()),
                    clock.now_ms(),
                );
                o.violations = violations
                    .iter()
                    .filter_map(|v| serde_json::to_value(v).ok())
                    .collect();
                ("invalid", o)
            }
            crate::media::MediaRefusal::Upload(detail) => (
                "media_upload_failed",
                Outcome::rejected("media_upload_failed", detail, clock.now_ms()),
            ),
        };
        let o = stamp(o, &t.job, t.checkpoint.failures);
        self.complete(&t.key, &t.owner, &o, clock).await?;
        Ok(done(o, Some(reason)))
    }

    /// Gate 4b: a job naming a business-scoped id for a template Meta takes only by phone
    /// number (known from its definition, or from a 131062 an earlier attempt got) goes to the
    /// phone number we know for the user; without one it is refused.
    async fn address(
        &self,
        t: &mut Taken,
        to: &Recipients,
        template: Option<&TemplateRecord>,
    ) -> Result<Result<(), gates::Refusal>, Transient> {
        let needs_phone = t.checkpoint.by_phone || gates::needs_phone_number(template);
        let phone = match (to.by_user_id && needs_phone, &t.job.to) {
            (true, Recipient::UserId(u)) => {
                self.ports
                    .contacts()
                    .phone_of(&t.job.phone_number_id, u)
                    .await?
            }
            _ => None,
        };
        Ok(
            match gates::addressing(to.by_user_id, needs_phone, phone.is_some()) {
                Err(r) => Err(r),
                Ok(gates::Addressing::AsGiven) => Ok(()),
                Ok(gates::Addressing::PhoneNumber) => {
                    if let Some(wa_id) = phone {
                        t.job.to = Recipient::WaId(wa_id);
                    }
                    Ok(())
                }
            },
        )
    }

    /// Marketing to this user waits until `until` (epoch s) after a 131049: hold the record
    /// until then, or, when the job's `not_after` comes first, give the verdict now.
    async fn defer(&self, t: Taken, until: i64, clock: Clock) -> Result<Step, StoreError> {
        let now_ms = clock.now_ms();
        let until_ms = until.saturating_mul(1000);
        let uncertain = t.checkpoint.uncertain || (t.previous.is_some() && !t.checkpoint.unsent);
        if t.job
            .not_after
            .is_some_and(|n| n.timestamp_millis() < until_ms)
        {
            let mut o = Outcome::refused(
                &gates::Refusal::Expired {
                    after_unknown_attempt: uncertain,
                },
                now_ms,
            );
            o.detail = Some(
                "not_after comes before marketing to this user may resume (Meta refused marketing to them with 131049 less than 24 h ago)".into(),
            );
            let o = stamp(o, &t.job, t.checkpoint.failures);
            self.complete(&t.key, &t.owner, &o, clock).await?;
            return Ok(done(o, Some("expired")));
        }
        let cp = Checkpoint::unsent(t.checkpoint.failures, uncertain);
        self.hold(&t.key, &t.owner, until_ms, &cp).await?;
        tracing::info!(
            phone_number_id = %t.job.phone_number_id,
            until,
            "marketing to this user is held after a 131049; the job waits"
        );
        Ok(Step::Later {
            delay_s: Some(delay_seconds(until_ms - now_ms)),
        })
    }

    /// The job's recipient and their windows, following the user's identity where it moved
    /// ([`identity`]): a job for an old number or business-scoped id goes to the identity
    /// the user has now, with the windows and consent that moved there.
    async fn follow(&self, t: &mut Taken) -> Result<(Recipients, WindowState), Transient> {
        let mut to = self.recipients(&t.job).await?;
        let mut record = self.ports.sessions().window_record(&to.user).await?;
        for _ in 0..identity::MAX_HOPS {
            let Some(next) = record.moved_to.take() else {
                break;
            };
            t.job.to = identity::redirect(&t.job.to, &next);
            tracing::info!(
                phone_number_id = %t.job.phone_number_id,
                moved_at = next.at,
                "the recipient's identity moved; the job goes to the new one"
            );
            to = self.recipients(&t.job).await?;
            record = self.ports.sessions().window_record(&to.user).await?;
        }
        Ok((to, record.state))
    }

    /// Windows and consent are kept under the business-scoped id once the user has written
    /// (their phone number is an alias of it); a producer's opt-in for a user who never wrote
    /// is under the phone number.
    async fn recipients(&self, job: &SendJob) -> Result<Recipients, Transient> {
        let pn = &job.phone_number_id;
        let key = |u: &str| UserKey {
            phone_number_id: pn.clone(),
            user: u.to_owned(),
        };
        Ok(match &job.to {
            Recipient::UserId(u) => Recipients {
                user: key(u),
                phone: None,
                by_user_id: true,
            },
            Recipient::WaId(w) => match self.ports.contacts().resolve_alias(pn, w).await? {
                Some(bsuid) => Recipients {
                    user: key(&bsuid),
                    phone: Some(key(w)),
                    by_user_id: false,
                },
                None => Recipients {
                    user: key(w),
                    phone: None,
                    by_user_id: false,
                },
            },
        })
    }

    /// The stored record of a template job's template (`None` for other jobs, or unknown).
    async fn template_record(
        &self,
        job: &SendJob,
        home: &NumberHome,
    ) -> Result<Option<TemplateRecord>, Transient> {
        let Some(t) = job.message.as_template() else {
            return Ok(None);
        };
        Ok(self
            .ports
            .templates()
            .template(&home.waba_id, &t.name, &t.language.code)
            .await?)
    }

    /// Consent, read under both of the user's keys and merged: a job addressed by phone number
    /// knows both once the user wrote; one addressed by `user_id` finds the phone number through
    /// the reverse alias (an opt-out may be kept under it, e.g. a `user_preferences` webhook
    /// that carried only `wa_id`).
    async fn consent(&self, to: &Recipients) -> Result<Consent, Transient> {
        let contacts = self.ports.contacts();
        let mut consent = contacts.consent(&to.user).await?;
        let phone = match &to.phone {
            Some(k) => Some(k.clone()),
            None if to.by_user_id => contacts
                .phone_of(&to.user.phone_number_id, &to.user.user)
                .await?
                .map(|wa_id| UserKey {
                    phone_number_id: to.user.phone_number_id.clone(),
                    user: wa_id,
                }),
            None => None,
        };
        if let Some(k) = &phone {
            consent = consent.merged(&contacts.consent(k).await?);
        }
        Ok(consent)
    }

    /// Gate 5: a business-initiated message takes a slot of the portfolio's budget, atomically
    /// with every other sender.
    async fn reach(
        &self,
        job: &SendJob,
        home: &NumberHome,
        user: &UserKey,
        now: i64,
    ) -> Result<Result<(), gates::Refusal>, Transient> {
        let tier = self
            .number_limits(&job.phone_number_id)
            .await?
            .tier
            .unwrap_or_else(|| self.config.default_tier.clone());
        let reach = self
            .ports
            .control()
            .reach(
                &home.portfolio_id,
                &user.user,
                now,
                tier.unique_user_limit(),
            )
            .await?;
        Ok(gates::messaging_limit(reach))
    }
}
