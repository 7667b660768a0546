//! Every example payload of the reference (`events/meta/*.json`) parses into the right variant.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/meta/",
            $name
        ))
    };
}

fn parse(body: &str) -> Envelope {
    Envelope::from_slice(body.as_bytes()).expect("fixture parses")
}

/// The single item of a fixture.
fn only_item(env: &Envelope) -> Item<'_> {
    let items: Vec<_> = env.items().map(|(_, i)| i).collect();
    assert_eq!(items.len(), 1, "expected one item, got {items:?}");
    items[0]
}

fn only_message(env: &Envelope) -> &InboundMessage {
    match only_item(env) {
        Item::Message { message, .. } => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn inbound_text_has_sender_contact_and_routing() {
    let env = parse(fixture!("inbound-text.json"));
    let (ctx, item) = env.items().next().unwrap();
    assert_eq!(ctx.waba_id, "102290129340398");
    let Item::Message {
        metadata,
        contact,
        message,
    } = item
    else {
        panic!("{item:?}")
    };
    assert_eq!(metadata.phone_number_id, "106540352242922");
    assert_eq!(message.timestamp, 1_749_416_383);
    assert_eq!(
        message.content,
        MessageContent::Text(Text {
            body: "Does it come in another color?".into()
        })
    );
    let contact = contact.expect("contact matched by wa_id");
    assert_eq!(contact.user_id.as_deref(), Some("US.13491208655302741918"));
    assert_eq!(message.user_key(), Some("16505551234"));
}

#[test]
fn every_inbound_type_parses_into_its_variant() {
    let cases: &[(&str, &str)] = &[
        (fixture!("inbound-image.json"), "image"),
        (fixture!("inbound-audio.json"), "audio"),
        (fixture!("inbound-video.json"), "video"),
        (fixture!("inbound-document.json"), "document"),
        (fixture!("inbound-sticker.json"), "sticker"),
        (fixture!("inbound-location.json"), "location"),
        (fixture!("inbound-contacts.json"), "contacts"),
        (
            fixture!("inbound-interactive-button-reply.json"),
            "interactive",
        ),
        (fixture!("inbound-button.json"), "button"),
        (fixture!("inbound-reaction.json"), "reaction"),
        (fixture!("inbound-order.json"), "order"),
        (fixture!("inbound-system.json"), "system"),
        (fixture!("inbound-request-welcome.json"), "request_welcome"),
        (fixture!("inbound-unsupported.json"), "unsupported"),
    ];
    for (body, ty) in cases {
        let env = parse(body);
        let m = only_message(&env);
        assert_eq!(m.content.type_name(), *ty);
        assert!(
            !matches!(m.content, MessageContent::Other { .. }),
            "{ty} fell back to Other"
        );
    }
}

#[test]
fn message_details_are_typed() {
    let env = parse(fixture!("inbound-location.json"));
    let MessageContent::Location(l) = &only_message(&env).content else {
        panic!()
    };
    assert_eq!((l.latitude, l.longitude), (37.44, -122.16));

    let env = parse(fixture!("inbound-interactive-list-reply.json"));
    let MessageContent::Interactive(InteractiveReply::ListReply { list_reply }) =
        &only_message(&env).content
    else {
        panic!()
    };
    assert_eq!(list_reply.id, "row_1");

    let env = parse(fixture!("inbound-interactive-nfm-reply.json"));
    let MessageContent::Interactive(InteractiveReply::NfmReply { nfm_reply }) =
        &only_message(&env).content
    else {
        panic!()
    };
    assert!(nfm_reply.response_json.contains("flow_token"));

    let env = parse(fixture!("inbound-button.json"));
    let m = only_message(&env);
    assert_eq!(
        m.context.as_ref().and_then(|c| c.id.as_deref()),
        Some("wamid.TEMPLATEMSG")
    );
    let MessageContent::Button(b) = &m.content else {
        panic!()
    };
    assert_eq!(b.payload.as_deref(), Some("CONFIRM_1"));

    let env = parse(fixture!("inbound-reaction.json"));
    let MessageContent::Reaction(r) = &only_message(&env).content else {
        panic!()
    };
    assert_eq!(r.emoji.as_deref(), Some("\u{1F44D}"));

    let env = parse(fixture!("inbound-order.json"));
    let MessageContent::Order(o) = &only_message(&env).content else {
        panic!()
    };
    assert_eq!(o.product_items[0].quantity, "2");

    let env = parse(fixture!("inbound-system.json"));
    let m = only_message(&env);
    assert!(!m.is_from_user(), "system messages do not open a window");

    // Meta's changelog of 11 Aug 2026: both identity changes carry the previous id.
    let env = parse(fixture!("inbound-user-changed-number.json"));
    let m = only_message(&env);
    let MessageContent::System(sys) = &m.content else {
        panic!()
    };
    assert_eq!(sys.kind.as_deref(), Some("user_changed_number"));
    assert_eq!(
        sys.previous_user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(sys.wa_id.as_deref(), Some("12195555358"));
    let env = parse(fixture!("inbound-user-changed-user-id.json"));
    let m = only_message(&env);
    assert_eq!(m.user_key(), None, "no phone number is shared");

    let env = parse(fixture!("inbound-unsupported.json"));
    assert_eq!(only_message(&env).errors[0].code, 131051);

    let env = parse(fixture!("inbound-context-forwarded.json"));
    assert_eq!(
        only_message(&env)
            .context
            .as_ref()
            .and_then(|c| c.forwarded),
        Some(true)
    );
}

#[test]
fn referral_is_kept_for_the_free_entry_point() {
    let env = parse(fixture!("inbound-referral.json"));
    let m = only_message(&env);
    let r = m.referral.as_ref().expect("referral");
    assert_eq!(r.source_type.as_deref(), Some("ad"));
    assert_eq!(r.ctwa_clid.as_deref(), Some("ARAkLkA8"));
}

#[test]
fn user_without_phone_number_is_keyed_by_bsuid() {
    let env = parse(fixture!("inbound-bsuid-only.json"));
    let Item::Message {
        message, contact, ..
    } = only_item(&env)
    else {
        panic!()
    };
    assert_eq!(message.from, None);
    assert_eq!(message.user_key(), Some("HK.84112290013"));
    assert_eq!(
        contact
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.username.as_deref()),
        Some("@bob")
    );
}

#[test]
fn unknown_message_type_is_kept_not_rejected() {
    let env = parse(fixture!("inbound-unknown-type.json"));
    assert_eq!(
        only_message(&env).content,
        MessageContent::Other {
            type_name: "poll".into()
        }
    );
}

fn only_status(env: &Envelope) -> &Status {
    match only_item(env) {
        Item::Status { status, .. } => status,
        other => panic!("expected a status, got {other:?}"),
    }
}

#[test]
fn statuses_carry_both_pricing_shapes() {
    let env = parse(fixture!("status-delivered-pmp.json"));
    let s = only_status(&env);
    assert_eq!(s.status, StatusKind::Delivered);
    assert_eq!(s.biz_opaque_callback_data.as_deref(), Some("order-8812"));
    let p = s.pricing.as_ref().unwrap();
    assert_eq!(p.pricing_model, Some(PricingModel::Pmp));
    assert_eq!(p.kind, Some(PricingType::Regular));
    assert_eq!(p.category, PricingCategory::Utility);
    assert_eq!(s.user_key(), Some("US.13491208655302741918"));

    let env = parse(fixture!("status-sent-cbp.json"));
    let s = only_status(&env);
    let c = s.conversation.as_ref().unwrap();
    assert_eq!(c.origin.as_ref().unwrap().kind, PricingCategory::Service);
    assert_eq!(c.expiration_timestamp, Some(1_750_943_820));
    assert_eq!(
        s.pricing.as_ref().unwrap().pricing_model,
        Some(PricingModel::Cbp)
    );
    assert_eq!(s.pricing.as_ref().unwrap().kind, None);
}

#[test]
fn failed_status_keeps_its_error_and_new_values_stay_open() {
    let env = parse(fixture!("status-failed-131047.json"));
    let s = only_status(&env);
    assert_eq!(s.status, StatusKind::Failed);
    assert_eq!(s.errors[0].code, 131047);

    let env = parse(fixture!("status-read-new-category.json"));
    let p = only_status(&env).pricing.clone().unwrap();
    assert_eq!(p.category, PricingCategory::Other("marketing_plus".into()));
    assert_eq!(
        p.kind,
        Some(PricingType::Other("free_premium_promo".into()))
    );
}

#[test]
fn system_errors_are_items() {
    let env = parse(fixture!("system-errors.json"));
    let Item::Error { error, .. } = only_item(&env) else {
        panic!()
    };
    assert_eq!(error.code, 130429);
}

#[test]
fn account_level_webhooks_parse_into_their_variants() {
    let env = parse(fixture!("template-status-rejected.json"));
    let Item::TemplateStatus(t) = only_item(&env) else {
        panic!()
    };
    assert_eq!(
        (t.event.clone(), t.reason.as_deref()),
        (TemplateStatus::Rejected, Some("INVALID_FORMAT"))
    );
    assert_eq!(t.message_template_id, "123456789012");

    let env = parse(fixture!("template-category-update.json"));
    let Item::TemplateCategory(t) = only_item(&env) else {
        panic!()
    };
    assert_eq!(t.new_category, Some(TemplateCategory::Marketing));

    let env = parse(fixture!("phone-number-quality-update.json"));
    let Item::PhoneNumberQuality(q) = only_item(&env) else {
        panic!()
    };
    assert_eq!(q.event, QualityEvent::Upgrade);
    assert_eq!(q.new_limit(), Some(&crate::webhook::MessagingTier::Tier10K));

    let env = parse(fixture!("business-capability-update.json"));
    let Item::BusinessCapability(b) = only_item(&env) else {
        panic!()
    };
    assert_eq!(
        b.max_daily_conversations_per_business,
        Some(crate::webhook::MessagingTier::Tier2K)
    );

    let env = parse(fixture!("account-update.json"));
    let Item::Account(a) = only_item(&env) else {
        panic!()
    };
    assert_eq!(
        a.restriction_info[0].restriction_type,
        "RESTRICTED_BIZ_INITIATED_MESSAGING"
    );

    let env = parse(fixture!("user-preferences.json"));
    let Item::UserPreference {
        preference,
        metadata,
    } = only_item(&env)
    else {
        panic!()
    };
    assert_eq!(preference.value, PreferenceValue::Stop);
    assert_eq!(
        metadata.map(|m| m.phone_number_id.as_str()),
        Some("106540352242922")
    );
}

#[test]
fn unknown_and_malformed_changes_do_not_fail_the_envelope() {
    let env = parse(fixture!("unknown-field.json"));
    assert!(matches!(
        only_item(&env),
        Item::Unhandled { field: "flows", .. }
    ));

    let env = parse(fixture!("malformed-known-field.json"));
    let items: Vec<_> = env.items().map(|(_, i)| i).collect();
    assert!(matches!(
        items[0],
        Item::Malformed {
            field: "message_template_status_update",
            ..
        }
    ));
    assert!(
        matches!(items[1], Item::Message { .. }),
        "the good change next to it still parses"
    );
}

#[test]
fn batched_payload_yields_every_entry_change_and_item() {
    let env = parse(fixture!("batched-2-entries-2-changes.json"));
    let items: Vec<_> = env.items().collect();
    assert_eq!(items.len(), 6, "2 entries × (2 messages + 1 status)");
    let wabas: std::collections::BTreeSet<_> = items.iter().map(|(c, _)| c.waba_id).collect();
    assert_eq!(wabas.len(), 2);
    let ids: std::collections::BTreeSet<_> = items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Message { message, .. } => Some(message.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn not_json_or_not_an_envelope_is_an_error() {
    assert!(Envelope::from_slice(b"{not json").is_err());
    assert!(Envelope::from_slice(b"[]").is_err());
}

#[test]
fn typed_payload_round_trips() {
    for body in [
        fixture!("inbound-referral.json"),
        fixture!("status-sent-cbp.json"),
        fixture!("unknown-field.json"),
    ] {
        let env = parse(body);
        let again = parse(&serde_json::to_string(&env).unwrap());
        assert_eq!(format!("{env:?}"), format!("{again:?}"));
    }
}

#[test]
fn one_odd_part_of_a_messages_value_does_not_drop_its_neighbours() {
    let env = parse(fixture!("messages-with-one-malformed-part.json"));
    let items: Vec<_> = env.items().map(|(_, i)| i).collect();
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Message { message, .. } => Some(message.id.as_str()),
            Item::Status { status, .. } => Some(status.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["wamid.GOOD1", "wamid.GOOD2", "wamid.OUT1"]);
    let rejected: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Rejected { part, .. } => Some((part.kind, part.value.get())),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{items:?}");
    assert_eq!(rejected[0].0, PartKind::Message);
    assert!(rejected[0].1.contains("wamid.ODD"), "kept verbatim");
    assert_eq!(rejected[1].0, PartKind::Status);

    // Re-serialised (what the webhook queues for the event processor), the value yields the
    // same items again: the rejected parts travel with it.
    let again = parse(&serde_json::to_string(&env).unwrap());
    assert_eq!(again.items().count(), items.len());
}

#[test]
fn a_volume_tier_update_is_typed() {
    let env = parse(fixture!("account-update-volume-tier.json"));
    let Item::Account(a) = only_item(&env) else {
        panic!("expected an account update, got {:?}", only_item(&env))
    };
    assert_eq!(a.event, VOLUME_TIER_EVENT);
    assert_eq!(a.volume_tier_info.len(), 1);
    let v = &a.volume_tier_info[0];
    assert_eq!(
        (
            v.effective_month.as_str(),
            v.pricing_category.as_str(),
            v.region.as_str(),
            v.tier.as_str()
        ),
        ("2026-12", "UTILITY", "India", "2")
    );
}
