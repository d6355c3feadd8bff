//! Live discovery: an unbounded scan asks the brokers, every `scan.discovery.interval`, for
//! partitions added to its topics and (with `topic.pattern`) for new matching topics, and reads
//! them from their earliest offset through *spare* output partitions planned for that purpose
//! (one topic partition each while they last, then shared). It also notices topics and
//! partitions deleted under the scan and ends or fails their streams
//! (`scan.discovery.on-deleted`).
//!
//! Orders: a spare output partition is silent until discovery hands it a partition, and an
//! operator that merges ordered partitions (a `WITH ORDER` streaming aggregate, an
//! `ORDER BY`) waits for a row from each of them. So a scan with spares declares no order
//! (not even `_offset`), and a table declaring `WITH ORDER` gets no spares: a partition that
//! appears under such a scan fails it with a message saying why, rather than being left
//! unread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result as DFResult};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use tokio::sync::{mpsc, watch};

use super::plan::{PartitionScan, PlannedScan, TimestampOrder, plan_discovered};
use super::pushdown::Selection;
use crate::error::{Result, TopicsError};
use crate::options::{OnDeleted, TopicOptions};
use crate::source::{LogSet, TopicPartition};

type ScanSender = mpsc::UnboundedSender<DFResult<PartitionScan>>;
type ScanReceiver = mpsc::UnboundedReceiver<DFResult<PartitionScan>>;

/// One live scan's discovery: what existed when it was planned, the spare output partitions
/// new partitions are handed to, and the partitions deleted since.
pub struct Discovery {
    set: LogSet,
    selection: Selection,
    order: TimestampOrder,
    interval: Duration,
    on_deleted: OnDeleted,
    /// The table declares `WITH ORDER` (and so has no spares).
    ordered: bool,
    started: AtomicBool,
    state: Mutex<State>,
    events: watch::Sender<Events>,
}

/// What every stream of the scan watches.
#[derive(Debug, Clone, Default)]
pub(super) struct Events {
    /// Partitions deleted since the scan was planned.
    deleted: BTreeSet<TopicPartition>,
    /// Why the whole scan must stop (a partition appeared that it cannot read).
    failure: Option<String>,
}

struct State {
    known: BTreeSet<TopicPartition>,
    senders: Vec<ScanSender>,
    receivers: Vec<Option<ScanReceiver>>,
    assigned: usize,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("set", &self.set)
            .field("interval", &self.interval)
            .field("spares", &self.spare_count())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Discovery for a live scan of `set` planned as `planned`, when the table's options turn
    /// it on (`None` otherwise). `ordered`: the table declares `WITH ORDER`, so the scan gets
    /// no spare output partitions.
    pub fn new(
        set: &LogSet,
        planned: &PlannedScan,
        order: TimestampOrder,
        options: &TopicOptions,
        ordered: bool,
    ) -> Option<Arc<Self>> {
        let interval = options.discovery_interval?;
        let selection = planned.selection.clone()?;
        let spares = if ordered { 0 } else { options.spare_streams };
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..spares)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                (tx, Some(rx))
            })
            .unzip();
        Some(Arc::new(Self {
            set: set.clone(),
            selection,
            order,
            interval,
            on_deleted: options.on_deleted,
            ordered,
            started: AtomicBool::new(false),
            state: Mutex::new(State {
                known: planned.seen.clone(),
                senders,
                receivers,
                assigned: 0,
            }),
            events: watch::channel(Events::default()).0,
        }))
    }

    /// How many spare output partitions the scan has.
    pub fn spare_count(&self) -> usize {
        self.lock().senders.len()
    }

    /// How often the brokers are asked.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// What a scan does with a deleted partition.
    pub(super) fn on_deleted(&self) -> OnDeleted {
        self.on_deleted
    }

    /// The table's topics.
    pub(super) fn set(&self) -> &LogSet {
        &self.set
    }

    /// The partitions handed to spare output partition `i` (once).
    pub(super) fn take_spare(&self, i: usize) -> Option<ScanReceiver> {
        self.lock().receivers.get_mut(i).and_then(Option::take)
    }

    /// Deleted partitions and failures, as they happen.
    pub(super) fn events(&self) -> watch::Receiver<Events> {
        self.events.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts asking the brokers (once per scan), for as long as the scan's plan is alive.
    pub(super) fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            log::warn!(
                "{}: no Tokio runtime to discover new partitions on; they are not read",
                self.set.label()
            );
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.interval;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(discovery) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = discovery.tick().await {
                    log::warn!(
                        "{}: looking for new partitions failed ({e}); trying again in {:?}",
                        discovery.set.label(),
                        interval
                    );
                }
            }
        });
    }

    /// One look at the brokers: new partitions are planned and handed to spare output
    /// partitions; vanished ones are published as deleted.
    pub(super) async fn tick(&self) -> Result<()> {
        let names = self.set.topic_names().await?;
        let mut present: BTreeSet<TopicPartition> = BTreeSet::new();
        let mut fresh: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        let known = self.lock().known.clone();
        for name in &names {
            let source = self.set.member(name)?;
            let partitions = match source.partitions().await {
                Ok(p) => p,
                Err(TopicsError::UnknownTopic { .. }) => continue,
                Err(e) => return Err(e),
            };
            for p in partitions {
                let key = TopicPartition::new(name.as_str(), p);
                if !known.contains(&key) {
                    fresh.entry(name.clone()).or_default().push(p);
                }
                present.insert(key);
            }
        }
        let gone: Vec<TopicPartition> = known.difference(&present).cloned().collect();
        if !gone.is_empty() {
            log::warn!(
                "{}: deleted under a live scan: {}",
                self.set.label(),
                gone.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.lock().known.retain(|k| !gone.contains(k));
            self.events
                .send_modify(|e| e.deleted.extend(gone.iter().cloned()));
        }
        for (topic, partitions) in fresh {
            let source = self.set.member(&topic)?;
            let scans =
                plan_discovered(source.as_ref(), &partitions, &self.selection, self.order).await?;
            let mut state = self.lock();
            state.known.extend(
                partitions
                    .iter()
                    .map(|p| TopicPartition::new(topic.as_str(), *p)),
            );
            // A partition that was deleted and created again is read again.
            self.events.send_modify(|e| {
                for p in &partitions {
                    e.deleted.remove(&TopicPartition::new(topic.as_str(), *p));
                }
            });
            for scan in scans {
                self.assign(&mut state, scan);
            }
        }
        Ok(())
    }

    fn assign(&self, state: &mut State, scan: PartitionScan) {
        let spares = state.senders.len();
        let key = scan.key();
        if spares == 0 {
            let why = if self.ordered {
                "the table declares WITH ORDER, and a partition joining an ordered stream would \
                 break that order"
            } else {
                "'scan.discovery.spare-streams' is 0"
            };
            let failure = format!(
                "{key} appeared while the live scan of {} ran, and the scan cannot read it: \
                 {why}; run the query again to read it (or set 'scan.discovery.interval' = '0s' \
                 to follow only the partitions that existed when the query started)",
                self.set.label()
            );
            self.events.send_modify(|e| {
                e.failure.get_or_insert(failure);
            });
            return;
        }
        // One partition per spare while they last, then shared round robin.
        let slot = state.assigned % spares;
        state.assigned += 1;
        log::info!(
            "{key}: discovered under a live scan; read from offset {} by spare output partition {slot}",
            scan.ranges.first().map_or(0, |r| r.start)
        );
        let _ = state.senders[slot].send(Ok(scan));
    }
}

/// A spare output partition: idle until discovery hands it partitions, then their rows
/// (several partitions interleaved once spares are shared).
pub(super) fn spare_stream(
    receiver: Option<ScanReceiver>,
    open: impl Fn(PartitionScan) -> DFResult<BoxStream<'static, DFResult<RecordBatch>>> + Send + 'static,
) -> BoxStream<'static, DFResult<RecordBatch>> {
    struct Spare<F> {
        receiver: Option<ScanReceiver>,
        active: SelectAll<BoxStream<'static, DFResult<RecordBatch>>>,
        open: F,
    }
    let state = Spare {
        receiver,
        active: SelectAll::new(),
        open,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.receiver.is_none() && s.active.is_empty() {
                return None;
            }
            let has_active = !s.active.is_empty();
            tokio::select! {
                got = async {
                    match s.receiver.as_mut() {
                        Some(r) => r.recv().await,
                        None => futures::future::pending().await,
                    }
                } => match got {
                    Some(Ok(scan)) => match (s.open)(scan) {
                        Ok(stream) => s.active.push(stream),
                        Err(e) => return Some((Err(e), s)),
                    },
                    Some(Err(e)) => {
                        s.receiver = None;
                        return Some((Err(e), s));
                    }
                    None => s.receiver = None,
                },
                item = s.active.next(), if has_active => {
                    if let Some(item) = item {
                        return Some((item, s));
                    }
                }
            }
        }
    })
    .boxed()
}

/// `stream` of partition `key`, ended (or failed, by `scan.discovery.on-deleted`) once
/// discovery finds the partition deleted, and failed when discovery fails the scan. A read
/// error while the partition is gone is reported as its deletion.
pub(super) fn until_deleted(
    stream: BoxStream<'static, DFResult<RecordBatch>>,
    key: TopicPartition,
    discovery: Arc<Discovery>,
) -> BoxStream<'static, DFResult<RecordBatch>> {
    let deleted = discovery.events();
    let state = (stream, deleted, discovery, key, false);
    futures::stream::unfold(
        state,
        |(mut stream, mut deleted, discovery, key, done)| async move {
            if done {
                return None;
            }
            let failure = deleted.borrow().failure.clone();
            if let Some(failure) = failure {
                let error = DataFusionError::External(Box::new(TopicsError::plan(failure)));
                return Some((Err(error), (stream, deleted, discovery, key, true)));
            }
            if deleted.borrow().deleted.contains(&key) {
                return deletion(&discovery, &key, None)
                    .map(|e| (Err(e), (stream, deleted, discovery, key, true)));
            }
            tokio::select! {
                item = stream.next() => match item {
                    Some(Err(e)) if partition_gone(&discovery, &key).await => {
                        deletion(&discovery, &key, Some(e))
                            .map(|e| (Err(e), (stream, deleted, discovery, key, true)))
                    }
                    Some(item) => Some((item, (stream, deleted, discovery, key, false))),
                    None => None,
                },
                _ = wait_event(&mut deleted, &key) => {
                    let failure = deleted.borrow().failure.clone();
                    match failure {
                        Some(failure) => Some((
                            Err(DataFusionError::External(Box::new(TopicsError::plan(failure)))),
                            (stream, deleted, discovery, key, true),
                        )),
                        None => deletion(&discovery, &key, None)
                            .map(|e| (Err(e), (stream, deleted, discovery, key, true))),
                    }
                }
            }
        },
    )
    .boxed()
}

/// Waits until `key` is deleted or the scan fails.
async fn wait_event(events: &mut watch::Receiver<Events>, key: &TopicPartition) {
    loop {
        if events.changed().await.is_err() {
            return futures::future::pending().await;
        }
        let e = events.borrow();
        if e.failure.is_some() || e.deleted.contains(key) {
            return;
        }
    }
}

/// True when the partition no longer exists (its topic is gone, or has fewer partitions).
async fn partition_gone(discovery: &Discovery, key: &TopicPartition) -> bool {
    let Ok(source) = discovery.set().member(&key.topic) else {
        return false;
    };
    match source.partitions().await {
        Ok(partitions) => !partitions.contains(&key.partition),
        Err(TopicsError::UnknownTopic { .. }) => true,
        Err(_) => false,
    }
}

/// What a deleted partition's stream yields: nothing (`end`), or the error naming it (`fail`).
fn deletion(
    discovery: &Discovery,
    key: &TopicPartition,
    cause: Option<DataFusionError>,
) -> Option<DataFusionError> {
    match discovery.on_deleted() {
        OnDeleted::End => {
            log::warn!(
                "{key} was deleted under a live scan; its stream ends (scan.discovery.on-deleted = end)"
            );
            None
        }
        OnDeleted::Fail => Some(DataFusionError::External(Box::new(TopicsError::plan(
            format!(
                "{key} was deleted while the live scan read it{}; set 'scan.discovery.on-deleted' = \
             'end' to let the other partitions go on",
                cause.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        )))),
    }
}
