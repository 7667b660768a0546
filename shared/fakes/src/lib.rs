//! In-memory implementations of the ports, for unit tests (feature `fakes`). They keep the
//! contracts of the real adapters (monotonic windows and timestamps, first-writer-wins records)
//! so that handler tests mean something; the adapters themselves are tested against ministack.

mod control;
mod media;
mod queues;
mod secrets;
mod stores;

pub use control::*;
pub use media::*;
pub use queues::*;
pub use secrets::*;
pub use stores::*;

use std::sync::Mutex;

use whatsapp_core::identity::{IdentityMove, Successor};
use whatsapp_core::ingest::IngestPorts;
use whatsapp_core::ports::{IdentityStore, StoreError, UserKey};

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every ingest port in memory.
#[derive(Debug, Default)]
pub struct MemoryPorts {
    pub sessions: MemorySessions,
    pub contacts: MemoryContacts,
    pub messages: MemoryMessages,
    pub templates: MemoryTemplates,
    pub phones: MemoryPhones,
    pub dedupe: MemoryDedupe,
    pub inbound: MemoryQueue,
    pub media_fetch: MemoryQueue,
    pub meta_events: MemoryTopic,
    pub quarantine: MemoryQuarantine,
}

impl IngestPorts for MemoryPorts {
    type Sessions = MemorySessions;
    type Contacts = MemoryContacts;
    type Messages = MemoryMessages;
    type Templates = MemoryTemplates;
    type Phones = MemoryPhones;
    type Dedupe = MemoryDedupe;
    type Inbound = MemoryQueue;
    type MediaFetch = MemoryQueue;
    type MetaEvents = MemoryTopic;
    type Quarantine = MemoryQuarantine;
    type Identities = MemoryPorts;

    fn identities(&self) -> &MemoryPorts {
        self
    }

    fn sessions(&self) -> &MemorySessions {
        &self.sessions
    }
    fn contacts(&self) -> &MemoryContacts {
        &self.contacts
    }
    fn messages(&self) -> &MemoryMessages {
        &self.messages
    }
    fn templates(&self) -> &MemoryTemplates {
        &self.templates
    }
    fn phones(&self) -> &MemoryPhones {
        &self.phones
    }
    fn dedupe(&self) -> &MemoryDedupe {
        &self.dedupe
    }
    fn inbound(&self) -> &MemoryQueue {
        &self.inbound
    }
    fn media_fetch(&self) -> &MemoryQueue {
        &self.media_fetch
    }
    fn meta_events(&self) -> &MemoryTopic {
        &self.meta_events
    }
    fn quarantine(&self) -> &MemoryQuarantine {
        &self.quarantine
    }
}

/// The move of the DynamoDB adapter, in memory (one lock at a time: tests of it are sequential).
impl IdentityStore for MemoryPorts {
    async fn move_identity(&self, m: &IdentityMove) -> Result<(), StoreError> {
        let key = |u: &str| UserKey {
            phone_number_id: m.phone_number_id.clone(),
            user: u.to_owned(),
        };
        let to = key(&m.to);
        for from in m.from.iter().filter(|f| **f != m.to).map(|f| key(f)) {
            if lock(&self.sessions.moved)
                .get(&from)
                .is_some_and(|s| s.at > m.at)
            {
                continue;
            }
            {
                let mut windows = lock(&self.sessions.items);
                let old = windows.get(&from).copied().unwrap_or_default();
                let new = windows.entry(to.clone()).or_default();
                *new = new.merged(old);
            }
            {
                let mut consent = lock(&self.contacts.consent);
                let old = consent.get(&from).copied().unwrap_or_default();
                let new = consent.entry(to.clone()).or_default();
                *new = new.merged(&old);
            }
            lock(&self.sessions.moved).insert(
                from,
                Successor {
                    user: m.to.clone(),
                    wa_id: m.new_wa_id.clone(),
                    at: m.at,
                },
            );
        }
        whatsapp_core::identity::move_aliases(&self.contacts, m).await
    }
}

/// The text of resource `name` in the SAM template (`infra/template.yaml`), for tests that
/// check the template declares what the code emits. Panics when it is not there.
pub fn template_resource(name: &str) -> String {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
    .expect("infra/template.yaml");
    let head = format!("  {name}:");
    let mut lines = template.lines().skip_while(|l| *l != head);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("the template declares {name}"));
    // The resource ends where the next one (two spaces, then a name) or the next section starts.
    let body = lines
        .take_while(|l| l.is_empty() || l.starts_with("   ") || l.trim_start().starts_with('#'));
    std::iter::once(first)
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n")
}
