//! The per-worker engine: flow table → TCP reassembly → protocol detection → parser → session
//! pairing → records.
//!
//! Everything here runs on packet time: timeouts, latency and expiry use capture timestamps,
//! never the OS clock, so a replay gives the same answer every time. The engine sees only the
//! flows its worker owns (both directions of a flow always reach the same worker).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hasher;
use std::net::IpAddr;

use dbtap_core::{DbEvent, Direction, Driver, Limits, SessionOpts, StreamParser, Timestamp};

use crate::detect::{direction_of, Chunk, Detector, FlowFacts, Verdict};
use crate::reassembly::{Delivery, GapCause, HalfStream, ReassemblyLimits};
use crate::record::Endpoint;
use crate::redirect::Followed;
use crate::registry::Registry;
use crate::session::{CloseReason, Session, SessionInfo};
use crate::sink::{RecordBatch, RecordParts, RecordQueue, RecordSink};
use crate::stats::EngineStats;

/// A flow with no packet for this long (packet time) is closed.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 3600;
/// Memory the flow table of one engine may use before the least recently active flows are
/// evicted. The pipeline divides the user's total among workers.
pub const DEFAULT_MAX_FLOW_MEMORY: usize = 1024 * 1024 * 1024;
/// Fixed cost charged per flow in the memory accounting (the structs themselves).
const FLOW_BASE_COST: usize = 1024;
/// After an eviction the table is brought down to this share of its cap, so that evictions come
/// in batches rather than once per packet.
const EVICT_TARGET_PERCENT: usize = 90;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Parser limits.
    pub limits: Limits,
    /// Reassembly limits.
    pub reassembly: ReassemblyLimits,
    /// Idle timeout in nanoseconds.
    pub idle_timeout_ns: u64,
    /// Memory cap of the flow table.
    pub max_flow_memory: usize,
    /// Protocols and ports.
    pub registry: Registry,
    /// SQL stage options (masking).
    pub sql: crate::sql::SqlOptions,
    /// Rules matched on each record (`None`: no rules).
    pub rules: Option<crate::rules::Rules>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            reassembly: ReassemblyLimits::default(),
            idle_timeout_ns: DEFAULT_IDLE_TIMEOUT_SECS * 1_000_000_000,
            max_flow_memory: DEFAULT_MAX_FLOW_MEMORY,
            registry: Registry::default(),
            sql: crate::sql::SqlOptions::default(),
            rules: None,
        }
    }
}

/// TCP flags the engine uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// One TCP segment as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Sender.
    pub src: Endpoint,
    /// Receiver.
    pub dst: Endpoint,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (valid when `flags.ack`).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Captured payload.
    pub payload: &'a [u8],
    /// Payload bytes cut by snaplen.
    pub missing: u32,
}

/// The canonical key of a TCP connection: both directions map to the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    lo: Endpoint,
    hi: Endpoint,
}

impl std::hash::Hash for FlowKey {
    /// Two words per endpoint: the derived hash walks the address enum, its bytes with their
    /// length, and the port, one hasher step each, and the flow table hashes a key for every
    /// packet. Equal keys have equal words, so this agrees with `Eq`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        for ep in [&self.lo, &self.hi] {
            let (ip, family) = match ep.ip {
                IpAddr::V4(a) => (u128::from(u32::from(a)), 4),
                IpAddr::V6(a) => (u128::from(a), 6),
            };
            state.write_u64(ip as u64);
            state.write_u64((ip >> 64) as u64 ^ u64::from(ep.port) << 8 ^ family);
        }
    }
}

impl FlowKey {
    /// Key of the connection between `a` and `b`.
    pub fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }

    /// The worker a packet of this connection goes to, of `workers`: the same for both
    /// directions. Computed for every packet by the reader, so a few multiplications over the
    /// addresses as words rather than [`FlowKey::stable_hash`]'s byte loop; which worker a flow
    /// lands on never shows in the output.
    pub fn shard(&self, workers: usize) -> usize {
        fn word(ep: &Endpoint) -> u64 {
            let ip = match ep.ip {
                IpAddr::V4(a) => u64::from(u32::from(a)),
                IpAddr::V6(a) => {
                    let v = u128::from(a);
                    (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
                }
            };
            ip ^ (u64::from(ep.port) << 48)
        }
        let mut z = word(&self.lo)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
            ^ word(&self.hi);
        // SplitMix64's finaliser: nearby addresses and ports spread over all workers.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % workers.max(1) as u64) as usize
    }

    /// A hash that is the same for both directions and on every run and platform (used to
    /// make session ids).
    pub fn stable_hash(&self) -> u64 {
        let mut h = Fnv64::default();
        for ep in [self.lo, self.hi] {
            match ep.ip {
                IpAddr::V4(a) => h.write(&a.octets()),
                IpAddr::V6(a) => h.write(&a.octets()),
            }
            h.write(&ep.port.to_be_bytes());
        }
        h.finish()
    }
}

/// FNV-1a, 64 bit: stable across runs and Rust versions (std's hasher is not promised to be).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        // Final avalanche (from SplitMix64) so that nearby keys spread over shards.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Flow table: a fast, non-cryptographic hasher (keys are not attacker-chosen in a way that
/// matters here: a flood of flows is bounded by the memory cap, not by hash quality).
type FlowMap = HashMap<FlowKey, Flow, rustc_hash::FxBuildHasher>;

/// The application layer of a flow.
enum App {
    /// Looking for the protocol.
    Detect(Detector),
    /// Parsing.
    Parse(Box<Parsing>),
    /// Not a database protocol (or given up): TCP is tracked, bytes are not kept.
    Ignore,
}

struct Parsing {
    spec: usize,
    client_side: usize,
    parser: Box<dyn StreamParser>,
    driver: Driver,
    session: Session,
}

struct Flow {
    /// Endpoints by side; side 0 sent the first packet seen.
    ends: [Endpoint; 2],
    half: [HalfStream; 2],
    client_side: Option<usize>,
    app: App,
    first_ts: Timestamp,
    last_ts: Timestamp,
    /// Bytes charged to the memory cap at the last update.
    mem: usize,
    /// FIN/RST seen per side after the flow was ignored.
    ignored_ends: [bool; 2],
    /// A redirect announced this connection (see [`crate::redirect`]).
    followed: Option<Followed>,
}

/// Shared state flows write into while handling a packet.
struct Ctx<'a> {
    cfg: &'a EngineConfig,
    events: &'a mut Vec<DbEvent>,
    queue: &'a mut RecordQueue,
    stats: &'a mut EngineStats,
}

/// One worker's engine.
pub struct Engine {
    cfg: EngineConfig,
    flows: FlowMap,
    mem: usize,
    now: Timestamp,
    events: Vec<DbEvent>,
    /// Records completed, waiting to be serialized (by the pipeline's record thread, or by
    /// `inline` for [`Engine::records`]).
    queue: RecordQueue,
    /// Made on first use: an engine in the pipeline never needs it, and making it would wait for
    /// rules still being compiled (see [`crate::rules::Rules`]).
    inline: Option<RecordSink>,
    stats: EngineStats,
    /// The reader said the next packet's connection was announced by a redirect.
    follow_next: Option<Followed>,
}

/// The sink of [`Engine::records`], made on first use. An engine outside the pipeline is given
/// rules compiled already; rules that failed to compile (which the pipeline reports as the
/// run's error) leave it without rules.
fn inline_sink<'a>(inline: &'a mut Option<RecordSink>, cfg: &EngineConfig) -> &'a mut RecordSink {
    inline.get_or_insert_with(|| {
        let rules = cfg.rules.as_ref().and_then(|r| r.get().ok().cloned());
        RecordSink::new(cfg.sql.clone(), rules)
    })
}

impl Engine {
    /// A new engine.
    pub fn new(cfg: EngineConfig) -> Self {
        let stats = EngineStats::new(cfg.registry.specs().iter().map(|s| s.name).collect());
        Engine {
            cfg,
            flows: FlowMap::default(),
            mem: 0,
            now: Timestamp(0),
            events: Vec::new(),
            queue: RecordQueue::default(),
            inline: None,
            stats,
            follow_next: None,
        }
    }

    /// The next packet belongs to a connection a redirect announced.
    pub fn follow_next(&mut self, f: Followed) {
        self.follow_next = Some(f);
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Records completed since the last [`Engine::take_records`] or [`Engine::take_parts`],
    /// serialized on this thread, in key order.
    pub fn records(&mut self) -> &mut RecordBatch {
        let inline = inline_sink(&mut self.inline, &self.cfg);
        inline.write_queue(&mut self.queue);
        inline.batch()
    }

    /// Take the records completed so far, serialized on this thread, leaving `fresh` (emptied)
    /// to write into.
    pub fn take_records(&mut self, fresh: RecordBatch) -> RecordBatch {
        let inline = inline_sink(&mut self.inline, &self.cfg);
        inline.write_queue(&mut self.queue);
        inline.take(fresh)
    }

    /// Take the records completed so far, to be serialized elsewhere, leaving `fresh` (emptied)
    /// in their place.
    pub fn take_parts(&mut self, fresh: Vec<RecordParts>) -> Vec<RecordParts> {
        self.queue.take(fresh)
    }

    /// Flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Memory charged to the flow table.
    pub fn flow_memory(&self) -> usize {
        self.mem
    }

    /// Handle one TCP segment at input position `position`.
    pub fn packet(&mut self, position: u64, seg: &Segment<'_>) {
        self.queue.set_position(position);
        self.now = self.now.max(seg.ts);
        self.stats.packets += 1;
        self.stats.payload_bytes += seg.payload.len() as u64;
        let key = FlowKey::new(seg.src, seg.dst);
        let syn_only = seg.flags.syn && !seg.flags.ack;
        let follow = self.follow_next.take();
        // Stray packets with nothing to say (pure ACKs, RSTs, FINs of flows we never saw) do
        // not create flows.
        let stray = !seg.flags.syn && seg.payload.is_empty() && seg.missing == 0;

        // One lookup of the flow table for the packet (it is looked up for every packet).
        let flow = match self.flows.entry(key) {
            Entry::Occupied(mut o) => match restart(o.get(), seg, syn_only, &self.cfg) {
                None => o.into_mut(),
                // A new connection on a 4-tuple that was used before (port reuse), or a flow
                // that went idle: the old one is finished first.
                Some(reason) => {
                    if reason == CloseReason::Ended {
                        self.stats.port_reuse += 1;
                    }
                    let (old, entry) = if stray {
                        (o.remove(), None)
                    } else {
                        self.stats.flows += 1;
                        (o.insert(Flow::new(seg.src, seg.dst, seg.ts)), Some(o))
                    };
                    self.mem = self.mem.saturating_sub(old.mem);
                    let mut cx = Ctx {
                        cfg: &self.cfg,
                        events: &mut self.events,
                        queue: &mut self.queue,
                        stats: &mut self.stats,
                    };
                    finish_flow(old, &key, seg.ts, reason, &mut cx);
                    match entry {
                        Some(o) => o.into_mut(),
                        None => {
                            self.stats.stray_packets += 1;
                            return;
                        }
                    }
                }
            },
            Entry::Vacant(v) => {
                if stray {
                    self.stats.stray_packets += 1;
                    return;
                }
                self.stats.flows += 1;
                v.insert(Flow::new(seg.src, seg.dst, seg.ts))
            }
        };
        if let Some(f) = follow {
            // Only a flow still looking for its protocol takes the hint.
            if matches!(flow.app, App::Detect(_)) {
                flow.followed = Some(f);
            }
        }
        let mut cx = Ctx {
            cfg: &self.cfg,
            events: &mut self.events,
            queue: &mut self.queue,
            stats: &mut self.stats,
        };
        flow.on_segment(&key, seg, &mut cx);
        let finished = flow.finished();
        let before = flow.mem;
        flow.mem = flow.mem_usage();
        let mem_delta = (before, flow.mem);
        self.mem = self.mem + mem_delta.1 - mem_delta.0.min(self.mem + mem_delta.1);
        if finished {
            self.close_flow(&key, seg.ts, CloseReason::Ended);
        }
        self.stats.peak_flow_memory = self.stats.peak_flow_memory.max(self.mem as u64);
        if self.mem > self.cfg.max_flow_memory {
            self.evict(seg.ts);
        }
    }

    /// Packet time reached `ts` (a timer tick at input position `position`): close idle flows,
    /// turn old holes into gaps.
    pub fn tick(&mut self, position: u64, ts: Timestamp) {
        self.queue.set_position(position);
        self.now = self.now.max(ts);
        let now = self.now;
        let mut idle: Vec<FlowKey> = Vec::new();
        for (key, flow) in self.flows.iter_mut() {
            if now.0.saturating_sub(flow.last_ts.0) > self.cfg.idle_timeout_ns {
                idle.push(*key);
                continue;
            }
            let mut cx = Ctx {
                cfg: &self.cfg,
                events: &mut self.events,
                queue: &mut self.queue,
                stats: &mut self.stats,
            };
            flow.on_time(key, now, &mut cx);
        }
        idle.sort_unstable();
        for key in idle {
            self.close_flow(&key, now, CloseReason::Idle);
        }
    }

    /// The input ended: close every flow, in key order.
    pub fn finish(&mut self, position: u64) {
        self.queue.set_position(position);
        let mut keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        keys.sort_unstable();
        let now = self.now;
        for key in keys {
            self.close_flow(&key, now, CloseReason::CaptureEnd);
        }
    }

    fn evict(&mut self, ts: Timestamp) {
        let target = self.cfg.max_flow_memory / 100 * EVICT_TARGET_PERCENT;
        let mut by_age: Vec<(Timestamp, FlowKey, usize)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.last_ts, *k, f.mem))
            .collect();
        by_age.sort_unstable();
        let mut mem = self.mem;
        let mut victims = Vec::new();
        for (_, key, m) in by_age {
            if mem <= target {
                break;
            }
            mem = mem.saturating_sub(m);
            victims.push(key);
        }
        for key in victims {
            self.stats.evicted_flows += 1;
            self.close_flow(&key, ts, CloseReason::Evicted);
        }
    }

    fn close_flow(&mut self, key: &FlowKey, ts: Timestamp, reason: CloseReason) {
        let Some(flow) = self.flows.remove(key) else {
            return;
        };
        self.mem = self.mem.saturating_sub(flow.mem);
        let mut cx = Ctx {
            cfg: &self.cfg,
            events: &mut self.events,
            queue: &mut self.queue,
            stats: &mut self.stats,
        };
        finish_flow(flow, key, ts, reason, &mut cx);
    }
}

/// Why the packet `seg` starts its 4-tuple's flow over: a new connection (a different ISN, a
/// SYN after this side's own FIN, which a sender cannot open again, or a SYN on a stream only
/// ever seen mid-way) or a flow gone idle. `None`: it continues the flow.
fn restart(
    flow: &Flow,
    seg: &Segment<'_>,
    syn_only: bool,
    cfg: &EngineConfig,
) -> Option<CloseReason> {
    let half = &flow.half[flow.side_of(seg.src)];
    let reused = syn_only
        && (flow.finished()
            || half.fin_seen()
            || match half.isn() {
                Some(isn) => isn != seg.seq,
                None => half.started(),
            });
    if reused {
        return Some(CloseReason::Ended);
    }
    let idle = seg.ts.0.saturating_sub(flow.last_ts.0) > cfg.idle_timeout_ns;
    idle.then_some(CloseReason::Idle)
}

/// Finish a flow taken out of the table: its streams end, its session's last records go out.
fn finish_flow(
    mut flow: Flow,
    key: &FlowKey,
    ts: Timestamp,
    reason: CloseReason,
    cx: &mut Ctx<'_>,
) {
    flow.close(key, ts, reason, cx);
    match reason {
        CloseReason::Ended => cx.stats.flows_closed_ended += 1,
        CloseReason::Idle => cx.stats.flows_closed_idle += 1,
        CloseReason::Evicted => {}
        CloseReason::CaptureEnd => cx.stats.flows_open_at_end += 1,
    }
}

impl Flow {
    fn new(src: Endpoint, dst: Endpoint, ts: Timestamp) -> Self {
        Flow {
            ends: [src, dst],
            half: [HalfStream::new(), HalfStream::new()],
            client_side: None,
            app: App::Detect(Detector::new()),
            first_ts: ts,
            last_ts: ts,
            mem: 0,
            ignored_ends: [false, false],
            followed: None,
        }
    }

    fn side_of(&self, src: Endpoint) -> usize {
        if src == self.ends[0] {
            0
        } else {
            1
        }
    }

    /// Both directions ended (FIN both ways, or RST); or one ended and nothing at all of the
    /// other was ever seen (a capture of one direction: the other FIN would never come, and the
    /// flow would hold its records and memory until the idle timeout, an hour by default).
    fn finished(&self) -> bool {
        let one_sided_end = |s: usize| self.half[s].ended() && !self.half[1 - s].started();
        (self.half[0].ended() && self.half[1].ended())
            || one_sided_end(0)
            || one_sided_end(1)
            || self.ignored_ends == [true, true]
    }

    fn mem_usage(&self) -> usize {
        let app = match &self.app {
            App::Detect(d) => d.held_bytes(),
            App::Parse(p) => p.driver.buffered() + p.parser.mem_usage(),
            App::Ignore => 0,
        };
        FLOW_BASE_COST + self.half[0].heap_bytes() + self.half[1].heap_bytes() + app
    }

    fn on_segment(&mut self, key: &FlowKey, seg: &Segment<'_>, cx: &mut Ctx<'_>) {
        self.last_ts = self.last_ts.max(seg.ts);
        let side = self.side_of(seg.src);
        let peer = 1 - side;
        if matches!(self.app, App::Ignore) {
            // Not ours: no reassembly, no buffering; only notice the end of the connection.
            if seg.flags.rst {
                self.ignored_ends = [true, true];
            } else if seg.flags.fin {
                self.ignored_ends[side] = true;
            }
            return;
        }
        if seg.flags.syn {
            // SYN from the client, SYN+ACK from the server.
            if self.client_side.is_none() {
                self.client_side = Some(if seg.flags.ack { peer } else { side });
            }
            self.half[side].on_syn(seg.seq);
        }
        let Flow {
            half,
            app,
            ends,
            client_side,
            first_ts,
            followed,
            ..
        } = self;
        let facts = flow_facts(ends, *client_side, half, *followed);
        let limits = cx.cfg.reassembly;
        let mut route = |s: usize, d: Delivery<'_>| {
            deliver(app, client_side, key, ends, *first_ts, &facts, s, d, cx)
        };
        // The peer's acknowledgment first: bytes it acknowledged precede this segment's bytes.
        if seg.flags.ack {
            let peer_sends =
                !seg.payload.is_empty() || seg.missing > 0 || seg.flags.fin || seg.flags.rst;
            let [h0, h1] = half;
            let peer_half = if peer == 0 { h0 } else { h1 };
            peer_half.peer_acked(seg.ts, seg.ack, peer_sends, &mut |d| route(peer, d));
        }
        let data_seq = if seg.flags.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        half[side].on_segment(
            &limits,
            seg.ts,
            data_seq,
            seg.payload,
            seg.missing,
            seg.flags.fin,
            &mut |d| route(side, d),
        );
        if seg.flags.rst {
            for s in [side, peer] {
                half[s].close(seg.ts, true, &mut |d| route(s, d));
            }
        }
        // Packet time moved: holes of either side may have timed out.
        for s in [0, 1] {
            half[s].on_time(&limits, seg.ts, &mut |d| route(s, d));
        }
    }

    fn on_time(&mut self, key: &FlowKey, now: Timestamp, cx: &mut Ctx<'_>) {
        let Flow {
            half,
            app,
            ends,
            client_side,
            first_ts,
            followed,
            ..
        } = self;
        let facts = flow_facts(ends, *client_side, half, *followed);
        let limits = cx.cfg.reassembly;
        for s in [0, 1] {
            half[s].on_time(&limits, now, &mut |d| {
                deliver(app, client_side, key, ends, *first_ts, &facts, s, d, cx)
            });
        }
    }

    fn close(&mut self, key: &FlowKey, ts: Timestamp, reason: CloseReason, cx: &mut Ctx<'_>) {
        let Flow {
            half,
            app,
            ends,
            client_side,
            first_ts,
            followed,
            ..
        } = self;
        let facts = flow_facts(ends, *client_side, half, *followed);
        let reset = reason != CloseReason::Ended;
        for s in [0, 1] {
            half[s].close(ts, reset, &mut |d| {
                deliver(app, client_side, key, ends, *first_ts, &facts, s, d, cx)
            });
        }
        for h in half.iter() {
            cx.stats.add_reassembly(h.stats());
        }
        match std::mem::replace(app, App::Ignore) {
            App::Parse(mut p) => {
                let unparsed = p.driver.stats().unparsed;
                cx.stats.add_driver(p.driver.stats(), p.driver.state());
                // Opaque bytes by direction: [to server, to client].
                let enc = if p.session.encrypted() {
                    unparsed
                } else {
                    [0, 0]
                };
                p.session.close(reason, enc, cx.queue);
                cx.stats
                    .add_session(p.spec, p.session.counters(), p.session.encrypted());
            }
            App::Detect(_) | App::Ignore => {}
        }
    }
}

/// What detection needs to know about a flow (taken from its parts, which are borrowed apart).
fn flow_facts(
    ends: &[Endpoint; 2],
    client_side: Option<usize>,
    half: &[HalfStream; 2],
    followed: Option<Followed>,
) -> FlowFacts {
    FlowFacts {
        ports: [ends[0].port, ends[1].port],
        client_side,
        syn_seen: [half[0].syn_seen(), half[1].syn_seen()],
        followed: followed.map(|f| {
            let client = if ends[0] == f.client { 0 } else { 1 };
            (usize::from(f.spec), client)
        }),
    }
}

/// Route one reassembly delivery of `side` to the flow's application layer.
#[allow(clippy::too_many_arguments)]
fn deliver(
    app: &mut App,
    client_side: &mut Option<usize>,
    key: &FlowKey,
    ends: &[Endpoint; 2],
    first_ts: Timestamp,
    facts: &FlowFacts,
    side: usize,
    d: Delivery<'_>,
    cx: &mut Ctx<'_>,
) {
    match app {
        App::Ignore => {}
        App::Parse(p) => feed(p, side, &d, cx),
        App::Detect(det) => {
            let forced = forced_choice(facts, cx.cfg);
            let verdict = match forced {
                Some(v) => v,
                None => det.push(side, &d, facts, &cx.cfg.registry),
            };
            match verdict {
                Verdict::Wait => {}
                Verdict::Unidentified => {
                    cx.stats.unidentified_flows += 1;
                    *app = App::Ignore;
                }
                Verdict::Chosen(choice) => {
                    let Some(spec) = cx.cfg.registry.spec(choice.spec) else {
                        *app = App::Ignore;
                        return;
                    };
                    *client_side = Some(choice.client_side);
                    let midstream = !choice.at_stream_start;
                    let client = ends[choice.client_side];
                    let server = ends[1 - choice.client_side];
                    let info = SessionInfo {
                        id: session_id(key, first_ts),
                        protocol: spec.name,
                        client,
                        server,
                        midstream,
                        redirected: facts.followed.is_some_and(|(s, _)| s == choice.spec),
                    };
                    let mut parsing = Box::new(Parsing {
                        spec: choice.spec,
                        client_side: choice.client_side,
                        parser: (spec.new_parser)(SessionOpts { midstream }),
                        driver: Driver::new(cx.cfg.limits.clone()),
                        session: Session::new(info, cx.cfg.limits.max_pending_requests),
                    });
                    cx.stats.sessions[choice.spec] += 1;
                    if midstream {
                        cx.stats.midstream_sessions += 1;
                    }
                    let held = std::mem::take(det);
                    for chunk in held.chunks().iter().skip(choice.from_chunk) {
                        match chunk {
                            Chunk::Data { side, ts, range } => feed(
                                &mut parsing,
                                *side,
                                &Delivery::Data {
                                    bytes: held.bytes(range),
                                    ts: *ts,
                                },
                                cx,
                            ),
                            Chunk::Gap { side, ts, len } => feed(
                                &mut parsing,
                                *side,
                                &Delivery::Gap {
                                    len: *len,
                                    ts: *ts,
                                    cause: GapCause::Closed,
                                },
                                cx,
                            ),
                            Chunk::End { side, ts, reset } => feed(
                                &mut parsing,
                                *side,
                                &Delivery::End {
                                    reset: *reset,
                                    ts: *ts,
                                },
                                cx,
                            ),
                        }
                    }
                    if forced.is_some() {
                        // Forced: the current delivery was not held; feed it now.
                        feed(&mut parsing, side, &d, cx);
                    }
                    *app = App::Parse(parsing);
                }
            }
        }
    }
}

/// `--port NAME=PORT`: the flow is that protocol, whatever its bytes say; so is a connection a
/// redirect announced (the announcing protocol continues there).
fn forced_choice(facts: &FlowFacts, cfg: &EngineConfig) -> Option<Verdict> {
    for server_side in [1, 0] {
        if let Some(spec) = cfg.registry.forced(facts.ports[server_side]) {
            let client_side = facts.client_side.unwrap_or(1 - server_side);
            let at_stream_start = facts.syn_seen[0] || facts.syn_seen[1];
            return Some(Verdict::Chosen(crate::detect::Choice {
                spec,
                client_side,
                from_chunk: 0,
                at_stream_start,
            }));
        }
    }
    facts.followed.map(|(spec, client)| {
        Verdict::Chosen(crate::detect::Choice {
            spec,
            client_side: facts.client_side.unwrap_or(client),
            from_chunk: 0,
            at_stream_start: facts.syn_seen[0] || facts.syn_seen[1],
        })
    })
}

/// Feed one delivery to the parser and pair the events into records.
fn feed(p: &mut Parsing, side: usize, d: &Delivery<'_>, cx: &mut Ctx<'_>) {
    let dir: Direction = direction_of(side, p.client_side);
    let events = &mut *cx.events;
    match *d {
        Delivery::Data { bytes, ts } => p.driver.data(p.parser.as_mut(), dir, ts, bytes, events),
        Delivery::Gap { len, ts, .. } => p.driver.gap(p.parser.as_mut(), dir, ts, len, events),
        Delivery::End { reset, ts } => p.driver.end(p.parser.as_mut(), dir, ts, reset, events),
    }
    for ev in events.drain(..) {
        if let DbEvent::Anomaly { kind, .. } = &ev {
            cx.stats.count_anomaly(kind);
        }
        p.session.on_event(ev, cx.queue);
    }
}

/// Session id: stable per TCP connection (4-tuple + first packet time), the same on every run.
fn session_id(key: &FlowKey, first_ts: Timestamp) -> u64 {
    let mut h = Fnv64::default();
    h.write(&key.stable_hash().to_be_bytes());
    h.write(&first_ts.0.to_be_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ep, Conn, TOY};

    fn engine() -> Engine {
        Engine::new(EngineConfig {
            registry: Registry::with_specs(vec![TOY]),
            ..Default::default()
        })
    }

    fn run(segs: &[Segment<'_>]) -> (Engine, Vec<serde_json::Value>) {
        let mut e = engine();
        for (i, s) in segs.iter().enumerate() {
            e.packet(i as u64, s);
        }
        e.finish(segs.len() as u64);
        let lines = records_of(&mut e);
        (e, lines)
    }

    /// The records the engine wrote so far, parsed.
    pub(super) fn records_of(e: &mut Engine) -> Vec<serde_json::Value> {
        e.records()
            .lines()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn handshake_query_response_close() {
        let mut c = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        let mut segs = c.handshake(10);
        segs.push(c.client(100, b"Q select 1\n"));
        segs.push(c.server(350, b"OK 1\n"));
        segs.extend(c.close(400));
        let (e, recs) = run(&segs);
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r["protocol"], "toy");
        assert_eq!(r["sql"], "select 1");
        assert_eq!(r["client"]["ip"], "10.0.0.1");
        assert_eq!(r["client"]["port"], 40000);
        assert_eq!(r["server"]["port"], 5555);
        assert_eq!(r["rows"], 1);
        assert_eq!(r["latency_us"], 250);
        assert_eq!(r["ts"], "1970-01-01T00:00:00.000100Z");
        assert_eq!(r["flags"], serde_json::json!([]));
        assert_eq!(e.stats().flows_closed_ended, 1);
        assert_eq!(e.flow_count(), 0);
    }

    #[test]
    fn midstream_pickup_finds_the_client_from_the_probe() {
        // No handshake; the server speaks first (tail of an earlier answer), then a query.
        let mut c = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        let segs = vec![
            c.server(10, b"xx trailing\n"),
            c.client(20, b"Q select 2\n"),
            c.server(30, b"OK 0\n"),
        ];
        let (e, recs) = run(&segs);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["sql"], "select 2");
        assert_eq!(recs[0]["client"]["port"], 40000);
        assert_eq!(recs[0]["flags"], serde_json::json!(["midstream"]));
        assert_eq!(e.stats().midstream_sessions, 1);
        assert_eq!(e.stats().flows_open_at_end, 1);
    }

    #[test]
    fn port_reuse_starts_a_new_session() {
        let mut a = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        let mut segs = a.handshake(10);
        segs.push(a.client(20, b"Q one\n"));
        segs.push(a.server(30, b"OK 1\n"));
        segs.extend(a.close(40));
        let mut b = Conn::new(ep(1, 40000), ep(2, 5555), 555_555, 777_777);
        segs.extend(b.handshake(50));
        segs.push(b.client(60, b"Q two\n"));
        segs.push(b.server(70, b"OK 2\n"));
        let (e, recs) = run(&segs);
        assert_eq!(recs.len(), 2);
        assert_ne!(recs[0]["session_id"], recs[1]["session_id"]);
        assert_eq!(recs[1]["sql"], "two");
        assert_eq!(recs[1]["seq"], 1);
        assert_eq!(e.stats().flows, 2);
    }

    #[test]
    fn reordered_and_retransmitted_segments_give_the_same_records() {
        let mut c = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        let mut segs = c.handshake(10);
        let q1 = c.client(20, b"Q sel");
        let q2 = c.client(21, b"ect 3\n");
        let r = c.server(30, b"OK 3\n");
        segs.extend([q2, q1, q1, q2, r]);
        let (e, recs) = run(&segs);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["sql"], "select 3");
        assert_eq!(recs[0]["flags"], serde_json::json!([]));
        // Counters of a flow are added when it closes (here: at the end of the input).
        assert_eq!(e.stats().ooo_segments, 1);
        assert_eq!(e.stats().retransmitted_bytes, 11);
    }

    #[test]
    fn a_lost_request_segment_becomes_a_gap_when_the_server_answers() {
        let mut c = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        let mut segs = c.handshake(10);
        let _lost = c.client(20, b"Q lost\n");
        segs.push(c.client(21, b"Q kept\n"));
        segs.push(c.server(30, b"OK 1\n"));
        segs.extend(c.close(40));
        let (e, recs) = run(&segs);
        // The toy parser does not resync; what matters here is that the engine did not wait
        // for ever: the ACK of unseen bytes declared a gap, and the flow closed cleanly.
        assert!(recs.len() <= 1);
        assert_eq!(e.stats().gaps[GapCause::AckedUnseen.index()], 1);
        assert_eq!(e.stats().gap_bytes[GapCause::AckedUnseen.index()], 7);
    }

    #[test]
    fn http_on_a_protocol_port_is_not_parsed() {
        let mut c = Conn::new(ep(1, 40000), ep(2, 7777), 1000, 9000);
        let mut segs = c.handshake(10);
        segs.push(c.client(20, b"GET / HTTP/1.1\r\n\r\n"));
        segs.push(c.server(30, b"OK 1\n"));
        let (e, recs) = run(&segs);
        assert!(recs.is_empty());
        assert_eq!(e.stats().unidentified_flows, 1);
    }

    #[test]
    fn a_flow_seen_from_one_side_closes_at_that_side_s_fin() {
        let mut c = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        // Only the client's packets were mirrored: its SYN, ACK, query and FIN.
        let mut segs = c.handshake(10);
        segs.remove(1);
        segs.push(c.client(20, b"Q select 1\n"));
        let fin = c.close(30).remove(0);
        let mut e = engine();
        for (i, s) in segs.iter().enumerate() {
            e.packet(i as u64, s);
        }
        assert_eq!(e.flow_count(), 1);
        e.packet(segs.len() as u64, &fin);
        assert_eq!(e.flow_count(), 0);
        assert_eq!(e.stats().flows_closed_ended, 1);
        let recs = records_of(&mut e);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["sql"], "select 1");
        assert_eq!(recs[0]["status"], "unknown");
        assert_eq!(recs[0]["flags"], serde_json::json!(["no_response"]));
    }

    #[test]
    fn idle_flows_close_at_a_tick() {
        let mut c = Conn::new(ep(1, 40000), ep(2, 5555), 1000, 9000);
        let mut segs = c.handshake(10);
        segs.push(c.client(20, b"Q hang\n"));
        let mut e = engine();
        for (i, s) in segs.iter().enumerate() {
            e.packet(i as u64, s);
        }
        e.tick(
            10,
            Timestamp(DEFAULT_IDLE_TIMEOUT_SECS * 1_000_000_000 + 1_000_000),
        );
        assert_eq!(e.flow_count(), 0);
        let recs = records_of(&mut e);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["sql"], "hang");
        assert_eq!(recs[0]["status"], "unknown");
        assert_eq!(
            recs[0]["flags"],
            serde_json::json!(["no_response", "idle_timeout"])
        );
        assert_eq!(e.stats().flows_closed_idle, 1);
    }

    #[test]
    fn forced_port_skips_probing() {
        let mut cfg = EngineConfig {
            registry: Registry::with_specs(vec![TOY]),
            ..Default::default()
        };
        cfg.registry.force_port("toy", 6000).unwrap();
        let mut e = Engine::new(cfg);
        let mut c = Conn::new(ep(1, 40000), ep(2, 6000), 1000, 9000);
        let mut segs = c.handshake(10);
        // The server answers first with something the probe would not accept as a start.
        segs.push(c.client(20, b"Q forced\n"));
        segs.push(c.server(30, b"OK 4\n"));
        for (i, s) in segs.iter().enumerate() {
            e.packet(i as u64, s);
        }
        let recs = records_of(&mut e);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["rows"], 4);
    }
}

#[cfg(test)]
mod eviction_tests {
    use super::tests::records_of;
    use super::*;
    use crate::testkit::{ep, Conn, TOY};

    #[test]
    fn the_memory_cap_evicts_the_least_recently_active_flows_and_says_so() {
        // Room for about three flows (each is charged at least FLOW_BASE_COST).
        let cfg = EngineConfig {
            registry: Registry::with_specs(vec![TOY]),
            max_flow_memory: 3 * FLOW_BASE_COST + FLOW_BASE_COST / 2,
            ..Default::default()
        };
        let mut e = Engine::new(cfg);
        let mut pos = 0;
        for i in 0..5u16 {
            let mut c = Conn::new(ep(1, 40000 + i), ep(2, 7777), 1000, 9000);
            let mut segs = c.handshake(100 * i as u64);
            segs.push(c.client(100 * i as u64 + 50, b"Q waiting\n"));
            for s in &segs {
                e.packet(pos, s);
                pos += 1;
            }
            assert!(e.flow_memory() <= 3 * FLOW_BASE_COST + FLOW_BASE_COST / 2 + 4096);
        }
        assert!(
            e.stats().evicted_flows >= 2,
            "{:?}",
            e.stats().evicted_flows
        );
        let recs = records_of(&mut e);
        // The oldest flows went first, and their waiting request is written, flagged.
        assert_eq!(recs.len() as u64, e.stats().evicted_flows);
        assert_eq!(recs[0]["client"]["port"], 40000);
        assert_eq!(
            recs[0]["flags"],
            serde_json::json!(["no_response", "evicted"])
        );
    }
}
