//! Stage 2, per number: gate 6, the number's throughput. Every ready record of a number
//! reserves a slot of the shared counters in as few writes as they allow; the slot arithmetic is
//! [`whatsapp_core::policy`]'s.

use std::collections::HashMap;
use std::time::Instant;

use whatsapp_core::policy::{
    THROUGHPUT_SLOT_MS, granted, shard_capacity, slot_capacity, slot_of, slot_shards,
};
use whatsapp_core::ports::{NumberLimits, SendControl, StoreError};

use crate::step::{Clock, Step, delay_seconds};
use crate::{Sender, SenderPorts, lock};

impl<P: SenderPorts> Sender<P> {
    /// The limits the poller stored for a number, cached for `limits_cache`. A read error is
    /// the caller's to handle: the marketing pause and the tier fail closed (the job waits).
    pub(crate) async fn number_limits(
        &self,
        phone_number_id: &str,
    ) -> Result<NumberLimits, StoreError> {
        if let Some((at, l)) = lock(&self.limits).get(phone_number_id)
            && at.elapsed() < self.config.limits_cache
        {
            return Ok(l.clone());
        }
        let l = self.ports.control().number_limits(phone_number_id).await?;
        lock(&self.limits).insert(phone_number_id.to_owned(), (Instant::now(), l.clone()));
        Ok(l)
    }

    /// Gate 6: reserves a throughput slot for every ready record, per number.
    pub(crate) async fn reserve_throughput(&self, steps: &mut [Step], clock: Clock) {
        let mut by_number: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            if let Step::Ready(r) = s {
                by_number
                    .entry(r.job.phone_number_id.clone())
                    .or_default()
                    .push(i);
            }
        }
        for (pn, idx) in by_number {
            let pending = self.reserve_for_number(&pn, &idx, steps, clock).await;
            // No slot within the wait we allow: back to the queue, nothing sent.
            for i in pending {
                if let Step::Ready(r) = &steps[i] {
                    let delay = 1_000 + whatsapp_core::jitter_ms(1_000) as i64;
                    let cp = r.unsent();
                    steps[i] = match self
                        .hold(&r.key, &r.owner, clock.now_ms() + delay, &cp)
                        .await
                    {
                        Ok(()) => Step::Later {
                            delay_s: Some(delay_seconds(delay)),
                        },
                        Err(_) => Step::Later { delay_s: None },
                    };
                }
            }
        }
    }

    /// Takes slots for the records `idx` of number `pn`, from the first slot not known to be
    /// full, within the wait allowed. Returns the records that got none.
    async fn reserve_for_number(
        &self,
        pn: &str,
        idx: &[usize],
        steps: &mut [Step],
        clock: Clock,
    ) -> Vec<usize> {
        // The default cap is Meta's own for every number: pacing by it is never too fast.
        let mps = match self.number_limits(pn).await {
            Ok(l) => l.mps.unwrap_or(self.config.default_mps),
            Err(e) => {
                tracing::warn!(error = %e, "number limits unavailable; pacing at the default cap");
                self.config.default_mps
            }
        };
        let now_ms = clock.now_ms();
        let first = slot_of(now_ms);
        let last = slot_of(now_ms + self.config.throughput_max_wait_ms);
        let mut slot = lock(&self.next_slot)
            .get(pn)
            .copied()
            .filter(|s| (first..=last).contains(s))
            .unwrap_or(first);
        let mut pending = idx;
        // Above 250 msg/s a slot is spread over several keys; each call starts at a shard of
        // its own, so concurrent senders spread their writes over them.
        let shards = slot_shards(mps);
        let start = whatsapp_core::jitter_ms(u64::from(shards)) as u32;
        let mut tried = 0;
        while !pending.is_empty() && slot <= last {
            let shard = (start + tried) % shards;
            let capacity = shard_capacity(slot_capacity(mps, slot), shard, shards);
            let next = |slot: &mut i64, tried: &mut u32| {
                *tried += 1;
                if *tried == shards {
                    *tried = 0;
                    *slot += 1;
                }
            };
            if capacity == 0 {
                next(&mut slot, &mut tried);
                continue;
            }
            let wanted = u32::try_from(pending.len()).unwrap_or(u32::MAX);
            let got = match self
                .ports
                .control()
                .add_to_slot(pn, slot, shard, wanted)
                .await
            {
                Ok(count) => granted(count, wanted, capacity),
                Err(e) => {
                    tracing::warn!(error = %e, "throughput slot unavailable");
                    break;
                }
            };
            let (now_taken, rest) = pending.split_at(got as usize);
            for &i in now_taken {
                if let Step::Ready(r) = &mut steps[i] {
                    r.slot_at_ms = Some(slot * THROUGHPUT_SLOT_MS);
                }
            }
            pending = rest;
            if !pending.is_empty() || got == capacity {
                next(&mut slot, &mut tried);
            }
        }
        lock(&self.next_slot).insert(pn.to_owned(), slot);
        pending.to_vec()
    }
}
