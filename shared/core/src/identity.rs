//! A user's identity changed: the phone number (`user_changed_number`) or the business-scoped
//! id alone (`user_changed_user_id`, Meta's changelog of 11 Aug 2026). Both arrive as `system`
//! messages on the `messages` field, without a `contacts` array; the same changelog says
//! `user_id_update` is not a webhook field one can subscribe to, so a change carrying that
//! name is published for others like any field we do not own.
//!
//! What we keep per user (windows, consent) is keyed by the business-scoped id when Meta sent
//! one, else by the phone number, so a change moves that state: [`IdentityMove`] says from
//! which keys to which, and the [`crate::ports::IdentityStore`] merges it into the new key
//! and leaves on each old key a pointer to the new one ([`Successor`]), in one transaction.
//! A job addressed to an old identity follows the pointer ([`redirect`]).

use crate::job::Recipient;
use crate::ports::{ContactStore, StoreError};
pub use crate::ports::{IdentityMove, Successor};
use crate::webhook::{InboundMessage, MessageContent, Metadata};

/// How many pointers a reader follows before it stops (a user who changed twice before a job
/// for their first identity ran); a cycle cannot hold it longer.
pub const MAX_HOPS: usize = 3;

/// The system-message types that change a user's identity.
fn changes_identity(kind: Option<&str>) -> bool {
    matches!(
        kind,
        Some("user_changed_number" | "customer_changed_number" | "user_changed_user_id")
    )
}

/// The move a `system` message asks for, if it is an identity change we can apply: it must
/// name a new identity and at least one old one that differs from it.
pub fn from_system(metadata: &Metadata, message: &InboundMessage) -> Option<IdentityMove> {
    let MessageContent::System(system) = &message.content else {
        return None;
    };
    if !changes_identity(system.kind.as_deref()) {
        return None;
    }
    let number_changed = system.kind.as_deref() != Some("user_changed_user_id");
    // On a number change `system.wa_id` is the new number and `from` the old one; on a
    // BSUID-only change no number is shared.
    let new_wa_id = system
        .new_wa_id
        .clone()
        .or_else(|| system.wa_id.clone())
        .filter(|_| number_changed);
    let new_user_id = system.user_id.clone();
    let to = new_user_id.clone().or_else(|| new_wa_id.clone())?;
    let previous_user_id = system
        .previous_user_id
        .clone()
        .or_else(|| message.from_user_id.clone())
        .filter(|p| *p != to);
    let old_wa_id = message.from.clone().filter(|_| number_changed);
    let mut from: Vec<String> = Vec::new();
    for key in [previous_user_id.clone(), old_wa_id].into_iter().flatten() {
        if key != to && !from.contains(&key) {
            from.push(key);
        }
    }
    if from.is_empty() {
        return None;
    }
    Some(IdentityMove {
        phone_number_id: metadata.phone_number_id.clone(),
        from,
        to,
        new_wa_id,
        new_user_id,
        previous_user_id,
        at: message.timestamp,
    })
}

/// After the state moved: the user's phone number becomes an alias of the new business-scoped
/// id (the new number for a number change; for an id change, the number the previous id had).
/// Until then a job by phone number still resolves to the old id, whose pointer leads on.
pub async fn move_aliases(
    contacts: &impl ContactStore,
    m: &IdentityMove,
) -> Result<(), StoreError> {
    let pn = &m.phone_number_id;
    match (&m.new_wa_id, &m.new_user_id, &m.previous_user_id) {
        (Some(w), Some(u), _) => contacts.record_alias(pn, w, u, m.at).await,
        (None, Some(u), Some(previous)) => match contacts.phone_of(pn, previous).await? {
            Some(w) => contacts.record_alias(pn, &w, u, m.at).await,
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// A business-scoped id (`CC.…`), as opposed to a phone number (digits only).
pub fn is_user_id(key: &str) -> bool {
    key.contains('.')
}

/// How to address a job for an identity that moved to `successor`: a job that named a phone
/// number goes to the new number when Meta shared it; otherwise to the new key as what it is.
pub fn redirect(to: &Recipient, successor: &Successor) -> Recipient {
    match (to, &successor.wa_id) {
        (Recipient::WaId(_), Some(w)) => Recipient::WaId(w.clone()),
        _ if is_user_id(&successor.user) => Recipient::UserId(successor.user.clone()),
        _ => Recipient::WaId(successor.user.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::System;

    fn metadata() -> Metadata {
        Metadata {
            display_phone_number: "15550783881".into(),
            phone_number_id: "106540352242922".into(),
        }
    }

    fn system(from: Option<&str>, from_user_id: Option<&str>, s: System) -> InboundMessage {
        InboundMessage {
            id: "wamid.S".into(),
            from: from.map(Into::into),
            from_user_id: from_user_id.map(Into::into),
            timestamp: 1_780_000_000,
            context: None,
            referral: None,
            errors: Vec::new(),
            content: MessageContent::System(s),
        }
    }

    #[test]
    fn a_number_change_moves_the_old_id_and_number_to_the_new_id() {
        let m = system(
            Some("16505551234"),
            None,
            System {
                wa_id: Some("16505559999".into()),
                user_id: Some("US.2".into()),
                previous_user_id: Some("US.1".into()),
                kind: Some("user_changed_number".into()),
                ..System::default()
            },
        );
        let mv = from_system(&metadata(), &m).unwrap();
        assert_eq!(mv.from, ["US.1", "16505551234"]);
        assert_eq!(mv.to, "US.2");
        assert_eq!(mv.new_wa_id.as_deref(), Some("16505559999"));
        assert_eq!(mv.previous_user_id.as_deref(), Some("US.1"));
        assert_eq!(mv.at, 1_780_000_000);
    }

    #[test]
    fn an_old_style_number_change_moves_number_to_number() {
        // The older sample: `customer_changed_number`, no business-scoped ids at all.
        let m = system(
            Some("16505551234"),
            None,
            System {
                wa_id: Some("16505559999".into()),
                kind: Some("customer_changed_number".into()),
                ..System::default()
            },
        );
        let mv = from_system(&metadata(), &m).unwrap();
        assert_eq!(mv.from, ["16505551234"]);
        assert_eq!(mv.to, "16505559999");
        assert_eq!(mv.new_user_id, None);
    }

    #[test]
    fn a_user_id_change_moves_only_the_id() {
        let m = system(
            Some("16505551234"),
            None,
            System {
                user_id: Some("US.2".into()),
                previous_user_id: Some("US.1".into()),
                kind: Some("user_changed_user_id".into()),
                ..System::default()
            },
        );
        let mv = from_system(&metadata(), &m).unwrap();
        // The number did not change: it is not an old identity, and no new number is known.
        assert_eq!(mv.from, ["US.1"]);
        assert_eq!(mv.to, "US.2");
        assert_eq!(mv.new_wa_id, None);
    }

    #[test]
    fn nothing_moves_without_two_distinct_identities_or_for_other_system_types() {
        let same = system(
            None,
            None,
            System {
                user_id: Some("US.1".into()),
                previous_user_id: Some("US.1".into()),
                kind: Some("user_changed_user_id".into()),
                ..System::default()
            },
        );
        assert_eq!(from_system(&metadata(), &same), None);
        let no_new = system(
            Some("16505551234"),
            None,
            System {
                kind: Some("user_changed_number".into()),
                ..System::default()
            },
        );
        assert_eq!(from_system(&metadata(), &no_new), None);
        let other = system(
            Some("16505551234"),
            None,
            System {
                wa_id: Some("16505559999".into()),
                kind: Some("customer_identity_changed".into()),
                ..System::default()
            },
        );
        assert_eq!(from_system(&metadata(), &other), None);
    }

    /// The samples in `events/meta/`, as Meta's changelog of 11 Aug 2026 shapes them.
    #[test]
    fn the_sample_identity_changes_move_what_they_say() {
        let moved = |body: &str| {
            let env: crate::webhook::Envelope = serde_json::from_str(body).unwrap();
            let (_, item) = env.items().next().unwrap();
            let crate::webhook::Item::Message {
                metadata, message, ..
            } = item
            else {
                panic!("expected a message")
            };
            from_system(metadata, message).unwrap()
        };
        let mv = moved(include_str!(
            "../../../events/meta/inbound-user-changed-number.json"
        ));
        assert_eq!(mv.from, ["US.13491208655302741918", "16505551234"]);
        assert_eq!(mv.to, "US.8812093321700093");
        assert_eq!(mv.new_wa_id.as_deref(), Some("12195555358"));
        let mv = moved(include_str!(
            "../../../events/meta/inbound-user-changed-user-id.json"
        ));
        assert_eq!(mv.from, ["US.8812093321700093"]);
        assert_eq!(mv.to, "US.5520093311200071");
    }

    #[test]
    fn a_redirected_job_keeps_its_kind_of_address_where_it_can() {
        let to_id = Successor {
            user: "US.2".into(),
            wa_id: Some("16505559999".into()),
            at: 1,
        };
        assert_eq!(
            redirect(&Recipient::WaId("16505551234".into()), &to_id),
            Recipient::WaId("16505559999".into())
        );
        assert_eq!(
            redirect(&Recipient::UserId("US.1".into()), &to_id),
            Recipient::UserId("US.2".into())
        );
        let to_number = Successor {
            user: "16505559999".into(),
            wa_id: None,
            at: 1,
        };
        assert_eq!(
            redirect(&Recipient::UserId("US.1".into()), &to_number),
            Recipient::WaId("16505559999".into())
        );
    }
}
