//! Writes the spec-true synthetic TDS conversations of `tests/synth` as pcap files (Ethernet,
//! IPv4, TCP with a full handshake and FIN), one file per conversation, for golden fixtures.
//!
//! `cargo run -p dbtap-tds --example tds_synth -- OUT_DIR`
//!
//! `cargo run --release -p dbtap-tds --example tds_synth -- --bench FILE.pcap MB` writes one
//! large capture instead: the `full_session` conversation over and over, each time on its own
//! connection (client address and port vary), until the file holds about MB megabytes. Used by
//! `benches/compare-tshark-tds.sh`.
//!
//! `cargo run --release -p dbtap-tds --example tds_synth -- --bench-oltp FILE.pcap MB [CONNS]`
//! writes the OLTP bench instead: CONNS (default 4) pooled connections, logged in once, taking
//! sysbench `oltp_read_write` transactions in turn as the JDBC driver sends them (`synth::Oltp`):
//! the TDS twin of the MySQL bench's sysbench capture.
//!
//! `cargo run --release -p dbtap-tds --example tds_synth -- --bench-pool FILE.pcap HANDLES
//! EXECUTES` writes one long connection of a pooling client instead: HANDLES statements
//! prepared and kept, then EXECUTES sp_execute calls over them (the cost of a session that holds
//! many prepared handles).

#[path = "../tests/synth/mod.rs"]
mod synth;

use dbtap_core::Direction;

const SERVER: ([u8; 4], u16) = ([10, 20, 30, 1], 1433);
const MSS: usize = 1460;

struct Pcap {
    out: Vec<u8>,
    ts_us: u64,
    seq: [u32; 2],
    client: ([u8; 4], u16),
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    !(s as u16)
}

impl Pcap {
    fn new(start_us: u64) -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        Pcap {
            out,
            ts_us: start_us,
            seq: [1_000_000, 2_000_000],
            client: ([10, 20, 30, 40], 51_433),
        }
    }

    /// One whole connection: handshake, the conversation, FIN both ways.
    fn connection(&mut self, conv: &synth::Conversation) {
        self.open();
        self.send(conv);
        self.close();
    }

    /// The three-way handshake of a new connection (of `self.client`).
    fn open(&mut self) {
        self.seq = [1_000_000, 2_000_000];
        self.segment(0, 0x02, &[]);
        self.segment(1, 0x02, &[]);
        self.segment(0, 0x00, &[]);
    }

    /// Conversation bytes in MSS-sized segments, 1 ms between runs.
    fn send(&mut self, conv: &synth::Conversation) {
        for (d, bytes) in conv {
            let i = if *d == Direction::ToServer { 0 } else { 1 };
            for c in bytes.chunks(MSS) {
                self.segment(i, 0x08, c);
            }
            self.ts_us += 1_000;
        }
    }

    /// FIN both ways.
    fn close(&mut self) {
        self.segment(0, 0x01, &[]);
        self.segment(1, 0x01, &[]);
        self.segment(0, 0x00, &[]);
    }

    /// One TCP segment from side `i` (0 client, 1 server).
    fn segment(&mut self, i: usize, flags: u8, payload: &[u8]) {
        let client = self.client;
        let (src, dst) = if i == 0 {
            (client, SERVER)
        } else {
            (SERVER, client)
        };
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&src.1.to_be_bytes());
        tcp.extend_from_slice(&dst.1.to_be_bytes());
        tcp.extend_from_slice(&self.seq[i].to_be_bytes());
        let ack = if flags & 0x02 != 0 && i == 0 {
            0
        } else {
            self.seq[1 - i]
        };
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push(0x50);
        tcp.push(flags | if ack != 0 { 0x10 } else { 0 });
        tcp.extend_from_slice(&65535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.0);
        pseudo.extend_from_slice(&dst.0);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&tcp);
        let c = csum(&pseudo);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src.0);
        ip.extend_from_slice(&dst.0);
        let c = csum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut frame = vec![
            0x02,
            0,
            0,
            0,
            0,
            (2 - i) as u8,
            0x02,
            0,
            0,
            0,
            0,
            (1 + i) as u8,
            0x08,
            0x00,
        ];
        frame.extend(ip);
        frame.extend(tcp);
        self.out
            .extend_from_slice(&((self.ts_us / 1_000_000) as u32).to_le_bytes());
        self.out
            .extend_from_slice(&((self.ts_us % 1_000_000) as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.extend(frame);
        let advance = payload.len() as u32 + u32::from(flags & 0x03 != 0);
        self.seq[i] = self.seq[i].wrapping_add(advance);
        self.ts_us += 150;
    }
}

fn bench(path: &str, mb: u64) {
    let conv = synth::full_session();
    let mut p = Pcap::new(1_709_280_000 * 1_000_000);
    let mut n = 0u32;
    while (p.out.len() as u64) < mb * 1_000_000 {
        p.client = (
            [10, 20, (n >> 8) as u8, n as u8],
            40_000 + (n % 20_000) as u16,
        );
        p.connection(&conv);
        n += 1;
    }
    std::fs::write(path, &p.out).expect("write the pcap");
    println!("{path}: {} bytes, {n} connections", p.out.len());
}

fn bench_pool(path: &str, handles: i32, executes: usize) {
    let mut p = Pcap::new(1_709_280_000 * 1_000_000);
    p.connection(&synth::statement_pool(handles, executes));
    std::fs::write(path, &p.out).expect("write the pcap");
    println!(
        "{path}: {} bytes, {handles} handles, {executes} executes",
        p.out.len()
    );
}

/// `conns` pooled connections, each logged in once, taking sysbench `oltp_read_write`
/// transactions in turn (so their packets interleave as a pool's do) until the file holds
/// about `mb` megabytes.
fn bench_oltp(path: &str, mb: u64, conns: usize) {
    let mut p = Pcap::new(1_709_280_000 * 1_000_000);
    let conns = conns.max(1);
    // Per connection: client endpoint, sequence numbers, statement handles.
    type Conn = (([u8; 4], u16), [u32; 2], synth::Oltp);
    let mut state: Vec<Conn> = (0..conns)
        .map(|n| {
            let client = ([10, 20, 31, n as u8], 50_000 + n as u16);
            (client, [0, 0], synth::Oltp::new(n as u64 + 1))
        })
        .collect();
    let login = synth::Oltp::login();
    for s in &mut state {
        p.client = s.0;
        p.open();
        p.send(&login);
        s.1 = p.seq;
    }
    let mut total = synth::OltpCounts::default();
    let mut turn = 0;
    while (p.out.len() as u64) < mb * 1_000_000 {
        let s = &mut state[turn % conns];
        p.client = s.0;
        p.seq = s.1;
        let (conv, c) = s.2.transaction();
        p.send(&conv);
        s.1 = p.seq;
        total += c;
        turn += 1;
    }
    for s in &mut state {
        p.client = s.0;
        p.seq = s.1;
        p.close();
    }
    std::fs::write(path, &p.out).expect("write the pcap");
    println!(
        "{path}: {} bytes, {conns} connections, {turn} transactions, {} RPCs, {} TM requests, {} rows",
        p.out.len(),
        total.rpcs,
        total.tm,
        total.rows
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bench-pool") {
        let path = args
            .get(2)
            .expect("usage: tds_synth --bench-pool FILE HANDLES EXECUTES");
        let handles = args.get(3).and_then(|m| m.parse().ok()).unwrap_or(4000);
        let executes = args.get(4).and_then(|m| m.parse().ok()).unwrap_or(200_000);
        return bench_pool(path, handles, executes);
    }
    if args.get(1).map(String::as_str) == Some("--bench-oltp") {
        let path = args
            .get(2)
            .expect("usage: tds_synth --bench-oltp FILE MB [CONNECTIONS]");
        let mb = args.get(3).and_then(|m| m.parse().ok()).unwrap_or(200);
        let conns = args.get(4).and_then(|m| m.parse().ok()).unwrap_or(4);
        return bench_oltp(path, mb, conns);
    }
    if args.get(1).map(String::as_str) == Some("--bench") {
        let path = args.get(2).expect("usage: tds_synth --bench FILE MB");
        let mb = args.get(3).and_then(|m| m.parse().ok()).unwrap_or(200);
        return bench(path, mb);
    }
    let dir = args.get(1).expect("usage: tds_synth OUT_DIR");
    std::fs::create_dir_all(dir).expect("create the output directory");
    for (k, (name, conv)) in synth::all().into_iter().enumerate() {
        // 2024-03-01T08:00:00Z plus one minute per conversation.
        let mut p = Pcap::new((1_709_280_000 + 60 * k as u64) * 1_000_000);
        p.connection(&conv);
        let path = format!("{dir}/synthetic_{name}.pcap");
        std::fs::write(&path, &p.out).expect("write the pcap");
        println!("{path}: {} bytes", p.out.len());
    }
}
