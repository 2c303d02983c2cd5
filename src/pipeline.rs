//! The sharded pipeline: one reader → N workers → one writer.
//!
//! ```text
//!  reader (Feeder)           workers (Engine each)        record threads         writer
//!  segments → symmetric  ──► flow table, reassembly, ──► SQL stage, rules, ──► merge by ──► out
//!  flow hash → batches       parsers, sessions           JSON, sorted          record key
//! ```
//!
//! - Both directions of a flow go to the same worker (symmetric hash of the canonical 4-tuple).
//! - Each worker has a record thread of its own that serializes what the worker's sessions
//!   completed ([`RecordParts`]), one batch per round behind it: a shard uses two cores.
//! - Frames travel as owned batches, one send per batch, over bounded channels; batches are
//!   recycled. **Replay never drops: a full queue blocks the reader.**
//! - Every input position (packet or timer tick) is numbered; ticks (once per second of packet
//!   time) reach every worker at the same position. Records carry the position that completed
//!   them, and the writer merges the workers' sorted streams by (position, session, seq): the
//!   output is byte-identical with 1 or N workers.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use std::ops::Range;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Select, Sender};
use dbtap_core::Timestamp;

use crate::engine::{Engine, EngineConfig, FlowKey, Segment, TcpFlags};
use crate::record::Endpoint;
use crate::redirect::{Followed, RedirectStats, RedirectWatch};
use crate::rules::alerts::AlertStage;
use crate::rules::{AlertOutput, AlertReport, Rules};
use crate::sink::{RecordBatch, RecordKey, RecordParts, RecordSink};
use crate::stats::EngineStats;

/// Packets per round: after this many packets every worker gets its batch (possibly empty, to
/// advance its watermark).
pub const ROUND_PACKETS: usize = 1024;
/// Payload bytes per round. Rounds (and read blocks) are kept small so that the bytes queued for
/// the workers, about `QUEUE_DEPTH` rounds each, stay in the shared cache between the reader's read
/// and the worker's parse.
pub const ROUND_BYTES: usize = 1024 * 1024;
/// Packets ahead of the one being parsed whose payloads the worker prefetches. 2 to 8 measured
/// alike; prefetching the whole round at once was slower.
const PREFETCH_AHEAD: usize = 4;
/// Batches queued per worker before the reader blocks.
pub const QUEUE_DEPTH: usize = 4;

/// Where a segment's payload is: `blocks[block][start..start+len]` of its batch (a read buffer
/// shared with the reader, no copy), or `data[start..start+len]` when `block` is [`INLINE`]
/// (payloads that do not live in a read buffer, such as reassembled IP fragments).
#[derive(Debug, Clone, Copy)]
struct PacketMeta {
    position: u64,
    ts: Timestamp,
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    missing: u32,
    block: u32,
    start: usize,
    len: usize,
}

/// `PacketMeta::block` of a payload copied into the batch's own `data`.
const INLINE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
enum Item {
    Packet(PacketMeta),
    /// The next packet's connection was announced by a redirect (see [`crate::redirect`]).
    Follow(Followed),
    Tick {
        position: u64,
        ts: Timestamp,
    },
    Finish {
        position: u64,
    },
}

#[derive(Debug, Default)]
struct InBatch {
    items: Vec<Item>,
    /// Read buffers the payloads of `items` live in (held until the worker is done with them).
    blocks: Vec<Arc<Vec<u8>>>,
    /// Payloads that do not live in a read buffer.
    data: Vec<u8>,
    /// Every position below this is covered by the batches sent so far.
    upto: u64,
    /// When the reader sent the batch (alert latency is measured from here).
    sent_at: Option<Instant>,
}

impl InBatch {
    /// The payload of a packet item (empty for any other item).
    #[inline]
    fn payload(&self, item: &Item) -> &[u8] {
        let Item::Packet(m) = item else { return &[] };
        let buf = match m.block {
            INLINE => &self.data,
            i => self.blocks.get(i as usize).map_or(&self.data, |b| &**b),
        };
        buf.get(m.start..m.start + m.len).unwrap_or_default()
    }

    /// A batch sized for a full round, so that filling it never reallocates (and copies).
    fn sized(workers: usize) -> Self {
        InBatch {
            items: Vec::with_capacity(ROUND_PACKETS / workers + 64),
            blocks: Vec::new(),
            data: Vec::new(),
            upto: 0,
            sent_at: None,
        }
    }
}

/// One round's completed records, from a worker to its record thread.
struct PartsBatch {
    parts: Vec<RecordParts>,
    upto: u64,
    read_at: Instant,
}

struct OutBatch {
    records: RecordBatch,
    upto: u64,
    /// When the reader sent the input these records came from.
    read_at: Instant,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes read (file bytes; compressed bytes for compressed files).
    pub input_bytes: AtomicU64,
    /// Input bytes expected in all (sum of file sizes), 0 when unknown.
    pub input_total: AtomicU64,
    /// Frames read.
    pub frames: AtomicU64,
    /// Records written.
    pub records: AtomicU64,
    /// Set (to the signal's number, or any non-zero value) to stop reading: the replay then ends
    /// as if the input ended there, so every record of what was read is still written. Shared,
    /// because a signal handler sets it (see `cli`).
    pub interrupt: Arc<AtomicUsize>,
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Worker threads (≥ 1).
    pub workers: usize,
    /// Engine settings; `max_flow_memory` is the total, divided among workers.
    pub engine: EngineConfig,
    /// Where alerts go (rules are in `engine.rules`); `None`: alerts are counted, not written.
    pub alerts: Option<AlertOutput>,
    /// Learnt baselines to start from (`--baseline`); when given, the run's learnt state is in
    /// its alert report, to be saved.
    pub baseline: Option<Arc<crate::rules::baseline::BaselineFile>>,
}

/// Default worker count: cores − 1 (the reader and writer need a core), at least 1.
pub fn default_workers() -> usize {
    thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// The reader side: numbers segments, shards them, batches them.
pub struct Feeder {
    txs: Vec<Sender<InBatch>>,
    recycle: Receiver<InBatch>,
    batches: Vec<InBatch>,
    position: u64,
    round_packets: usize,
    round_bytes: usize,
    last_tick_sec: Option<u64>,
    max_ts: Timestamp,
    /// A worker hung up (it panicked): stop feeding.
    broken: bool,
    redirects: RedirectWatch,
}

impl Feeder {
    /// True once a worker is gone (the run failed, e.g. the records could not be written):
    /// nothing more will be processed, so reading on is wasted.
    pub fn stopped(&self) -> bool {
        self.broken
    }

    /// Hand over one TCP segment. When its payload lies in `block` (the read buffer of the
    /// frame), the batch keeps a reference to the block instead of copying the payload.
    pub fn push(&mut self, seg: &Segment<'_>, block: Option<&Arc<Vec<u8>>>) {
        if self.broken {
            return;
        }
        // A tick whenever packet time enters a new second (time never runs backwards here).
        let sec = seg.ts.0 / 1_000_000_000;
        if self.last_tick_sec.is_some_and(|last| sec > last) {
            self.max_ts = self.max_ts.max(seg.ts);
            let tick = Item::Tick {
                position: self.position,
                ts: self.max_ts,
            };
            self.position += 1;
            for b in &mut self.batches {
                b.items.push(tick);
            }
        }
        if self.last_tick_sec.is_none_or(|last| sec > last) {
            self.last_tick_sec = Some(sec);
        }
        self.max_ts = self.max_ts.max(seg.ts);
        // One worker (the default on two cores) takes every flow: no key to order and hash.
        let shard = match self.batches.len() {
            1 => 0,
            n => FlowKey::new(seg.src, seg.dst).shard(n),
        };
        let batch = &mut self.batches[shard];
        if let Some(f) = self.redirects.observe(seg) {
            batch.items.push(Item::Follow(f));
        }
        let (block, start) = match block.and_then(|b| offset_in(b, seg.payload).map(|o| (b, o))) {
            Some((b, offset)) => {
                if !batch.blocks.last().is_some_and(|last| Arc::ptr_eq(last, b)) {
                    batch.blocks.push(Arc::clone(b));
                }
                (batch.blocks.len() as u32 - 1, offset)
            }
            None => {
                let start = batch.data.len();
                batch.data.extend_from_slice(seg.payload);
                (INLINE, start)
            }
        };
        batch.items.push(Item::Packet(PacketMeta {
            position: self.position,
            ts: seg.ts,
            src: seg.src,
            dst: seg.dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            missing: seg.missing,
            block,
            start,
            len: seg.payload.len(),
        }));
        self.position += 1;
        self.round_packets += 1;
        self.round_bytes += seg.payload.len();
        if self.round_packets >= ROUND_PACKETS || self.round_bytes >= ROUND_BYTES {
            self.flush();
        }
    }

    /// Send every worker its batch (blocking when its queue is full: replay never drops).
    fn flush(&mut self) {
        self.round_packets = 0;
        self.round_bytes = 0;
        for i in 0..self.batches.len() {
            let workers = self.batches.len();
            let fresh = self
                .recycle
                .try_recv()
                .unwrap_or_else(|_| InBatch::sized(workers));
            let mut batch = std::mem::replace(&mut self.batches[i], fresh);
            batch.upto = self.position;
            batch.sent_at = Some(Instant::now());
            if self.txs[i].send(batch).is_err() {
                self.broken = true;
            }
        }
    }

    /// The input is over: every flow is closed at the final position.
    fn finish(mut self) -> RedirectStats {
        self.redirects.finish();
        let end = Item::Finish {
            position: self.position,
        };
        for b in &mut self.batches {
            b.items.push(end);
        }
        self.position += 1;
        self.flush();
        self.redirects.stats
    }
}

/// Offset of `part` inside `block`, when `part` is a slice of it.
fn offset_in(block: &[u8], part: &[u8]) -> Option<usize> {
    let base = block.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    let offset = at.checked_sub(base)?;
    (offset.checked_add(part.len())? <= block.len()).then_some(offset)
}

/// Result of a run.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Engine counters summed over workers.
    pub engine: EngineStats,
    /// Records written.
    pub records: u64,
    /// Record bytes written.
    pub record_bytes: u64,
    /// Alerts raised (`None` without rules).
    pub alerts: Option<AlertReport>,
    /// Redirects announced and followed.
    pub redirects: RedirectStats,
}

/// Pipeline failures.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Writing records failed.
    #[error("writing records: {0}")]
    Write(std::io::Error),

    /// A thread could not be started.
    #[error("starting a thread: {0}")]
    Spawn(std::io::Error),

    /// A worker thread panicked (a bug): its records are missing.
    #[error("a worker thread failed: {0}")]
    Worker(String),

    /// The rules compiled while the replay started failed to compile (see
    /// [`crate::rules::Rules`]): no record was written.
    #[error("rules: {0}")]
    Rules(String),
}

/// Run the pipeline: `source` pushes segments into the [`Feeder`]; records go to `out`.
pub fn run<W, E>(
    cfg: &PipelineConfig,
    progress: Arc<Progress>,
    out: W,
    source: impl FnOnce(&mut Feeder) -> Result<(), E>,
) -> Result<(RunOutcome, Result<(), E>), PipelineError>
where
    W: Write + Send,
{
    let workers = cfg.workers.max(1);
    let mut engine_cfg = cfg.engine.clone();
    engine_cfg.max_flow_memory = (engine_cfg.max_flow_memory / workers).max(1);

    thread::scope(|scope| {
        let (recycle_tx, recycle_rx) = bounded::<InBatch>(workers * (QUEUE_DEPTH + 2));
        let (sink_recycle_tx, sink_recycle_rx) =
            bounded::<RecordBatch>(workers * (QUEUE_DEPTH + 2));
        let mut in_txs = Vec::new();
        let mut out_rxs = Vec::new();
        let mut handles = Vec::new();
        let mut record_threads = Vec::new();
        for w in 0..workers {
            let (in_tx, in_rx) = bounded::<InBatch>(QUEUE_DEPTH);
            let (parts_tx, parts_rx) = bounded::<PartsBatch>(QUEUE_DEPTH);
            let (parts_recycle_tx, parts_recycle_rx) = bounded::<Vec<RecordParts>>(QUEUE_DEPTH + 2);
            let (out_tx, out_rx) = bounded::<OutBatch>(QUEUE_DEPTH);
            in_txs.push(in_tx);
            out_rxs.push(out_rx);
            let recycle_tx = recycle_tx.clone();
            let sink_recycle_rx = sink_recycle_rx.clone();
            let engine = Engine::new(engine_cfg.clone());
            let (sql, rules) = (engine_cfg.sql.clone(), engine_cfg.rules.clone());
            handles.push(
                thread::Builder::new()
                    .name(format!("dbtap-worker-{w}"))
                    .spawn_scoped(scope, move || {
                        worker(engine, in_rx, parts_tx, recycle_tx, parts_recycle_rx)
                    })
                    .map_err(PipelineError::Spawn)?,
            );
            record_threads.push(
                thread::Builder::new()
                    .name(format!("dbtap-records-{w}"))
                    .spawn_scoped(scope, move || {
                        // Rules still compiling are waited for here, not before the reader
                        // starts. When they failed, the writer reports it; this thread's end
                        // stops the worker feeding it.
                        let Ok(rules) = rules.as_ref().map(Rules::get).transpose() else {
                            return;
                        };
                        let sink = RecordSink::new(sql, rules.cloned());
                        serialize(sink, parts_rx, out_tx, parts_recycle_tx, sink_recycle_rx)
                    })
                    .map_err(PipelineError::Spawn)?,
            );
        }
        drop(recycle_tx);
        drop(sink_recycle_rx);

        let writer_progress = progress.clone();
        let writer = thread::Builder::new()
            .name("dbtap-writer".into())
            .spawn_scoped(scope, move || {
                let rules = cfg.engine.rules.as_ref().map(Rules::get).transpose();
                let alert_stage =
                    rules
                        .map_err(|e| PipelineError::Rules(e.to_string()))?
                        .map(|set| {
                            AlertStage::new(
                                set.clone(),
                                cfg.alerts.clone(),
                                cfg.baseline.as_deref(),
                            )
                        });
                write_merged(out_rxs, out, sink_recycle_tx, &writer_progress, alert_stage)
            })
            .map_err(PipelineError::Spawn)?;

        let mut feeder = Feeder {
            txs: in_txs,
            recycle: recycle_rx,
            batches: (0..workers).map(|_| InBatch::sized(workers)).collect(),

            position: 0,
            round_packets: 0,
            round_bytes: 0,
            last_tick_sec: None,
            max_ts: Timestamp(0),
            broken: false,
            redirects: RedirectWatch::new(cfg.engine.registry.specs()),
        };
        let source_result = source(&mut feeder);
        let redirects = feeder.finish();

        let mut outcome = RunOutcome {
            redirects,
            ..RunOutcome::default()
        };
        let mut worker_error = None;
        for h in handles {
            match h.join() {
                Ok(stats) => outcome.engine.merge(&stats),
                Err(e) => worker_error = Some(panic_message(e)),
            }
        }
        for h in record_threads {
            if let Err(e) = h.join() {
                worker_error = Some(panic_message(e));
            }
        }
        let written = writer
            .join()
            .map_err(|e| PipelineError::Worker(panic_message(e)))??;
        if let Some(e) = worker_error {
            return Err(PipelineError::Worker(e));
        }
        outcome.records = written.0;
        outcome.record_bytes = written.1;
        outcome.alerts = written.2;
        Ok((outcome, source_result))
    })
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

fn worker(
    mut engine: Engine,
    rx: Receiver<InBatch>,
    tx: Sender<PartsBatch>,
    recycle: Sender<InBatch>,
    parts_recycle: Receiver<Vec<RecordParts>>,
) -> EngineStats {
    for mut batch in rx {
        for item in batch.items.iter().take(PREFETCH_AHEAD) {
            prefetch(batch.payload(item));
        }
        for (i, item) in batch.items.iter().enumerate() {
            if let Some(ahead) = batch.items.get(i + PREFETCH_AHEAD) {
                prefetch(batch.payload(ahead));
            }
            match *item {
                Item::Packet(m) => {
                    let payload = batch.payload(item);
                    let seg = Segment {
                        ts: m.ts,
                        src: m.src,
                        dst: m.dst,
                        seq: m.seq,
                        ack: m.ack,
                        flags: m.flags,
                        payload,
                        missing: m.missing,
                    };
                    engine.packet(m.position, &seg);
                }
                Item::Follow(f) => engine.follow_next(f),
                Item::Tick { position, ts } => engine.tick(position, ts),
                Item::Finish { position } => engine.finish(position),
            }
        }
        let fresh = parts_recycle.try_recv().unwrap_or_default();
        let parts = engine.take_parts(fresh);
        if tx
            .send(PartsBatch {
                parts,
                upto: batch.upto,
                read_at: batch.sent_at.unwrap_or_else(Instant::now),
            })
            .is_err()
        {
            break;
        }
        batch.items.clear();
        batch.data.clear();
        // Release the read buffers now: the reader reuses a block once no batch holds it.
        batch.blocks.clear();
        let _ = recycle.try_send(batch);
    }
    engine.stats().clone()
}

/// A worker's record thread: serialize each round's completed records and pass them on to the
/// writer, in the order the rounds came.
fn serialize(
    mut sink: RecordSink,
    rx: Receiver<PartsBatch>,
    tx: Sender<OutBatch>,
    parts_recycle: Sender<Vec<RecordParts>>,
    sink_recycle: Receiver<RecordBatch>,
) {
    for batch in rx {
        for parts in &batch.parts {
            sink.write_parts(parts);
        }
        // The parts go back whole: the worker frees them when it reuses the vector. Memory is
        // freed fastest by the thread that allocated it (the allocator's thread-local lists);
        // freed here, each would cost several times as much, here and again in the worker when
        // its allocator collects them.
        let _ = parts_recycle.try_send(batch.parts);
        let fresh = sink_recycle.try_recv().unwrap_or_default();
        let records = sink.take(fresh);
        if tx
            .send(OutBatch {
                records,
                upto: batch.upto,
                read_at: batch.read_at,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Ask for the cache lines of `bytes`, so that they travel from the reader's core while the
/// packets before them are parsed. A prefetch retires at once; a load that misses (the earlier
/// way: one load per line just before parsing) holds up every instruction behind it until the
/// line arrives. Where there is no prefetch instruction, the lines are loaded.
#[inline]
fn prefetch(bytes: &[u8]) {
    for at in (0..bytes.len()).step_by(64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `at` < `bytes.len()`, so the pointer is inside the slice; a prefetch only
        // hints the cache, it reads and writes nothing the program sees, and never faults.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        std::hint::black_box(bytes.get(at).copied());
    }
}

struct Lane {
    queue: VecDeque<OutBatch>,
    /// Index of the next record in the front batch.
    cursor: usize,
    upto: u64,
    done: bool,
}

impl Lane {
    fn head(&mut self) -> Option<RecordKey> {
        loop {
            let front = self.queue.front()?;
            if let Some((k, _)) = front.records.get(self.cursor) {
                return Some(k);
            }
            self.queue.pop_front();
            self.cursor = 0;
        }
    }
}

/// Capacity of the writer's buffer; runs of records at least this long bypass it.
const WRITE_BUF_LEN: usize = 64 * 1024;

/// Write a run of records of lane `run.0`'s front batch.
fn flush_run<W: Write>(
    out: &mut std::io::BufWriter<W>,
    lanes: &[Lane],
    run: Option<(usize, Range<usize>)>,
) -> Result<(), PipelineError> {
    let Some((i, r)) = run else { return Ok(()) };
    let bytes = lanes
        .get(i)
        .and_then(|l| l.queue.front())
        .and_then(|f| f.records.bytes().get(r))
        .unwrap_or_default();
    out.write_all(bytes).map_err(PipelineError::Write)
}

/// Write one worker's record stream (the default on two cores): nothing to merge, so a batch's
/// records go out in one write when they lie in its buffer in key order, as they nearly always
/// do (the merge below spent ~175 instructions a record finding that out record by record).
fn write_one_lane<W: Write>(
    rx: &Receiver<OutBatch>,
    out: W,
    recycle: Sender<RecordBatch>,
    progress: &Progress,
    mut alerts: Option<AlertStage>,
) -> Result<(u64, u64, Option<AlertReport>), PipelineError> {
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUF_LEN, out);
    let (mut records, mut bytes) = (0u64, 0u64);
    for mut batch in rx {
        let recs = &batch.records;
        // The lines follow each other in the buffer in key order unless sorting the batch
        // moved some (records of several sessions at one input position).
        let mut in_place = true;
        let mut end = 0;
        for i in 0..recs.len() {
            if let Some(stage) = alerts.as_mut() {
                let hits = recs.hits(i);
                if hits.len() > 0 {
                    let line = recs.get(i).map_or(&[][..], |(_, l)| l);
                    stage
                        .record(hits, line, batch.read_at)
                        .map_err(PipelineError::Write)?;
                }
            }
            if let Some(span) = recs.span(i) {
                in_place &= span.start == end;
                end = span.end;
                bytes += span.len() as u64;
            }
        }
        if in_place {
            out.write_all(recs.bytes().get(..end).unwrap_or_default())
        } else {
            recs.lines().try_for_each(|l| out.write_all(l))
        }
        .map_err(PipelineError::Write)?;
        records += recs.len() as u64;
        if let Some(stage) = alerts.as_mut() {
            stage.count_repeated_hits(recs.repeated_hits());
            stage.flush().map_err(PipelineError::Write)?;
        }
        progress.records.store(records, Ordering::Relaxed);
        batch.records.clear();
        let _ = recycle.try_send(batch.records);
    }
    out.flush().map_err(PipelineError::Write)?;
    let report = match alerts {
        Some(stage) => Some(stage.finish().map_err(PipelineError::Write)?),
        None => None,
    };
    Ok((records, bytes, report))
}

/// Merge the workers' record streams by key and write them.
fn write_merged<W: Write>(
    rxs: Vec<Receiver<OutBatch>>,
    out: W,
    recycle: Sender<RecordBatch>,
    progress: &Progress,
    mut alerts: Option<AlertStage>,
) -> Result<(u64, u64, Option<AlertReport>), PipelineError> {
    if let [rx] = rxs.as_slice() {
        return write_one_lane(rx, out, recycle, progress, alerts);
    }
    // Records that follow each other in one worker's buffer are written as one run, straight
    // from that buffer when the run is at least the BufWriter's capacity (one worker, or long
    // stretches of one worker's sessions): no copy. Shorter runs are gathered in the BufWriter.
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUF_LEN, out);
    let mut run: Option<(usize, Range<usize>)> = None;
    let mut lanes: Vec<Lane> = rxs
        .iter()
        .map(|_| Lane {
            queue: VecDeque::new(),
            cursor: 0,
            upto: 0,
            done: false,
        })
        .collect();
    let (mut records, mut bytes) = (0u64, 0u64);
    loop {
        // Write every record that no lane can still precede.
        loop {
            let mut best: Option<(RecordKey, usize)> = None;
            for (i, lane) in lanes.iter_mut().enumerate() {
                if let Some(k) = lane.head() {
                    if best.is_none_or(|(b, _)| k < b) {
                        best = Some((k, i));
                    }
                }
            }
            let Some((key, i)) = best else { break };
            let safe = lanes
                .iter_mut()
                .enumerate()
                .all(|(j, l)| j == i || l.done || l.upto > key.position || l.head().is_some());
            if !safe {
                break;
            }
            let lane = &mut lanes[i];
            if let (Some(stage), Some(front)) = (alerts.as_mut(), lane.queue.front()) {
                let hits = front.records.hits(lane.cursor);
                if hits.len() > 0 {
                    let line = front.records.get(lane.cursor).map_or(&[][..], |(_, l)| l);
                    stage
                        .record(hits, line, front.read_at)
                        .map_err(PipelineError::Write)?;
                }
            }
            if let Some(span) = lane.queue.front().and_then(|f| f.records.span(lane.cursor)) {
                records += 1;
                bytes += span.len() as u64;
                match &mut run {
                    Some((l, r)) if *l == i && r.end == span.start => r.end = span.end,
                    _ => {
                        flush_run(&mut out, &lanes, run.take())?;
                        run = Some((i, span));
                    }
                }
            }
            let lane = &mut lanes[i];
            lane.cursor += 1;
            if lane
                .queue
                .front()
                .is_some_and(|f| lane.cursor >= f.records.len())
            {
                if run.as_ref().is_some_and(|(l, _)| *l == i) {
                    flush_run(&mut out, &lanes, run.take())?;
                }
                let lane = &mut lanes[i];
                if let Some(mut done) = lane.queue.pop_front() {
                    done.records.clear();
                    let _ = recycle.try_send(done.records);
                }
                lane.cursor = 0;
            }
        }
        flush_run(&mut out, &lanes, run.take())?;
        if let Some(stage) = alerts.as_mut() {
            stage.flush().map_err(PipelineError::Write)?;
        }
        progress.records.store(records, Ordering::Relaxed);
        if lanes.iter_mut().all(|l| l.done && l.head().is_none()) {
            break;
        }
        // Wait for any lane that is still running.
        let mut sel = Select::new();
        let mut ids = Vec::new();
        for (i, rx) in rxs.iter().enumerate() {
            if !lanes[i].done {
                sel.recv(rx);
                ids.push(i);
            }
        }
        if ids.is_empty() {
            break;
        }
        let op = sel.select();
        let i = ids[op.index()];
        match op.recv(&rxs[i]) {
            Ok(batch) => {
                lanes[i].upto = batch.upto;
                if let Some(stage) = alerts.as_mut() {
                    stage.count_repeated_hits(batch.records.repeated_hits());
                }
                if !batch.records.is_empty() {
                    lanes[i].queue.push_back(batch);
                }
            }
            Err(_) => lanes[i].done = true,
        }
    }
    out.flush().map_err(PipelineError::Write)?;
    let report = match alerts {
        Some(stage) => Some(stage.finish().map_err(PipelineError::Write)?),
        None => None,
    };
    Ok((records, bytes, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::testkit::{ep, Conn, TOY};

    fn segments() -> Vec<Segment<'static>> {
        // 40 connections, interleaved, spread over ~90 s of packet time with idle gaps so that
        // ticks and idle expiry happen mid-run.
        let mut conns: Vec<Conn> = (0..40u16)
            .map(|i| {
                Conn::new(
                    ep(1, 40000 + i),
                    ep(2 + (i % 3) as u8, 7777),
                    1000 * i as u32,
                    5000,
                )
            })
            .collect();
        let mut out = Vec::new();
        let mut t = 1_000_000u64;
        for c in conns.iter_mut() {
            out.extend(c.handshake(t));
            t += 10;
        }
        for round in 0..3u64 {
            for (i, c) in conns.iter_mut().enumerate() {
                if (i as u64 + round) % 4 == 0 {
                    continue;
                }
                out.push(c.client(t, b"Q select x\n"));
                out.push(c.server(t + 5, if i % 5 == 0 { b"ER 1146\n" } else { b"OK 7\n" }));
                t += 700_000;
            }
        }
        for c in conns.iter_mut().take(20) {
            out.extend(c.close(t));
            t += 1;
        }
        out
    }

    fn replay(workers: usize, idle_secs: u64) -> (Vec<u8>, RunOutcome) {
        replay_with(workers, idle_secs, None).unwrap()
    }

    fn replay_with(
        workers: usize,
        idle_secs: u64,
        rules: Option<Rules>,
    ) -> Result<(Vec<u8>, RunOutcome), PipelineError> {
        let mut engine = EngineConfig {
            registry: Registry::with_specs(vec![TOY]),
            rules,
            ..Default::default()
        };
        engine.idle_timeout_ns = idle_secs * 1_000_000_000;
        let cfg = PipelineConfig {
            workers,
            engine,
            alerts: None,
            baseline: None,
        };
        let mut out = Vec::new();
        let segs = segments();
        let (outcome, res) = run(
            &cfg,
            Arc::new(Progress::default()),
            &mut out,
            |f: &mut Feeder| {
                for s in &segs {
                    f.push(s, None);
                }
                Ok::<(), ()>(())
            },
        )?;
        res.unwrap();
        Ok((out, outcome))
    }

    fn default_rules() -> crate::rules::RuleSet {
        crate::rules::RuleSet::default_packs().unwrap()
    }

    #[test]
    fn rules_still_compiling_when_the_replay_starts_give_what_ready_rules_give() {
        let ready = Rules::ready(Arc::new(default_rules()));
        let (out, outcome) = replay_with(2, 3600, Some(ready)).unwrap();
        let hits = outcome.alerts.as_ref().map(|a| a.correlator.hits);
        // The toy records' errors (1146 on every fifth connection) meet the default pack's
        // error rule, so the comparison below is of rules that did something.
        assert!(hits.is_some_and(|h| h > 0), "{hits:?}");
        let later = Rules::compile_in_background(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok(default_rules())
        })
        .unwrap();
        let (out_later, outcome_later) = replay_with(2, 3600, Some(later)).unwrap();
        assert!(out == out_later, "records differ");
        assert_eq!(outcome_later.records, outcome.records);
        assert_eq!(
            outcome_later.alerts.as_ref().map(|a| a.correlator.hits),
            hits
        );
    }

    #[test]
    fn rules_that_fail_to_compile_while_the_replay_starts_fail_the_run_with_no_records() {
        let failing =
            Rules::compile_in_background(|| Err("rule X: regex too big".to_string())).unwrap();
        match replay_with(2, 3600, Some(failing)) {
            Err(PipelineError::Rules(e)) => assert_eq!(e, "rule X: regex too big"),
            other => panic!("expected the rules' error, got {other:?}"),
        }
    }

    #[test]
    fn one_and_many_workers_write_identical_output() {
        for idle in [3600, 20] {
            let (one, o1) = replay(1, idle);
            assert!(o1.records > 50, "{} records", o1.records);
            for n in [2, 3, 5] {
                let (many, on) = replay(n, idle);
                assert_eq!(on.records, o1.records);
                assert!(one == many, "output differs with {n} workers (idle {idle})");
            }
        }
    }

    #[test]
    fn counters_add_up_over_workers() {
        let (_, o) = replay(3, 3600);
        assert_eq!(o.engine.flows, 40);
        assert_eq!(o.engine.packets, segments().len() as u64);
        assert_eq!(o.engine.sessions_by_protocol()["toy"], 40);
        assert_eq!(o.engine.records, o.records);
        assert_eq!(o.engine.flows_closed_ended, 20);
        assert_eq!(o.engine.flows_open_at_end, 20);
    }
}
