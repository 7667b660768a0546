//! The Graph API: the calls the middleware makes and how they fail.

use std::future::Future;

use crate::graph::{
    Classification, GraphErrorBody, MarkReadRequest, PhoneNumberInfo, SendMessageRequest,
    SendMessageResponse, classify, classify_transport,
};

/// A Graph API call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GraphCallError {
    /// Meta answered with its error envelope.
    #[error("Graph API error {} (HTTP {status})", body.code)]
    Api { status: u16, body: GraphErrorBody },
    /// No answer in time. `after_send` is true when the request was fully written, so Meta may
    /// have accepted the message: the ambiguous case, never retried blindly.
    #[error("Graph API call timed out")]
    Timeout { after_send: bool },
    /// The connection failed before the request was sent.
    #[error("could not reach the Graph API")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An answer we could not read.
    #[error("unreadable Graph API response (HTTP {status})")]
    Decode { status: u16, detail: String },
}

impl GraphCallError {
    /// What to do about it, from the shared classification table.
    pub fn classification(&self) -> Classification {
        match self {
            GraphCallError::Api { status, body } => classify(body.code, Some(*status)),
            GraphCallError::Timeout { .. } | GraphCallError::Transport(_) => {
                classify_transport(0, None)
            }
            GraphCallError::Decode { status, .. } => classify_transport(0, Some(*status)),
        }
    }

    /// Meta refused the access token (190: expired, revoked or rotated).
    pub fn token_rejected(&self) -> bool {
        matches!(self, GraphCallError::Api { body, .. } if body.code == 190)
    }
}

/// The parts of the Graph API the middleware calls.
pub trait GraphApi: Send + Sync {
    fn send_message(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
    ) -> impl Future<Output = Result<SendMessageResponse, GraphCallError>> + Send;

    /// [`GraphApi::send_message`], giving up after `timeout`: the time the caller has left for
    /// the call before it must commit. A call cut short after the request was written is
    /// [`GraphCallError::Timeout`] with `after_send`, the ambiguous case. Implementations that
    /// cannot bound a call may ignore `timeout`.
    fn send_message_within(
        &self,
        phone_number_id: &str,
        request: &SendMessageRequest<'_>,
        access_token: &str,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<SendMessageResponse, GraphCallError>> + Send {
        let _ = timeout;
        self.send_message(phone_number_id, request, access_token)
    }

    fn mark_read(
        &self,
        phone_number_id: &str,
        request: &MarkReadRequest,
        access_token: &str,
    ) -> impl Future<Output = Result<(), GraphCallError>> + Send;

    fn phone_number(
        &self,
        phone_number_id: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<PhoneNumberInfo, GraphCallError>> + Send;
}

/// The template endpoints of the Graph API (WhatsApp Business Management API).
pub trait TemplateApi: Send + Sync {
    /// `POST /{waba}/message_templates`.
    fn create_template(
        &self,
        waba_id: &str,
        template: &crate::templates::TemplateSubmission,
        access_token: &str,
    ) -> impl Future<Output = Result<crate::templates::CreatedTemplate, GraphCallError>> + Send;

    /// `POST /{template-id}` with the new `components` (and `category`, unless approved).
    fn edit_template(
        &self,
        template_id: &str,
        edit: &serde_json::Value,
        access_token: &str,
    ) -> impl Future<Output = Result<(), GraphCallError>> + Send;

    /// `DELETE /{waba}/message_templates?name=` (every language of that name).
    fn delete_template(
        &self,
        waba_id: &str,
        name: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<(), GraphCallError>> + Send;

    /// One page of `GET /{waba}/message_templates`, after cursor `after`.
    fn list_templates(
        &self,
        waba_id: &str,
        after: Option<&str>,
        access_token: &str,
    ) -> impl Future<Output = Result<crate::templates::TemplatePage, GraphCallError>> + Send;
}
