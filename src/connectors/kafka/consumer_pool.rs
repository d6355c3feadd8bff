//! Consumers kept between reads of the same partition.
//!
//! A micro-batch reads each partition's next range right where the previous batch stopped.
//! Creating a consumer for it costs a connection, metadata and a first fetch (about 10 ms on
//! a local broker); a consumer that ended exactly at the previous range's end is instead
//! parked here, still positioned there and already prefetching what follows. The next read of
//! that partition starting at that offset takes it back. Consumers idle for [`IDLE`] are
//! closed by a background thread.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;

use super::config::ScanConsumer;

/// How long a parked consumer waits for the next read before it is closed.
const IDLE: Duration = Duration::from_secs(30);
/// Parked consumers per partition and configuration, at most.
const PER_KEY: usize = 4;

/// Which consumers may serve a read: same client settings, topic and partition. The settings
/// are hashed so secrets are not kept in another copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct PoolKey(u64);

impl PoolKey {
    /// The key of consumers made from `config` for `topic` partition `partition`.
    pub(super) fn new(config: &ClientConfig, topic: &str, partition: i32) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        config.config_map().hash(&mut hasher);
        topic.hash(&mut hasher);
        partition.hash(&mut hasher);
        Self(hasher.finish())
    }
}

struct Parked {
    consumer: ScanConsumer,
    /// The offset the consumer delivers next.
    next: i64,
    since: Instant,
}

fn pool() -> &'static Mutex<HashMap<PoolKey, Vec<Parked>>> {
    static POOL: OnceLock<Mutex<HashMap<PoolKey, Vec<Parked>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        // The reaper lives as long as the process; it wakes a few times per IDLE period.
        let _ = std::thread::Builder::new()
            .name("kafka-consumer-pool".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(IDLE / 6);
                    let stale = take_stale(Instant::now());
                    drop(stale); // librdkafka's teardown, outside the lock
                }
            });
        Mutex::new(HashMap::new())
    })
}

fn locked() -> std::sync::MutexGuard<'static, HashMap<PoolKey, Vec<Parked>>> {
    pool().lock().unwrap_or_else(|p| p.into_inner())
}

/// A parked consumer of `key` whose next offset is `start`, if there is one.
pub(super) fn take(key: PoolKey, start: i64) -> Option<ScanConsumer> {
    let mut pool = locked();
    let parked = pool.get_mut(&key)?;
    let at = parked.iter().position(|p| p.next == start)?;
    Some(parked.swap_remove(at).consumer)
}

/// Parks `consumer`, which delivers `next` next; the oldest of the key's consumers beyond
/// [`PER_KEY`] is closed.
pub(super) fn park(key: PoolKey, consumer: ScanConsumer, next: i64) {
    let surplus = {
        let mut pool = locked();
        let parked = pool.entry(key).or_default();
        parked.push(Parked {
            consumer,
            next,
            since: Instant::now(),
        });
        if parked.len() > PER_KEY {
            parked.sort_by_key(|p| std::cmp::Reverse(p.since));
            parked.split_off(PER_KEY)
        } else {
            Vec::new()
        }
    };
    drop(surplus);
}

/// Removes the consumers parked for longer than [`IDLE`] at `now`.
fn take_stale(now: Instant) -> Vec<ScanConsumer> {
    let mut pool = locked();
    let mut stale = Vec::new();
    for parked in pool.values_mut() {
        let (old, fresh): (Vec<Parked>, Vec<Parked>) = std::mem::take(parked)
            .into_iter()
            .partition(|p| now.duration_since(p.since) >= IDLE);
        *parked = fresh;
        stale.extend(old.into_iter().map(|p| p.consumer));
    }
    pool.retain(|_, parked| !parked.is_empty());
    stale
}
