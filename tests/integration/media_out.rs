//! Outbound media from S3 on ministack: the sender checks the object, uploads it to the
//! simulator once per object version (streamed from S3), caches the media id in DynamoDB, and
//! sends by id; objects that break WhatsApp's limits are refused before anything reaches Meta.

use sender::{SenderConfig, Verdict};
use serde_json::{Value, json};

use crate::cloud_api_2026::send_one;
use crate::sender::{
    Rig, config, dead_letters, enqueue_and_receive, graph, invoke, job, outcomes, rig, sender_with,
    user,
};
use crate::support::{now, unique};

struct Source {
    bucket: String,
    s3: aws_sdk_s3::Client,
}

async fn source(rig: &Rig) -> Source {
    let s3 = whatsapp_aws::s3_client(&rig.stack.aws, true);
    let bucket = unique("outbound").to_lowercase();
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    Source { bucket, s3 }
}

impl Source {
    async fn put(&self, key: &str, content_type: &str, bytes: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .expect("put");
    }
}

fn png(n: usize, seed: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..n.saturating_sub(8)).map(|i| (i as u8).wrapping_mul(seed)));
    v
}

fn image(bucket: &str, key: &str) -> Value {
    json!({"type": "image", "image": {"s3": {"bucket": bucket, "key": key}, "caption": "receipt"}})
}

fn media_config(bucket: &str) -> SenderConfig {
    SenderConfig {
        media_source_buckets: [bucket.to_owned()].into(),
        ..config()
    }
}

/// POST /{phone}/media requests the simulator saw.
fn uploads(rig: &Rig) -> usize {
    rig.sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/media"))
        .count()
}

/// The media ids the simulator's `/messages` requests named.
fn sent_media_ids(rig: &Rig) -> Vec<String> {
    rig.sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/messages") && r.status == 200)
        .filter_map(|r| r.body["image"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_s3_image_is_uploaded_once_and_sent_by_id_and_a_second_job_reuses_the_id() {
    let rig = rig(|_| {}).await;
    let src = source(&rig).await;
    let bytes = png(90_000, 7);
    src.put("receipts/r1.png", "image/png", bytes.clone()).await;
    let sender = sender_with(&rig, graph(&rig), media_config(&src.bucket));
    // Three users: the pair rate (one message per user per 6 s) plays no part here.
    for u in ["447700900071", "447700900074", "447700900075"] {
        user(&rig, u, true).await;
    }
    let t0 = now() * 1000;

    let out = send_one(
        &rig,
        &sender,
        job(
            "s3-1",
            "447700900071",
            image(&src.bucket, "receipts/r1.png"),
        ),
        t0,
    )
    .await;
    assert_eq!(out.outcome, Verdict::Accepted, "{out:?}");
    assert_eq!(uploads(&rig), 1);
    let uploaded = rig.sim.sim.media();
    assert_eq!(uploaded.len(), 1);
    assert!(
        uploaded[0].uploaded && *uploaded[0].bytes == bytes,
        "the object's bytes"
    );
    assert_eq!(uploaded[0].mime_type, "image/png");
    assert_eq!(sent_media_ids(&rig), [uploaded[0].id.clone()], "sent by id");

    // Another job naming the same object: no upload, the same id.
    let out = send_one(
        &rig,
        &sender,
        job(
            "s3-2",
            "447700900074",
            image(&src.bucket, "receipts/r1.png"),
        ),
        t0 + 1_000,
    )
    .await;
    assert_eq!(out.outcome, Verdict::Accepted);
    assert_eq!(uploads(&rig), 1, "the cached id is reused");
    assert_eq!(sent_media_ids(&rig).len(), 2);
    assert_eq!(sent_media_ids(&rig)[0], sent_media_ids(&rig)[1]);

    // The object changes (a new ETag): uploaded again.
    src.put("receipts/r1.png", "image/png", png(80_000, 3))
        .await;
    let out = send_one(
        &rig,
        &sender,
        job(
            "s3-3",
            "447700900075",
            image(&src.bucket, "receipts/r1.png"),
        ),
        t0 + 2_000,
    )
    .await;
    assert_eq!(out.outcome, Verdict::Accepted);
    assert_eq!(uploads(&rig), 2, "a new version is a new upload");
}

#[tokio::test]
async fn objects_breaking_the_limits_are_refused_before_any_upload_with_their_reason() {
    let rig = rig(|_| {}).await;
    let src = source(&rig).await;
    src.put("big.png", "image/png", png(5 * 1024 * 1024 + 1, 5))
        .await;
    src.put("anim.gif", "image/gif", b"GIF89a....".to_vec())
        .await;
    src.put("empty.png", "image/png", Vec::new()).await;
    let other = source(&rig).await;
    other.put("ok.png", "image/png", png(100, 1)).await;
    let sender = sender_with(&rig, graph(&rig), media_config(&src.bucket));
    user(&rig, "447700900072", true).await;
    let cases = [
        (
            "too-large",
            image(&src.bucket, "big.png"),
            "message.image.s3.size_bytes",
            "media_too_large",
        ),
        (
            "wrong-type",
            image(&src.bucket, "anim.gif"),
            "message.image.s3.mime_type",
            "mime_type_not_allowed",
        ),
        (
            "empty",
            image(&src.bucket, "empty.png"),
            "message.image.s3.size_bytes",
            "empty",
        ),
        (
            "missing",
            image(&src.bucket, "nope.png"),
            "message.image.s3.key",
            "not_found",
        ),
        (
            "not-allowed",
            image(&other.bucket, "ok.png"),
            "message.image.s3.bucket",
            "not_allowed",
        ),
    ];
    let bodies: Vec<String> = cases
        .iter()
        .map(|(k, m, ..)| job(k, "447700900072", m.clone()))
        .collect();
    let r = enqueue_and_receive(&rig, &bodies).await;
    assert!(
        invoke(&rig, &sender, &r, now() * 1000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out.len(), cases.len());
    for (key, _, path, code) in &cases {
        let o = out
            .iter()
            .find(|o| o.idempotency_key.as_deref() == Some(*key))
            .unwrap();
        assert_eq!(o.outcome, Verdict::Rejected, "{key}");
        assert_eq!(o.reason.as_deref(), Some("invalid"), "{key}");
        assert!(
            o.violations
                .iter()
                .any(|v| v["path"] == *path && v["code"] == *code),
            "{key}: {:?}",
            o.violations
        );
    }
    assert_eq!(uploads(&rig), 0, "nothing reached Meta");
    assert_eq!(sent_media_ids(&rig).len(), 0);
    let dead = dead_letters(&rig).await;
    assert_eq!(dead.len(), cases.len());
    assert!(dead.iter().all(|(reason, _)| reason == "invalid"));
}

#[tokio::test]
async fn an_object_of_another_kind_than_the_job_names_is_refused() {
    let rig = rig(|_| {}).await;
    let src = source(&rig).await;
    src.put(
        "header.jpg",
        "image/jpeg",
        vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
    )
    .await;
    let sender = sender_with(&rig, graph(&rig), media_config(&src.bucket));
    user(&rig, "447700900073", true).await;
    let doc = json!({"type": "document", "document": {"s3": {"bucket": src.bucket, "key": "header.jpg"}}});
    // A document must be one of the document types (§1c): a JPEG is not.
    let r = enqueue_and_receive(&rig, &[job("doc-jpeg", "447700900073", doc)]).await;
    assert!(
        invoke(&rig, &sender, &r, now() * 1000)
            .await
            .batch_item_failures
            .is_empty()
    );
    let out = outcomes(&rig).await;
    assert_eq!(out[0].reason.as_deref(), Some("invalid"));
    assert_eq!(uploads(&rig), 0);
}

/// After a token rotation the sender's cached token gets 190 on the upload: it re-reads the
/// secret once, reads the object again and uploads once more; the job is sent, not refused.
#[tokio::test]
async fn an_upload_refused_with_190_after_a_rotation_refreshes_the_token_once() {
    let rig = rig(|_| {}).await;
    let src = source(&rig).await;
    src.put("receipts/r2.png", "image/png", png(20_000, 5))
        .await;
    let sender = sender_with(&rig, graph(&rig), media_config(&src.bucket));
    for u in ["447700900081", "447700900082"] {
        user(&rig, u, true).await;
    }
    let t0 = now() * 1000;
    // Warm the secret cache with the current token.
    let warm = send_one(
        &rig,
        &sender,
        job(
            "s3-warm",
            "447700900081",
            json!({"type": "text", "text": {"body": "warm"}}),
        ),
        t0,
    )
    .await;
    assert_eq!(warm.outcome, Verdict::Accepted);
    // Rotation: Meta knows only tok2, the secret holds it, our cache still has tok.
    crate::sender::rotate_token(&rig).await;
    let out = send_one(
        &rig,
        &sender,
        job(
            "s3-rotated",
            "447700900082",
            image(&src.bucket, "receipts/r2.png"),
        ),
        t0 + 1_000,
    )
    .await;
    assert_eq!(out.outcome, Verdict::Accepted, "{out:?}");
    let refused = rig
        .sim
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/media") && r.status == 401)
        .count();
    assert_eq!((uploads(&rig), refused), (2, 1), "one 190, then the upload");
    assert_eq!(rig.sim.sim.media().len(), 1);
    assert!(dead_letters(&rig).await.is_empty());
}
