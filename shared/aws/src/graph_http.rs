//! The Graph API over HTTPS with reqwest (rustls).

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use whatsapp_core::graph::{
    DEFAULT_GRAPH_VERSION, GraphErrorEnvelope, MarkReadRequest, PHONE_NUMBER_FIELDS,
    PhoneNumberInfo, SendMessageRequest, SendMessageResponse,
};
use whatsapp_core::ports::{
    BoxError, ByteStream, DownloadError, GraphApi, GraphCallError, MediaApi, MediaInfo,
    TemplateApi, Upload,
};
use whatsapp_core::templates::{CreatedTemplate, TemplatePage, TemplateSubmission};

/// Where and how to call the Graph API.
#[derive(Debug, Clone)]
pub struct GraphHttpConfig {
    /// `https://graph.facebook.com`, or the simulator's address in tests and local runs.
    pub base_url: String,
    /// e.g. `v25.0`.
    pub version: String,
    /// Whole-request deadline. Keep it well under the function's timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for GraphHttpConfig {
    fn default() -> Self {
        GraphHttpConfig {
            base_url: "https://graph.facebook.com".into(),
            version: DEFAULT_GRAPH_VERSION.into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// [`GraphApi`] over HTTPS. Build once per cold start; it pools connections.
#[derive(Debug, Clone)]
pub struct GraphHttpClient {
    http: Client,
    base: String,
}

impl GraphHttpClient {
    pub fn new(config: &GraphHttpConfig) -> Result<Self, reqwest::Error> {
        let http = Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("whatsapp-middleware/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(GraphHttpClient {
            http,
            base: format!(
                "{}/{}",
                config.base_url.trim_end_matches('/'),
                config.version
            ),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<T, GraphCallError> {
        let resp = req.bearer_auth(token).send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| GraphCallError::Decode {
                status: status.as_u16(),
                detail: e.to_string(),
            });
        }
        match serde_json::from_slice::<GraphErrorEnvelope>(&bytes) {
            Ok(env) => Err(GraphCallError::Api {
                status: status.as_u16(),
                body: env.error,
            }),
            Err(e) => Err(GraphCallError::Decode {
                status: status.as_u16(),
                detail: format!("{}: {e}", status.canonical_reason().unwrap_or("error")),
            }),
        }
    }

    async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        token: &str,
    ) -> Result<T, GraphCallError> {
        self.call(
            self.http.post(format!("{}/{path}", self.base)).json(body),
            token,
        )
        .await
    }
}

impl GraphHttpClient {
    /// `GET /{waba_id}?fields=pricing_analytics...`: what Meta counted and charged for a WABA's
    /// messages in `[start, end)` (epoch seconds), by the given granularity (`HALF_HOUR`,
    /// `DAILY`, `MONTHLY`) and the dimensions finance reconciles by. Returned as Meta sends it.
    pub async fn pricing_analytics(
        &self,
        waba_id: &str,
        start: i64,
        end: i64,
        granularity: &str,
        access_token: &str,
    ) -> Result<serde_json::Value, GraphCallError> {
        let fields = format!(
            "pricing_analytics.start({start}).end({end}).granularity({granularity})\
             .dimensions([\"PRICING_CATEGORY\",\"PRICING_TYPE\",\"COUNTRY\",\"PHONE\"])"
        );
        let url = reqwest::Url::parse_with_params(
            &format!("{}/{waba_id}", self.base),
            &[("fields", fields.as_str())],
        )
        .map_err(|e| GraphCallError::Transport(Box::new(e)))?;
        self.call(self.http.get(url), access_token).await
    }
}

fn transport(e: reqwest::Error) -> GraphCallError {
    if e.is_timeout() && !e.is_connect() {
        // The request may have reached Meta: the caller must reconcile, not resend.
        GraphCallError::Timeout { after_send: true }
    } else if e.is_timeout() {
        GraphCallError::Timeout { after_send: false }
    } else if e.is_connect() {
        GraphCallError::Transport(Box::new(e))
    } else if e.is_status() {
        GraphCallError::Decode {
            status: e.status().unwrap_or(StatusCode::BAD_GATEWAY).as_u16(),
            detail: "status".into(),
        }
    } else {
        // Failed mid-exchange: as ambiguous as a timeout.
        GraphCallError::Timeout { after_send: true }
    }
}

#[derive(serde::Deserialize)]
struct Success {
    #[serde(default)]
    success: bool,
}

impl Success {
    /// `{"success": true}`, or a 2xx answer that says it failed.
    #[allow(clippy::result_large_err)] // the port's error type, returned as is
    fn into_result(self) -> Result<(), GraphCallError> {
        if self.success {
            Ok(())
        } else {
            Err(GraphCallError::Decode {
                status: 200,
                detail: "success is false".into(),
            })
        }
    }
}

impl GraphApi for GraphHttpClient {
    async fn send_message(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
    ) -> Result<SendMessageResponse, GraphCallError> {
        self.post(
            &request.endpoint.path(phone_number_id),
            request,
            access_token,
        )
        .await
    }

    async fn send_message_within(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
        timeout: Duration,
    ) -> Result<SendMessageResponse, GraphCallError> {
        let url = format!("{}/{}", self.base, request.endpoint.path(phone_number_id));
        // The client's own timeout still applies; this one may only shorten it.
        self.call(
            self.http.post(url).json(request).timeout(timeout),
            access_token,
        )
        .await
    }

    async fn mark_read(
        &self,
        phone_number_id: &str,
        request: &MarkReadRequest,
        access_token: &str,
    ) -> Result<(), GraphCallError> {
        let s: Success = self
            .post(
                &format!("{phone_number_id}/messages"),
                request,
                access_token,
            )
            .await?;
        s.into_result()
    }

    async fn phone_number(
        &self,
        phone_number_id: &str,
        access_token: &str,
    ) -> Result<PhoneNumberInfo, GraphCallError> {
        let req = self.http.get(format!(
            "{}/{phone_number_id}?fields={PHONE_NUMBER_FIELDS}",
            self.base
        ));
        self.call(req, access_token).await
    }
}

/// Fields the template sync reads.
const TEMPLATE_FIELDS: &str =
    "id,name,language,status,category,parameter_format,components,rejected_reason";

impl TemplateApi for GraphHttpClient {
    async fn create_template(
        &self,
        waba_id: &str,
        template: &TemplateSubmission,
        access_token: &str,
    ) -> Result<CreatedTemplate, GraphCallError> {
        self.post(
            &format!("{waba_id}/message_templates"),
            template,
            access_token,
        )
        .await
    }

    async fn edit_template(
        &self,
        template_id: &str,
        edit: &serde_json::Value,
        access_token: &str,
    ) -> Result<(), GraphCallError> {
        let s: Success = self.post(template_id, edit, access_token).await?;
        s.into_result()
    }

    async fn delete_template(
        &self,
        waba_id: &str,
        name: &str,
        access_token: &str,
    ) -> Result<(), GraphCallError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/{waba_id}/message_templates", self.base),
            &[("name", name)],
        )
        .map_err(|e| GraphCallError::Transport(Box::new(e)))?;
        let req = self.http.delete(url);
        let s: Success = self.call(req, access_token).await?;
        s.into_result()
    }

    async fn list_templates(
        &self,
        waba_id: &str,
        after: Option<&str>,
        access_token: &str,
    ) -> Result<TemplatePage, GraphCallError> {
        let mut query = vec![("fields", TEMPLATE_FIELDS), ("limit", "100")];
        if let Some(a) = after {
            query.push(("after", a));
        }
        let url = reqwest::Url::parse_with_params(
            &format!("{}/{waba_id}/message_templates", self.base),
            &query,
        )
        .map_err(|e| GraphCallError::Transport(Box::new(e)))?;
        let req = self.http.get(url);
        self.call(req, access_token).await
    }
}

/// How long a media transfer (download or upload) may take: files are up to 100 MB, so far
/// longer than a message send. Keep it under the function's timeout.
pub const MEDIA_TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// A download's body as a [`ByteStream`]: chunks as they arrive.
pub struct HttpDownload(reqwest::Response);

impl ByteStream for HttpDownload {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BoxError> {
        match self.0.chunk().await {
            Ok(c) => Ok(c.map(|b| b.to_vec())),
            // Without the URL: a media URL is a capability, kept out of errors and logs.
            Err(e) => Err(Box::new(e.without_url())),
        }
    }
}

#[derive(serde::Deserialize)]
struct MediaNode {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    file_size: Option<u64>,
}

/// `file_size` arrives as a number, and in some answers as a string.
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

#[derive(serde::Deserialize)]
struct UploadedMedia {
    id: String,
}

/// A [`ByteStream`] as a request body stream, ending at the first error.
fn body_stream<B: ByteStream + 'static>(
    body: B,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, BoxError>> + Send + 'static {
    futures_util::stream::unfold(Some(body), |state| async move {
        let mut b = state?;
        match b.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(b))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
}

impl MediaApi for GraphHttpClient {
    type Download = HttpDownload;

    async fn media_info(
        &self,
        media_id: &str,
        access_token: &str,
    ) -> Result<MediaInfo, GraphCallError> {
        let node: MediaNode = self
            .call(
                self.http.get(format!("{}/{media_id}", self.base)),
                access_token,
            )
            .await?;
        Ok(MediaInfo {
            url: node.url,
            mime_type: node.mime_type,
            sha256: node.sha256,
            file_size: node.file_size,
        })
    }

    async fn download(&self, url: &str, access_token: &str) -> Result<HttpDownload, DownloadError> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .timeout(MEDIA_TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|e| DownloadError::Failed(Box::new(e.without_url())))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(HttpDownload(resp)),
            401 | 403 | 404 | 410 => Err(DownloadError::Refused(status)),
            _ => Err(DownloadError::Failed(
                format!("the media host answered HTTP {status}").into(),
            )),
        }
    }

    async fn upload<B: ByteStream + 'static>(
        &self,
        phone_number_id: &str,
        file: Upload<B>,
        access_token: &str,
    ) -> Result<String, GraphCallError> {
        let body = reqwest::Body::wrap_stream(body_stream(file.body));
        let mut part = reqwest::multipart::Part::stream_with_length(body, file.size)
            .mime_str(&file.mime_type)
            .map_err(|e| GraphCallError::Transport(Box::new(e)))?;
        if let Some(name) = file.filename {
            part = part.file_name(name);
        } else {
            part = part.file_name("file");
        }
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", file.mime_type)
            .part("file", part);
        let req = self
            .http
            .post(format!("{}/{phone_number_id}/media", self.base))
            .multipart(form)
            .timeout(MEDIA_TRANSFER_TIMEOUT);
        let uploaded: UploadedMedia = self.call(req, access_token).await?;
        Ok(uploaded.id)
    }
}
