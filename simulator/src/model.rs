//! The simulated world: businesses, numbers, templates, users, and what was sent.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::Value;

/// A portfolio messaging limit: unique users outside a service window per moving 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tier {
    T250,
    T2K,
    T10K,
    T100K,
    Unlimited,
}

impl Tier {
    pub fn limit(self) -> Option<usize> {
        match self {
            Tier::T250 => Some(250),
            Tier::T2K => Some(2_000),
            Tier::T10K => Some(10_000),
            Tier::T100K => Some(100_000),
            Tier::Unlimited => None,
        }
    }

    /// As in `whatsapp_business_manager_messaging_limit`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::T250 => "TIER_250",
            Tier::T2K => "TIER_2K",
            Tier::T10K => "TIER_10K",
            Tier::T100K => "TIER_100K",
            Tier::Unlimited => "TIER_UNLIMITED",
        }
    }

    /// As in `max_daily_conversations_per_business` (`-1`: unlimited).
    pub fn number(self) -> i64 {
        self.limit().map_or(-1, |l| l as i64)
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "TIER_250" | "250" => Tier::T250,
            "TIER_2K" | "2000" => Tier::T2K,
            "TIER_10K" | "10000" => Tier::T10K,
            "TIER_100K" | "100000" => Tier::T100K,
            "TIER_UNLIMITED" | "UNLIMITED" | "-1" => Tier::Unlimited,
            _ => return None,
        })
    }
}

/// A WhatsApp Business Account; it stands for its business portfolio too.
#[derive(Debug, Clone, Serialize)]
pub struct Waba {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub tier: Tier,
    /// The secret of the Meta app this account's webhooks go to, when it is not the
    /// simulator's `app_secret` (one simulator, several apps).
    #[serde(skip)]
    pub app_secret: Option<String>,
    /// Business-initiated reach: user → when we last reached them outside a window.
    #[serde(skip)]
    pub reached: HashMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phone {
    pub id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    pub verified_name: String,
    /// GREEN, YELLOW, RED, UNKNOWN.
    pub quality_rating: String,
    /// CONNECTED, FLAGGED, RESTRICTED, ...
    pub status: String,
    pub name_status: String,
    /// STANDARD or HIGH.
    pub throughput_level: String,
    /// Messages per second this number may send.
    pub mps: u32,
}

/// A simulated WhatsApp user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub user_id: String,
    pub wa_id: Option<String>,
    pub name: String,
    pub country: String,
    pub on_whatsapp: bool,
    pub marketing_stopped: bool,
    /// Per business number: when the user last wrote.
    pub last_inbound: HashMap<String, i64>,
    /// Per business number: when the user last wrote through a click-to-WhatsApp ad.
    pub last_referral: HashMap<String, i64>,
    /// Per business number: when our reply opened the free entry point window.
    pub fep_opened: HashMap<String, i64>,
    /// When marketing templates reached this user (for the per-user cap).
    #[serde(skip)]
    pub marketing_received: VecDeque<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub rejected_reason: Option<String>,
    pub parameter_format: String,
    pub components: Value,
    /// When each edit of this template happened (for the edit limits).
    pub edits: Vec<i64>,
    pub created_at: i64,
    /// Quality pauses so far: the third disables the template.
    pub pauses: u32,
}

impl Template {
    /// The body text and the parameters each component expects.
    pub fn component(&self, kind: &str) -> Option<&Value> {
        self.components.as_array()?.iter().find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
    }
}

/// How Meta priced a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Priced {
    /// Webhook spelling: `marketing`, `utility`, `authentication`,
    /// `authentication-international`, `service`, `referral_conversion`.
    pub category: String,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    pub kind: String,
}

impl Priced {
    pub fn billable(&self) -> bool {
        self.kind == "regular"
    }
}

/// A message the simulator accepted.
#[derive(Debug, Clone, Serialize)]
pub struct Outbound {
    pub wamid: String,
    pub phone_number_id: String,
    pub user_id: String,
    pub wa_id: Option<String>,
    pub country: String,
    pub message_type: String,
    pub template: Option<String>,
    pub callback_data: Option<String>,
    pub accepted_at: i64,
    pub priced: Priced,
    /// `delivered` (and so priced), or the error code it failed with.
    pub outcome: Result<(), i64>,
    /// The route it came through: `messages` or `marketing_messages`.
    pub api: &'static str,
    /// CBP conversation id, for webhook versions ≤ v23.0.
    pub conversation_id: String,
    pub conversation_expires: i64,
}

/// An inbound message a simulated user sent.
#[derive(Debug, Clone, Serialize)]
pub struct Inbound {
    pub wamid: String,
    pub phone_number_id: String,
    pub user_id: String,
    pub at: i64,
    pub read: bool,
    /// When a typing indicator was last shown for this message (mark-as-read with
    /// `typing_indicator`).
    pub typing_at: Option<i64>,
}

/// A Graph request as the simulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub error_code: Option<i64>,
    pub body: Value,
    pub at_ms: i64,
    /// The answer was an injected fault (or the fault mix's), not the simulator's own rules.
    pub injected: bool,
}

/// A webhook POST the simulator made.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub body: String,
    pub signature: String,
    pub attempt: u32,
    /// HTTP status, or `None` when the endpoint could not be reached.
    pub status: Option<u16>,
}

/// What an account is restricted from.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    /// Marketing templates must go through the Marketing Messages API (131063).
    pub marketing_on_cloud_disabled: bool,
    /// Until when (epoch s) templates are refused for classification violations (131064).
    pub classification_hold_until: Option<i64>,
    /// ISO countries the account may not message (130497).
    pub barred_countries: std::collections::BTreeSet<String>,
    /// The portfolio accepted the Marketing Messages API's terms: `/marketing_messages` takes
    /// its marketing templates.
    pub marketing_messages_onboarded: bool,
}

/// One registered access token (checked in `access.rs`).
#[derive(Debug, Clone)]
pub struct Grant {
    /// Epoch seconds; `None` never expires.
    pub expires_at: Option<i64>,
    /// The accounts it may act for; `None` every account.
    pub wabas: Option<std::collections::BTreeSet<String>>,
}

/// The whole simulated state.
#[derive(Debug, Default)]
pub struct World {
    pub tokens: HashMap<String, Grant>,
    pub wabas: BTreeMap<String, Waba>,
    pub phones: BTreeMap<String, Phone>,
    pub templates: BTreeMap<String, Template>,
    /// By `user_id`.
    pub users: HashMap<String, User>,
    /// `wa_id` → `user_id`.
    pub wa_index: HashMap<String, String>,
    pub outbound: HashMap<String, Outbound>,
    /// Order in which messages were accepted.
    pub outbound_order: Vec<String>,
    pub inbound: HashMap<String, Inbound>,
    pub requests: Vec<RequestRecord>,
    pub deliveries: Vec<Delivery>,
    /// Per phone number: (tokens, last refill in ms).
    pub buckets: HashMap<String, (f64, i64)>,
    /// Per (phone, user): when the last message was accepted, in ms.
    pub pair_last: HashMap<(String, String), i64>,
    /// CBP conversations: (phone, user, category) → (id, expires).
    pub conversations: HashMap<(String, String, String), (String, i64)>,
    /// Per account: the template listing's generation, part of every paging cursor.
    pub cursor_generation: HashMap<String, u64>,
    /// Per account: what it is restricted from.
    pub restrictions: HashMap<String, Restrictions>,
    /// Users in a marketing experiment group (130472).
    pub experiment_users: HashSet<String>,
    /// Per user: the current identity key hash (137000).
    pub identity_keys: HashMap<String, String>,
    /// (account, user) → when marketing to the user last failed with 131049.
    pub marketing_refused: HashMap<(String, String), i64>,
    /// Per account: marketing sent to a user within 24 h of a 131049 for them.
    pub excessive_marketing_retries: HashMap<String, u32>,
    /// Media objects by id (uploaded and inbound).
    pub media: HashMap<String, MediaObject>,
    /// Download-URL token → (media id, expiry in ms).
    pub media_urls: HashMap<String, (String, i64)>,
    pub seq: u64,
    /// This simulator's own part of every wamid. Meta's ids never repeat, so a restarted
    /// simulator must not hand out the ids an earlier one did: a stack kept running across
    /// local runs has them recorded, and would take a new message for a duplicate.
    pub instance: String,
}

/// How many requests and deliveries the inspection logs keep (the oldest are dropped), so a
/// long local run does not grow without bound.
pub const LOG_LIMIT: usize = 200_000;

/// Appends to an inspection log, dropping the oldest tenth when it is full.
pub fn push_capped<T>(log: &mut Vec<T>, item: T) {
    if log.len() >= LOG_LIMIT {
        log.drain(..LOG_LIMIT / 10);
    }
    log.push(item);
}

impl World {
    /// An empty world whose wamids are its own (see [`World::instance`]).
    pub fn new() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        World {
            instance: format!("{:x}{:x}", since_epoch.as_nanos(), std::process::id()),
            ..World::default()
        }
    }

    /// A fresh id with a prefix, unique within this simulator.
    pub fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{:012}", self.seq)
    }

    /// A fresh wamid, unique across simulators too.
    pub fn next_wamid(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("wamid.{prefix}{}{:012}", self.instance, self.seq)
    }

    /// The user with phone number `wa_id`, created (on WhatsApp, no window) if unknown.
    pub fn user_for_wa_id(&mut self, wa_id: &str) -> &mut User {
        let uid = match self.wa_index.get(wa_id) {
            Some(u) => u.clone(),
            None => {
                let country = country_of(wa_id);
                let uid = format!(
                    "{country}.{}",
                    10_000_000_000u64 + fnv(wa_id) % 89_999_999_999
                );
                self.wa_index.insert(wa_id.to_owned(), uid.clone());
                self.users.insert(
                    uid.clone(),
                    User {
                        user_id: uid.clone(),
                        wa_id: Some(wa_id.to_owned()),
                        name: format!("User {}", &wa_id[wa_id.len().saturating_sub(4)..]),
                        country: country.to_owned(),
                        on_whatsapp: true,
                        marketing_stopped: false,
                        last_inbound: HashMap::new(),
                        last_referral: HashMap::new(),
                        fep_opened: HashMap::new(),
                        marketing_received: VecDeque::new(),
                    },
                );
                uid
            }
        };
        self.users.get_mut(&uid).expect("just inserted")
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// ISO country of a phone number, from its calling code (the markets the tests use; `ZZ`
/// elsewhere). +1 is counted as the US.
pub fn country_of(wa_id: &str) -> &'static str {
    const CODES: &[(&str, &str)] = &[
        ("971", "AE"),
        ("966", "SA"),
        ("972", "IL"),
        ("351", "PT"),
        ("353", "IE"),
        ("234", "NG"),
        ("254", "KE"),
        ("1", "US"),
        ("7", "RU"),
        ("20", "EG"),
        ("27", "ZA"),
        ("31", "NL"),
        ("33", "FR"),
        ("34", "ES"),
        ("39", "IT"),
        ("44", "GB"),
        ("49", "DE"),
        ("52", "MX"),
        ("54", "AR"),
        ("55", "BR"),
        ("57", "CO"),
        ("60", "MY"),
        ("61", "AU"),
        ("62", "ID"),
        ("63", "PH"),
        ("65", "SG"),
        ("81", "JP"),
        ("82", "KR"),
        ("86", "CN"),
        ("90", "TR"),
        ("91", "IN"),
        ("92", "PK"),
    ];
    let mut best: Option<(&str, &'static str)> = None;
    for &(code, cc) in CODES {
        if wa_id.starts_with(code) && best.is_none_or(|(b, _)| code.len() > b.len()) {
            best = Some((code, cc));
        }
    }
    best.map_or("ZZ", |(_, cc)| cc)
}

/// How long Meta keeps media (uploaded and inbound): 30 days.
pub const MEDIA_RETENTION_S: i64 = 30 * 86_400;

/// One media object.
#[derive(Debug, Clone)]
pub struct MediaObject {
    pub id: String,
    /// The business number that uploaded or received it.
    pub phone_number_id: String,
    pub mime_type: String,
    pub bytes: std::sync::Arc<Vec<u8>>,
    /// Lowercase hex of the SHA-256 of `bytes`.
    pub sha256_hex: String,
    pub filename: Option<String>,
    pub created_at: i64,
    pub deleted: bool,
    /// Uploaded by the business (`true`) or sent by a user.
    pub uploaded: bool,
}

impl MediaObject {
    pub(crate) fn alive(&self, now: i64) -> bool {
        !self.deleted && now < self.created_at + crate::model::MEDIA_RETENTION_S
    }
}
