//! The stream-layer ↔ parser contract: what a parser is fed and what it answers.

use crate::event::DbEvent;
use crate::limits::Limits;
use crate::time::Timestamp;

/// Which way bytes travel. Never a `bool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Client → server (requests).
    ToServer,
    /// Server → client (responses).
    ToClient,
}

impl Direction {
    /// The other direction.
    pub const fn flip(self) -> Self {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
    /// 0 for `ToServer`, 1 for `ToClient`: an index into per-direction arrays.
    pub const fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
    /// Short lowercase name, for metrics labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::ToServer => "to_server",
            Direction::ToClient => "to_client",
        }
    }
}

/// What the stream layer hands a parser, in stream order, per direction.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// All contiguous bytes the parser has not consumed yet (earlier tail + new data).
    Data(&'a [u8]),
    /// `len` bytes are known to be missing here (loss, snaplen cut, budget overflow, ACK beyond a
    /// hole). `partial` holds the bytes the parser had left unconsumed before the gap (the head of
    /// an incomplete message); the stream layer drops them after this call, because what follows
    /// the gap is not contiguous with them.
    Gap { len: u64, partial: &'a [u8] },
    /// The direction ended: FIN (`reset: false`), RST (`reset: true`), idle expiry or end of
    /// capture. `partial` holds unconsumed bytes of an incomplete message, if any.
    End { reset: bool, partial: &'a [u8] },
}

/// A parser's answer to one [`Input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// `n` bytes were consumed; call again with the rest (if any) and with new data.
    Consumed(usize),
    /// `consumed` bytes were consumed; do not call again until at least `need` bytes are buffered
    /// after them. `need` is exact (taken from a length header), never "one more byte".
    NeedMore { consumed: usize, need: usize },
    /// `consumed` bytes were consumed; then drop the next `skip` bytes unbuffered (result rows,
    /// COPY data, LOBs, the remainder of an over-limit message). Gaps falling inside are harmless.
    Skip { consumed: usize, skip: u64 },
    /// `consumed` bytes were consumed (the message that asked for the switch); the session then
    /// switched to something the parser cannot read (TLS): stop feeding both directions, count
    /// their bytes.
    Upgraded { consumed: usize, to: Upgrade },
    /// Not this protocol, or unrecoverable: stop feeding, count the bytes that follow.
    Abandon(Abandon),
}

/// What a session upgraded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// TLS from here on, in both directions.
    Tls,
}

/// Why a parser gave up on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    /// The bytes are not this protocol after all.
    NotThisProtocol,
    /// A framing header could not be trusted and no resync point was found within the limits.
    Unrecoverable,
}

impl Abandon {
    /// Short name for counters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Abandon::NotThisProtocol => "not_this_protocol",
            Abandon::Unrecoverable => "unrecoverable",
        }
    }
}

/// A protocol probe's verdict on the first bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// These bytes are this protocol, whatever the port.
    Certain,
    /// Could be this protocol; accept it on the protocol's own ports.
    Unsure,
    /// These bytes are not this protocol.
    NotForUs,
    /// Not enough bytes to tell yet.
    NeedMore,
}

/// A point in one direction's stream where a captured TCP segment began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Offset of the segment's first byte in the direction's stream.
    pub offset: u64,
    /// Capture time of that segment.
    pub ts: Timestamp,
}

/// Context of one `handle` call: time (from packets) and limits. Built by the stream layer.
#[derive(Debug, Clone, Copy)]
pub struct Cx<'a> {
    /// Capture time of the newest segment delivered in this direction.
    pub ts: Timestamp,
    /// Stream offset of the first byte of this call's input.
    pub base: u64,
    /// Segment starts covering this call's input, oldest first. May start before `base`.
    pub marks: &'a [Mark],
    /// The session's limits.
    pub limits: &'a Limits,
}

impl<'a> Cx<'a> {
    /// A context with a single time and no segment history (tests, simple drivers).
    pub fn at(ts: Timestamp, limits: &'a Limits) -> Self {
        Cx {
            ts,
            base: 0,
            marks: &[],
            limits,
        }
    }

    /// Capture time of the segment that carried input byte `pos` of this call.
    pub fn ts_at(&self, pos: usize) -> Timestamp {
        let abs = self.base.saturating_add(pos as u64);
        // Marks are sorted by offset: the last mark at or before `abs` carried the byte.
        let idx = self.marks.partition_point(|m| m.offset <= abs);
        match idx.checked_sub(1).and_then(|i| self.marks.get(i)) {
            Some(m) => m.ts,
            None => self.ts,
        }
    }

    /// Input positions (relative to this call's input) where a captured segment began, in order.
    /// Resync prefers these: clients and servers start a message at a segment start far more
    /// often than inside one.
    pub fn segment_starts(&self) -> impl Iterator<Item = usize> + '_ {
        let base = self.base;
        self.marks
            .iter()
            .filter(move |m| m.offset >= base)
            .map(move |m| (m.offset - base) as usize)
    }
}

/// How a parser instance starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOpts {
    /// The connection was picked up after its start: no TCP handshake, and so no protocol
    /// handshake either. The parser must not expect a greeting.
    pub midstream: bool,
}

/// A sans-IO parser for one protocol session (both directions of one TCP connection).
pub trait StreamParser: Send {
    /// Feed one input for direction `dir`; push events into `out`; say how to go on.
    fn handle(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        input: Input<'_>,
        out: &mut Vec<DbEvent>,
    ) -> Progress;

    /// Heap bytes the parser holds (statement caches, decompression buffers), for the flow
    /// table's memory cap.
    fn mem_usage(&self) -> usize {
        0
    }
}

/// How a protocol registers with the engine: name, ports, probe and parser factory. This is the
/// only protocol-specific thing outside a protocol crate.
#[derive(Clone, Copy)]
pub struct ProtocolSpec {
    /// Name used in records (`protocol`), metrics and `--port NAME=PORT`.
    pub name: &'static str,
    /// Ports where an `Unsure` probe is accepted.
    pub default_ports: &'static [u16],
    /// Looks at the first bytes of one direction, assuming that direction is `dir`.
    pub probe: fn(Direction, &[u8]) -> Probe,
    /// True when the bytes (of direction `dir`) open a protocol session (a server greeting, a
    /// startup message): the parser can start from its initial state even when the TCP
    /// handshake was not captured.
    pub session_start: fn(Direction, &[u8]) -> bool,
    /// Makes a parser for a new session.
    pub new_parser: fn(SessionOpts) -> Box<dyn StreamParser>,
    /// For protocols whose server can send the client elsewhere (Oracle's listener REDIRECT):
    /// finds such an announcement at the head of the bytes of one direction, so that the
    /// pipeline can follow the client to the new address (see [`Redirect`]). Called on every
    /// payload of every flow before any protocol is known, so it must reject foreign bytes in a
    /// few instructions; when the bytes are the start of an announcement cut short (split over
    /// TCP segments, data in the next packet), it says how many it needs
    /// ([`RedirectScan::NeedMore`]) and is called again on the same start with more bytes.
    pub redirect: Option<RedirectFinder>,
}

/// See [`ProtocolSpec::redirect`].
#[derive(Debug, Clone, Copy)]
pub struct RedirectFinder {
    /// An announcement's first packet has the byte `type_byte` at offset `type_at`: a payload
    /// with another byte there is rejected before `find` is called (it runs on every payload of
    /// every flow, and most are rejected by this byte alone). A payload too short to have the
    /// byte still goes to `find`, which may ask for more.
    pub type_at: usize,
    /// See `type_at`.
    pub type_byte: u8,
    /// Reads the announcement at the head of the bytes (see [`ProtocolSpec::redirect`]).
    pub find: fn(&[u8]) -> RedirectScan,
}

impl RedirectFinder {
    /// `find` on bytes that could start an announcement: [`RedirectScan::No`] at once when
    /// their type byte rules it out.
    #[inline]
    pub fn scan(&self, head: &[u8]) -> RedirectScan {
        if head.get(self.type_at).is_some_and(|&b| b != self.type_byte) {
            return RedirectScan::No;
        }
        (self.find)(head)
    }
}

/// What a [`RedirectFinder`] says about the bytes at the head of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectScan {
    /// Not an announcement, nor the start of one.
    No,
    /// The start of an announcement, cut short: call again, on the same first byte, once at
    /// least this many bytes (counted from it) are in view. Exact when the length is known,
    /// else the least that can decide (a header); it only grows from one call to the next.
    NeedMore(usize),
    /// An announcement (bytes after it, such as the next packet coalesced into the same
    /// payload, are ignored).
    Found(Redirect),
}

/// A server's announcement that the client's session continues at another address: the next
/// connection from the client to `host:port` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Host as announced: an IP address literal or a name (names cannot be matched to
    /// packets; only the port is then compared).
    pub host: String,
    pub port: u16,
}

impl std::fmt::Debug for ProtocolSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolSpec")
            .field("name", &self.name)
            .field("default_ports", &self.default_ports)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_at_picks_the_segment_that_carried_the_byte() {
        let limits = Limits::default();
        let marks = [
            Mark {
                offset: 100,
                ts: Timestamp(1),
            },
            Mark {
                offset: 110,
                ts: Timestamp(2),
            },
            Mark {
                offset: 150,
                ts: Timestamp(3),
            },
        ];
        let cx = Cx {
            ts: Timestamp(3),
            base: 105,
            marks: &marks,
            limits: &limits,
        };
        assert_eq!(cx.ts_at(0), Timestamp(1)); // offset 105
        assert_eq!(cx.ts_at(5), Timestamp(2)); // offset 110
        assert_eq!(cx.ts_at(44), Timestamp(2)); // offset 149
        assert_eq!(cx.ts_at(45), Timestamp(3)); // offset 150
        assert_eq!(cx.segment_starts().collect::<Vec<_>>(), vec![5, 45]);
    }

    #[test]
    fn ts_at_without_marks_is_the_newest_time() {
        let limits = Limits::default();
        let cx = Cx::at(Timestamp(7), &limits);
        assert_eq!(cx.ts_at(12), Timestamp(7));
    }

    /// The finder's type-byte test answers for it when the byte rules an announcement out, and
    /// leaves everything else (the right byte, or too few bytes to see it) to `find`.
    #[test]
    fn redirect_finder_rejects_by_its_type_byte_before_calling_find() {
        fn find(_: &[u8]) -> RedirectScan {
            RedirectScan::NeedMore(8)
        }
        let f = RedirectFinder {
            type_at: 4,
            type_byte: 5,
            find,
        };
        assert_eq!(f.scan(&[0, 8, 0, 0, 6, 0, 0, 0]), RedirectScan::No);
        assert_eq!(f.scan(&[0, 8, 0, 0, 5, 0]), RedirectScan::NeedMore(8));
        assert_eq!(f.scan(&[0, 8]), RedirectScan::NeedMore(8));
    }
}
