//! Following a server's redirect to the connection that carries the session.
//!
//! An Oracle listener can answer a CONNECT with a REDIRECT naming another address (a dedicated
//! server process on another port, another node of a cluster): the client closes, connects
//! there, and the real session — login, statements — travels on that second connection, often
//! on a port no rule or default names. The reader watches every payload for such an
//! announcement (each protocol that has one says how to find it: [`ProtocolSpec::redirect`])
//! and remembers `(client ip, port[, server ip])` for [`FOLLOW_SECS`] of packet time. The next
//! connection that matches is handed to its worker with a hint: it is parsed as the announcing
//! protocol from its first byte on — even when it was picked up mid-stream, where content
//! detection alone would not decide — and its records are flagged `redirected`.
//!
//! An announcement split over TCP segments (or whose data travels in the next packet, sent
//! apart) is put back together: when a payload is the start of one cut short
//! ([`RedirectScan::NeedMore`]), its bytes are kept for that direction of the flow, bounded
//! ([`MAX_REDIRECT_PAYLOAD`] bytes, [`MAX_PENDING`] flows, [`FOLLOW_SECS`]), and the next
//! segment in sequence is appended; a segment out of sequence, or cut by the snaplen, drops
//! them. Segments out of order are not reordered here.
//!
//! This runs in the reader, in packet order, before packets are sharded: the decision is the
//! same for any worker count. It sees every payload of every flow, so the common case — a
//! payload that cannot start an announcement, and nothing kept anywhere — costs each finder's
//! type-byte test, made here without a call (`RedirectFinder::scan`), and no lookup.

use std::collections::HashMap;
use std::net::IpAddr;

use dbtap_core::{ProtocolSpec, Redirect, RedirectFinder, RedirectScan, Timestamp};

use crate::engine::Segment;
use crate::record::Endpoint;

/// How long (packet time) an announced redirect waits for the client's connection.
pub const FOLLOW_SECS: u64 = 60;
const FOLLOW_NS: u64 = FOLLOW_SECS * 1_000_000_000;
/// How often (packet time) starts of announcements whose flow went quiet are looked for.
const SWEEP_NS: u64 = 1_000_000_000;
/// Redirects waiting at once; more are counted (`redirects.dropped` in the summary) and not
/// followed.
pub const MAX_WAITING: usize = 4096;
/// Most bytes of one announcement looked at (a payload, or the segments kept together): a
/// REDIRECT is a short packet.
pub const MAX_REDIRECT_PAYLOAD: usize = 4096;
/// Flows (one direction each) whose start of an announcement is kept at once; more are counted
/// (`redirects.unassembled` in the summary) and not kept.
pub const MAX_PENDING: usize = 1024;

/// What the reader tells the worker about a flow it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Followed {
    /// Registry index of the protocol that announced it.
    pub spec: u16,
    /// The client of the redirected connection.
    pub client: Endpoint,
}

/// The start of an announcement cut short, waiting for the flow's next segment.
#[derive(Debug)]
struct Pending {
    /// Registry index of the protocol whose finder asked for more.
    spec: u16,
    /// Sequence number the next segment must carry to continue it.
    next_seq: u32,
    until: Timestamp,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    spec: u16,
    /// The announced host when it is an IP address (a name cannot be compared).
    host: Option<IpAddr>,
    until: Timestamp,
}

/// Counters of redirects.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedirectStats {
    /// Redirects seen.
    pub announced: u64,
    /// Connections found that a redirect announced.
    pub followed: u64,
    /// Redirects whose connection did not come within [`FOLLOW_SECS`].
    pub expired: u64,
    /// Redirects not followed because [`MAX_WAITING`] were already waiting.
    pub dropped: u64,
    /// Starts of announcements split over segments that were not kept because
    /// [`MAX_PENDING`] flows already had one kept (a redirect among them goes unseen).
    pub unassembled: u64,
}

/// The reader's redirect watch.
#[derive(Debug, Default)]
pub struct RedirectWatch {
    /// Protocols that announce redirects: (registry index, finder).
    finders: Vec<(u16, RedirectFinder)>,
    /// Keyed by (client ip, announced port).
    waiting: HashMap<(IpAddr, u16), Waiting>,
    /// Starts of announcements cut short, keyed by (sender, receiver).
    pending: HashMap<(Endpoint, Endpoint), Pending>,
    /// Packet time after which `pending` is next swept of expired starts.
    sweep_at: Timestamp,
    pub stats: RedirectStats,
}

impl RedirectWatch {
    pub fn new(specs: &[ProtocolSpec]) -> Self {
        RedirectWatch {
            finders: specs
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((u16::try_from(i).ok()?, s.redirect?)))
                .collect(),
            ..Default::default()
        }
    }

    /// Look at one segment: remember a redirect it announces; say whether it belongs to a
    /// connection an earlier redirect announced (only for segments that can start a flow:
    /// a SYN or data).
    pub fn observe(&mut self, seg: &Segment<'_>) -> Option<Followed> {
        let followed = if self.waiting.is_empty() || (!seg.flags.syn && seg.payload.is_empty()) {
            None
        } else {
            self.follow(seg)
        };
        if self.finders.is_empty() || seg.payload.is_empty() {
            return followed;
        }
        // The map is empty unless a split announcement is being put back together.
        if !self.pending.is_empty() {
            if seg.ts > self.sweep_at {
                // Starts whose flow went quiet: forgotten, so that the map empties again.
                self.pending.retain(|_, p| p.until >= seg.ts);
                self.sweep_at = Timestamp(seg.ts.0.saturating_add(SWEEP_NS));
            }
            if let Some(p) = self.pending.remove(&(seg.src, seg.dst)) {
                if p.next_seq == seg.seq && seg.missing == 0 && seg.ts <= p.until {
                    self.resume(p, seg);
                    return followed;
                }
                // Not its continuation: forgotten; the segment is looked at afresh.
            }
        }
        // Bytes after an announcement are ignored: a longer payload is looked at up to the bound.
        let head = seg
            .payload
            .get(..MAX_REDIRECT_PAYLOAD)
            .unwrap_or(seg.payload);
        for &(spec, finder) in &self.finders {
            match finder.scan(head) {
                RedirectScan::No => continue,
                // The announcement travels to the client: the packet's receiver.
                RedirectScan::Found(r) => self.announce(spec, seg.dst.ip, &r, seg.ts),
                RedirectScan::NeedMore(n) => {
                    let until = Timestamp(seg.ts.0.saturating_add(FOLLOW_NS));
                    self.keep(spec, seg, head.to_vec(), n, until);
                }
            }
            break;
        }
        followed
    }

    /// The next segment of a kept start: look at the bytes put together.
    fn resume(&mut self, p: Pending, seg: &Segment<'_>) {
        let Some(&(_, finder)) = self.finders.iter().find(|(s, _)| *s == p.spec) else {
            return;
        };
        let mut bytes = p.bytes;
        let room = MAX_REDIRECT_PAYLOAD.saturating_sub(bytes.len());
        bytes.extend_from_slice(seg.payload.get(..room).unwrap_or(seg.payload));
        match finder.scan(&bytes) {
            RedirectScan::No => {}
            RedirectScan::Found(r) => self.announce(p.spec, seg.dst.ip, &r, seg.ts),
            RedirectScan::NeedMore(n) => self.keep(p.spec, seg, bytes, n, p.until),
        }
    }

    /// Keep the start of an announcement until the segment that follows `seg` (at the latest
    /// until `until`, [`FOLLOW_SECS`] after its first segment).
    fn keep(
        &mut self,
        spec: u16,
        seg: &Segment<'_>,
        bytes: Vec<u8>,
        need: usize,
        until: Timestamp,
    ) {
        // Over the bound, or no more than what is in view (a finder that breaks its contract),
        // or a segment cut by the snaplen (the bytes kept would have a hole): not kept.
        if need > MAX_REDIRECT_PAYLOAD || bytes.len() >= need || seg.missing > 0 {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|_, p| p.until >= seg.ts);
        }
        if self.pending.len() >= MAX_PENDING {
            self.stats.unassembled += 1;
            return;
        }
        let next_seq = seg.seq.wrapping_add(seg.payload.len() as u32);
        self.pending.insert(
            (seg.src, seg.dst),
            Pending {
                spec,
                next_seq,
                until,
                bytes,
            },
        );
    }

    fn announce(&mut self, spec: u16, client: IpAddr, r: &Redirect, ts: Timestamp) {
        self.stats.announced += 1;
        if self.waiting.len() >= MAX_WAITING {
            let before = self.waiting.len();
            self.waiting.retain(|_, w| w.until >= ts);
            self.stats.expired += (before - self.waiting.len()) as u64;
        }
        if self.waiting.len() >= MAX_WAITING {
            self.stats.dropped += 1;
            return;
        }
        let until = Timestamp(ts.0.saturating_add(FOLLOW_NS));
        let host = r.host.parse::<IpAddr>().ok();
        let replaced = self
            .waiting
            .insert((client, r.port), Waiting { spec, host, until });
        if replaced.is_some() {
            // A newer redirect for the same client and port replaces one never followed.
            self.stats.expired += 1;
        }
    }

    fn follow(&mut self, seg: &Segment<'_>) -> Option<Followed> {
        // Either direction may come first (a capture can start with the server's packet).
        for (client, server) in [(seg.src, seg.dst), (seg.dst, seg.src)] {
            let key = (client.ip, server.port);
            let Some(w) = self.waiting.get(&key).copied() else {
                continue;
            };
            if w.until < seg.ts {
                self.waiting.remove(&key);
                self.stats.expired += 1;
                continue;
            }
            if w.host.is_some_and(|h| h != server.ip) {
                continue;
            }
            self.waiting.remove(&key);
            self.stats.followed += 1;
            return Some(Followed {
                spec: w.spec,
                client,
            });
        }
        None
    }

    /// The input is over: what still waits was never followed.
    pub fn finish(&mut self) {
        self.pending.clear();
        self.stats.expired += self.waiting.len() as u64;
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TcpFlags;

    fn ep(ip: [u8; 4], port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::from(ip),
            port,
        }
    }

    fn seg<'a>(src: Endpoint, dst: Endpoint, secs: u64, payload: &'a [u8]) -> Segment<'a> {
        Segment {
            ts: Timestamp(secs * 1_000_000_000),
            src,
            dst,
            seq: 1,
            ack: 0,
            flags: TcpFlags::default(),
            payload,
            missing: 0,
        }
    }

    /// A REDIRECT as an Oracle listener sends it (`wswiki__TNS_Oracle4.pcap`, frame 6, with
    /// the descriptor shortened): header (length 0x4a, type 5), data length, descriptor.
    fn redirect_packet(desc: &str) -> Vec<u8> {
        let len = 10 + desc.len();
        let mut p = vec![(len >> 8) as u8, len as u8, 0, 0, 5, 0, 0, 0];
        p.extend_from_slice(&(desc.len() as u16).to_be_bytes());
        p.extend_from_slice(desc.as_bytes());
        p
    }

    #[test]
    fn the_next_connection_to_the_announced_address_is_followed_once() {
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        let client = ep([192, 168, 0, 218], 1864);
        let listener = ep([192, 168, 0, 4], 1521);
        let pkt = redirect_packet("(ADDRESS=(PROTOCOL=tcp)(HOST=192.168.0.4)(PORT=2143))");
        assert_eq!(w.observe(&seg(listener, client, 10, &pkt)), None);
        assert_eq!(w.stats.announced, 1);
        // Another server on that port, or another client: not it.
        let new_client = ep([192, 168, 0, 218], 1865);
        let other_host = ep([192, 168, 0, 5], 2143);
        assert_eq!(w.observe(&seg(new_client, other_host, 11, b"x")), None);
        let server = ep([192, 168, 0, 4], 2143);
        assert_eq!(
            w.observe(&seg(ep([10, 0, 0, 1], 5000), server, 11, b"x")),
            None
        );
        // The server's packet of the redirected connection, seen first.
        assert_eq!(
            w.observe(&seg(server, new_client, 12, b"x")),
            Some(Followed {
                spec: 0,
                client: new_client
            })
        );
        // Once.
        assert_eq!(w.observe(&seg(new_client, server, 12, b"x")), None);
        assert_eq!(w.stats.followed, 1);
    }

    #[test]
    fn a_redirect_not_followed_in_time_expires_and_is_counted() {
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        let client = ep([10, 1, 1, 1], 40000);
        let pkt = redirect_packet("(ADDRESS=(PROTOCOL=TCP)(HOST=db-node2)(PORT=1599))");
        w.observe(&seg(ep([10, 1, 1, 2], 1521), client, 0, &pkt));
        let late = seg(
            ep([10, 1, 1, 1], 40001),
            ep([10, 1, 1, 3], 1599),
            FOLLOW_SECS + 1,
            b"x",
        );
        assert_eq!(w.observe(&late), None);
        assert_eq!(w.stats.expired, 1);
        assert_eq!(w.stats.followed, 0);
    }

    #[test]
    fn a_host_name_matches_any_server_on_the_port() {
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        let client = ep([10, 1, 1, 1], 40000);
        let pkt = redirect_packet("(ADDRESS=(PROTOCOL=TCP)(HOST=db-node2)(PORT=1599))");
        w.observe(&seg(ep([10, 1, 1, 2], 1521), client, 0, &pkt));
        let next = ep([10, 1, 1, 1], 40001);
        assert!(w
            .observe(&seg(next, ep([10, 1, 1, 3], 1599), 1, b"x"))
            .is_some());
    }

    #[test]
    fn foreign_payloads_announce_nothing() {
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        let a = ep([10, 0, 0, 1], 1);
        let b = ep([10, 0, 0, 2], 2);
        for p in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[0, 10, 0, 0, 5, 0, 0, 0, 0, 0][..],
            &[0, 0, 0, 0, 5][..],
            &b""[..],
        ] {
            assert_eq!(w.observe(&seg(a, b, 0, p)), None);
        }
        assert_eq!(w.stats.announced, 0);
        assert!(w.pending.is_empty());
    }

    /// `seg` with a sequence number and nanoseconds.
    fn seg_at<'a>(src: Endpoint, dst: Endpoint, ns: u64, seq: u32, p: &'a [u8]) -> Segment<'a> {
        Segment {
            ts: Timestamp(ns),
            seq,
            ..seg(src, dst, 0, p)
        }
    }

    const ORACLE4: &str = "(ADDRESS=(PROTOCOL=tcp)(HOST=192.168.0.4)(PORT=2143))";

    #[test]
    fn a_redirect_split_over_two_segments_at_any_byte_is_followed() {
        let pkt = redirect_packet(ORACLE4);
        let listener = ep([192, 168, 0, 4], 1521);
        let client = ep([192, 168, 0, 218], 1864);
        let next = ep([192, 168, 0, 218], 1865);
        let server = ep([192, 168, 0, 4], 2143);
        for k in 1..pkt.len() {
            let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
            let (a, b) = pkt.split_at(k);
            let seq = u32::MAX - 3; // across the wrap of sequence numbers
            w.observe(&seg_at(listener, client, 1, seq, a));
            assert_eq!(w.stats.announced, 0, "cut at {k}");
            w.observe(&seg_at(listener, client, 2, seq.wrapping_add(k as u32), b));
            assert_eq!(w.stats.announced, 1, "cut at {k}");
            assert!(w.pending.is_empty());
            assert!(w.observe(&seg_at(next, server, 3, 7, b"x")).is_some());
        }
    }

    #[test]
    fn a_bare_redirect_and_its_data_packet_sent_apart_are_followed() {
        // Newer listeners: the REDIRECT carries the data length only; the data (address, NUL,
        // connect data) follows in a DATA packet after its data flags.
        let data = format!("{ORACLE4}\0(DESCRIPTION=(CONNECT_DATA=(SERVICE_NAME=void.domain)))");
        let bare = [0, 10, 0, 0, 5, 0, 0, 0, 0, data.len() as u8];
        let mut dp = vec![0, 10 + data.len() as u8, 0, 0, 6, 0, 0, 0, 0, 0x40];
        dp.extend_from_slice(data.as_bytes());
        let (listener, client) = (ep([192, 168, 0, 4], 1521), ep([192, 168, 0, 218], 1864));
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        w.observe(&seg_at(listener, client, 1, 100, &bare));
        w.observe(&seg_at(listener, client, 2, 110, &dp));
        assert_eq!(w.stats.announced, 1);
        assert!(w
            .observe(&seg_at(client, ep([192, 168, 0, 4], 2143), 3, 7, b"x"))
            .is_some());
    }

    #[test]
    fn a_segment_out_of_sequence_or_late_drops_the_start() {
        let pkt = redirect_packet(ORACLE4);
        let (a, b) = pkt.split_at(20);
        let (l, c) = (ep([10, 0, 0, 1], 1521), ep([10, 0, 0, 2], 40000));
        // A hole between the pieces.
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        w.observe(&seg_at(l, c, 1, 100, a));
        assert_eq!(w.pending.len(), 1);
        w.observe(&seg_at(l, c, 2, 121, b));
        assert_eq!(w.stats.announced, 0);
        assert!(w.pending.is_empty());
        // The rest after FOLLOW_SECS.
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        w.observe(&seg_at(l, c, 1, 100, a));
        w.observe(&seg_at(l, c, FOLLOW_NS + 2, 120, b));
        assert_eq!(w.stats.announced, 0);
        // A start whose flow goes quiet is swept once it expired, by any later segment.
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        w.observe(&seg_at(l, c, 1, 100, a));
        w.observe(&seg_at(c, l, FOLLOW_NS + 2, 5, b"x"));
        assert!(w.pending.is_empty());
        // The first piece cut by the snaplen: nothing kept.
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        w.observe(&Segment {
            missing: 43,
            ..seg_at(l, c, 1, 100, a)
        });
        assert!(w.pending.is_empty());
    }

    #[test]
    fn starts_over_the_limit_are_counted() {
        let pkt = redirect_packet(ORACLE4);
        let mut w = RedirectWatch::new(&[dbtap_tns::SPEC]);
        for i in 0..=MAX_PENDING {
            let c = ep([10, 0, (i >> 8) as u8, i as u8], 40000);
            w.observe(&seg_at(ep([10, 1, 0, 1], 1521), c, 1, 100, &pkt[..20]));
        }
        assert_eq!(w.pending.len(), MAX_PENDING);
        assert_eq!(w.stats.unassembled, 1);
        w.finish();
        assert!(w.pending.is_empty());
    }
}
