//! The webhook handler under mutated real payloads (#16's fuzz run): every fixture in
//! `events/meta/` is mutated (byte flips, truncation, type swaps, deep nesting, huge arrays,
//! odd unicode), validly signed and posted. The handler must never panic, and must never
//! answer 5xx to a validly signed body: Meta would retry it for days, and a body that can never
//! be processed would block nothing but cost retries forever. Whatever it answers 200 to is
//! durable: processed, published for others, or quarantined.
//!
//! `FUZZ_CASES` sets the number of cases (default 2,000, what CI runs). The documented run:
//! `FUZZ_CASES=1000000 cargo test --profile perf -p webhook --test fuzz` (docs/webhook.md).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use webhook::{Settings, Webhook};
use whatsapp_core::signature::sign;
use whatsapp_core::webhook::Envelope;
use whatsapp_fakes::{MemoryPorts, MemoryQueue, StaticSecrets};

const SECRET: &str = "fuzz-app-secret-0123456789";

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/meta");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("events/meta")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| std::fs::read(e.path()).expect("fixture"))
        .collect();
    out.sort();
    assert!(out.len() >= 30, "the fixtures are there");
    out
}

/// One way to damage a body.
#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite bytes at these (relative) positions.
    Flip(Vec<(f64, u8)>),
    /// Keep only this share of the body.
    Truncate(f64),
    /// Replace the node at this walk index by a value of another type.
    Swap(usize, Replacement),
    /// Wrap the node at this walk index in this many arrays or objects.
    Nest(usize, usize, bool),
    /// Repeat the first element of the array at this walk index this many times.
    Grow(usize, usize),
    /// Replace the string at this walk index by odd unicode.
    Unicode(usize, usize),
}

#[derive(Debug, Clone)]
enum Replacement {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Big,
    Str(String),
    EmptyArray,
    EmptyObject,
}

const ODD: &[&str] = &[
    "\u{0}",
    "\u{202e}RTL override",
    "e\u{301}\u{301}\u{301}",
    "😀👩🏽‍🚀",
    "\u{feff}STOP",
    "ＳＴＯＰ",
    "\u{fffd}\u{fffe}",
    "\\ud800 not a pair",
    "a\nb\r\tc",
    "",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let replacement = prop_oneof![
        Just(Replacement::Null),
        any::<bool>().prop_map(Replacement::Bool),
        any::<i64>().prop_map(Replacement::Int),
        any::<f64>().prop_map(Replacement::Float),
        Just(Replacement::Big),
        ".{0,40}".prop_map(Replacement::Str),
        Just(Replacement::EmptyArray),
        Just(Replacement::EmptyObject),
    ];
    prop_oneof![
        prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..8).prop_map(Mutation::Flip),
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        (any::<usize>(), replacement).prop_map(|(i, r)| Mutation::Swap(i, r)),
        (any::<usize>(), 1..300usize, any::<bool>()).prop_map(|(i, d, a)| Mutation::Nest(i, d, a)),
        (any::<usize>(), 1..3_000usize).prop_map(|(i, n)| Mutation::Grow(i, n)),
        (any::<usize>(), 0..ODD.len()).prop_map(|(i, u)| Mutation::Unicode(i, u)),
    ]
}

/// Every node's JSON pointer, in a fixed walk order.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// The node at walk index `index` (modulo the number of nodes).
fn node(v: &mut Value, index: usize) -> &mut Value {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let pointer = all[index % all.len()].clone();
    v.pointer_mut(&pointer).expect("a pointer of this value")
}

/// A number literal no integer or float type holds.
const BIG: &str = "123456789012345678901234567890123456789e999";
const BIG_MARK: &str = "__fuzz_big_number__";

fn mutate(body: &[u8], m: &Mutation) -> Vec<u8> {
    let mut v: Value = match m {
        Mutation::Flip(flips) => {
            let mut out = body.to_vec();
            for (at, byte) in flips {
                let i = ((out.len() as f64) * at) as usize;
                if let Some(b) = out.get_mut(i) {
                    *b = *byte;
                }
            }
            return out;
        }
        Mutation::Truncate(share) => {
            return body[..((body.len() as f64) * share) as usize].to_vec();
        }
        // An earlier byte-level mutation may have broken the JSON: nothing to walk.
        _ => match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return body.to_vec(),
        },
    };
    match m {
        Mutation::Swap(i, r) => {
            *node(&mut v, *i) = match r {
                Replacement::Null => Value::Null,
                Replacement::Bool(b) => Value::Bool(*b),
                Replacement::Int(n) => Value::from(*n),
                Replacement::Float(f) => serde_json::Number::from_f64(*f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Replacement::Big => Value::String(BIG_MARK.into()),
                Replacement::Str(s) => Value::String(s.clone()),
                Replacement::EmptyArray => Value::Array(vec![]),
                Replacement::EmptyObject => Value::Object(Default::default()),
            }
        }
        Mutation::Nest(i, depth, arrays) => {
            let at = node(&mut v, *i);
            let mut inner = at.take();
            for _ in 0..*depth {
                inner = if *arrays {
                    Value::Array(vec![inner])
                } else {
                    serde_json::json!({ "x": inner })
                };
            }
            *at = inner;
        }
        Mutation::Grow(i, n) => {
            if let Value::Array(items) = node(&mut v, *i)
                && let Some(first) = items.first().cloned()
            {
                items.extend(std::iter::repeat_n(first, *n));
            }
        }
        Mutation::Unicode(i, u) => {
            let at = node(&mut v, *i);
            if at.is_string() || at.is_null() {
                *at = Value::String(ODD[*u].to_owned());
            }
        }
        Mutation::Flip(_) | Mutation::Truncate(_) => {}
    }
    let text = serde_json::to_string(&v).expect("a value serialises");
    // Deep nesting: serde_json's own writer has no depth limit, and its reader stops at 128
    // (an error, which the handler must answer like any other unparsable body).
    text.replace(&format!("\"{BIG_MARK}\""), BIG).into_bytes()
}

fn handler() -> Webhook<MemoryPorts, StaticSecrets, MemoryQueue> {
    Webhook {
        ports: MemoryPorts::default(),
        secrets: StaticSecrets::new(SECRET, "fuzz-verify-token-0123", "access-token"),
        events: MemoryQueue::default(),
        settings: Settings::default(),
    }
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn mutated_real_payloads_never_panic_and_never_get_a_5xx() {
    let fixtures = fixtures();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..fixtures.len(), prop::collection::vec(mutation(), 1..4));
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |(f, mutations)| {
        let mut body = fixtures[f].clone();
        for m in &mutations {
            body = mutate(&body, m);
        }
        // A fresh handler each case: no state carried between cases hides a failure.
        let hook = handler();
        let sig = sign(SECRET.as_bytes(), &body);
        let (response, tally) =
            runtime.block_on(hook.receive(Some(&sig), &body, 1_751_234_567_000));
        prop_assert!(
            response.status == 200 || response.status == 413,
            "status {} for a validly signed body ({} bytes)",
            response.status,
            body.len()
        );
        if response.status == 200 {
            // Nothing acknowledged is lost: every item was applied, a duplicate, published,
            // or queued; an unparsable body was quarantined.
            let accounted = tally.applied + tally.duplicates + tally.published + tally.queued;
            prop_assert_eq!(accounted, tally.items, "{:?}", tally);
            if Envelope::from_slice(&body).is_err() {
                let kept = hook.ports.quarantine.kept.lock().unwrap().len();
                prop_assert_eq!(kept, 1, "an unparsable signed body is quarantined");
            }
            prop_assert_eq!(tally.queued, 0, "in-memory ports never fail");
        }
        Ok(())
    });
    eprintln!(
        "fuzz: {} cases in {:.1} s",
        cases(),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
