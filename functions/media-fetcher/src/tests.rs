//! The fetcher's decisions on in-memory ports: what the simulator cannot make Meta do (bytes
//! that never match their checksum or size). The real paths are tested on ministack with the
//! simulator (`tests/integration/media.rs`).

use super::*;
use whatsapp_core::ports::{ByteStream, Chunks, DownloadError, GraphCallError, MediaInfo, Upload};
use whatsapp_fakes::{MemoryDedupe, MemoryObjects, MemoryQueue, StaticSecrets};

/// Meta, serving one file whose advertised digest and size may lie.
struct FakeMeta {
    bytes: Vec<u8>,
    sha256: String,
    file_size: u64,
    mime: String,
}

impl MediaApi for FakeMeta {
    type Download = Chunks;

    async fn media_info(&self, _: &str, _: &str) -> Result<MediaInfo, GraphCallError> {
        Ok(MediaInfo {
            url: "https://media.example/x".into(),
            mime_type: Some(self.mime.clone()),
            sha256: Some(self.sha256.clone()),
            file_size: Some(self.file_size),
        })
    }

    async fn download(&self, _: &str, _: &str) -> Result<Chunks, DownloadError> {
        Ok(Chunks::of(&self.bytes, 1000))
    }

    async fn upload<B: ByteStream + 'static>(
        &self,
        _: &str,
        _: Upload<B>,
        _: &str,
    ) -> Result<String, GraphCallError> {
        unreachable!("the fetcher never uploads")
    }
}

fn sha_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn fetcher(
    meta: FakeMeta,
) -> Fetcher<FakeMeta, MemoryObjects, MemoryDedupe, MemoryQueue, StaticSecrets> {
    Fetcher {
        api: meta,
        objects: MemoryObjects::default(),
        dedupe: MemoryDedupe::default(),
        inbound: MemoryQueue::default(),
        secrets: StaticSecrets::new("secret-of-sixteen", "verify", "tok"),
        config: FetchConfig {
            backoff_ms: 1,
            ..FetchConfig::new("bucket")
        },
    }
}

fn record(kind: &str) -> SqsMessage {
    let event = serde_json::json!({
        "version": 1, "waba_id": "1", "phone_number_id": "106540352242922",
        "display_phone_number": "15550783881",
        "user": {"key": "US.1"},
        "message": {"id": "wamid.M1", "from_user_id": "US.1", "timestamp": "1780000000",
                    "type": kind, kind: {"id": "777", "mime_type": "image/png"}},
        "window_closes_at": 1780086400
    });
    let mut m = SqsMessage::default();
    m.message_id = Some("r1".into());
    m.body = Some(event.to_string());
    m
}

fn png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.resize(5_000, 9);
    v
}

async fn forwarded(
    f: &Fetcher<FakeMeta, MemoryObjects, MemoryDedupe, MemoryQueue, StaticSecrets>,
) -> Vec<InboundEvent> {
    f.inbound
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

#[tokio::test]
async fn bytes_that_never_match_the_checksum_are_forwarded_with_checksum_mismatch() {
    let f = fetcher(FakeMeta {
        bytes: png(),
        sha256: sha_hex(b"something else"),
        file_size: 5_000,
        mime: "image/png".into(),
    });
    let resp = f.handle(&[record("image")], 1_780_000_000_000).await;
    assert!(resp.batch_item_failures.is_empty());
    let events = forwarded(&f).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].media_error.as_ref().unwrap().code,
        MediaErrorCode::ChecksumMismatch
    );
    assert!(
        f.objects.objects.lock().unwrap().is_empty(),
        "nothing unverified kept"
    );
}

#[tokio::test]
async fn a_size_other_than_meta_said_is_a_size_mismatch() {
    let bytes = png();
    let f = fetcher(FakeMeta {
        sha256: sha_hex(&bytes),
        bytes,
        file_size: 4_999,
        mime: "image/png".into(),
    });
    f.handle(&[record("image")], 1_780_000_000_000).await;
    assert_eq!(
        forwarded(&f).await[0].media_error.as_ref().unwrap().code,
        MediaErrorCode::SizeMismatch
    );
}

#[tokio::test]
async fn a_file_over_its_kinds_limit_is_refused_before_download() {
    let f = fetcher(FakeMeta {
        bytes: png(),
        sha256: String::new(),
        file_size: 6 * 1024 * 1024,
        mime: "image/png".into(),
    });
    f.handle(&[record("image")], 1_780_000_000_000).await;
    assert_eq!(
        forwarded(&f).await[0].media_error.as_ref().unwrap().code,
        MediaErrorCode::TooLarge
    );
}

#[tokio::test]
async fn a_file_longer_than_its_kind_allows_is_cut_off_and_not_kept() {
    // Meta's size says nothing (or lies): the stream is stopped at the image limit of 5 MB.
    let mut big = png();
    big.resize(5 * 1024 * 1024 + 10, 1);
    let f = fetcher(FakeMeta {
        sha256: sha_hex(&big),
        bytes: big,
        file_size: 4_000,
        mime: "image/png".into(),
    });
    f.handle(&[record("image")], 1_780_000_000_000).await;
    let events = forwarded(&f).await;
    assert_eq!(
        events[0].media_error.as_ref().unwrap().code,
        MediaErrorCode::TooLarge
    );
    assert!(f.objects.objects.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_message_without_a_file_is_forwarded_as_is_and_garbage_is_retried() {
    let f = fetcher(FakeMeta {
        bytes: png(),
        sha256: String::new(),
        file_size: 0,
        mime: "image/png".into(),
    });
    let mut text = record("text");
    text.body = Some(text.body.unwrap().replace(
        r#""text":{"id":"777","mime_type":"image/png"}"#,
        r#""text":{"body":"hi"}"#,
    ));
    let mut garbage = record("image");
    garbage.message_id = Some("r2".into());
    garbage.body = Some("not json".into());
    let resp = f.handle(&[text, garbage], 1_780_000_000_000).await;
    let ids: Vec<_> = resp
        .batch_item_failures
        .iter()
        .map(|x| x.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["r2"]);
    let events = forwarded(&f).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].media.is_none() && events[0].media_error.is_none());
}

/// The bots' contract, committed as `shared/core/schema/inbound-event.schema.json`.
fn contract() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/core/schema/inbound-event.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Every event the fetcher forwards is valid against the bots' contract.
fn assert_contract(events: &[InboundEvent]) {
    let validator = contract();
    for e in events {
        let v = serde_json::to_value(e).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?} in {v}");
    }
}

#[tokio::test]
async fn kept_and_failed_events_follow_the_bots_contract() {
    let bytes = png();
    let ok = fetcher(FakeMeta {
        sha256: sha_hex(&bytes),
        file_size: bytes.len() as u64,
        bytes,
        mime: "image/png".into(),
    });
    ok.handle(&[record("image")], 1_780_000_000_000).await;
    let kept = forwarded(&ok).await;
    assert!(kept[0].media.is_some());
    assert_contract(&kept);
    let bad = fetcher(FakeMeta {
        bytes: png(),
        sha256: sha_hex(b"x"),
        file_size: 5_000,
        mime: "image/png".into(),
    });
    bad.handle(&[record("image")], 1_780_000_000_000).await;
    assert_contract(&forwarded(&bad).await);
    // And the contract refuses what it should: both fields at once, a bad digest.
    let mut both = serde_json::to_value(&kept[0]).unwrap();
    both["media_error"] = serde_json::json!({"code": "media_gone", "detail": "x"});
    let validator = contract();
    assert!(!validator.is_valid(&both));
    let mut digest = serde_json::to_value(&kept[0]).unwrap();
    digest["media"]["sha256"] = "ABC".into();
    assert!(!validator.is_valid(&digest));
}

/// Meta as a system user's token sees it: the file only with the token of the account
/// (WABA "1", the event's) it belongs to.
struct AccountMeta {
    inner: FakeMeta,
    token: &'static str,
    seen: std::sync::Mutex<Vec<String>>,
}

impl MediaApi for AccountMeta {
    type Download = Chunks;

    async fn media_info(&self, id: &str, token: &str) -> Result<MediaInfo, GraphCallError> {
        self.seen.lock().unwrap().push(token.to_owned());
        if token != self.token {
            return Err(GraphCallError::Api {
                status: 400,
                body: serde_json::from_value(serde_json::json!({
                    "message": "Unsupported get request.", "type": "GraphMethodException",
                    "code": 100, "error_subcode": 33
                }))
                .unwrap(),
            });
        }
        self.inner.media_info(id, token).await
    }

    async fn download(&self, url: &str, token: &str) -> Result<Chunks, DownloadError> {
        self.seen.lock().unwrap().push(token.to_owned());
        if token != self.token {
            return Err(DownloadError::Refused(401));
        }
        self.inner.download(url, token).await
    }

    async fn upload<B: ByteStream + 'static>(
        &self,
        phone_number_id: &str,
        upload: Upload<B>,
        token: &str,
    ) -> Result<String, GraphCallError> {
        self.inner.upload(phone_number_id, upload, token).await
    }
}

#[tokio::test]
async fn media_is_fetched_with_the_token_of_the_events_account() {
    let bytes = png();
    let mut secrets = whatsapp_core::ports::Secrets::single("secret-of-sixteen", "v", "shared");
    secrets.access_tokens = [("1".to_owned(), "own-1".to_owned())].into();
    let f = Fetcher {
        api: AccountMeta {
            inner: FakeMeta {
                sha256: sha_hex(&bytes),
                file_size: bytes.len() as u64,
                bytes,
                mime: "image/png".into(),
            },
            token: "own-1",
            seen: Default::default(),
        },
        objects: MemoryObjects::default(),
        dedupe: MemoryDedupe::default(),
        inbound: MemoryQueue::default(),
        secrets: StaticSecrets(std::sync::Arc::new(secrets)),
        config: FetchConfig {
            backoff_ms: 1,
            ..FetchConfig::new("bucket")
        },
    };
    let resp = f.handle(&[record("image")], 1_780_000_000_000).await;
    assert!(resp.batch_item_failures.is_empty());
    let events: Vec<InboundEvent> = f
        .inbound
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert!(
        events[0].media_error.is_none(),
        "{:?}",
        events[0].media_error
    );
    assert!(events[0].media.is_some());
    let seen = f.api.seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|t| t == "own-1"),
        "{seen:?}"
    );
}
