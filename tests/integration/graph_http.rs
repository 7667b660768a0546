//! The Graph API client against a scripted local HTTP server: request shape, success, Meta's
//! error envelope, non-JSON errors, timeouts after the request was sent, and refused connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use whatsapp_aws::{GraphHttpClient, GraphHttpConfig};
use whatsapp_core::graph::{ErrorClass, MarkReadRequest, SendMessageRequest};
use whatsapp_core::job::SendJob;
use whatsapp_core::policy::MessagingTier;
use whatsapp_core::ports::{GraphApi, GraphCallError};

#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

/// Serves one canned response per connection, after an optional delay, and records requests.
async fn server(
    status: u16,
    body: &'static str,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_start) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..i]).into_owned(), i + 4);
                    }
                };
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body_in = String::from_utf8_lossy(&buf[body_start..]).into_owned();
                log.lock().unwrap().push(Seen {
                    head,
                    body: body_in,
                });
                tokio::time::sleep(delay).await;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn client(base: &str, timeout_ms: u64) -> GraphHttpClient {
    GraphHttpClient::new(&GraphHttpConfig {
        base_url: base.into(),
        timeout: Duration::from_millis(timeout_ms),
        ..GraphHttpConfig::default()
    })
    .unwrap()
}

fn job() -> SendJob {
    SendJob::parse(
        r#"{"version":1,"idempotency_key":"k","phone_number_id":"106540352242922",
            "to":{"wa_id":"16505551234"},"message":{"type":"text","text":{"body":"hi"}}}"#,
    )
    .unwrap()
}

#[tokio::test]
async fn sends_the_graph_request_and_reads_the_wamid() {
    let (base, seen) = server(
        200,
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.OK","message_status":"accepted"}]}"#,
        Duration::ZERO,
    )
    .await;
    let j = job();
    let req = SendMessageRequest::for_job(&j, Some("job:k")).unwrap();
    let resp = client(&base, 2000)
        .send_message("106540352242922", &req, "tok")
        .await
        .unwrap();
    assert_eq!(resp.wamid(), Some("wamid.OK"));
    let seen = seen.lock().unwrap()[0].clone();
    assert!(
        seen.head
            .starts_with("POST /v25.0/106540352242922/messages HTTP/1.1"),
        "{}",
        seen.head
    );
    assert!(
        seen.head
            .to_ascii_lowercase()
            .contains("authorization: bearer tok")
    );
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["biz_opaque_callback_data"], "job:k");
    assert_eq!(body["text"]["body"], "hi");
}

#[tokio::test]
async fn metas_error_envelope_is_typed_and_classified() {
    let (base, _) = server(
        400,
        r#"{"error":{"message":"(#131009) Parameter value is not valid","type":"OAuthException","code":131009,"error_subcode":2494010,"error_data":{"messaging_product":"whatsapp","details":"bad"},"fbtrace_id":"AbC"}}"#,
        Duration::ZERO,
    )
    .await;
    let j = job();
    let err = client(&base, 2000)
        .send_message("1", &SendMessageRequest::for_job(&j, None).unwrap(), "tok")
        .await
        .unwrap_err();
    let GraphCallError::Api { status, body } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*status, body.code, body.error_subcode),
        (400, 131009, Some(2494010))
    );
    assert_eq!(body.fbtrace_id.as_deref(), Some("AbC"));
    assert_eq!(err.classification().class, ErrorClass::Terminal);
}

#[tokio::test]
async fn throughput_errors_are_retryable() {
    let (base, _) = server(
        429,
        r#"{"error":{"message":"rate","code":130429,"fbtrace_id":"x"}}"#,
        Duration::ZERO,
    )
    .await;
    let j = job();
    let err = client(&base, 2000)
        .send_message("1", &SendMessageRequest::for_job(&j, None).unwrap(), "tok")
        .await
        .unwrap_err();
    assert_eq!(err.classification().class, ErrorClass::Retry);
}

#[tokio::test]
async fn a_non_json_gateway_error_is_retryable() {
    let (base, _) = server(502, "<html>bad gateway</html>", Duration::ZERO).await;
    let j = job();
    let err = client(&base, 2000)
        .send_message("1", &SendMessageRequest::for_job(&j, None).unwrap(), "tok")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphCallError::Decode { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(err.classification().class, ErrorClass::Retry);
}

#[tokio::test]
async fn a_timeout_after_the_request_was_sent_is_reported_as_ambiguous() {
    let (base, seen) = server(200, "{}", Duration::from_secs(5)).await;
    let j = job();
    let err = client(&base, 300)
        .send_message("1", &SendMessageRequest::for_job(&j, None).unwrap(), "tok")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphCallError::Timeout { after_send: true }),
        "{err:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "the server did receive it");
}

/// Defect 12 of #16: a call started with a little time left could take the client's whole
/// timeout (10 s) and outlive the invocation. The sender's budget bounds it.
#[tokio::test]
async fn a_call_gives_up_within_the_budget_it_is_given() {
    let (base, seen) = server(200, "{}", Duration::from_secs(5)).await;
    let j = job();
    let started = std::time::Instant::now();
    let err = client(&base, 10_000)
        .send_message_within(
            "1",
            &SendMessageRequest::for_job(&j, None).unwrap(),
            "tok",
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphCallError::Timeout { after_send: true }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "the server did receive it");
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let j = job();
    let err = client(&format!("http://{addr}"), 1000)
        .send_message("1", &SendMessageRequest::for_job(&j, None).unwrap(), "tok")
        .await
        .unwrap_err();
    assert!(matches!(err, GraphCallError::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn reads_the_phone_number_node_and_marks_read() {
    let (base, seen) = server(
        200,
        r#"{"id":"1","quality_rating":"GREEN","status":"CONNECTED","throughput":{"level":"STANDARD"},"whatsapp_business_manager_messaging_limit":"TIER_2K"}"#,
        Duration::ZERO,
    )
    .await;
    let info = client(&base, 2000).phone_number("1", "tok").await.unwrap();
    assert_eq!(
        info.whatsapp_business_manager_messaging_limit,
        Some(MessagingTier::Tier2K)
    );
    assert_eq!(info.throughput.unwrap().level, "STANDARD");
    assert!(seen.lock().unwrap()[0].head.contains("fields=id,"));

    let (base, seen) = server(200, r#"{"success":true}"#, Duration::ZERO).await;
    client(&base, 2000)
        .mark_read("1", &MarkReadRequest::new("wamid.IN", true), "tok")
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&seen.lock().unwrap()[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.IN","typing_indicator":{"type":"text"}})
    );
}
