//! Test helpers: a toy line protocol to exercise the engine and pipeline without a real parser,
//! and builders for TCP segments.

use std::net::{IpAddr, Ipv4Addr};

use dbtap_core::{
    Cx, DbEvent, Direction, Input, Op, Probe, Progress, ProtocolSpec, Request, Response,
    SessionOpts, Status, StreamParser, Timestamp,
};

use crate::engine::{Segment, TcpFlags};
use crate::record::Endpoint;

/// "toy": the client sends `Q <sql>\n`, the server answers `OK <rows>\n` or `ER <code>\n`.
pub const TOY: ProtocolSpec = ProtocolSpec {
    name: "toy",
    default_ports: &[7777],
    probe: toy_probe,
    session_start: |_, _| false,
    new_parser: toy_new,
    redirect: None,
};

fn toy_probe(dir: Direction, head: &[u8]) -> Probe {
    match dir {
        Direction::ToServer if head.starts_with(b"Q ") => Probe::Certain,
        Direction::ToServer if head.len() < 2 => Probe::NeedMore,
        Direction::ToClient if head.starts_with(b"OK ") || head.starts_with(b"ER ") => {
            Probe::Unsure
        }
        _ => Probe::NotForUs,
    }
}

fn toy_new(_: SessionOpts) -> Box<dyn StreamParser> {
    Box::new(Toy::default())
}

#[derive(Default)]
struct Toy {
    next_tx: u64,
    pending: std::collections::VecDeque<u64>,
}

impl StreamParser for Toy {
    fn handle(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        input: Input<'_>,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let Input::Data(data) = input else {
            return Progress::Consumed(0);
        };
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            return Progress::NeedMore {
                consumed: 0,
                need: data.len() + 1,
            };
        };
        let line = String::from_utf8_lossy(&data[..nl]).into_owned();
        match dir {
            Direction::ToServer => {
                // Requests are announced at once (as a pipelining protocol does); the session
                // layer holds them until their response or the end of the session.
                let tx = self.next_tx;
                self.next_tx += 1;
                self.pending.push_back(tx);
                out.push(DbEvent::Request(Box::new(Request {
                    tx,
                    ts: cx.ts_at(0),
                    op: Some(Op::QUERY),
                    sql: Some(line.trim_start_matches("Q ").into()),
                    bytes: nl as u64 + 1,
                    expects_response: true,
                    ..Default::default()
                })));
            }
            Direction::ToClient => {
                if let Some(tx) = self.pending.pop_front() {
                    let (status, rows) = if let Some(n) = line.strip_prefix("OK ") {
                        (Status::Ok, n.parse().ok())
                    } else {
                        (Status::Error, None)
                    };
                    out.push(DbEvent::Response(Box::new(Response {
                        tx,
                        ts_end: cx.ts,
                        status,
                        rows,
                        bytes: nl as u64 + 1,
                        ..Default::default()
                    })));
                }
            }
        }
        Progress::Consumed(nl + 1)
    }
}

/// An IPv4 endpoint 10.0.0.`last`:`port`.
pub fn ep(last: u8, port: u16) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        port,
    }
}

/// Builds the segments of one TCP connection with correct sequence numbers.
pub struct Conn {
    pub client: Endpoint,
    pub server: Endpoint,
    pub cseq: u32,
    pub sseq: u32,
}

impl Conn {
    /// A connection with the given ISNs.
    pub fn new(client: Endpoint, server: Endpoint, cisn: u32, sisn: u32) -> Self {
        Conn {
            client,
            server,
            cseq: cisn,
            sseq: sisn,
        }
    }

    fn seg(
        &self,
        ts_us: u64,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        payload: &'static [u8],
    ) -> Segment<'static> {
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        Segment {
            ts: Timestamp(ts_us * 1000),
            src,
            dst,
            seq,
            ack,
            flags,
            payload,
            missing: 0,
        }
    }

    /// SYN, SYN+ACK, ACK.
    pub fn handshake(&mut self, ts_us: u64) -> Vec<Segment<'static>> {
        let syn = TcpFlags {
            syn: true,
            ..Default::default()
        };
        let synack = TcpFlags {
            syn: true,
            ack: true,
            ..Default::default()
        };
        let ack = TcpFlags {
            ack: true,
            ..Default::default()
        };
        let v = vec![
            self.seg(ts_us, true, self.cseq, 0, syn, b""),
            self.seg(
                ts_us + 1,
                false,
                self.sseq,
                self.cseq.wrapping_add(1),
                synack,
                b"",
            ),
            self.seg(
                ts_us + 2,
                true,
                self.cseq.wrapping_add(1),
                self.sseq.wrapping_add(1),
                ack,
                b"",
            ),
        ];
        self.cseq = self.cseq.wrapping_add(1);
        self.sseq = self.sseq.wrapping_add(1);
        v
    }

    /// Client data.
    pub fn client(&mut self, ts_us: u64, payload: &'static [u8]) -> Segment<'static> {
        let s = self.seg(
            ts_us,
            true,
            self.cseq,
            self.sseq,
            TcpFlags {
                ack: true,
                ..Default::default()
            },
            payload,
        );
        self.cseq = self.cseq.wrapping_add(payload.len() as u32);
        s
    }

    /// Server data.
    pub fn server(&mut self, ts_us: u64, payload: &'static [u8]) -> Segment<'static> {
        let s = self.seg(
            ts_us,
            false,
            self.sseq,
            self.cseq,
            TcpFlags {
                ack: true,
                ..Default::default()
            },
            payload,
        );
        self.sseq = self.sseq.wrapping_add(payload.len() as u32);
        s
    }

    /// FIN from both sides.
    pub fn close(&mut self, ts_us: u64) -> Vec<Segment<'static>> {
        let fin = TcpFlags {
            fin: true,
            ack: true,
            ..Default::default()
        };
        let a = self.seg(ts_us, true, self.cseq, self.sseq, fin, b"");
        let b = self.seg(
            ts_us + 1,
            false,
            self.sseq,
            self.cseq.wrapping_add(1),
            fin,
            b"",
        );
        self.cseq = self.cseq.wrapping_add(1);
        self.sseq = self.sseq.wrapping_add(1);
        vec![a, b]
    }
}
