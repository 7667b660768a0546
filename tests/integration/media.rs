//! Inbound media end to end on ministack: the simulator's user sends a file, the webhook puts
//! the message on the media queue, the media fetcher keeps the file in S3 (through the real SDK,
//! multipart for large files) and forwards the one event bots get.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use media_fetcher::{FetchConfig, Fetcher};
use serde_json::json;
use simulator::{Fault, FaultRoute, InboundMedia, InboundSpec};
use whatsapp_aws::{
    CachedSecrets, DynamoDedupeStore, GraphHttpClient, GraphHttpConfig, S3Objects,
    SecretsManagerFetcher, SqsQueue, s3_client,
};
use whatsapp_core::ingest::InboundEvent;
use whatsapp_core::media::MediaErrorCode;

use crate::support::{IngestStack, drain, ingest_stack, unique};
use crate::webhook::{PHONE, front, simulator, webhook};

type AwsFetcher = Fetcher<
    GraphHttpClient,
    S3Objects,
    DynamoDedupeStore,
    SqsQueue,
    CachedSecrets<SecretsManagerFetcher>,
>;

struct Rig {
    stack: IngestStack,
    sim: simulator::RunningSimulator,
    fetcher: AwsFetcher,
    bucket: String,
    s3: aws_sdk_s3::Client,
    user: String,
}

async fn rig() -> Rig {
    let stack = ingest_stack().await;
    let handler = Arc::new(webhook(&stack));
    let url = front(Arc::clone(&handler)).await;
    let sim = simulator(&url).await;
    let s3 = s3_client(&stack.aws, true);
    let bucket = unique("media").to_lowercase();
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let graph = GraphHttpClient::new(&GraphHttpConfig {
        base_url: sim.base_url(),
        ..GraphHttpConfig::default()
    })
    .unwrap();
    let fetcher = Fetcher {
        api: graph,
        // 5 MiB parts (S3's minimum): a 12 MB document goes up in three.
        objects: S3Objects::new(s3.clone()).with_part_bytes(5 * 1024 * 1024),
        dedupe: DynamoDedupeStore::new(
            aws_sdk_dynamodb::Client::new(&stack.aws),
            &stack.resources.dedupe_table,
        ),
        inbound: SqsQueue::new(
            aws_sdk_sqs::Client::new(&stack.aws),
            &stack.resources.inbound_queue_url,
        ),
        secrets: CachedSecrets::new(
            SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&stack.aws),
                &stack.secret_id,
            ),
            Duration::from_secs(300),
        ),
        config: FetchConfig {
            attempts: 3,
            backoff_ms: 10,
            ..FetchConfig::new(&bucket)
        },
    };
    let user = sim.sim.add_user(Some("447700900061"), None, true);
    Rig {
        stack,
        sim,
        fetcher,
        bucket,
        s3,
        user,
    }
}

impl Rig {
    /// The user sends a file; returns its wamid.
    async fn user_sends(&self, kind: &str, mime: &str, bytes: Vec<u8>) -> String {
        self.sim
            .sim
            .user_sends(
                &self.user,
                InboundSpec {
                    phone_number_id: PHONE.into(),
                    message: json!({"type": kind, kind: {}}),
                    referral: None,
                    context: None,
                    hide_phone_number: false,
                    media: Some(InboundMedia {
                        mime_type: mime.into(),
                        bytes: Some(bytes),
                        filename: (kind == "document").then(|| "invoice.pdf".into()),
                        ..InboundMedia::default()
                    }),
                },
            )
            .unwrap()
    }

    /// The media queue's records, as the Lambda event hands them over, received `receives`
    /// times.
    async fn queued(&self, receives: u32) -> Vec<SqsMessage> {
        let mut got = Vec::new();
        for _ in 0..20 {
            got = drain(&self.stack.aws, &self.stack.resources.media_queue_url).await;
            if !got.is_empty() {
                break;
            }
        }
        got.into_iter()
            .map(|m| {
                let mut r = SqsMessage::default();
                r.message_id = m.message_id;
                r.body = m.body;
                r.attributes
                    .insert("ApproximateReceiveCount".into(), receives.to_string());
                r
            })
            .collect()
    }

    /// What the bots got.
    async fn bots_got(&self) -> Vec<InboundEvent> {
        drain(&self.stack.aws, &self.stack.resources.inbound_queue_url)
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body.as_deref().unwrap()).unwrap())
            .collect()
    }

    async fn object(&self, key: &str) -> (Vec<u8>, Option<String>) {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .expect("object");
        let ct = out.content_type.clone();
        (out.body.collect().await.unwrap().to_vec(), ct)
    }

    /// How many objects the media bucket holds.
    async fn stored(&self) -> i32 {
        let listed = self.s3.list_objects_v2().bucket(&self.bucket).send().await;
        listed.unwrap().key_count.unwrap_or(0)
    }

    async fn fetch(&self, records: &[SqsMessage]) -> usize {
        let now_ms = crate::support::now_ms();
        self.fetcher
            .handle(records, now_ms)
            .await
            .batch_item_failures
            .len()
    }

    fn media_lookups(&self) -> usize {
        self.sim
            .sim
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/v") && !r.path.contains('?'))
            .filter(|r| r.path.split('/').count() == 3)
            .count()
    }
}

fn png(n: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..n.saturating_sub(8)).map(|i| (i * 31 % 251) as u8));
    v
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn an_inbound_image_ends_in_s3_and_the_bots_get_its_key_once() {
    let r = rig().await;
    let bytes = png(70_000);
    let wamid = r.user_sends("image", "image/png", bytes.clone()).await;
    let records = r.queued(1).await;
    assert_eq!(records.len(), 1, "one message on the media queue");
    assert!(
        r.bots_got().await.is_empty(),
        "the bots hear of it only once the file is kept"
    );
    assert_eq!(r.fetch(&records).await, 0);
    let events = r.bots_got().await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.message.id, wamid);
    let media = event.media.as_ref().expect("media");
    assert_eq!(media.bucket, r.bucket);
    assert_eq!(
        media.key,
        whatsapp_core::media::object_key(PHONE, &wamid),
        "keyed by number and wamid"
    );
    assert_eq!(
        (media.mime_type.as_str(), media.size_bytes),
        ("image/png", 70_000)
    );
    assert_eq!(media.sha256, sha256_hex(&bytes));
    assert!(event.media_error.is_none());
    assert_eq!(
        r.object(&media.key).await,
        (bytes, Some("image/png".into()))
    );
    assert_eq!(
        r.media_lookups(),
        0,
        "the webhook's fresh URL served: no GET /{{media-id}}"
    );
    // A redelivery of the record forwards nothing twice.
    assert_eq!(r.fetch(&records).await, 0);
    assert!(r.bots_got().await.is_empty());
}

#[tokio::test]
async fn a_large_document_goes_up_in_parts_with_the_right_bytes() {
    let r = rig().await;
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend((0..12 * 1024 * 1024).map(|i: usize| (i % 253) as u8));
    r.user_sends("document", "application/pdf", bytes.clone())
        .await;
    let records = r.queued(1).await;
    assert_eq!(r.fetch(&records).await, 0);
    let event = r.bots_got().await.remove(0);
    let media = event.media.expect("media");
    assert_eq!(media.size_bytes, bytes.len() as u64);
    let (stored, _) = r.object(&media.key).await;
    assert!(stored == bytes, "the stored document differs");
}

#[tokio::test]
async fn an_expired_url_is_refreshed() {
    let r = rig().await;
    let bytes = png(1_000);
    r.user_sends("image", "image/png", bytes.clone()).await;
    let records = r.queued(1).await;
    // The record waited past the 5 minutes the webhook's URL lasts.
    r.sim.sim.advance_clock(simulator::MEDIA_URL_TTL_S + 10);
    assert_eq!(r.fetch(&records).await, 0);
    let event = r.bots_got().await.remove(0);
    assert_eq!(event.media.expect("media").sha256, sha256_hex(&bytes));
    assert_eq!(
        r.media_lookups(),
        1,
        "one GET /{{media-id}} for a fresh URL"
    );
    let refused = r
        .sim
        .sim
        .requests()
        .iter()
        .filter(|q| q.path.starts_with("/whatsapp_business/") && q.status == 404)
        .count();
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn three_failed_fetches_then_success() {
    let r = rig().await;
    let bytes = png(2_000);
    r.user_sends("image", "image/png", bytes.clone()).await;
    let records = r.queued(1).await;
    r.sim.sim.inject_fault(Fault {
        route: FaultRoute::MediaDownload,
        latency_ms: 0,
        error: Some((503, 0)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(3),
    });
    // Three tries in the first receive, each a 503: the record comes back, nothing forwarded.
    assert_eq!(r.fetch(&records).await, 1);
    assert!(r.bots_got().await.is_empty());
    // The next receive succeeds.
    let mut again = records.clone();
    again[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "2".into());
    assert_eq!(r.fetch(&again).await, 0);
    let events = r.bots_got().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].media.as_ref().expect("media").sha256,
        sha256_hex(&bytes)
    );
    let downloads = r
        .sim
        .sim
        .requests()
        .iter()
        .filter(|q| q.path.starts_with("/whatsapp_business/"))
        .count();
    assert_eq!(downloads, 4, "three failed downloads, then one that worked");
}

#[tokio::test]
async fn a_permanent_failure_still_reaches_the_bots_with_media_error() {
    let r = rig().await;
    let wamid = r.user_sends("image", "image/png", png(500)).await;
    let records = r.queued(1).await;
    // Past Meta's 30 days: the media is gone for good.
    r.sim.sim.advance_clock(simulator::MEDIA_RETENTION_S + 60);
    assert_eq!(r.fetch(&records).await, 0);
    let events = r.bots_got().await;
    assert_eq!(events.len(), 1, "the message is not lost with its file");
    assert_eq!(events[0].message.id, wamid);
    assert!(events[0].media.is_none());
    let err = events[0].media_error.as_ref().expect("media_error");
    assert_eq!(err.code, MediaErrorCode::MediaGone);
    assert_eq!(r.stored().await, 0, "nothing stored");
}

#[tokio::test]
async fn a_file_that_is_not_its_declared_type_is_not_kept() {
    let r = rig().await;
    // Declared PNG, JPEG bytes.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(3_000, 1);
    r.user_sends("image", "image/png", jpeg).await;
    let records = r.queued(1).await;
    assert_eq!(r.fetch(&records).await, 0);
    let event = r.bots_got().await.remove(0);
    assert_eq!(
        event.media_error.expect("media_error").code,
        MediaErrorCode::TypeMismatch
    );
    assert_eq!(r.stored().await, 0, "the unverified file was removed");
}

#[tokio::test]
async fn a_fetch_failing_on_every_receive_forwards_the_message_at_the_last() {
    let r = rig().await;
    r.user_sends("image", "image/png", png(500)).await;
    let mut records = r.queued(1).await;
    r.sim.sim.inject_fault(Fault {
        route: FaultRoute::MediaDownload,
        latency_ms: 0,
        error: Some((500, 0)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: None,
    });
    assert_eq!(r.fetch(&records).await, 1);
    records[0].attributes.insert(
        "ApproximateReceiveCount".into(),
        r.fetcher.config.max_receives.to_string(),
    );
    assert_eq!(r.fetch(&records).await, 0);
    let event = r.bots_got().await.remove(0);
    assert_eq!(
        event.media_error.expect("media_error").code,
        MediaErrorCode::RetriesExhausted
    );
    r.sim.sim.clear_faults();
}

/// The streamed put at every boundary of its parts: nothing, one byte, a part less one, a
/// part, a part and one, two parts; chunks of an odd size, so parts fill across chunks.
#[tokio::test]
async fn streamed_puts_keep_every_byte_at_every_part_boundary() {
    use whatsapp_core::ports::{Chunks, ObjectStore};
    let aws = crate::support::aws().await;
    let s3 = s3_client(&aws, true);
    let bucket = unique("parts").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let part = 5 * 1024 * 1024;
    let objects = S3Objects::new(s3.clone()).with_part_bytes(part);
    for size in [0, 1, part - 1, part, part + 1, 2 * part] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
        let key = format!("k{size}");
        let mut body = Chunks::of(&bytes, 300_007);
        let n = objects
            .put_stream(
                &bucket,
                &key,
                "application/pdf",
                &sha256_hex(&bytes),
                &mut body,
            )
            .await
            .unwrap();
        assert_eq!(n, size as u64);
        let got = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.content_type.as_deref(), Some("application/pdf"));
        let stored = got.body.collect().await.unwrap().to_vec();
        assert!(stored == bytes, "{size} bytes differ");
        let head = objects.head(&bucket, &key).await.unwrap().unwrap();
        assert_eq!(head.size, size as u64);
        assert_eq!(head.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    }
    assert!(objects.head(&bucket, "absent").await.unwrap().is_none());
}
