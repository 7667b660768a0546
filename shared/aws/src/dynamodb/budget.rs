//! The portfolio's messaging-limit budget on the send-control table, sharded
//! ([`whatsapp_core::policy::BudgetShard`] says how a shard is stored and why): a new user takes
//! one slot with one conditional `UpdateItem`, together with the other new users this instance
//! reserves for at the same moment (`budget_batch.rs`: a batch's users, one write), then their
//! `REACH#` record. When the group's shard has no room for the group, each user tries the
//! shard their id hashes to alone; only when that one is full are the others read (one
//! `BatchGetItem`) and tried, most room first, so the portfolio refuses only when every shard
//! is full: the shards' limits sum to the portfolio's, so it never admits more.
//!
//! Order of the writes: the slot first, the user's record second. If the record finds the user
//! counted meanwhile (another sender, the same user), the slot is given back. A crash between
//! the two leaves one slot taken for nobody until its hour leaves the window: the budget errs
//! towards refusing, never towards reaching more users than Meta allows.

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::{Item, condition_failed, n, num, s, update_conditionally};
use whatsapp_core::policy::{
    BudgetShard, Prune, REACH_HOURS, REACH_SHARDS, Reach, ReachRefused, budget_key, day_attr,
    hour_attr, reach_counted, reach_shard, reach_shard_limit,
};
use whatsapp_core::ports::StoreError;

use super::DynamoSendControl;

/// A shard item as the policy reads it.
pub fn budget_shard(item: &Item) -> BudgetShard {
    BudgetShard::from_attrs(item.iter().filter_map(|(k, v)| {
        let v: i64 = v.as_n().ok()?.parse().ok()?;
        Some((k.as_str(), v))
    }))
}

impl DynamoSendControl {
    /// Counts `user` against the portfolio's `limit` (see the module).
    pub(super) async fn reserve_reach(
        &self,
        portfolio_id: &str,
        user: &str,
        now: i64,
        limit: u32,
    ) -> Result<Reach, StoreError> {
        let reach_pk = format!("REACH#{portfolio_id}#{user}");
        // Eventually consistent (half a read unit): a stale answer can only be an older
        // `reached_at`, so at worst a slot is reserved and given back when the conditional put
        // below finds the user counted; never a user counted twice or missed.
        let seen = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(reach_pk.clone()))
            .send()
            .await
            .map_err(|e| StoreError::new("control.reach_get", e))?
            .item;
        if let Some(item) = seen
            && reach_counted(num(&item, "reached_at"), now)
        {
            return Ok(Reach::AlreadyCounted);
        }
        let first = reach_shard(user);
        let shard = if let Some(shard) = self.group_slot(portfolio_id, user, now, limit).await? {
            shard
        } else if self
            .reserve_in_shard(portfolio_id, first, limit, 1, now)
            .await?
        {
            first
        } else {
            match self
                .reserve_elsewhere(portfolio_id, first, limit, now)
                .await?
            {
                Ok(shard) => shard,
                Err(retry_at) => return Ok(Reach::Refused(ReachRefused { limit, retry_at })),
            }
        };
        let cut = now - REACH_HOURS * 3600;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(reach_pk))
            .item("reached_at", n(now))
            .item("expires_at", n(now + 2 * 24 * 3600))
            .condition_expression("attribute_not_exists(pk) OR reached_at <= :cut")
            .expression_attribute_values(":cut", n(cut))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Reach::Reserved),
            Err(e) => {
                self.give_back(portfolio_id, shard, now).await;
                match condition_failed(&e) {
                    // Counted by another sender meanwhile: no slot of ours needed.
                    Some(_) => Ok(Reach::AlreadyCounted),
                    None => Err(StoreError::new("control.reach_put", e)),
                }
            }
        }
    }

    /// The shards other than `tried` (which was full), most room first; `Err(retry_at)` when
    /// every shard is full, `retry_at` being when the earliest of them frees a slot.
    async fn reserve_elsewhere(
        &self,
        portfolio_id: &str,
        tried: u32,
        limit: u32,
        now: i64,
    ) -> Result<Result<u32, i64>, StoreError> {
        let shards = self.read_shards(portfolio_id, true).await?;
        let room = |k: u32| shards[k as usize].room(now, reach_shard_limit(limit, k));
        let mut order: Vec<u32> = (1..REACH_SHARDS)
            .map(|i| (tried + i) % REACH_SHARDS)
            .filter(|&k| room(k) > 0)
            .collect();
        order.sort_by_key(|&k| std::cmp::Reverse(room(k)));
        for k in order {
            if self
                .reserve_in_shard(portfolio_id, k, limit, 1, now)
                .await?
            {
                return Ok(Ok(k));
            }
        }
        let frees_at = (0..REACH_SHARDS)
            .filter(|&k| reach_shard_limit(limit, k) > 0)
            .map(|k| shards[k as usize].frees_at(now))
            .min()
            .unwrap_or((now.div_euclid(3600) + 1 + REACH_HOURS) * 3600);
        Ok(Err(frees_at))
    }

    /// Brings a shard current: removes the hours that left the window (and day counts older
    /// than the projection needs) and takes their users off `used`, if no one pruned it since
    /// `seen` was read.
    pub(super) async fn prune(
        &self,
        pk: &str,
        seen: &BudgetShard,
        p: &Prune,
    ) -> Result<(), StoreError> {
        let Some(seen_oldest) = seen.oldest else {
            return Ok(());
        };
        let mut remove: Vec<String> = p
            .hours
            .iter()
            .map(|h| hour_attr(*h))
            .chain(p.days.iter().map(|d| day_attr(*d)))
            .collect();
        let mut values = vec![
            (":seen", n(seen_oldest)),
            (":minus", n(-i64::try_from(p.freed).unwrap_or(i64::MAX))),
        ];
        let set = match p.oldest {
            Some(o) => {
                values.push((":new", n(o)));
                "SET oldest = :new "
            }
            None => {
                remove.push("oldest".into());
                ""
            }
        };
        let update = format!("{set}REMOVE {} ADD used :minus", remove.join(", "));
        // Not applied: another sender pruned it first, which is as good.
        update_conditionally(
            &self.client,
            &self.table,
            s(pk),
            "control.budget_prune",
            &update,
            "oldest = :seen",
            values,
        )
        .await?;
        Ok(())
    }

    /// Returns the slot a reservation took at `now` on `shard`. Best effort: if it fails, the
    /// slot stays taken until its hour leaves the window (towards refusing, never over).
    async fn give_back(&self, portfolio_id: &str, shard: u32, now: i64) {
        let h = hour_attr(now.div_euclid(3600));
        let d = day_attr(now.div_euclid(86_400));
        let res = update_conditionally(
            &self.client,
            &self.table,
            s(budget_key(portfolio_id, shard)),
            "control.budget_give_back",
            &format!("SET {h} = {h} - :one ADD used :minus, {d} :minus"),
            &format!("{h} >= :one AND used >= :one"),
            vec![(":one", n(1)), (":minus", n(-1))],
        )
        .await;
        if !matches!(res, Ok(ref u) if u.applied) {
            tracing::warn!(shard, "a messaging-limit slot could not be given back");
        }
    }

    /// Every shard of a portfolio's budget, by shard number (a missing one is empty).
    pub(super) async fn read_shards(
        &self,
        portfolio_id: &str,
        consistent: bool,
    ) -> Result<Vec<BudgetShard>, StoreError> {
        let mut shards = vec![BudgetShard::default(); REACH_SHARDS as usize];
        let key_of = |k: u32| {
            std::collections::HashMap::from([("pk".to_owned(), s(budget_key(portfolio_id, k)))])
        };
        let mut pending: Vec<Item> = (0..REACH_SHARDS).map(key_of).collect();
        // BatchGetItem may hand some keys back unprocessed; ask again for those (bounded).
        for _ in 0..5 {
            if pending.is_empty() {
                break;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(
                    &self.table,
                    KeysAndAttributes::builder()
                        .set_keys(Some(std::mem::take(&mut pending)))
                        .consistent_read(consistent)
                        .build()
                        .map_err(|e| StoreError::new("control.budget_read", e))?,
                )
                .send()
                .await
                .map_err(|e| StoreError::new("control.budget_read", e))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let shard = (0..REACH_SHARDS).find(|&k| {
                    item.get("pk").and_then(|v| v.as_s().ok()) == Some(&budget_key(portfolio_id, k))
                });
                if let Some(k) = shard {
                    shards[k as usize] = budget_shard(item);
                }
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(StoreError::new(
                "control.budget_read",
                "keys stayed unprocessed",
            ));
        }
        Ok(shards)
    }
}

/// The item of a shard as a test or tool would seed it: `used` users reached in `hour`.
pub fn budget_shard_item(hour: i64, used: u32) -> Vec<(String, AttributeValue)> {
    vec![
        (hour_attr(hour), n(i64::from(used))),
        ("used".into(), n(i64::from(used))),
        ("oldest".into(), n(hour)),
    ]
}
