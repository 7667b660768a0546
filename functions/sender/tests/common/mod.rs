//! What the sender's tests share.

use whatsapp_core::graph::{ResponseMessage, SendMessageResponse};

/// Meta's answer accepting message number `n`.
pub fn accepted(n: usize) -> SendMessageResponse {
    SendMessageResponse {
        messaging_product: Some("whatsapp".into()),
        contacts: vec![],
        messages: vec![ResponseMessage {
            id: format!("wamid.{n}"),
            message_status: Some("accepted".into()),
        }],
    }
}
