//! The `media-fetcher` function: inbound messages with a file, from the media queue (put there
//! by ingest instead of the bots' queue). For each, it fetches the file from Meta with the
//! access token (bots never hold it), streams it into the media bucket while hashing it,
//! checks Meta's `sha256`, `file_size` and the declared type, and forwards the one event bots
//! get for the message, with `media` (where the file is) or `media_error` (why it is not):
//! a message is never lost because its attachment was.
//!
//! Failures: a refused download URL (expired: they last about 5 minutes) is replaced by a fresh
//! one from `GET /{media-id}`; transient failures are retried with back-off within the
//! invocation, then by SQS (partial batch response: only that record), until the record's
//! receive count reaches `max_receives`, when the event is forwarded with
//! `retries_exhausted`. Meta no longer having the file, a type mismatch or a file over its
//! kind's limit end at once; a checksum or size that never matches ends after the last try.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use tracing::{error, info, warn};
use whatsapp_core::graph::ErrorAction;
use whatsapp_core::ingest::InboundEvent;
use whatsapp_core::media::{
    MediaError, MediaErrorCode, SNIFF_BYTES, StoredMedia, attachment, digest_matches, object_key,
    type_agrees,
};
use whatsapp_core::ports::{
    Begin, DedupeStore, DownloadError, GraphCallError, Hashing, MediaApi, MessageQueue,
    ObjectStore, SecretError, SecretSource, TooLarge,
};
use whatsapp_core::webhook::Media;

/// Settings of the fetcher.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The media bucket (`MEDIA_BUCKET`).
    pub bucket: String,
    /// Tries per receive of a record (`FETCH_ATTEMPTS`, default 3).
    pub attempts: u32,
    /// First back-off between tries; doubles (`FETCH_BACKOFF_MS`, default 500).
    pub backoff_ms: u64,
    /// At this receive count a still-failing fetch forwards the message with
    /// `retries_exhausted` (`MAX_RECEIVES`, default 5; below the queue's redrive count).
    pub max_receives: u32,
    /// Records fetched at once (`RECORD_CONCURRENCY`, default 2: each holds about one
    /// 8 MiB part).
    pub concurrency: usize,
    /// How long the forward's idempotency record lives, and may stay in progress.
    pub dedupe_ttl_seconds: i64,
    pub in_progress_ms: i64,
}

impl FetchConfig {
    pub fn new(bucket: impl Into<String>) -> Self {
        FetchConfig {
            bucket: bucket.into(),
            attempts: 3,
            backoff_ms: 500,
            max_receives: 5,
            concurrency: 2,
            dedupe_ttl_seconds: 8 * 24 * 3600,
            in_progress_ms: 30_000,
        }
    }

    /// From `MEDIA_BUCKET` and the optional settings above.
    pub fn from_env(
        env: &impl whatsapp_core::config::Env,
    ) -> Result<Self, whatsapp_core::config::ConfigError> {
        let d = FetchConfig::new(env.required("MEDIA_BUCKET")?);
        Ok(FetchConfig {
            attempts: env.parsed_or("FETCH_ATTEMPTS", d.attempts)?.max(1),
            backoff_ms: env.parsed_or("FETCH_BACKOFF_MS", d.backoff_ms)?,
            max_receives: env.parsed_or("MAX_RECEIVES", d.max_receives)?.max(1),
            concurrency: env.parsed_or("RECORD_CONCURRENCY", d.concurrency)?.max(1),
            ..d
        })
    }
}

/// The handler, generic over its ports.
pub struct Fetcher<A, O, D, Q, K> {
    pub api: A,
    pub objects: O,
    pub dedupe: D,
    /// The bots' inbound queue.
    pub inbound: Q,
    pub secrets: K,
    pub config: FetchConfig,
}

/// Why a try failed.
#[derive(Debug)]
enum TryError {
    /// No use trying again.
    Final(MediaErrorCode, String),
    /// Worth another try; if every try ends so, `code` (when set) is final and otherwise the
    /// record is retried later.
    Again(Option<MediaErrorCode>, String),
}

/// Why a record was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Not an inbound event: a bug upstream; retried, then dead-lettered for inspection.
    Unreadable,
    /// Try again later (a transient fetch failure, a store or queue failure, or another
    /// receive forwarding the same message).
    Retry,
}

fn gone(e: &GraphCallError) -> bool {
    match e {
        // 404, or "Object with ID … does not exist" (100/33): Meta no longer has the file.
        GraphCallError::Api { status, body } => {
            *status == 404 || (body.code == 100 && body.error_subcode == Some(33))
        }
        _ => false,
    }
}

impl<A, O, D, Q, K> Fetcher<A, O, D, Q, K>
where
    A: MediaApi,
    O: ObjectStore,
    D: DedupeStore,
    Q: MessageQueue,
    K: SecretSource,
{
    pub async fn handle(&self, records: &[SqsMessage], now_ms: i64) -> SqsBatchResponse {
        whatsapp_aws::sqs_batch::each_record(records, self.config.concurrency, |r| {
            self.record(r, now_ms)
        })
        .await
    }

    async fn record(&self, record: &SqsMessage, now_ms: i64) -> Result<(), Failure> {
        let body = record.body.as_deref().unwrap_or("");
        let mut event: InboundEvent =
            serde_json::from_str(body).map_err(|_| Failure::Unreadable)?;
        let receives: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        if let Some((kind, media)) = attachment(&event.message) {
            let media = media.clone();
            match self.keep(&event, kind, &media).await {
                Ok(stored) => {
                    info!(kind, size_bytes = stored.size_bytes, "media kept");
                    event.media = Some(stored);
                }
                Err((code, detail)) => match code {
                    Some(code) => {
                        warn!(kind, code = code.as_str(), "media not kept");
                        event.media_error = Some(MediaError { code, detail });
                    }
                    None if receives >= self.config.max_receives => {
                        warn!(kind, receives, "media not kept after every receive");
                        event.media_error = Some(MediaError {
                            code: MediaErrorCode::RetriesExhausted,
                            detail: format!("{detail} (after {receives} receives)"),
                        });
                    }
                    None => {
                        warn!(kind, receives, "media fetch failed; retried later");
                        return Err(Failure::Retry);
                    }
                },
            }
        }
        self.forward(&event, now_ms).await
    }

    /// Forwards the event to the bots once per idempotency record (as ingest does).
    async fn forward(&self, event: &InboundEvent, now_ms: i64) -> Result<(), Failure> {
        let record = format!("media#{}", event.message.id);
        let owner = whatsapp_core::unique_token();
        let now_s = now_ms / 1000;
        let ttl = now_s + self.config.dedupe_ttl_seconds;
        let begun = self
            .dedupe
            .begin(
                &record,
                &event.message.id,
                &owner,
                now_ms,
                now_ms + self.config.in_progress_ms,
                ttl,
            )
            .await
            .map_err(|_| Failure::Retry)?;
        match begun {
            Begin::Started { .. } => {}
            Begin::InProgress { .. } => return Err(Failure::Retry),
            Begin::Completed { .. } | Begin::PayloadMismatch => return Ok(()),
        }
        let body = serde_json::to_string(event).map_err(|_| Failure::Unreadable)?;
        if self.inbound.send(&body, None).await.is_err() {
            let _ = self.dedupe.release(&record, &owner).await;
            return Err(Failure::Retry);
        }
        self.dedupe
            .complete(&record, &owner, None, ttl)
            .await
            .map_err(|_| Failure::Retry)
    }

    /// Every try of one receive; `Err((Some(code), detail))` is final, `Err((None, _))` is
    /// for a later receive.
    async fn keep(
        &self,
        event: &InboundEvent,
        kind: &'static str,
        media: &Media,
    ) -> Result<StoredMedia, (Option<MediaErrorCode>, String)> {
        let key = object_key(&event.phone_number_id, &event.message.id);
        let mut last = (None, String::new());
        for attempt in 1..=self.config.attempts {
            // The webhook's own URL first (it saves a Graph call while it is fresh), then
            // fresh ones.
            let url = media.url.clone().filter(|_| attempt == 1);
            match self.try_once(&event.waba_id, kind, media, &key, url).await {
                Ok(stored) => return Ok(stored),
                Err(TryError::Final(code, detail)) => return Err((Some(code), detail)),
                Err(TryError::Again(code, detail)) => last = (code, detail),
            }
            if attempt < self.config.attempts {
                let wait = self.config.backoff_ms << (attempt - 1).min(10);
                let wait = wait + whatsapp_core::jitter_ms(wait / 2 + 1);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
        Err(last)
    }

    /// The access token of the account `waba_id` (re-read from the store when `refresh`).
    async fn token(&self, waba_id: &str, refresh: bool) -> Result<String, TryError> {
        let secrets = if refresh {
            self.secrets.refresh().await
        } else {
            self.secrets.secrets().await
        };
        secrets
            .and_then(|s| s.access_token_for(waba_id).map(str::to_owned))
            .map_err(|e| {
                if matches!(e, SecretError::NoAccessToken(_)) {
                    error!(alert = true, waba_id, "{e}");
                }
                TryError::Again(None, format!("secrets: {e}"))
            })
    }

    /// `GET /{media-id}`, classified.
    async fn info(
        &self,
        id: &str,
        token: &str,
    ) -> Result<whatsapp_core::ports::MediaInfo, TryError> {
        match self.api.media_info(id, token).await {
            Ok(info) => Ok(info),
            Err(e) if gone(&e) => Err(TryError::Final(
                MediaErrorCode::MediaGone,
                "Meta no longer has this media (it keeps inbound media about 30 days)".into(),
            )),
            Err(e) => {
                if e.classification().action == ErrorAction::RefreshToken {
                    let _ = self.secrets.refresh().await;
                }
                Err(TryError::Again(None, format!("media lookup: {e}")))
            }
        }
    }

    async fn try_once(
        &self,
        waba_id: &str,
        kind: &'static str,
        media: &Media,
        key: &str,
        webhook_url: Option<String>,
    ) -> Result<StoredMedia, TryError> {
        let id = media.id.as_deref().unwrap_or_default();
        let token = self.token(waba_id, false).await?;
        let (_, max) = whatsapp_core::job::limits::media(kind).unwrap_or((&[], u64::MAX));
        let mut info = None;
        let mut download = None;
        if let Some(url) = webhook_url {
            match self.api.download(&url, &token).await {
                Ok(d) => download = Some(d),
                Err(DownloadError::Refused(_)) => {}
                Err(DownloadError::Failed(e)) => {
                    return Err(TryError::Again(None, format!("download: {e}")));
                }
            }
        }
        let download = match download {
            Some(d) => d,
            None => {
                let i = self.info(id, &token).await?;
                if let Some(size) = i.file_size
                    && size > max
                {
                    return Err(TryError::Final(
                        MediaErrorCode::TooLarge,
                        format!("the {kind} is {size} bytes; WhatsApp allows {max}"),
                    ));
                }
                let d = match self.api.download(&i.url, &token).await {
                    Ok(d) => d,
                    // A URL just issued and refused: expired in between, or the token.
                    Err(DownloadError::Refused(status)) => {
                        let _ = self.token(waba_id, status == 401).await;
                        return Err(TryError::Again(
                            None,
                            format!("download refused (HTTP {status})"),
                        ));
                    }
                    Err(DownloadError::Failed(e)) => {
                        return Err(TryError::Again(None, format!("download: {e}")));
                    }
                };
                info = Some(i);
                d
            }
        };
        let mut download = download;
        let mime = info
            .as_ref()
            .and_then(|i| i.mime_type.clone())
            .or_else(|| media.mime_type.clone())
            .unwrap_or_else(|| "application/octet-stream".into());
        let expected = info
            .as_ref()
            .and_then(|i| i.sha256.clone())
            .or_else(|| media.sha256.clone());
        let expected_hex = expected
            .as_deref()
            .and_then(whatsapp_core::media::digest_hex)
            .unwrap_or_default();
        let bucket = &self.config.bucket;
        let mut hashing = Hashing::new(&mut download, SNIFF_BYTES, Some(max));
        let written = self
            .objects
            .put_stream(bucket, key, &mime, &expected_hex, &mut hashing)
            .await;
        let (size, digest, head) = (hashing.size(), hashing.digest(), hashing.head().to_vec());
        if let Err(e) = written {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<TooLarge>().is_some());
            if too_large {
                return Err(TryError::Final(
                    MediaErrorCode::TooLarge,
                    format!("the {kind} is over the {max} bytes WhatsApp allows"),
                ));
            }
            return Err(TryError::Again(None, e.to_string()));
        }
        let discard = |code, detail: String| async move {
            // Nothing unverified stays in the bucket.
            let _ = self.objects.delete(bucket, key).await;
            Err(if code == MediaErrorCode::TypeMismatch {
                TryError::Final(code, detail)
            } else {
                TryError::Again(Some(code), detail)
            })
        };
        if let Some(e) = &expected
            && !digest_matches(e, &digest)
        {
            return discard(
                MediaErrorCode::ChecksumMismatch,
                "the bytes do not match Meta's sha256".into(),
            )
            .await;
        }
        if let Some(want) = info.as_ref().and_then(|i| i.file_size)
            && want != size
        {
            return discard(
                MediaErrorCode::SizeMismatch,
                format!("got {size} bytes; Meta said {want}"),
            )
            .await;
        }
        if !type_agrees(&mime, &head) {
            return discard(
                MediaErrorCode::TypeMismatch,
                format!("the bytes are not {mime}"),
            )
            .await;
        }
        Ok(StoredMedia {
            bucket: bucket.clone(),
            key: key.to_owned(),
            mime_type: mime,
            sha256: hex::encode(digest),
            size_bytes: size,
        })
    }
}

#[cfg(test)]
mod tests;
