//! Identity changes on ministack against the simulator: a user's new number or new
//! business-scoped id (`user_changed_number`, `user_changed_user_id` system messages) moves
//! their windows, consent and aliases, and jobs for the old identity reach the new one. The
//! move is one transaction: readers racing it see the state on the old key or the new one,
//! never on neither.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use whatsapp_core::identity::IdentityMove;
use whatsapp_core::ports::{
    ConsentEvent, ContactStore, IdentityStore, SessionStore, UserKey, WindowRecord,
};

use crate::sender::{
    Rig, config, consent, enqueue_and_receive, graph, invoke, job, outcomes, rig, seed_template,
    sender_with, template, text, user,
};
use crate::support::now;
use crate::webhook::{PHONE, eventually};

fn key(user: &str) -> UserKey {
    UserKey {
        phone_number_id: PHONE.into(),
        user: user.into(),
    }
}

fn sessions(rig: &Rig) -> whatsapp_aws::DynamoSessionStore {
    whatsapp_aws::DynamoSessionStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.sessions_table,
    )
}

fn contacts(rig: &Rig) -> whatsapp_aws::DynamoContactStore {
    whatsapp_aws::DynamoContactStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.contacts_table,
    )
}

fn identities(rig: &Rig) -> whatsapp_aws::DynamoIdentityStore {
    whatsapp_aws::DynamoIdentityStore::new(
        aws_sdk_dynamodb::Client::new(&rig.stack.aws),
        &rig.stack.resources.sessions_table,
        &rig.stack.resources.contacts_table,
    )
}

async fn moved(rig: &Rig, from: &str, to: &str) {
    let s = sessions(rig);
    let (k, to) = (key(from), to.to_owned());
    eventually("the identity move", || {
        let (s, k, to) = (s.clone(), k.clone(), to.clone());
        async move {
            s.window_record(&k)
                .await
                .unwrap()
                .moved_to
                .is_some_and(|m| m.user == to)
        }
    })
    .await;
}

/// The simulator's recipient (business-scoped id, phone number) of each message sent.
fn recipients(rig: &Rig) -> Vec<(String, Option<String>)> {
    rig.sim
        .sim
        .messages()
        .into_iter()
        .map(|m| (m.user_id, m.wa_id))
        .collect()
}

#[tokio::test]
async fn a_number_change_moves_windows_consent_and_aliases_and_old_jobs_follow() {
    let rig = rig(|_| {}).await;
    seed_template(&rig, "spring_sale", "MARKETING", "APPROVED").await;
    let sender = sender_with(&rig, graph(&rig), config());
    let old = user(&rig, "447700900601", true).await;
    consent(&rig, &old, ConsentEvent::OptIn).await;
    let new = rig.sim.sim.change_number(&old, "447700900699").unwrap();
    assert_ne!(new, old, "a number change gives a new business-scoped id");
    moved(&rig, &old, &new).await;
    // The old phone-number key pointed at the new identity too.
    let by_number = sessions(&rig)
        .window_record(&key("447700900601"))
        .await
        .unwrap();
    assert_eq!(by_number.moved_to.map(|m| m.user), Some(new.clone()));

    let t = now();
    let moved_window = sessions(&rig).window(&key(&new)).await.unwrap();
    assert!(moved_window.csw_open(t), "the window moved");
    let c = contacts(&rig);
    assert!(c.consent(&key(&new)).await.unwrap().opt_in_at.is_some());
    assert_eq!(
        c.resolve_alias(PHONE, "447700900699").await.unwrap(),
        Some(new.clone())
    );
    // The old identity keeps its state: a reader that resolved it first still finds it.
    assert!(c.consent(&key(&old)).await.unwrap().opt_in_at.is_some());

    // A free-form reply to the old number, and marketing to the old business-scoped id (which
    // needs the opt-in that moved): both reach the user at their new identity.
    let r = enqueue_and_receive(&rig, &[job("id-1", "447700900601", text("hello"))]).await;
    assert!(
        invoke(&rig, &sender, &r, t * 1000)
            .await
            .batch_item_failures
            .is_empty()
    );
    rig.sim.sim.advance_clock(10);
    let marketing = serde_json::json!({"version": 1, "idempotency_key": "id-2",
        "phone_number_id": PHONE, "to": {"user_id": old},
        "message": template("spring_sale", &["Ann", "7"])})
    .to_string();
    let r = enqueue_and_receive(&rig, &[marketing]).await;
    invoke(&rig, &sender, &r, t * 1000 + 10_000).await;
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), 2);
    assert!(
        out.iter().all(|o| o.outcome == sender::Verdict::Accepted),
        "{out:?}"
    );
    assert_eq!(
        recipients(&rig),
        vec![
            (new.clone(), Some("447700900699".to_owned())),
            (new.clone(), Some("447700900699".to_owned())),
        ],
        "nothing went to the old number or the retired id"
    );
}

#[tokio::test]
async fn a_user_id_change_moves_state_and_the_phone_alias() {
    let rig = rig(|_| {}).await;
    let sender = sender_with(&rig, graph(&rig), config());
    let old = user(&rig, "447700900602", true).await;
    let new = rig.sim.sim.change_user_id(&old).unwrap();
    moved(&rig, &old, &new).await;
    let c = contacts(&rig);
    eventually("the phone alias to move", || {
        let (c, new) = (c.clone(), new.clone());
        async move { c.resolve_alias(PHONE, "447700900602").await.unwrap() == Some(new) }
    })
    .await;
    // The number did not change: it is not an old identity.
    let by_number = sessions(&rig)
        .window_record(&key("447700900602"))
        .await
        .unwrap();
    assert_eq!(by_number.moved_to, None);

    let by_id = serde_json::json!({"version": 1, "idempotency_key": "uid-1",
        "phone_number_id": PHONE, "to": {"user_id": old}, "message": text("hi")})
    .to_string();
    let r = enqueue_and_receive(&rig, &[by_id]).await;
    invoke(&rig, &sender, &r, now() * 1000).await;
    rig.sim.sim.advance_clock(10);
    let r = enqueue_and_receive(&rig, &[job("uid-2", "447700900602", text("again"))]).await;
    invoke(&rig, &sender, &r, now() * 1000 + 10_000).await;
    let out = outcomes(&rig).await;
    assert!(
        out.iter().all(|o| o.outcome == sender::Verdict::Accepted),
        "the retired id is refused by Meta; the job went to the new one: {out:?}"
    );
    assert_eq!(out.len(), 2);
    assert!(recipients(&rig).iter().all(|(u, _)| *u == new));
}

/// Readers racing the move see the window open and the opt-in on one key or the other, never
/// neither; an inbound write to the old key during the move cancels the transaction, which
/// reads again and carries the write over.
#[tokio::test]
async fn readers_racing_a_move_never_see_neither() {
    let rig = rig(|_| {}).await;
    let (s, c, ids) = (sessions(&rig), contacts(&rig), identities(&rig));
    let t = now();
    for round in 0..5 {
        let (old, new) = (format!("GB.OLD{round}"), format!("GB.NEW{round}"));
        s.record_inbound(&key(&old), t - 60, false).await.unwrap();
        c.record_consent(&key(&old), ConsentEvent::OptIn, t - 120)
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (s, c, stop, reads, old) = (
                s.clone(),
                c.clone(),
                stop.clone(),
                reads.clone(),
                old.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // What the sender does: read the key, follow a pointer, read consent there.
                    let mut k = key(&old);
                    let mut rec: WindowRecord = s.window_record(&k).await.unwrap();
                    if let Some(next) = rec.moved_to.take() {
                        k = key(&next.user);
                        rec = s.window_record(&k).await.unwrap();
                    }
                    assert!(
                        rec.state.csw_open(t),
                        "a reader saw no window on {}",
                        k.user
                    );
                    let consent = c.consent(&k).await.unwrap();
                    assert!(
                        consent.opt_in_at.is_some(),
                        "a reader saw no opt-in on {}",
                        k.user
                    );
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let writer = {
            let (s, old) = (s.clone(), old.clone());
            tokio::spawn(async move {
                s.record_inbound(&key(&old), t - 30, true).await.unwrap();
            })
        };
        let m = IdentityMove {
            phone_number_id: PHONE.into(),
            from: vec![old.clone()],
            to: new.clone(),
            new_wa_id: None,
            new_user_id: Some(new.clone()),
            previous_user_id: Some(old.clone()),
            at: t - 10,
        };
        ids.move_identity(&m).await.unwrap();
        writer.await.unwrap();
        // Applying the same move again changes nothing (a redelivered webhook).
        ids.move_identity(&m).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        reader.await.unwrap();
        assert!(reads.load(Ordering::Relaxed) > 0);
        let after = s.window_record(&key(&new)).await.unwrap();
        assert_eq!(after.moved_to, None);
        // The racing write landed on the old key before or after the move; either way the new
        // key has it (merged, or carried over by the pointer).
        assert_eq!(after.state.last_inbound_at, Some(t - 30));
        assert_eq!(after.state.last_referral_at, Some(t - 30));
        assert!(c.consent(&key(&new)).await.unwrap().opt_in_at.is_some());
    }
}

/// A message from the old key sent after the move means the key is someone's again (a
/// reassigned number): the pointer goes, and jobs for it are no longer redirected.
#[tokio::test]
async fn a_newer_message_on_the_old_key_drops_the_pointer() {
    let rig = rig(|_| {}).await;
    let (s, ids) = (sessions(&rig), identities(&rig));
    let t = now();
    s.record_inbound(&key("447700900603"), t - 600, false)
        .await
        .unwrap();
    ids.move_identity(&IdentityMove {
        phone_number_id: PHONE.into(),
        from: vec!["447700900603".into()],
        to: "447700900698".into(),
        new_wa_id: Some("447700900698".into()),
        new_user_id: None,
        previous_user_id: None,
        at: t - 300,
    })
    .await
    .unwrap();
    assert!(
        s.window_record(&key("447700900603"))
            .await
            .unwrap()
            .moved_to
            .is_some()
    );
    s.record_inbound(&key("447700900603"), t - 5, false)
        .await
        .unwrap();
    assert_eq!(
        s.window_record(&key("447700900603"))
            .await
            .unwrap()
            .moved_to,
        None
    );
    // The moved user's window is not extended by the stranger's message.
    assert_eq!(
        s.window(&key("447700900698"))
            .await
            .unwrap()
            .last_inbound_at,
        Some(t - 600)
    );
}
