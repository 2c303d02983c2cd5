//! Data path: first-packet checks, resync scans, the compressed layer and the packet loop.

use super::*;
use dbtap_core::gap::{Candidate, ResyncStep};
use dbtap_core::{Abandon, Cx, DbEvent, Direction, Limits, Progress, Timestamp, Upgrade};

use crate::codes::{header, Caps, Command};
use crate::frame::{self, Algo, CompHeader, Header, InflateEnd, COMP_HEADER_LEN, HEADER_LEN};
use crate::session::{transition, Event, Phase};

impl MysqlParser {
    pub(super) fn on_data(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        self.max_queue = cx.limits.max_pending_requests.max(1);
        self.max_attr_len = cx.limits.max_attribute_len;
        if !self.dirs[i].seen && data.len() >= FOREIGN_CHECK_LEN {
            self.dirs[i].seen = true;
            if foreign_signature(data) {
                return Progress::Abandon(Abandon::NotThisProtocol);
            }
        }
        if self.phase == Phase::Encrypted {
            return Progress::Upgraded {
                consumed: 0,
                to: Upgrade::Tls,
            };
        }
        if self.phase == Phase::AwaitGreeting
            && dir == Direction::ToServer
            && self.dirs[i].comp.is_none()
            && client_candidate(data) == Candidate::No
        {
            match comp_candidate(data, cx.limits.max_message_len, dir, false) {
                Candidate::Yes => {
                    // The client speaks first, in compressed frames: the capture began after
                    // a login that switched compression on. Carry on as a compressed mid-stream
                    // pick-up.
                    self.phase = Phase::Command;
                    self.caps = Caps(MIDSTREAM_CAPS);
                    self.compress_negotiated = true;
                    for d in &mut self.dirs {
                        d.comp.get_or_insert_with(Default::default);
                    }
                }
                Candidate::NeedMore(n) if data.len() < n => {
                    return Progress::NeedMore {
                        consumed: 0,
                        need: n.min(cx.limits.max_message_len),
                    };
                }
                _ => {}
            }
        }
        let mut base = 0usize;
        if self.dirs[i].resync.is_active() {
            match self.resync_scan(cx, dir, data, out) {
                Ok(skipped) => base = skipped,
                Err(p) => return p,
            }
        }
        let rest = data.get(base..).unwrap_or_default();
        let progress = if self.dirs[i].comp.is_some() {
            self.compressed(cx, dir, rest, base, out)
        } else {
            let clock = Clock::Cx(cx, base);
            self.packets(clock, cx.limits, dir, rest, base, out)
        };
        progress
    }

    /// Scan for a message start; `Ok(skipped)` when found at `skipped`, else the answer.
    pub(super) fn resync_scan(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Result<usize, Progress> {
        let i = dir.index();
        let mut found_compressed = false;
        let compressed_on = self.dirs[i].comp.is_some();
        let midstream = self.opts.midstream;
        let can_server = self.pending.is_some() && !self.server_needs_request;
        let max_msg = cx.limits.max_message_len;
        let mut resync = std::mem::take(&mut self.dirs[i].resync);
        let step = resync.scan(cx, data, |d| {
            let raw = || match dir {
                Direction::ToServer => client_candidate(d),
                Direction::ToClient if can_server => server_candidate(d),
                Direction::ToClient => Candidate::No,
            };
            if compressed_on {
                let c = comp_candidate(d, max_msg, dir, can_server);
                found_compressed = c == Candidate::Yes;
                return c;
            }
            match raw() {
                Candidate::No if midstream => {
                    let c = comp_candidate(d, max_msg, dir, can_server);
                    found_compressed = c == Candidate::Yes;
                    c
                }
                c => c,
            }
        });
        let out_step = match step {
            ResyncStep::Found { skipped } => {
                // `skipped_total` counts every byte discarded since the desync began.
                let (lost, total) = resync.finish();
                self.dirs[i].scanned = 0;
                if lost > 0 || total > 0 {
                    out.push(DbEvent::Resync {
                        dir,
                        skipped_bytes: total,
                    });
                }
                self.dirs[i].cont = false;
                if found_compressed && !compressed_on {
                    // Mid-stream pick-up of a compressed session: both directions are compressed.
                    self.compress_negotiated = true;
                    for d in &mut self.dirs {
                        d.comp.get_or_insert_with(Default::default);
                    }
                }
                if let Some(c) = self.dirs[i].comp.as_mut() {
                    c.inner.clear();
                    c.skip = 0;
                    c.desync = true;
                }
                if self.phase != Phase::Command {
                    if let Ok(p) = transition(self.phase, Event::Resynced) {
                        self.phase = p;
                    }
                }
                Ok(skipped)
            }
            ResyncStep::Discard(n) => {
                self.dirs[i].scanned = self.dirs[i].scanned.saturating_add(n as u64);
                if self.dirs[i].scanned > cx.limits.max_resync_scan {
                    Err(Progress::Abandon(Abandon::Unrecoverable))
                } else {
                    Err(Progress::Consumed(n))
                }
            }
            ResyncStep::Wait { consumed, need } => Err(Progress::NeedMore {
                consumed,
                need: need.min(cx.limits.max_message_len),
            }),
        };
        self.dirs[i].resync = resync;
        out_step
    }

    /// The compressed layer: whole frames (bounded), inflated in steps, inner packets parsed from
    /// the bounded inner buffer.
    pub(super) fn compressed(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        base: usize,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        let mut pos = 0usize;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Progress::Consumed(base + pos);
            }
            let big = self.dirs[i].comp.as_mut().and_then(|c| c.big.take());
            if let Some(mut big) = big {
                // The next part of a frame too large to buffer.
                let n = big.left.min(rest.len());
                let part = rest.get(..n).unwrap_or_default();
                big.left -= n;
                let last = big.left == 0;
                let ts = cx.ts_at(base + pos);
                pos += n;
                if !big.dead {
                    let (r, dead) =
                        self.inflate_part(cx.limits, dir, big.h, part, !big.started, last, ts, out);
                    big.started = true;
                    big.dead = dead;
                    match r {
                        Some(Progress::Upgraded { to, .. }) => {
                            return Progress::Upgraded {
                                consumed: base + pos,
                                to,
                            };
                        }
                        Some(p @ Progress::Abandon(_)) => return p,
                        _ => {}
                    }
                }
                if !last {
                    if let Some(c) = self.dirs[i].comp.as_mut() {
                        c.big = Some(big);
                    }
                }
                continue;
            }
            let Some(h) = CompHeader::parse(rest) else {
                return Progress::NeedMore {
                    consumed: base + pos,
                    need: COMP_HEADER_LEN,
                };
            };
            let total = COMP_HEADER_LEN + h.clen;
            if h.clen > cx.limits.max_message_len {
                // Too large to buffer: inflated as it streams past (zlib and stored frames with
                // no copy of the compressed input, zstd ones with at most one block carried),
                // also when all of it happens to be here already. The first part must show
                // which algorithm.
                if rest.len() < COMP_HEADER_LEN + 4 {
                    return Progress::NeedMore {
                        consumed: base + pos,
                        need: COMP_HEADER_LEN + 4,
                    };
                }
                if let Some(c) = self.dirs[i].comp.as_mut() {
                    c.big = Some(BigFrame {
                        h,
                        left: h.clen,
                        started: false,
                        dead: false,
                    });
                }
                pos += COMP_HEADER_LEN;
                continue;
            }
            if rest.len() < total {
                return Progress::NeedMore {
                    consumed: base + pos,
                    need: total,
                };
            }
            let payload = rest.get(COMP_HEADER_LEN..total).unwrap_or_default();
            let ts = cx.ts_at(base + pos);
            let (r, _) = self.inflate_part(cx.limits, dir, h, payload, true, true, ts, out);
            pos += total;
            match r {
                None => {}
                Some(Progress::Upgraded { to, .. }) => {
                    return Progress::Upgraded {
                        consumed: base + pos,
                        to,
                    };
                }
                Some(p @ Progress::Abandon(_)) => return p,
                Some(_) => {}
            }
            if self.dirs[i].comp.is_none() {
                return Progress::Consumed(base + pos);
            }
        }
    }

    pub(super) fn inner_desync(&mut self, dir: Direction, lost: u64, out: &mut Vec<DbEvent>) {
        let i = dir.index();
        if let Some(c) = self.dirs[i].comp.as_mut() {
            if !c.desync {
                out.push(DbEvent::Desync {
                    dir,
                    lost_bytes: lost,
                });
            }
            c.inner.clear();
            c.skip = 0;
            c.desync = true;
        }
        self.dirs[i].cont = false;
        if dir == Direction::ToClient {
            self.flush_all(out, Some(lost));
            self.server_needs_request = true;
        }
    }

    /// Inflate one frame and parse the inner packets it completes.
    /// Inflate `payload`, a whole frame (`start && last`) or one part of a frame too large to
    /// buffer, and parse the inner packets it completes. Returns the progress to pass up
    /// (TLS, abandon) and whether the frame is dead (corrupt: skip its remaining parts).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn inflate_part(
        &mut self,
        limits: &Limits,
        dir: Direction,
        h: CompHeader,
        payload: &[u8],
        start: bool,
        last: bool,
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) -> (Option<Progress>, bool) {
        let i = dir.index();
        let Some(mut comp) = self.dirs[i].comp.take() else {
            return (None, true);
        };
        if comp.inner.is_empty() {
            comp.ts = ts;
        }
        if start {
            comp.produced = 0;
        }
        let mut result = None;
        let mut first_piece = start;
        let mut feed = |this: &mut MysqlParser,
                        comp: &mut Comp,
                        piece: &[u8],
                        out: &mut Vec<DbEvent>|
         -> bool {
            let mut piece = piece;
            if comp.desync && first_piece {
                // Frames usually start with a packet: resync there or drop the frame.
                let can_server = this.pending.is_some() && !this.server_needs_request;
                let c = match dir {
                    Direction::ToServer => client_candidate(piece),
                    Direction::ToClient if can_server => server_candidate(piece),
                    Direction::ToClient => Candidate::No,
                };
                if c == Candidate::No {
                    first_piece = false;
                    return false;
                }
                comp.desync = false;
                out.push(DbEvent::Resync {
                    dir,
                    skipped_bytes: 0,
                });
                if this.phase != Phase::Command {
                    this.phase = Phase::Command;
                }
            }
            first_piece = false;
            if comp.desync {
                return false;
            }
            if comp.skip > 0 {
                let n = comp.skip.min(piece.len() as u64) as usize;
                comp.skip -= n as u64;
                piece = piece.get(n..).unwrap_or_default();
            }
            comp.inner.extend_from_slice(piece);
            loop {
                let inner = std::mem::take(&mut comp.inner);
                let clock = Clock::Fixed(comp.ts);
                let p = this.packets(clock, limits, dir, &inner, 0, out);
                let mut inner = inner;
                let (used, stop) = match p {
                    Progress::Consumed(n) => (n, false),
                    Progress::NeedMore { consumed, .. } => (consumed, true),
                    Progress::Skip { consumed, skip } => {
                        let consumed = consumed.min(inner.len());
                        let avail = inner.len().saturating_sub(consumed) as u64;
                        let n = skip.min(avail);
                        comp.skip = skip - n;
                        (consumed + n as usize, false)
                    }
                    p @ (Progress::Upgraded { .. } | Progress::Abandon(_)) => {
                        result = Some(p);
                        return false;
                    }
                };
                let used = used.min(inner.len());
                inner.drain(..used);
                comp.inner = inner;
                if comp.inner.len() > max_inner_buffer(limits) {
                    out.push(DbEvent::Anomaly {
                        dir,
                        kind: anomaly::OVER_LIMIT,
                    });
                    comp.inner.clear();
                    comp.desync = true;
                    return false;
                }
                if stop || comp.inner.is_empty() || used == 0 {
                    break;
                }
            }
            comp.ts = ts;
            true
        };
        if h.ulen == 0 {
            // Stored uncompressed.
            let mut at = 0;
            while at < payload.len() {
                let end = (at + frame::INFLATE_CHUNK).min(payload.len());
                if !feed(
                    self,
                    &mut comp,
                    payload.get(at..end).unwrap_or_default(),
                    out,
                ) {
                    break;
                }
                at = end;
            }
        } else {
            // A frame in parts keeps the algorithm its first part showed.
            let algo = if !start {
                comp.part_algo
            } else if frame::is_zstd_head(payload) {
                Algo::Zstd
            } else {
                Algo::Zlib
            };
            comp.part_algo = algo;
            let mut inflater = std::mem::take(&mut comp.inflater);
            let end = if start && last {
                inflater.run(algo, payload, h.ulen, |piece| {
                    feed(self, &mut comp, piece, out)
                })
            } else {
                let mut produced = comp.produced;
                let piece = |piece: &[u8]| feed(self, &mut comp, piece, out);
                let end = match algo {
                    Algo::Zlib => inflater.zlib_part(payload, start, h.ulen, &mut produced, piece),
                    Algo::Zstd => inflater.zstd_part(payload, start, h.ulen, &mut produced, piece),
                };
                comp.produced = produced;
                match end {
                    None if last => InflateEnd::Corrupt,
                    None => {
                        comp.inflater = inflater;
                        self.dirs[i].comp.get_or_insert(comp);
                        return (result, false);
                    }
                    Some(e) => e,
                }
            };
            comp.inflater = inflater;
            match end {
                InflateEnd::Done => {}
                InflateEnd::Cut => out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::DECOMPRESS_ERROR,
                }),
                InflateEnd::Corrupt => {
                    out.push(DbEvent::Anomaly {
                        dir,
                        kind: anomaly::DECOMPRESS_ERROR,
                    });
                    self.dirs[i].comp = Some(comp);
                    self.inner_desync(dir, h.ulen as u64, out);
                    return (result, true);
                }
            }
        }
        if self.dirs[i].comp.is_none() {
            self.dirs[i].comp = Some(comp);
        }
        (result, false)
    }

    /// The packet loop over `data` (raw stream or decompressed stream). Positions in the
    /// returned progress are offset by `base`.
    pub(super) fn packets(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        dir: Direction,
        data: &[u8],
        base: usize,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        let mut pos = 0usize;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Progress::Consumed(base + pos);
            }
            if dir == Direction::ToClient {
                pos += self.count_whole_rows(rest);
                if pos >= data.len() {
                    continue;
                }
            }
            let rest = data.get(pos..).unwrap_or_default();
            let Some(h) = Header::parse(rest) else {
                return Progress::NeedMore {
                    consumed: base + pos,
                    need: HEADER_LEN,
                };
            };
            if self.dirs[i].cont {
                // A continuation packet of a payload whose head was handled: count and skip.
                self.dirs[i].cont = h.continues();
                if self.dirs[i].cont_counts {
                    self.count_cont(dir, h);
                }
                if rest.len() >= h.total() {
                    pos += h.total();
                    continue;
                }
                return Progress::Skip {
                    consumed: base + pos + HEADER_LEN,
                    skip: h.len as u64,
                };
            }
            let step = match dir {
                Direction::ToServer => self.client_packet(clock, limits, h, rest, pos, out),
                Direction::ToClient => self.server_packet(clock, limits, h, rest, pos, out),
            };
            match step {
                Step::Next(n) => pos += n,
                Step::Switch(n) => return Progress::Consumed(base + pos + n),
                Step::Need(n) => {
                    return Progress::NeedMore {
                        consumed: base + pos,
                        need: n,
                    };
                }
                Step::Skip { consumed, skip } => {
                    return Progress::Skip {
                        consumed: base + pos + consumed,
                        skip,
                    };
                }
                Step::Upgrade(n) => {
                    return Progress::Upgraded {
                        consumed: base + pos + n,
                        to: Upgrade::Tls,
                    };
                }
                Step::Abandon(a) => return Progress::Abandon(a),
            }
        }
    }

    /// Fast path for result sets: count and step over the complete, single-packet rows at the
    /// head of `data` (the bulk of a replay's bytes) without the general per-packet dispatch.
    /// Anything else — a terminator or error (first byte 0xFE/0xFF), an empty or multi-packet
    /// payload, a row cut by the end of the data — is left to the general path. Returns the
    /// bytes stepped over.
    fn count_whole_rows(&mut self, data: &[u8]) -> usize {
        const _: () = assert!(header::EOF == 0xfe && header::ERR == 0xff);
        if self.dirs[Direction::ToClient.index()].cont {
            return 0;
        }
        let Some(p) = self.pending.as_mut() else {
            return 0;
        };
        if p.state != RState::Rows {
            return 0;
        }
        let (mut pos, mut rows) = (0usize, 0u64);
        // The header (3-byte length, sequence id) and the payload's first byte, as one slice
        // pattern: a row has at least one payload byte, so a whole row has these five.
        while let Some(&[l0, l1, l2, seq, first]) = data.get(pos..pos + HEADER_LEN + 1) {
            let h = Header::from_bytes([l0, l1, l2, seq]);
            let end = pos + h.total();
            // Not a complete single-packet row: an empty packet (then `first` is the next
            // one's), a terminator or an error (first byte 0xFE / 0xFF, the only two at or over
            // EOF's), a payload continued in the next packet, or one cut by the end of the data.
            if h.len == 0 || first >= header::EOF || h.continues() || end > data.len() {
                break;
            }
            rows += 1;
            pos = end;
        }
        if rows > 0 {
            p.cur.rows = Some(p.cur.rows.unwrap_or(0) + rows);
            // The rows stepped over are all the bytes stepped over.
            p.cur.bytes += pos as u64;
        }
        pos
    }

    pub(super) fn count_cont(&mut self, dir: Direction, h: Header) {
        if let Some(p) = self.pending.as_mut() {
            match dir {
                Direction::ToServer => {
                    p.req.bytes += h.total() as u64;
                    p.req_payload += h.len as u64;
                }
                Direction::ToClient => p.cur.bytes += h.total() as u64,
            }
        }
    }
}

/// The payload of a packet when it is all there; or its head, cut at `cap`, when the payload
/// is larger than `cap` (the caller skips the rest); or how many bytes are needed.
pub(super) fn whole(h: Header, rest: &[u8], cap: usize) -> Result<(&[u8], bool), usize> {
    if rest.len() >= h.total() {
        return Ok((rest.get(HEADER_LEN..h.total()).unwrap_or_default(), false));
    }
    if h.len <= cap {
        return Err(h.total());
    }
    let have = HEADER_LEN + cap;
    if rest.len() >= have {
        Ok((rest.get(HEADER_LEN..have).unwrap_or_default(), true))
    } else {
        Err(have)
    }
}

/// Bytes that announce another protocol: HTTP, a TLS record, an SSH banner.
pub(super) fn foreign_signature(d: &[u8]) -> bool {
    const HTTP: [&[u8]; 10] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"HTTP/",
        b"PRI * HTTP",
    ];
    HTTP.iter().any(|m| d.starts_with(m))
        || d.starts_with(b"SSH-")
        // TLS record: handshake (22) or alert (21), version 3.x.
        || matches!(d, [0x15 | 0x16, 0x03, 0x00..=0x04, ..])
}

/// Is this a plausible client command start? seq 0, sane length, a command clients send, and
/// for text commands printable text.
pub(crate) fn client_candidate(d: &[u8]) -> Candidate {
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    if h.seq != 0 || h.len == 0 {
        return Candidate::No;
    }
    let Some(&c) = d.get(HEADER_LEN) else {
        return Candidate::NeedMore(HEADER_LEN + 1);
    };
    let cmd = Command(c);
    let len_ok = match cmd {
        Command::QUIT | Command::PING | Command::STATISTICS | Command::RESET_CONNECTION => {
            h.len == 1
        }
        Command::STMT_CLOSE | Command::STMT_RESET | Command::PROCESS_KILL => h.len == 5,
        Command::STMT_FETCH => h.len == 9,
        Command::SET_OPTION => h.len == 3,
        Command::STMT_EXECUTE => h.len >= 10,
        Command::STMT_SEND_LONG_DATA => h.len >= 7,
        Command::INIT_DB | Command::FIELD_LIST | Command::CHANGE_USER => (2..4096).contains(&h.len),
        Command::QUERY | Command::STMT_PREPARE => h.len >= 2,
        Command::BINLOG_DUMP | Command::BINLOG_DUMP_GTID | Command::REGISTER_SLAVE => h.len >= 7,
        _ => false,
    };
    if !len_ok {
        return Candidate::No;
    }
    if matches!(
        cmd,
        Command::QUERY | Command::STMT_PREPARE | Command::INIT_DB | Command::FIELD_LIST
    ) {
        let n = (h.len - 1).min(RESYNC_TEXT_CHECK);
        let Some(text) = d.get(HEADER_LEN + 1..HEADER_LEN + 1 + n) else {
            return Candidate::NeedMore(HEADER_LEN + 1 + n);
        };
        // Query attributes: parameter_count (small lenenc) then parameter_set_count = 1.
        let attrs = cmd == Command::QUERY
            && text.get(1) == Some(&1)
            && text.first().is_some_and(|&b| b < 0xfb);
        if !attrs
            && !text
                .iter()
                .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
        {
            return Candidate::No;
        }
        if !attrs
            && text
                .first()
                .is_some_and(|b| !(b.is_ascii_graphic() || b.is_ascii_whitespace() || *b >= 0x80))
        {
            return Candidate::No;
        }
    }
    Candidate::Yes
}

/// Is this a plausible first packet of a response? seq 1 and an OK/ERR/EOF/LOCAL INFILE header
/// or a small column count.
pub(crate) fn server_candidate(d: &[u8]) -> Candidate {
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    if h.seq != 1 || h.len == 0 {
        return Candidate::No;
    }
    let Some(&b) = d.get(HEADER_LEN) else {
        return Candidate::NeedMore(HEADER_LEN + 1);
    };
    let ok = match b {
        header::OK => (7..1 << 16).contains(&h.len),
        header::ERR => (3..1024).contains(&h.len),
        header::EOF => h.len < 9,
        header::LOCAL_INFILE => h.len < 4096,
        1..=0xfa => h.len <= 2,
        0xfc => (3..=4).contains(&h.len),
        _ => false,
    };
    if ok {
        Candidate::Yes
    } else {
        Candidate::No
    }
}

/// Is this a plausible compressed frame start (mid-stream detection)? Header lengths consistent
/// with the data and a zlib / zstd stream head, or a stored frame holding a plausible packet.
pub(crate) fn comp_candidate(d: &[u8], max: usize, dir: Direction, can_server: bool) -> Candidate {
    let Some(h) = CompHeader::parse(d) else {
        return Candidate::NeedMore(COMP_HEADER_LEN);
    };
    if h.clen == 0 || h.clen > max {
        return Candidate::No;
    }
    let Some(head) = d.get(COMP_HEADER_LEN..COMP_HEADER_LEN + 4.min(h.clen)) else {
        return Candidate::NeedMore(COMP_HEADER_LEN + 4.min(h.clen));
    };
    if h.ulen == 0 {
        let inner = d.get(COMP_HEADER_LEN..).unwrap_or_default();
        let c = match dir {
            Direction::ToServer => client_candidate(inner),
            Direction::ToClient if can_server => server_candidate(inner),
            Direction::ToClient => Candidate::No,
        };
        // The stored packet must fit the frame exactly or begin a longer payload.
        return match (c, Header::parse(inner)) {
            (Candidate::NeedMore(n), _) => Candidate::NeedMore(COMP_HEADER_LEN + n),
            (Candidate::Yes, Some(ih)) if ih.total() <= h.clen || h.clen >= 1024 => Candidate::Yes,
            _ => Candidate::No,
        };
    }
    // Deflate cannot shrink data below ~1/1032 of its size; nor is a compressed frame much
    // larger than its content.
    if h.ulen > h.clen.saturating_mul(1100) || h.clen > h.ulen + 64 {
        return Candidate::No;
    }
    if frame::is_zlib_head(head) || frame::is_zstd_head(head) {
        if dir == Direction::ToClient && !can_server {
            return Candidate::No;
        }
        Candidate::Yes
    } else {
        Candidate::No
    }
}
