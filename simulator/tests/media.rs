//! Media routes against the reference (§1c, §6e): upload limits, download URLs that need the
//! token and expire, 30-day retention, deletion, inbound media with real bytes, faults.

mod common;

use common::{Harness, PHONE, TOKEN};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use simulator::{Fault, FaultRoute, InboundMedia, InboundSpec};

fn multipart(mime: &str, file: &[u8]) -> (String, Vec<u8>) {
    let b = "simboundary7";
    let mut body = Vec::new();
    for (name, value) in [("messaging_product", "whatsapp"), ("type", mime)] {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: {mime}\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn upload(h: &Harness, mime: &str, file: &[u8]) -> (u16, Value) {
    let (ct, body) = multipart(mime, file);
    let r = h
        .http
        .post(h.url(&format!("{PHONE}/media")))
        .bearer_auth(TOKEN)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn fetch(h: &Harness, url: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = h.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_upload_gives_an_id_whose_url_needs_the_token_and_expires() {
    let h = Harness::new().await;
    let png = simulator_png(2_000);
    let (status, body) = upload(&h, "image/png", &png).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();

    let (status, info) = h.get(&id).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["mime_type"], "image/png");
    assert_eq!(info["file_size"], 2_000);
    assert_eq!(info["sha256"], hex::encode(Sha256::digest(&png)));
    let url = info["url"].as_str().unwrap().to_owned();

    assert_eq!(fetch(&h, &url, None).await.0, 401, "no bearer token");
    assert_eq!(fetch(&h, &url, Some("wrong")).await.0, 401);
    assert_eq!(fetch(&h, &url, Some(TOKEN)).await, (200, png.clone()));
    // A system user's token for another account sees neither the media nor its URL.
    h.sim().create_waba("102290129340399", simulator::Tier::T2K);
    h.sim()
        .add_scoped_token("other-account", None, &["102290129340399"]);
    let r = h
        .http
        .get(h.url(&id))
        .bearer_auth("other-account")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "100/33 for another account's media"
    );
    assert_eq!(fetch(&h, &url, Some("other-account")).await.0, 401);

    h.sim().advance_clock(simulator::MEDIA_URL_TTL_S + 1);
    assert_eq!(fetch(&h, &url, Some(TOKEN)).await.0, 404, "the URL expired");
    let (_, fresh) = h.get(&id).await;
    let fresh = fresh["url"].as_str().unwrap().to_owned();
    assert_ne!(fresh, url);
    assert_eq!(fetch(&h, &fresh, Some(TOKEN)).await, (200, png));

    h.sim().advance_clock(simulator::MEDIA_RETENTION_S);
    let (status, gone) = h.get(&id).await;
    assert_eq!(status, 404, "kept 30 days: {gone}");
    assert_eq!(gone["error"]["code"], 100);
    assert_eq!(fetch(&h, &fresh, Some(TOKEN)).await.0, 404);
}

fn simulator_png(n: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.resize(n, 7);
    v
}

#[tokio::test]
async fn uploads_are_held_to_the_types_and_sizes_of_the_reference() {
    let h = Harness::new().await;
    let (status, body) = upload(&h, "image/gif", b"GIF89a").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(131053))
    );
    let big = simulator_png(5 * 1024 * 1024 + 1);
    let (status, body) = upload(&h, "image/png", &big).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(131053))
    );
    let (status, _) = upload(&h, "application/pdf", &vec![b'%'; 6 * 1024 * 1024]).await;
    assert_eq!(status, 200, "a 6 MB document is within 100 MB");
    // Not multipart: a parameter error, and nothing stored.
    let r = h
        .http
        .post(h.url(&format!("{PHONE}/media")))
        .bearer_auth(TOKEN)
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(h.sim().media().len(), 1);
}

#[tokio::test]
async fn deleted_media_is_gone() {
    let h = Harness::new().await;
    let (_, body) = upload(&h, "image/jpeg", b"\xFF\xD8\xFFjpeg").await;
    let id = body["id"].as_str().unwrap();
    assert_eq!(h.delete(id).await, (200, json!({"success": true})));
    assert_eq!(h.get(id).await.0, 404);
    assert_eq!(h.delete(id).await.0, 404);
}

#[tokio::test]
async fn inbound_media_carries_id_sha256_and_a_working_url() {
    let h = Harness::new().await;
    let bytes = simulator_png(4_096);
    let wamid = h
        .sim()
        .user_sends(
            "447700900051",
            InboundSpec {
                phone_number_id: PHONE.into(),
                message: json!({"type": "image", "image": {"caption": "receipt"}}),
                referral: None,
                context: None,
                hide_phone_number: false,
                media: Some(InboundMedia {
                    mime_type: "image/png".into(),
                    bytes: Some(bytes.clone()),
                    ..InboundMedia::default()
                }),
            },
        )
        .unwrap();
    h.receiver
        .wait_for("inbound", |r| {
            r.changes()
                .iter()
                .any(|(_, v)| v["messages"][0]["id"] == wamid)
        })
        .await;
    let (_, value) = h
        .receiver
        .changes()
        .into_iter()
        .find(|(_, v)| v["messages"][0]["id"] == wamid)
        .unwrap();
    let image = &value["messages"][0]["image"];
    assert_eq!(image["caption"], "receipt");
    assert_eq!(image["mime_type"], "image/png");
    use base64::Engine as _;
    assert_eq!(
        image["sha256"],
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes)),
        "inbound webhooks give the digest in base64"
    );
    let url = image["url"].as_str().unwrap();
    assert_eq!(fetch(&h, url, Some(TOKEN)).await, (200, bytes));
    let (_, info) = h.get(image["id"].as_str().unwrap()).await;
    assert_eq!(info["file_size"], 4_096);
}

#[tokio::test]
async fn faults_apply_per_media_route() {
    let h = Harness::new().await;
    let (_, body) = upload(&h, "image/png", &simulator_png(10)).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let (_, info) = h.get(&id).await;
    let url = info["url"].as_str().unwrap().to_owned();
    h.sim().inject_fault(Fault {
        route: FaultRoute::MediaDownload,
        latency_ms: 0,
        error: Some((503, 0)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(2),
    });
    assert_eq!(fetch(&h, &url, Some(TOKEN)).await.0, 503);
    assert_eq!(fetch(&h, &url, Some(TOKEN)).await.0, 503);
    assert_eq!(fetch(&h, &url, Some(TOKEN)).await.0, 200, "spent after 2");
    h.sim().inject_fault(Fault {
        route: FaultRoute::Media,
        latency_ms: 0,
        error: Some((500, 2)),
        hang_before_ms: None,
        hang_after_ms: None,
        times: Some(1),
    });
    assert_eq!(h.get(&id).await.0, 500);
    assert_eq!(h.get(&id).await.0, 200);
}

#[tokio::test]
async fn mark_as_read_and_typing_are_recorded() {
    let h = Harness::new().await;
    let inbound = h.user_writes("447700900052");
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound,
        "typing_indicator": {"type": "text"}});
    assert_eq!(h.post(&format!("{PHONE}/messages"), body).await.0, 200);
    let m = h.sim().inbound_message(&inbound).unwrap();
    assert!(m.read);
    assert!(m.typing_at.is_some());
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": inbound,
        "typing_indicator": {"type": "audio"}});
    assert_eq!(h.post(&format!("{PHONE}/messages"), body).await.0, 400);
}
