//! Capture reader tests: hand-built files that follow the published formats, real captures from
//! `fixtures/capture/` (truth from tshark 4.0.17), damaged files, and a robustness proptest.

use super::*;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `fixtures/capture/<rel>`.
pub(crate) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/capture")
        .join(rel)
}

/// A temporary file, removed when dropped.
pub(crate) struct TempPath(PathBuf);

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `bytes` to a fresh temporary file; it is removed when the returned guard drops.
pub(crate) fn temp_file(name: &str, bytes: &[u8]) -> TempPath {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("dbtap-cap-{}-{n}-{name}", std::process::id()));
    let mut f = File::create(&p).expect("create temp file");
    f.write_all(bytes).expect("write temp file");
    TempPath(p)
}

/// Owned copy of a frame, for comparing whole files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owned {
    pub ts: u64,
    pub origlen: u32,
    pub link: LinkType,
    pub interface: u32,
    pub data: Vec<u8>,
}

/// Reads every frame; returns them and the error that ended the file, if any.
pub(crate) fn read_all(path: &Path) -> (Vec<Owned>, Option<CaptureError>) {
    let mut r = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e)),
    };
    let mut out = vec![];
    loop {
        match r.next_frame() {
            Ok(Some(f)) => out.push(Owned {
                ts: f.ts.0,
                origlen: f.origlen,
                link: f.link,
                interface: f.interface,
                data: f.data.to_vec(),
            }),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn read_ok(path: &Path) -> Vec<Owned> {
    let (frames, err) = read_all(path);
    assert!(
        err.is_none(),
        "{}",
        err.map(|e| e.to_string()).unwrap_or_default()
    );
    frames
}

// ---------------------------------------------------------------------------------------------
// Hand-built classic pcap
// ---------------------------------------------------------------------------------------------

/// A little-endian µs pcap with two records (draft-ietf-opsawg-pcap §4 and §5), annotated.
#[rustfmt::skip]
const PCAP_LE_US: &[u8] = &[
    // File header
    0xd4, 0xc3, 0xb2, 0xa1,   // magic 0xa1b2c3d4 written little-endian: µs timestamps
    0x02, 0x00, 0x04, 0x00,   // major 2, minor 4
    0x00, 0x00, 0x00, 0x00,   // reserved1 (was thiszone)
    0x00, 0x00, 0x00, 0x00,   // reserved2 (was sigfigs)
    0x00, 0x00, 0x04, 0x00,   // snaplen 262144
    0x65, 0x00, 0x00, 0x00,   // link type 101 = LINKTYPE_RAW, no FCS bits
    // Record 1 (file offset 24)
    0x10, 0x00, 0x00, 0x00,   // ts seconds 16
    0x40, 0x42, 0x0f, 0x00,   // ts µs 0x000f4240 = 1_000_000 (out of range on purpose)
    0x03, 0x00, 0x00, 0x00,   // captured length 3
    0x05, 0x00, 0x00, 0x00,   // original length 5 (cut by the snaplen)
    0x45, 0x00, 0x00,         // 3 captured bytes
    // Record 2 (file offset 43)
    0x11, 0x00, 0x00, 0x00,   // ts seconds 17
    0x07, 0x00, 0x00, 0x00,   // ts µs 7
    0x01, 0x00, 0x00, 0x00,   // captured length 1
    0x01, 0x00, 0x00, 0x00,   // original length 1
    0x60,                     // 1 byte
];

#[test]
fn pcap_little_endian_microseconds() {
    let p = temp_file("le.pcap", PCAP_LE_US);
    let frames = read_ok(&p);
    assert_eq!(frames.len(), 2);
    // 16 s + 1_000_000 µs: out-of-range µs are added, not rejected (as libpcap does).
    assert_eq!(frames[0].ts, 17_000_000_000);
    assert_eq!(frames[0].origlen, 5);
    assert_eq!(frames[0].data, vec![0x45, 0x00, 0x00]);
    assert_eq!(frames[0].link, LinkType::Raw);
    assert_eq!(frames[1].ts, 17_000_007_000);
    assert_eq!(frames[1].data, vec![0x60]);
    let r = CaptureReader::open(&p).unwrap();
    assert_eq!(
        (r.format(), r.is_compressed(), r.file_len()),
        (Format::Pcap, false, Some(60))
    );
}

/// Rewrites a classic pcap in the other byte order: every header and record field swapped,
/// packet bytes untouched. Stands in for a big-endian writer (editcap keeps the byte order).
pub(crate) fn swap_pcap(le: &[u8]) -> Vec<u8> {
    let mut out = le.to_vec();
    let sw4 = |b: &mut [u8], at: usize| b[at..at + 4].reverse();
    let sw2 = |b: &mut [u8], at: usize| b[at..at + 2].reverse();
    sw4(&mut out, 0);
    sw2(&mut out, 4);
    sw2(&mut out, 6);
    for at in [8, 12, 16, 20] {
        sw4(&mut out, at);
    }
    let mut o = 24;
    while o + 16 <= le.len() {
        let caplen = u32::from_le_bytes(le[o + 8..o + 12].try_into().unwrap()) as usize;
        for k in 0..4 {
            sw4(&mut out, o + 4 * k);
        }
        o += 16 + caplen;
    }
    out
}

#[test]
fn pcap_big_endian_and_nanoseconds() {
    // Big-endian copy of the hand-built file reads identically.
    let be = swap_pcap(PCAP_LE_US);
    assert_eq!(&be[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
    let le_frames = read_ok(&temp_file("le.pcap", PCAP_LE_US));
    assert_eq!(read_ok(&temp_file("be.pcap", &be)), le_frames);
    // Nanosecond magic 0xa1b23c4d: the fraction is taken as ns.
    let mut ns = PCAP_LE_US.to_vec();
    ns[..4].copy_from_slice(&[0x4d, 0x3c, 0xb2, 0xa1]);
    let f = read_ok(&temp_file("ns.pcap", &ns));
    assert_eq!(f[0].ts, 16_001_000_000);
    assert_eq!(f[1].ts, 17_000_000_007);
    // …and big-endian nanosecond.
    let f = read_ok(&temp_file("bens.pcap", &swap_pcap(&ns)));
    assert_eq!(f[1].ts, 17_000_000_007);
}

#[test]
fn pcap_truncated_record_reports_offset() {
    // Cut 1 byte off the last record: record 2 starts at byte 43 and needs 17 bytes.
    let p = temp_file("cut.pcap", &PCAP_LE_US[..PCAP_LE_US.len() - 1]);
    let (frames, err) = read_all(&p);
    assert_eq!(frames.len(), 1);
    let e = err.expect("error");
    assert_eq!(e.offset, 43);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: at byte 43: truncated record: 16 of 17 bytes",
            p.display()
        )
    );
    // Cut inside the record header.
    let (frames, err) = read_all(&temp_file("cut2.pcap", &PCAP_LE_US[..50]));
    assert_eq!(frames.len(), 1);
    assert!(err
        .unwrap()
        .to_string()
        .ends_with("at byte 43: truncated record: 7 of 16 bytes"));
}

#[test]
fn pcap_absurd_caplen_is_an_error_not_an_allocation() {
    let mut b = PCAP_LE_US.to_vec();
    // Record 2's captured length := 0x7fff_ffff.
    b[43 + 8..43 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let (frames, err) = read_all(&temp_file("huge.pcap", &b));
    assert_eq!(frames.len(), 1);
    let e = err.unwrap();
    assert_eq!(e.offset, 43);
    assert!(e
        .to_string()
        .ends_with("captured length 2147483647 exceeds the limit of 262144 bytes"));
}

#[test]
fn pcap_caplen_over_snaplen_is_counted_not_fatal() {
    let mut b = PCAP_LE_US.to_vec();
    b[16..20].copy_from_slice(&2u32.to_le_bytes()); // snaplen 2 < record 1's caplen 3
    let p = temp_file("snap.pcap", &b);
    let mut r = CaptureReader::open(&p).unwrap();
    while r.next_frame().unwrap().is_some() {}
    assert_eq!(r.stats().caplen_over_snaplen, 1);
    assert_eq!(r.stats().frames, 2);
    assert_eq!(r.stats().captured_bytes, 4);
}

#[test]
fn not_a_capture_and_empty_and_short_header() {
    let e = CaptureReader::open(&temp_file("x.txt", b"hello world"))
        .err()
        .unwrap();
    assert!(e
        .to_string()
        .ends_with("at byte 0: not a pcap, pcapng or gzip file (starts with [68, 65, 6c, 6c])"));
    let e = CaptureReader::open(&temp_file("empty", b"")).err().unwrap();
    assert!(e.to_string().ends_with("at byte 0: empty file"));
    let e = CaptureReader::open(&temp_file("short", &PCAP_LE_US[..10]))
        .err()
        .unwrap();
    assert!(e
        .to_string()
        .ends_with("truncated file header: 10 of 24 bytes"));
    let e = CaptureReader::open(Path::new("/nonexistent/x.pcap"))
        .err()
        .unwrap();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/x.pcap: at byte 0: read error:"));
}

#[test]
fn pcap_linktype_high_bits_are_fcs_info() {
    let mut b = PCAP_LE_US.to_vec();
    // Link type 1 with the F bit (26) and FCS length 2 (bits 28-31): still Ethernet.
    b[20..24].copy_from_slice(&(1u32 | 1 << 26 | 2 << 28).to_le_bytes());
    assert_eq!(
        read_ok(&temp_file("fcs.pcap", &b))[0].link,
        LinkType::Ethernet
    );
}

#[test]
fn link_type_values() {
    let cases = [
        (0, LinkType::Null),
        (1, LinkType::Ethernet),
        (12, LinkType::Raw),
        (14, LinkType::Raw),
        (101, LinkType::Raw),
        (108, LinkType::Loop),
        (113, LinkType::LinuxSll),
        (228, LinkType::Ipv4),
        (229, LinkType::Ipv6),
        (276, LinkType::LinuxSll2),
        (105, LinkType::Other(105)),
    ];
    for (v, l) in cases {
        assert_eq!(LinkType::from_raw(v), l, "{v}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built pcapng
// ---------------------------------------------------------------------------------------------

/// A minimal little-endian pcapng, annotated (draft-ietf-opsawg-pcapng §4.1, §4.2, §4.3).
#[rustfmt::skip]
const PCAPNG_MIN: &[u8] = &[
    // Section Header Block
    0x0a, 0x0d, 0x0d, 0x0a,   // block type SHB
    0x1c, 0x00, 0x00, 0x00,   // block total length 28
    0x4d, 0x3c, 0x2b, 0x1a,   // byte-order magic 0x1A2B3C4D, little-endian
    0x01, 0x00, 0x00, 0x00,   // major 1, minor 0
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length -1 (unknown)
    0x1c, 0x00, 0x00, 0x00,   // block total length 28
    // Interface Description Block (offset 28)
    0x01, 0x00, 0x00, 0x00,   // block type IDB
    0x20, 0x00, 0x00, 0x00,   // block total length 32
    0x01, 0x00,               // link type 1 (Ethernet)
    0x00, 0x00,               // reserved
    0x00, 0x00, 0x00, 0x00,   // snaplen 0 (no limit)
    0x09, 0x00, 0x01, 0x00,   // option if_tsresol, length 1
    0x09, 0x00, 0x00, 0x00,   // 9 = 10^-9 s (ns), 3 bytes padding
    0x00, 0x00, 0x00, 0x00,   // opt_endofopt
    0x20, 0x00, 0x00, 0x00,   // block total length 32
    // Enhanced Packet Block (offset 60)
    0x06, 0x00, 0x00, 0x00,   // block type EPB
    0x28, 0x00, 0x00, 0x00,   // block total length 40
    0x00, 0x00, 0x00, 0x00,   // interface id 0
    0x00, 0x00, 0x00, 0x00,   // timestamp high 0
    0x2a, 0x00, 0x00, 0x00,   // timestamp low 42 (ns)
    0x05, 0x00, 0x00, 0x00,   // captured length 5
    0x3c, 0x00, 0x00, 0x00,   // original length 60
    0xde, 0xad, 0xbe, 0xef, 0x01, 0x00, 0x00, 0x00, // 5 data bytes + 3 padding
    0x28, 0x00, 0x00, 0x00,   // block total length 40
];

#[test]
fn pcapng_minimal_annotated() {
    let f = read_ok(&temp_file("min.pcapng", PCAPNG_MIN));
    assert_eq!(
        f,
        vec![Owned {
            ts: 42,
            origlen: 60,
            link: LinkType::Ethernet,
            interface: 0,
            data: vec![0xde, 0xad, 0xbe, 0xef, 0x01],
        }]
    );
}

/// Builds pcapng blocks in either byte order.
pub(crate) struct Ng {
    pub out: Vec<u8>,
    big: bool,
}

impl Ng {
    pub fn new(big: bool) -> Self {
        Ng { out: vec![], big }
    }
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    /// Any block: type, total length, body padded to 4, total length (§3.1).
    pub fn block(&mut self, ty: u32, body: &[u8]) -> &mut Self {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let (t, l) = (self.u32(ty), self.u32(len));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(body);
        self.out.resize(self.out.len() + padded - body.len(), 0);
        self.out.extend_from_slice(&l);
        self
    }
    /// Options list: code, length, value padded, then opt_endofopt (§3.5).
    fn opts(&self, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = vec![];
        for (code, val) in opts {
            v.extend_from_slice(&self.u16(*code));
            v.extend_from_slice(&self.u16(val.len() as u16));
            v.extend_from_slice(val);
            v.resize(v.len().div_ceil(4) * 4, 0);
        }
        if !opts.is_empty() {
            v.extend_from_slice(&[0, 0, 0, 0]);
        }
        v
    }
    /// Section Header Block, version 1.0, unknown section length (§4.1).
    pub fn shb(&mut self) -> &mut Self {
        let mut body = self.u32(0x1A2B_3C4D).to_vec();
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &body)
    }
    /// Interface Description Block (§4.2).
    pub fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> &mut Self {
        let mut body = self.u16(link).to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32(snaplen));
        body.extend_from_slice(&self.opts(opts));
        self.block(1, &body)
    }
    /// Enhanced Packet Block (§4.3).
    pub fn epb(&mut self, iface: u32, ts: u64, origlen: u32, data: &[u8]) -> &mut Self {
        let mut body = self.u32(iface).to_vec();
        body.extend_from_slice(&self.u32((ts >> 32) as u32));
        body.extend_from_slice(&self.u32(ts as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(origlen));
        body.extend_from_slice(data);
        self.block(6, &body)
    }
    /// Simple Packet Block (§4.4).
    pub fn spb(&mut self, origlen: u32, data: &[u8]) -> &mut Self {
        let mut body = self.u32(origlen).to_vec();
        body.extend_from_slice(data);
        self.block(3, &body)
    }
    /// Obsolete Packet Block (Appendix A): 16-bit interface id, 16-bit drops count.
    pub fn pb(&mut self, iface: u16, ts: u64, data: &[u8]) -> &mut Self {
        let mut body = self.u16(iface).to_vec();
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&self.u32((ts >> 32) as u32));
        body.extend_from_slice(&self.u32(ts as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(2, &body)
    }
}

#[test]
fn pcapng_interfaces_resolutions_and_block_kinds() {
    let mut ng = Ng::new(false);
    ng.shb()
        // if0: Ethernet, default resolution (µs), if_tsoffset +100 s.
        .idb(1, 0, &[(14, &100u64.to_le_bytes())])
        // if1: Linux SLL, if_tsresol 0x8a = 2^-10 s.
        .idb(113, 0, &[(9, &[0x8a])])
        // if2: raw IP, if_tsresol 3 = ms; snaplen 4.
        .idb(101, 4, &[(9, &[3])])
        // Name Resolution Block, Interface Statistics Block, Decryption Secrets Block, custom block:
        // all skipped.
        .block(4, &[0, 0, 0, 0])
        .block(5, &[0; 12])
        .block(10, &[1, 2, 3, 4, 0, 0, 0, 0])
        .block(0x0000_0BAD, &[0xaa; 9])
        .epb(0, 1_500_000, 10, b"eth")
        .epb(1, 3 * 1024 + 512, 4, b"sll!")
        // 2^-10 s units: 3.5 s.
        .spb(99, b"simple") // interface 0, reuses the last timestamp, caplen min(99, room 8) = 8
        .epb(2, 2_500, 8, b"raw!IPv4")
        .pb(1, 1024, b"old");
    let p = temp_file("multi.pcapng", &ng.out);
    let mut r = CaptureReader::open(&p).unwrap();
    let mut got = vec![];
    while let Some(f) = r.next_frame().unwrap() {
        got.push((f.ts.0, f.interface, f.link, f.origlen, f.data.to_vec()));
    }
    assert_eq!(
        got,
        vec![
            (101_500_000_000, 0, LinkType::Ethernet, 10, b"eth".to_vec()),
            (3_500_000_000, 1, LinkType::LinuxSll, 4, b"sll!".to_vec()),
            // SPB: origlen 99, block room 8 ("simple" + 2 padding bytes): 8 bytes.
            (
                3_500_000_000,
                0,
                LinkType::Ethernet,
                99,
                b"simple\0\0".to_vec()
            ),
            (2_500_000_000, 2, LinkType::Raw, 8, b"raw!IPv4".to_vec()),
            (1_000_000_000, 1, LinkType::LinuxSll, 3, b"old".to_vec()),
        ]
    );
    assert_eq!(r.stats().blocks_skipped, 4);
    // caplen 8 > if2's snaplen 4.
    assert_eq!(r.stats().caplen_over_snaplen, 1);
    assert_eq!(r.position(), ng.out.len() as u64);
}

#[test]
fn pcapng_sections_reset_interfaces_and_switch_byte_order() {
    let mut a = Ng::new(false);
    a.shb().idb(1, 0, &[]).epb(0, 1, 1, b"A");
    let mut b = Ng::new(true);
    b.shb()
        .idb(101, 0, &[(9, &[9])])
        .idb(228, 0, &[])
        .epb(1, 7, 1, b"B")
        .epb(0, 8, 1, b"C");
    let mut c = Ng::new(false);
    // A third section that reuses interface 1 without describing it: an error.
    c.shb().idb(1, 0, &[]).epb(1, 1, 1, b"D");
    let mut all = a.out.clone();
    all.extend_from_slice(&b.out);
    let c_at = all.len() as u64;
    all.extend_from_slice(&c.out);
    let (f, err) = read_all(&temp_file("sections.pcapng", &all));
    let got: Vec<_> = f
        .iter()
        .map(|f| (f.ts, f.interface, f.link, f.data.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1_000, 0, LinkType::Ethernet, b"A".to_vec()),
            (7_000, 1, LinkType::Ipv4, b"B".to_vec()),
            (8, 0, LinkType::Raw, b"C".to_vec()),
        ]
    );
    let e = err.unwrap();
    // SHB 28 + IDB 20 of section 3, then the EPB.
    assert_eq!(e.offset, c_at + 48);
    assert!(e
        .to_string()
        .ends_with("packet for interface 1, but the section describes 1 interface(s)"));
}

#[test]
fn pcapng_corruption_is_reported_with_offsets() {
    let mut ng = Ng::new(false);
    ng.shb().idb(1, 0, &[]).epb(0, 0, 3, b"abc");
    let good = ng.out.clone();
    let epb_at = 28 + 20;
    // Trailer length differs from the header length.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 4] = 0x99;
    let (f, e) = read_all(&temp_file("trailer.pcapng", &bad));
    assert!(f.is_empty());
    let e = e.unwrap();
    assert_eq!(e.offset, epb_at as u64);
    assert!(e
        .to_string()
        .ends_with("block length 36 does not match its trailer 153"));
    // Captured length larger than the block.
    let mut bad = good.clone();
    bad[epb_at + 20] = 9;
    let e = read_all(&temp_file("room.pcapng", &bad)).1.unwrap();
    assert!(e.to_string().ends_with(&format!(
        "at byte {epb_at}: captured length 9 does not fit in the block (4 bytes of room)"
    )));
    // Block length not a multiple of 4.
    let mut bad = good.clone();
    bad[epb_at + 4] = 37;
    let e = read_all(&temp_file("len.pcapng", &bad)).1.unwrap();
    assert!(e
        .to_string()
        .ends_with("bad block length 37 for block type 0x00000006: not a multiple of 4"));
    // Truncated in the middle of the EPB.
    let e = read_all(&temp_file("cut.pcapng", &good[..good.len() - 5]))
        .1
        .unwrap();
    assert!(e.to_string().ends_with(&format!(
        "at byte {epb_at}: truncated block: 31 of 36 bytes"
    )));
    // Truncated inside a block header.
    let e = read_all(&temp_file("cut2.pcapng", &good[..epb_at + 6]))
        .1
        .unwrap();
    assert!(e
        .to_string()
        .ends_with(&format!("at byte {epb_at}: truncated block: 6 of 8 bytes")));
    // Bad byte-order magic.
    let mut bad = good.clone();
    bad[8] = 0;
    let e = read_all(&temp_file("bom.pcapng", &bad)).1.unwrap();
    assert!(e
        .to_string()
        .ends_with("at byte 0: bad pcapng byte-order magic [00, 3c, 2b, 1a]"));
    // Unsupported major version.
    let mut bad = good.clone();
    bad[12] = 2;
    let e = read_all(&temp_file("ver.pcapng", &bad)).1.unwrap();
    assert!(e.to_string().ends_with("unsupported pcapng version 2.0"));
}

#[test]
fn pcapng_skips_a_block_larger_than_the_buffer_without_buffering_it() {
    let mut ng = Ng::new(false);
    ng.shb().idb(1, 0, &[]);
    // A 5 MiB custom block (> the 1 MiB read buffer), then a packet.
    ng.block(0x4000_0BAD, &vec![0x5a; 5 << 20]);
    ng.epb(0, 1, 2, b"ok");
    let f = read_ok(&temp_file("bigblock.pcapng", &ng.out));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].data, b"ok");
    // The same file cut inside the big block.
    let cut = &ng.out[..3 << 20];
    let e = read_all(&temp_file("bigcut.pcapng", cut)).1.unwrap();
    assert!(e.to_string().ends_with(&format!(
        "at byte 48: truncated block: {} of {} bytes",
        (3 << 20) - 48,
        12 + (5 << 20)
    )));
}

#[test]
fn pcapng_tsresol_forms() {
    // Both forms of if_tsresol (§4.2): MSB 0 → 10^-n, MSB 1 → 2^-n.
    assert_eq!(pcapng_ts(&[6], 1), 1_000);
    assert_eq!(pcapng_ts(&[9], 1), 1);
    assert_eq!(pcapng_ts(&[12], 5_000), 5);
    assert_eq!(pcapng_ts(&[0x80 | 20], 1 << 20), 1_000_000_000);
    // 2^-30 s units: 3 units = 2.79 ns, truncated to 2.
    assert_eq!(pcapng_ts(&[0x80 | 30], 3), 2);
    // 10^-20: not representable in a u64 divisor → error.
    let mut ng = Ng::new(false);
    ng.shb().idb(1, 0, &[(9, &[20])]);
    let e = read_all(&temp_file("res.pcapng", &ng.out)).1.unwrap();
    assert!(e
        .to_string()
        .ends_with("at byte 28: unsupported if_tsresol 0x14"));
}

fn pcapng_ts(tsresol: &[u8], ts: u64) -> u64 {
    let mut ng = Ng::new(false);
    ng.shb().idb(1, 0, &[(9, tsresol)]).epb(0, ts, 0, b"");
    read_ok(&temp_file("ts.pcapng", &ng.out))[0].ts
}

#[test]
fn pcapng_other_errors() {
    let mut ng = Ng::new(false);
    ng.shb();
    for _ in 0..=pcapng::MAX_INTERFACES {
        ng.idb(1, 0, &[]);
    }
    let e = read_all(&temp_file("ifaces.pcapng", &ng.out)).1.unwrap();
    assert_eq!(e.offset, 28 + 20 * pcapng::MAX_INTERFACES as u64);
    assert!(e
        .to_string()
        .ends_with("more than 4096 interfaces in one section"));
    // An SPB in a section with no interface.
    let mut ng = Ng::new(false);
    ng.shb().spb(1, b"x");
    let e = read_all(&temp_file("spb.pcapng", &ng.out)).1.unwrap();
    assert!(e
        .to_string()
        .ends_with("at byte 28: packet for interface 0, but the section describes 0 interface(s)"));
    // An EPB caplen above MAX_CAPLEN.
    let mut ng = Ng::new(false);
    ng.shb()
        .idb(1, 0, &[])
        .epb(0, 0, 0, &vec![0; MAX_CAPLEN as usize + 4]);
    let e = read_all(&temp_file("bigcap.pcapng", &ng.out)).1.unwrap();
    assert!(e
        .to_string()
        .ends_with("at byte 48: captured length 262148 exceeds the limit of 262144 bytes"));
}

// ---------------------------------------------------------------------------------------------
// gzip
// ---------------------------------------------------------------------------------------------

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_multi_member_and_truncation() {
    // Two gzip members back to back (`cat a.gz b.gz`): one stream for MultiGzDecoder.
    let mut two = gz(&PCAP_LE_US[..30]);
    two.extend_from_slice(&gz(&PCAP_LE_US[30..]));
    let p = temp_file("two.pcap.gz", &two);
    let mut r = CaptureReader::open(&p).unwrap();
    assert!(r.is_compressed());
    let mut n = 0;
    while r.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
    assert_eq!(r.position(), two.len() as u64);
    // A gzip of a truncated pcap: the offset is in the decompressed stream, and says so.
    let p = temp_file("cut.pcap.gz", &gz(&PCAP_LE_US[..PCAP_LE_US.len() - 1]));
    let (f, e) = read_all(&p);
    assert_eq!(f.len(), 1);
    assert_eq!(
        e.unwrap().to_string(),
        format!(
            "{}: at byte 43 of the decompressed stream: truncated record: 16 of 17 bytes",
            p.display()
        )
    );
    // A gzip stream cut in its 8-byte trailer (CRC32, ISIZE; RFC 1952 §2.3): every byte of the
    // capture was decoded, so both frames come out, then the decoder's error at the end.
    let full = gz(PCAP_LE_US);
    let (f, e) = read_all(&temp_file("cutgz.pcap.gz", &full[..full.len() - 4]));
    assert_eq!(f.len(), 2);
    let e = e.unwrap();
    assert_eq!(e.offset, PCAP_LE_US.len() as u64);
    assert!(e.to_string().contains("of the decompressed stream"));
}

/// Byte offsets where the records of a classic little-endian pcap start, and its end.
fn record_starts(pcap: &[u8]) -> Vec<usize> {
    let mut at = 24;
    let mut out = vec![];
    while let Some(h) = pcap.get(at..at + 16) {
        out.push(at);
        at += 16 + u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
    }
    assert_eq!(at, pcap.len(), "a whole number of records");
    out
}

/// A damaged gzip stream gives every frame decoded before the damage, then the decoder's error
/// at the offset of the first frame it could not give. (A refill that met the error used to
/// drop what it had decoded in that refill: hundreds of kilobytes of frames before the damage.)
#[test]
fn a_damaged_gzip_stream_gives_every_frame_before_the_damage() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pgsql/live_psycopg_session/psycopg_session.pcap");
    let pcap = std::fs::read(&path).unwrap();
    let all = read_ok(&path);
    let starts = record_starts(&pcap);
    assert_eq!(starts.len(), all.len());

    // Two members (`cat a.gz b.gz`): the first holds the records up to 400 kB whole (more than
    // one refill), the second is cut after its 10-byte header, before any data. Exactly the
    // first member's frames come out.
    let split = starts.iter().position(|&s| s >= 400_000).unwrap();
    let mut two = gz(&pcap[..starts[split]]);
    two.extend_from_slice(&gz(&pcap[starts[split]..])[..12]);
    let (frames, e) = read_all(&temp_file("member-cut.pcap.gz", &two));
    assert_eq!(frames.len(), split);
    assert_eq!(frames[..], all[..split]);
    let e = e.expect("the cut is an error");
    assert_eq!(e.offset, starts[split] as u64);
    assert!(matches!(e.kind, CaptureErrorKind::Io(_)), "{e}");

    // One member cut in the middle: a prefix of the frames, short of what the decoder could
    // produce (read here in 32 KiB steps) by at most the 64 KiB deflate may hold back.
    let whole = gz(&pcap);
    let cut = &whole[..whole.len() * 3 / 5];
    let mut decoded = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(cut);
    let mut chunk = vec![0u8; 32 * 1024];
    while let Ok(n @ 1..) = d.read(&mut chunk) {
        decoded.extend_from_slice(&chunk[..n]);
    }
    let whole_before = starts
        .iter()
        .skip(1)
        .chain([&pcap.len()])
        .take_while(|&&end| end + 64 * 1024 <= decoded.len())
        .count();
    let (frames, e) = read_all(&temp_file("cut.pcap.gz", cut));
    assert!(
        frames.len() >= whole_before,
        "{} < {whole_before}",
        frames.len()
    );
    assert!(frames.len() < all.len());
    assert_eq!(frames[..], all[..frames.len()]);
    let e = e.unwrap_or_else(|| panic!("no error"));
    assert_eq!(e.offset, starts[frames.len()] as u64, "{e}");
}

// ---------------------------------------------------------------------------------------------
// Real captures (fixtures/capture/*/README.md say where each came from). Truth from
// `tshark -r F -T fields -e frame.number -e frame.time_epoch -e frame.len -e frame.cap_len
//  -e frame.interface_id` (tshark 4.0.17).
// ---------------------------------------------------------------------------------------------

/// (frames, link of frame 1, frame 1 ts ns, frame 1 origlen, frame 1 caplen).
type Summary = (usize, LinkType, u64, u32, usize);

fn summary(rel: &str) -> Summary {
    let f = read_ok(&fixture(rel));
    (f.len(), f[0].link, f[0].ts, f[0].origlen, f[0].data.len())
}

#[test]
fn real_captures_frame_counts_and_first_frames() {
    use LinkType::*;
    let cases: &[(&str, Summary)] = &[
        (
            "vlan/percona__tcpdump039_vlan_port3310.pcap",
            (1, Ethernet, 1_257_846_571_864_481_000, 224, 224),
        ),
        (
            "linux_sll/packetbeat__mysql_affected_rows.pcap",
            (3, LinuxSll, 1_430_066_312_839_191_000, 93, 93),
        ),
        (
            "null_loopback/beats-0x5CE__mysql_connection.pcap",
            (18, Null, 1_535_671_550_919_239_000, 134, 134),
        ),
        (
            "raw_ip/percona__tcpdump001_simple.pcap",
            (2, Raw, 1_239_529_816_804_849_000, 89, 89),
        ),
        (
            "ipv4_linktype/suricata-verify__pgsql-bug-6080-probe-test-01.pcap",
            (12, Ipv4, 1_701_206_244_300_071_000, 48, 48),
        ),
        (
            "pcapng/wswiki__mysql-ssl.pcapng",
            (59, Ethernet, 1_422_527_998_578_402_281, 74, 74),
        ),
        (
            "pcapng_null/ndpi__pgsql2_port60102.pcapng",
            (19, Null, 1_682_508_779_830_421_000, 56, 56),
        ),
        (
            "ipv6/SYNTHETIC_arkime__ntlm_synthetic_tds_sspi_ipv6.pcap",
            (218, Ethernet, 1_700_000_000_010_000_000, 54, 54),
        ),
        (
            "snaplen_cut/deepflow__mysql-login-error.pcap",
            (12, Ethernet, 1_742_437_200_478_032_000, 90, 74),
        ),
        (
            "big_endian/wswiki__TNS_Oracle2.pcap",
            (36, Ethernet, 2_774_189_572_000_000_000, 54, 54),
        ),
    ];
    for (rel, want) in cases {
        assert_eq!(summary(rel), *want, "{rel}");
    }
}

#[test]
fn real_pcapng_nanosecond_resolution_and_isb() {
    // wswiki__mysql-ssl.pcapng: if_tsresol 9 and an Interface Statistics Block at the end.
    // tshark: frame 2 at 2894531997.938836488 (a corrupt timestamp in the original, kept as is).
    let p = fixture("pcapng/wswiki__mysql-ssl.pcapng");
    let f = read_ok(&p);
    assert_eq!(f[1].ts, 2_894_531_997_938_836_488);
    assert_eq!(f[2].ts, 1_422_527_998_578_455_857);
    let mut r = CaptureReader::open(&p).unwrap();
    while r.next_frame().unwrap().is_some() {}
    assert_eq!(r.stats().blocks_skipped, 1);
    assert_eq!(r.stats().frames, 59);
}

#[test]
fn variants_of_one_capture_read_identically() {
    // variants/README.md: editcap/gzip/mergecap variants of base.pcap (NULL link type).
    let base = read_ok(&fixture("variants/base.pcap"));
    assert_eq!(base.len(), 18);
    for v in [
        "nsec.pcap",
        "modified.pcap",
        "ng.pcapng",
        "base.pcap.gz",
        "ng.pcapng.gz",
    ] {
        let got = read_ok(&fixture(&format!("variants/{v}")));
        assert_eq!(got, base, "{v}");
    }
    // A byte-swapped (big-endian) rewrite of base.pcap, made by `swap_pcap`.
    let bytes = std::fs::read(fixture("variants/base.pcap")).unwrap();
    assert_eq!(
        read_ok(&temp_file("swapped.pcap", &swap_pcap(&bytes))),
        base
    );
    // Two sections: base as pcapng, then wswiki__mysql-ssl.pcapng (18 + 59 frames).
    let two = read_ok(&fixture("variants/two_sections.pcapng"));
    assert_eq!(two.len(), 77);
    assert_eq!(two[..18], base[..]);
    assert_eq!(two[18].ts, 1_422_527_998_578_402_281);
    assert_eq!(two[18].link, LinkType::Ethernet);
}

#[test]
fn real_two_interfaces() {
    // mergecap of the VLAN (Ethernet) and SLL captures: 2 IDBs; tshark frame.interface_id 0,1,1,1.
    let f = read_ok(&fixture("variants/two_ifaces.pcapng"));
    let got: Vec<_> = f.iter().map(|f| (f.interface, f.link, f.origlen)).collect();
    assert_eq!(
        got,
        vec![
            (0, LinkType::Ethernet, 224),
            (1, LinkType::LinuxSll, 93),
            (1, LinkType::LinuxSll, 126),
            (1, LinkType::LinuxSll, 68),
        ]
    );
}

#[test]
fn real_truncated_file() {
    // variants/truncated.pcap = `head -c 2000 base.pcap`: 17 whole records; record 18 starts at
    // byte 1944 and needs 16 + 61 bytes, of which 56 are present.
    let p = fixture("variants/truncated.pcap");
    let (f, e) = read_all(&p);
    assert_eq!(f.len(), 17);
    assert_eq!(f[16].origlen, 72);
    let e = e.unwrap();
    assert_eq!(e.offset, 1944);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: at byte 1944: truncated record: 56 of 77 bytes",
            p.display()
        )
    );
    // The reader is finished after the error.
    let mut r = CaptureReader::open(&p).unwrap();
    while r.next_frame().is_ok_and(|f| f.is_some()) {}
    assert!(r.next_frame().unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn reads_without_panic(bytes: &[u8]) -> usize {
        let p = temp_file("prop", bytes);
        let mut n = 0;
        if let Ok(mut r) = CaptureReader::open(&p) {
            // Every frame respects the cap; the loop ends (no frame can be zero-progress).
            while let Ok(Some(f)) = r.next_frame() {
                assert!(f.data.len() <= MAX_CAPLEN as usize);
                n += 1;
                assert!(n < 100_000);
            }
        }
        n
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_after_a_magic(magic in 0usize..3, body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut b = match magic {
                0 => PCAP_LE_US[..24].to_vec(),
                1 => PCAPNG_MIN[..28].to_vec(),
                _ => vec![],
            };
            b.extend_from_slice(&body);
            reads_without_panic(&b);
        }

        #[test]
        fn truncations_and_bit_flips_of_real_files(
            which in 0usize..3,
            cut in any::<proptest::sample::Index>(),
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..8), 0..4),
        ) {
            let rel = ["variants/base.pcap", "pcapng/wswiki__mysql-ssl.pcapng", "variants/ng.pcapng.gz"][which];
            let mut b = std::fs::read(fixture(rel)).unwrap();
            for (at, bit) in &flips {
                let i = at.index(b.len());
                b[i] ^= 1 << bit;
            }
            let n = b.len();
            b.truncate(cut.index(n + 1));
            reads_without_panic(&b);
        }
    }
}
