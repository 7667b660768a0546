//! Every sender port on AWS and the Graph API.
use whatsapp_aws::{
    CachedSecrets, DynamoContactStore, DynamoDedupeStore, DynamoMediaIds, DynamoMessageStore,
    DynamoSendControl, DynamoSessionStore, DynamoTemplateStore, GraphHttpClient, S3Objects,
    SecretsManagerFetcher, SqsQueue,
};
use whatsapp_core::config::{ConfigError, Env};

/// Table names and queue URLs (from `SESSIONS_TABLE`, `CONTACTS_TABLE`, `TEMPLATES_TABLE`,
/// `MESSAGES_TABLE`, `DEDUPE_TABLE`, `SEND_CONTROL_TABLE`, `SEND_QUEUE_URL`,
/// `SEND_DLQ_URL`, `OUTCOMES_QUEUE_URL`, `MEDIA_IDS_TABLE`, and `S3_FORCE_PATH_STYLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderResources {
    pub sessions_table: String,
    pub contacts_table: String,
    pub templates_table: String,
    pub messages_table: String,
    pub dedupe_table: String,
    pub control_table: String,
    pub send_queue_url: String,
    pub send_dlq_url: String,
    pub outcomes_queue_url: String,
    /// Uploaded media ids by S3 object version.
    pub media_ids_table: String,
    /// Path-style S3 URLs, for a local emulator.
    pub s3_path_style: bool,
}

impl SenderResources {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(SenderResources {
            sessions_table: env.required("SESSIONS_TABLE")?,
            contacts_table: env.required("CONTACTS_TABLE")?,
            templates_table: env.required("TEMPLATES_TABLE")?,
            messages_table: env.required("MESSAGES_TABLE")?,
            dedupe_table: env.required("DEDUPE_TABLE")?,
            control_table: env.required("SEND_CONTROL_TABLE")?,
            send_queue_url: env.required("SEND_QUEUE_URL")?,
            send_dlq_url: env.required("SEND_DLQ_URL")?,
            outcomes_queue_url: env.required("OUTCOMES_QUEUE_URL")?,
            media_ids_table: env.required("MEDIA_IDS_TABLE")?,
            s3_path_style: env.parsed_or("S3_FORCE_PATH_STYLE", false)?,
        })
    }
}

/// The sender's ports on AWS.
pub struct AwsSenderPorts<G = GraphHttpClient> {
    pub sessions: DynamoSessionStore,
    pub contacts: DynamoContactStore,
    pub templates: DynamoTemplateStore,
    pub messages: DynamoMessageStore,
    pub dedupe: DynamoDedupeStore,
    pub control: DynamoSendControl,
    pub graph: G,
    pub secrets: CachedSecrets<SecretsManagerFetcher>,
    pub outcomes: SqsQueue,
    pub dead_letters: SqsQueue,
    pub send_queue: SqsQueue,
    pub media: GraphHttpClient,
    pub objects: S3Objects,
    pub media_ids: DynamoMediaIds,
}

impl<G> AwsSenderPorts<G> {
    /// `media` uploads the files of jobs whose media names an S3 object (the Graph client,
    /// unwrapped: `graph` may be a test's wrapper around the same client).
    pub fn new(
        aws: &aws_config::SdkConfig,
        r: &SenderResources,
        graph: G,
        media: GraphHttpClient,
        secrets: CachedSecrets<SecretsManagerFetcher>,
    ) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        AwsSenderPorts {
            sessions: DynamoSessionStore::new(ddb.clone(), &r.sessions_table),
            contacts: DynamoContactStore::new(ddb.clone(), &r.contacts_table),
            templates: DynamoTemplateStore::new(ddb.clone(), &r.templates_table),
            messages: DynamoMessageStore::new(ddb.clone(), &r.messages_table),
            dedupe: DynamoDedupeStore::new(ddb.clone(), &r.dedupe_table),
            control: DynamoSendControl::new(ddb.clone(), &r.control_table),
            media_ids: DynamoMediaIds::new(ddb, &r.media_ids_table),
            media,
            objects: S3Objects::new(whatsapp_aws::s3_client(aws, r.s3_path_style)),
            graph,
            secrets,
            outcomes: SqsQueue::new(sqs.clone(), &r.outcomes_queue_url),
            dead_letters: SqsQueue::new(sqs.clone(), &r.send_dlq_url),
            send_queue: SqsQueue::new(sqs, &r.send_queue_url),
        }
    }
}

impl<G: whatsapp_core::ports::GraphApi> crate::SenderPorts for AwsSenderPorts<G> {
    type Sessions = DynamoSessionStore;
    type Contacts = DynamoContactStore;
    type Templates = DynamoTemplateStore;
    type Messages = DynamoMessageStore;
    type Dedupe = DynamoDedupeStore;
    type Control = DynamoSendControl;
    type Graph = G;
    type Secrets = CachedSecrets<SecretsManagerFetcher>;
    type Outcomes = SqsQueue;
    type DeadLetters = SqsQueue;
    type Redelivery = SqsQueue;
    type Media = GraphHttpClient;
    type Objects = S3Objects;
    type MediaIds = DynamoMediaIds;

    fn sessions(&self) -> &Self::Sessions {
        &self.sessions
    }
    fn contacts(&self) -> &Self::Contacts {
        &self.contacts
    }
    fn templates(&self) -> &Self::Templates {
        &self.templates
    }
    fn messages(&self) -> &Self::Messages {
        &self.messages
    }
    fn dedupe(&self) -> &Self::Dedupe {
        &self.dedupe
    }
    fn control(&self) -> &Self::Control {
        &self.control
    }
    fn graph(&self) -> &Self::Graph {
        &self.graph
    }
    fn secrets(&self) -> &Self::Secrets {
        &self.secrets
    }
    fn outcomes(&self) -> &Self::Outcomes {
        &self.outcomes
    }
    fn dead_letters(&self) -> &Self::DeadLetters {
        &self.dead_letters
    }
    fn redelivery(&self) -> &Self::Redelivery {
        &self.send_queue
    }
    fn media(&self) -> &GraphHttpClient {
        &self.media
    }
    fn objects(&self) -> &S3Objects {
        &self.objects
    }
    fn media_ids(&self) -> &DynamoMediaIds {
        &self.media_ids
    }
}
