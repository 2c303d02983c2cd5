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
//! This runs in the reader, in packet order, before packets are sharded: the decision is the
//! same for any worker count.

use std::collections::HashMap;
use std::net::IpAddr;

use dbtap_core::{ProtocolSpec, Redirect, RedirectFinder, Timestamp};

use crate::engine::Segment;
use crate::record::Endpoint;

/// How long (packet time) an announced redirect waits for the client's connection.
pub const FOLLOW_SECS: u64 = 60;
/// Redirects waiting at once; more are counted (`redirects.dropped` in the summary) and not
/// followed.
pub const MAX_WAITING: usize = 4096;
/// Longest payload looked at: a REDIRECT is a short packet.
const MAX_REDIRECT_PAYLOAD: usize = 4096;

/// What the reader tells the worker about a flow it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Followed {
    /// Registry index of the protocol that announced it.
    pub spec: u16,
    /// The client of the redirected connection.
    pub client: Endpoint,
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
}

/// The reader's redirect watch.
#[derive(Debug, Default)]
pub struct RedirectWatch {
    /// Protocols that announce redirects: (registry index, finder).
    finders: Vec<(u16, RedirectFinder)>,
    /// Keyed by (client ip, announced port).
    waiting: HashMap<(IpAddr, u16), Waiting>,
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
        if !self.finders.is_empty()
            && !seg.payload.is_empty()
            && seg.payload.len() <= MAX_REDIRECT_PAYLOAD
        {
            let found = self
                .finders
                .iter()
                .find_map(|&(spec, find)| Some((spec, find(seg.payload)?)));
            if let Some((spec, r)) = found {
                // The announcement travels to the client: the packet's receiver.
                self.announce(spec, seg.dst.ip, &r, seg.ts);
            }
        }
        followed
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
        let until = Timestamp(ts.0.saturating_add(FOLLOW_SECS * 1_000_000_000));
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
    }
}
