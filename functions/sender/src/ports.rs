//! Everything the sender talks to, as one bundle of ports.

use whatsapp_core::ports::{
    ContactStore, DeadLetters, DedupeStore, GraphApi, MediaApi, MediaIdCache, MessageQueue,
    MessageStore, ObjectStore, Redelivery, SecretSource, SendControl, SessionStore, TemplateStore,
};

/// Everything the sender talks to.
pub trait SenderPorts: Send + Sync {
    type Sessions: SessionStore;
    type Contacts: ContactStore;
    type Templates: TemplateStore;
    type Messages: MessageStore;
    type Dedupe: DedupeStore;
    type Control: SendControl;
    type Graph: GraphApi;
    type Secrets: SecretSource;
    type Outcomes: MessageQueue;
    type DeadLetters: DeadLetters;
    type Redelivery: Redelivery;
    type Media: MediaApi;
    type Objects: ObjectStore;
    type MediaIds: MediaIdCache;

    fn sessions(&self) -> &Self::Sessions;
    fn contacts(&self) -> &Self::Contacts;
    fn templates(&self) -> &Self::Templates;
    fn messages(&self) -> &Self::Messages;
    fn dedupe(&self) -> &Self::Dedupe;
    fn control(&self) -> &Self::Control;
    fn graph(&self) -> &Self::Graph;
    fn secrets(&self) -> &Self::Secrets;
    /// The queue producers read outcomes from.
    fn outcomes(&self) -> &Self::Outcomes;
    /// The send queue's dead-letter queue.
    fn dead_letters(&self) -> &Self::DeadLetters;
    /// Visibility of the send queue's messages.
    fn redelivery(&self) -> &Self::Redelivery;
    /// Meta's media upload, for jobs whose media names an S3 object.
    fn media(&self) -> &Self::Media;
    /// The buckets those objects are read from.
    fn objects(&self) -> &Self::Objects;
    /// Uploaded media ids by object version.
    fn media_ids(&self) -> &Self::MediaIds;
}
