//! Counters: per engine, summed over workers at the end of a run, printed as the run summary
//! (human or JSON) and later exported as metrics. Names are fixed; labels are bounded.

use std::collections::BTreeMap;

use dbtap_core::{DriverState, DriverStats};
use serde::Serialize;

use crate::reassembly::{GapCause, ReassemblyStats};
use crate::session::SessionCounters;

/// What one engine counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStats {
    /// TCP segments handled.
    pub packets: u64,
    /// TCP payload bytes captured.
    pub payload_bytes: u64,
    /// Flows created.
    pub flows: u64,
    /// Packets of no known flow that carried nothing (pure ACK/FIN/RST): ignored.
    pub stray_packets: u64,
    /// A SYN reused a 4-tuple whose previous connection had ended: a new session was started.
    pub port_reuse: u64,
    /// Flows closed by FIN/RST.
    pub flows_closed_ended: u64,
    /// Flows closed after the idle timeout.
    pub flows_closed_idle: u64,
    /// Flows evicted by the memory cap.
    pub evicted_flows: u64,
    /// Flows still open when the input ended.
    pub flows_open_at_end: u64,
    /// Flows no protocol claimed.
    pub unidentified_flows: u64,
    /// Protocol names, index-aligned with `sessions` and `encrypted_sessions`.
    #[serde(skip)]
    pub protocol_names: Vec<&'static str>,
    /// Sessions by protocol.
    #[serde(skip)]
    pub sessions: Vec<u64>,
    /// Encrypted sessions by protocol.
    #[serde(skip)]
    pub encrypted_sessions: Vec<u64>,
    /// Sessions picked up mid-stream.
    pub midstream_sessions: u64,
    /// Records written.
    pub records: u64,
    /// Records without a response.
    pub no_response: u64,
    /// Responses that matched no request.
    pub unmatched_responses: u64,
    /// Requests closed because too many were waiting.
    pub pending_overflow: u64,
    /// Parsers that lost message boundaries.
    pub desyncs: u64,
    /// Parsers that found them again.
    pub resyncs: u64,
    /// Sessions whose parser gave up (not the protocol after all, or unrecoverable).
    pub abandoned_sessions: u64,
    /// Parser anomalies by kind.
    pub anomalies: BTreeMap<&'static str, u64>,
    /// Out-of-order segments held.
    pub ooo_segments: u64,
    /// Retransmitted or overlapping bytes.
    pub retransmitted_bytes: u64,
    /// Overlapping bytes that differed from the first copy.
    pub overlap_mismatch_bytes: u64,
    /// Retransmitted bytes whose first copy was no longer kept to compare with (delivered
    /// before the last `reassembly::RECENT_BYTES` of their direction, or lost in a gap).
    pub retransmit_uncompared_bytes: u64,
    /// Gap bytes by cause.
    #[serde(skip)]
    pub gap_bytes: [u64; 5],
    /// Gaps by cause.
    #[serde(skip)]
    pub gaps: [u64; 5],
    /// Segments ignored as too far from the stream position.
    pub bogus_segments: u64,
    /// Bytes parsed.
    pub parsed_bytes: u64,
    /// Bytes skipped unbuffered (rows, over-limit text).
    pub skipped_bytes: u64,
    /// Bytes after TLS or an abandon, counted only.
    pub unparsed_bytes: u64,
    /// Parser asked for more than its limit.
    pub need_over_limit: u64,
    /// Highest memory charged to one engine's flow table (bytes).
    pub peak_flow_memory: u64,
}

impl EngineStats {
    /// Empty counters for these protocols.
    pub fn new(protocol_names: Vec<&'static str>) -> Self {
        let n = protocol_names.len();
        EngineStats {
            protocol_names,
            sessions: vec![0; n],
            encrypted_sessions: vec![0; n],
            ..Default::default()
        }
    }

    /// Add a closed direction's reassembly counters.
    pub fn add_reassembly(&mut self, r: &ReassemblyStats) {
        self.ooo_segments += r.ooo_segments;
        self.retransmitted_bytes += r.retransmitted_bytes;
        self.overlap_mismatch_bytes += r.overlap_mismatch_bytes;
        self.retransmit_uncompared_bytes += r.retransmit_uncompared_bytes;
        self.bogus_segments += r.bogus_segments;
        for i in 0..GapCause::ALL.len() {
            self.gap_bytes[i] += r.gap_bytes[i];
            self.gaps[i] += r.gaps[i];
        }
    }

    /// Add a closed session's driver counters.
    pub fn add_driver(&mut self, d: &DriverStats, state: DriverState) {
        self.parsed_bytes += d.parsed.iter().sum::<u64>();
        self.skipped_bytes += d.skipped.iter().sum::<u64>();
        self.unparsed_bytes += d.unparsed.iter().sum::<u64>();
        self.need_over_limit += d.need_over_limit;
        if matches!(state, DriverState::Abandoned(_)) {
            self.abandoned_sessions += 1;
        }
    }

    /// Add a closed session's counters.
    pub fn add_session(&mut self, spec: usize, c: &SessionCounters, encrypted: bool) {
        self.records += c.records;
        self.no_response += c.no_response;
        self.unmatched_responses += c.unmatched_responses;
        self.pending_overflow += c.pending_overflow;
        self.desyncs += c.desyncs;
        self.resyncs += c.resyncs;
        if encrypted {
            if let Some(e) = self.encrypted_sessions.get_mut(spec) {
                *e += 1;
            }
        }
    }

    /// Count one parser anomaly.
    pub fn count_anomaly(&mut self, kind: &'static str) {
        *self.anomalies.entry(kind).or_default() += 1;
    }

    /// Add another engine's counters (same protocol list).
    pub fn merge(&mut self, o: &EngineStats) {
        macro_rules! add { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        add!(
            packets,
            payload_bytes,
            flows,
            stray_packets,
            port_reuse,
            flows_closed_ended,
            flows_closed_idle,
            evicted_flows,
            flows_open_at_end,
            unidentified_flows,
            midstream_sessions,
            records,
            no_response,
            unmatched_responses,
            pending_overflow,
            desyncs,
            resyncs,
            abandoned_sessions,
            ooo_segments,
            retransmitted_bytes,
            overlap_mismatch_bytes,
            retransmit_uncompared_bytes,
            bogus_segments,
            parsed_bytes,
            skipped_bytes,
            unparsed_bytes,
            need_over_limit
        );
        if self.protocol_names.is_empty() {
            self.protocol_names = o.protocol_names.clone();
            self.sessions = vec![0; o.sessions.len()];
            self.encrypted_sessions = vec![0; o.encrypted_sessions.len()];
        }
        for (a, b) in self.sessions.iter_mut().zip(&o.sessions) {
            *a += b;
        }
        for (a, b) in self
            .encrypted_sessions
            .iter_mut()
            .zip(&o.encrypted_sessions)
        {
            *a += b;
        }
        for i in 0..GapCause::ALL.len() {
            self.gap_bytes[i] += o.gap_bytes[i];
            self.gaps[i] += o.gaps[i];
        }
        self.peak_flow_memory = self.peak_flow_memory.max(o.peak_flow_memory);
        for (k, v) in &o.anomalies {
            *self.anomalies.entry(k).or_default() += v;
        }
    }

    /// Sessions by protocol name.
    pub fn sessions_by_protocol(&self) -> BTreeMap<&'static str, u64> {
        self.protocol_names
            .iter()
            .copied()
            .zip(self.sessions.iter().copied())
            .collect()
    }

    /// Encrypted sessions by protocol name.
    pub fn encrypted_by_protocol(&self) -> BTreeMap<&'static str, u64> {
        self.protocol_names
            .iter()
            .copied()
            .zip(self.encrypted_sessions.iter().copied())
            .collect()
    }

    /// Gap bytes by cause name.
    pub fn gap_bytes_by_cause(&self) -> BTreeMap<&'static str, u64> {
        GapCause::ALL
            .iter()
            .map(|c| (c.as_str(), self.gap_bytes[c.index()]))
            .collect()
    }

    /// Gaps by cause name.
    pub fn gaps_by_cause(&self) -> BTreeMap<&'static str, u64> {
        GapCause::ALL
            .iter()
            .map(|c| (c.as_str(), self.gaps[c.index()]))
            .collect()
    }
}
