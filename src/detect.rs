//! Protocol detection by content: which protocol a flow speaks and which side is the client.
//!
//! Until a protocol is chosen, a flow's reassembled bytes are held here (bounded) in arrival
//! order, so that the chosen parser sees them from the start. Each registered protocol's probe
//! looks at
//! - the head of each side's stream, when that stream is known to start on a message boundary
//!   (its SYN was seen, or it is the side's first data), and
//! - the start of each new segment (a connection picked up mid-stream usually resumes with a
//!   request at a segment start).
//!
//! A `Certain` probe wins on any port; an `Unsure` probe is accepted on the protocol's default
//! ports. Ports forced with `--port NAME=PORT` skip probing (handled by the engine).

use std::ops::Range;

use dbtap_core::{Direction, Probe, Timestamp};

use crate::reassembly::Delivery;
use crate::registry::Registry;

/// Bytes held per flow while detecting; past this the flow is left unidentified.
pub const DETECT_MAX_BYTES: usize = 64 * 1024;
/// Chunks (segments, gaps, ends) held per flow while detecting.
pub const DETECT_MAX_CHUNKS: usize = 256;
/// Bytes of a side's stream head that probes see.
pub const DETECT_HEAD_BYTES: usize = 4096;

/// One held piece of a flow, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes of `side`, at `range` of the detector's buffer.
    Data {
        side: usize,
        ts: Timestamp,
        range: Range<usize>,
    },
    /// Missing bytes of `side`.
    Gap {
        side: usize,
        ts: Timestamp,
        len: u64,
    },
    /// `side` ended.
    End {
        side: usize,
        ts: Timestamp,
        reset: bool,
    },
}

/// What the engine knows about a flow that helps detection.
#[derive(Debug, Clone, Copy)]
pub struct FlowFacts {
    /// Ports by side.
    pub ports: [u16; 2],
    /// Client side, when the TCP handshake told.
    pub client_side: Option<usize>,
    /// SYN seen, by side.
    pub syn_seen: [bool; 2],
    /// A redirect announced this connection: (protocol index, client side).
    pub followed: Option<(usize, usize)>,
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Index of the protocol in the registry.
    pub spec: usize,
    /// Which side is the client.
    pub client_side: usize,
    /// First held chunk to replay into the parser; earlier ones are dropped.
    pub from_chunk: usize,
    /// The replay starts at the very start of the connection's streams (not mid-stream).
    pub at_stream_start: bool,
}

/// Outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep holding.
    Wait,
    /// Parse with this protocol.
    Chosen(Choice),
    /// No registered protocol: stop looking.
    Unidentified,
}

/// Detection state of one flow.
#[derive(Debug, Default)]
pub struct Detector {
    buf: Vec<u8>,
    chunks: Vec<Chunk>,
    head: [Vec<u8>; 2],
    /// The side's stream is contiguous from a message boundary so far.
    head_broken: [bool; 2],
    ended: [bool; 2],
}

/// Direction of `side`'s bytes when `client_side` is the client.
pub fn direction_of(side: usize, client_side: usize) -> Direction {
    if side == client_side {
        Direction::ToServer
    } else {
        Direction::ToClient
    }
}

impl Detector {
    /// Nothing held yet.
    pub fn new() -> Self {
        Detector::default()
    }

    /// Held chunks, in arrival order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Bytes of a held data chunk.
    pub fn bytes(&self, range: &Range<usize>) -> &[u8] {
        self.buf.get(range.clone()).unwrap_or_default()
    }

    /// Bytes held (memory accounting).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity() + self.head.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Hold one delivery of `side` and decide if possible.
    pub fn push(
        &mut self,
        side: usize,
        delivery: &Delivery<'_>,
        facts: &FlowFacts,
        registry: &Registry,
    ) -> Verdict {
        match *delivery {
            Delivery::Data { bytes, ts } => {
                if self.chunks.len() >= DETECT_MAX_CHUNKS
                    || self.buf.len() + bytes.len() > DETECT_MAX_BYTES
                {
                    return Verdict::Unidentified;
                }
                let idx = self.chunks.len();
                let range = self.buf.len()..self.buf.len() + bytes.len();
                self.buf.extend_from_slice(bytes);
                self.chunks.push(Chunk::Data {
                    side,
                    ts,
                    range: range.clone(),
                });
                let side_is_new = self.head[side].is_empty();
                if !self.head_broken[side] && self.head[side].len() < DETECT_HEAD_BYTES {
                    let room = DETECT_HEAD_BYTES - self.head[side].len();
                    self.head[side].extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                self.decide(side, idx, side_is_new, range, facts, registry)
            }
            Delivery::Gap { len, ts, .. } => {
                if self.chunks.len() >= DETECT_MAX_CHUNKS {
                    return Verdict::Unidentified;
                }
                self.chunks.push(Chunk::Gap { side, ts, len });
                self.head_broken[side] = true;
                Verdict::Wait
            }
            Delivery::End { reset, ts } => {
                self.chunks.push(Chunk::End { side, ts, reset });
                self.ended[side] = true;
                if self.ended.iter().all(|e| *e) {
                    Verdict::Unidentified
                } else {
                    Verdict::Wait
                }
            }
        }
    }

    fn decide(
        &self,
        side: usize,
        idx: usize,
        side_is_new: bool,
        range: Range<usize>,
        facts: &FlowFacts,
        registry: &Registry,
    ) -> Verdict {
        let hypotheses: &[Direction] = match facts.client_side {
            Some(c) if c == side => &[Direction::ToServer],
            Some(_) => &[Direction::ToClient],
            None => &[Direction::ToServer, Direction::ToClient],
        };
        let mut all_refused = true;
        // (a) The head of the side's stream, from its first byte.
        if !self.head_broken[side] {
            let first_chunk = self.first_chunk_of(side);
            let syn_seen = facts.syn_seen[side] || facts.syn_seen[1 - side];
            match self.probe_all(&self.head[side], side, hypotheses, facts, registry) {
                Found::Yes(spec, client_side, dir) => {
                    // Replay from the start when the connection start was seen; otherwise from
                    // the side's first segment (earlier bytes of the peer belong to messages
                    // whose start was not seen). A protocol greeting proves the session start
                    // even when the TCP handshake was not captured.
                    let opens = registry
                        .spec(spec)
                        .is_some_and(|s| (s.session_start)(dir, &self.head[side]));
                    let from_chunk = if syn_seen { 0 } else { first_chunk };
                    return Verdict::Chosen(Choice {
                        spec,
                        client_side,
                        from_chunk,
                        at_stream_start: syn_seen || opens,
                    });
                }
                Found::Refused => {}
                Found::Maybe => all_refused = false,
            }
        } else {
            all_refused = false;
        }
        // (b) This segment alone, when it is not the head already probed.
        if !side_is_new || self.head_broken[side] {
            let seg = self.bytes(&range);
            if let Found::Yes(spec, client_side, _) =
                self.probe_all(seg, side, hypotheses, facts, registry)
            {
                return Verdict::Chosen(Choice {
                    spec,
                    client_side,
                    from_chunk: idx,
                    at_stream_start: false,
                });
            }
        }
        // A stream that starts on a boundary (connection start seen) and that no protocol
        // accepts is not ours: HTTP, TLS or anything else on a database port.
        if all_refused && (facts.syn_seen[side] || facts.syn_seen[1 - side]) {
            return Verdict::Unidentified;
        }
        Verdict::Wait
    }

    fn first_chunk_of(&self, side: usize) -> usize {
        self.chunks
            .iter()
            .position(|c| matches!(c, Chunk::Data { side: s, .. } if *s == side))
            .unwrap_or(0)
    }

    fn probe_all(
        &self,
        bytes: &[u8],
        side: usize,
        hypotheses: &[Direction],
        facts: &FlowFacts,
        registry: &Registry,
    ) -> Found {
        let mut verdict = Found::Refused;
        for (idx, spec) in registry.specs().iter().enumerate() {
            for &dir in hypotheses {
                let client_side = if dir == Direction::ToServer {
                    side
                } else {
                    1 - side
                };
                let server_port = facts.ports[1 - client_side];
                match (spec.probe)(dir, bytes) {
                    Probe::Certain => return Found::Yes(idx, client_side, dir),
                    Probe::Unsure if registry.is_default_port(idx, server_port) => {
                        return Found::Yes(idx, client_side, dir)
                    }
                    Probe::Unsure | Probe::NeedMore => verdict = Found::Maybe,
                    Probe::NotForUs => {}
                }
            }
        }
        verdict
    }
}

enum Found {
    /// Protocol index, client side, direction of the probed bytes.
    Yes(usize, usize, Direction),
    Maybe,
    Refused,
}
