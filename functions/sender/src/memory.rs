//! The sender's ports in memory (feature `fakes`), for unit tests and the load driver: the
//! stores sit behind an `Arc` so that several sender instances share them, as instances share
//! the tables in production.

use std::sync::Arc;

use whatsapp_core::ports::GraphApi;
use whatsapp_fakes::{
    MemoryContacts, MemoryDedupe, MemoryMediaApi, MemoryMediaIds, MemoryMessages, MemoryObjects,
    MemoryQueue, MemoryRedelivery, MemorySendControl, MemorySessions, MemoryTemplates,
    StaticSecrets,
};

use crate::SenderPorts;

/// The stores every instance shares.
#[derive(Debug, Default)]
pub struct MemoryStores {
    pub sessions: MemorySessions,
    pub contacts: MemoryContacts,
    pub templates: MemoryTemplates,
    pub messages: MemoryMessages,
    pub dedupe: MemoryDedupe,
    pub control: MemorySendControl,
    pub objects: MemoryObjects,
    pub media_ids: MemoryMediaIds,
}

/// One instance's ports: shared stores, its own Graph client and queues.
pub struct MemorySenderPorts<G> {
    pub stores: Arc<MemoryStores>,
    pub graph: G,
    pub secrets: StaticSecrets,
    pub outcomes: MemoryQueue,
    pub dead_letters: MemoryQueue,
    pub redelivery: MemoryRedelivery,
    pub media: MemoryMediaApi,
}

impl<G> MemorySenderPorts<G> {
    pub fn new(stores: Arc<MemoryStores>, graph: G) -> Self {
        MemorySenderPorts {
            stores,
            graph,
            secrets: StaticSecrets::new("app-secret", "verify-token", "tok"),
            outcomes: MemoryQueue::default(),
            dead_letters: MemoryQueue::default(),
            redelivery: MemoryRedelivery::default(),
            media: MemoryMediaApi::default(),
        }
    }
}

impl<G: GraphApi> SenderPorts for MemorySenderPorts<G> {
    type Sessions = MemorySessions;
    type Contacts = MemoryContacts;
    type Templates = MemoryTemplates;
    type Messages = MemoryMessages;
    type Dedupe = MemoryDedupe;
    type Control = MemorySendControl;
    type Graph = G;
    type Secrets = StaticSecrets;
    type Outcomes = MemoryQueue;
    type DeadLetters = MemoryQueue;
    type Redelivery = MemoryRedelivery;
    type Media = MemoryMediaApi;
    type Objects = MemoryObjects;
    type MediaIds = MemoryMediaIds;

    fn sessions(&self) -> &MemorySessions {
        &self.stores.sessions
    }
    fn contacts(&self) -> &MemoryContacts {
        &self.stores.contacts
    }
    fn templates(&self) -> &MemoryTemplates {
        &self.stores.templates
    }
    fn messages(&self) -> &MemoryMessages {
        &self.stores.messages
    }
    fn dedupe(&self) -> &MemoryDedupe {
        &self.stores.dedupe
    }
    fn control(&self) -> &MemorySendControl {
        &self.stores.control
    }
    fn graph(&self) -> &G {
        &self.graph
    }
    fn secrets(&self) -> &StaticSecrets {
        &self.secrets
    }
    fn outcomes(&self) -> &MemoryQueue {
        &self.outcomes
    }
    fn dead_letters(&self) -> &MemoryQueue {
        &self.dead_letters
    }
    fn redelivery(&self) -> &MemoryRedelivery {
        &self.redelivery
    }
    fn media(&self) -> &MemoryMediaApi {
        &self.media
    }
    fn objects(&self) -> &MemoryObjects {
        &self.stores.objects
    }
    fn media_ids(&self) -> &MemoryMediaIds {
        &self.stores.media_ids
    }
}
