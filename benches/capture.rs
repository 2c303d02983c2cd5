//! Read throughput of the capture (and optionally decode) layer on one file.
//!
//! `cargo bench --bench capture -- FILE [--decode]` (default FILE: `$DBTAP_BENCH_PCAP`, else
//! `bench-data/sysbench.pcap`). Prints frames, bytes and MB/s (file bytes per second of wall
//! time). Compare with `time cat FILE > /dev/null` on the same warm file.

use std::path::PathBuf;
use std::time::Instant;

use dbtap::capture::CaptureReader;
use dbtap::decode::{Decoded, Decoder};

fn main() {
    // `cargo bench` passes `--bench` to every bench binary; it is not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let decode = args.iter().any(|a| a == "--decode");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("DBTAP_BENCH_PCAP").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-data/sysbench.pcap")
        });
    if !path.exists() {
        eprintln!(
            "capture bench: {} not found (give a FILE or set DBTAP_BENCH_PCAP)",
            path.display()
        );
        return;
    }
    let start = Instant::now();
    let mut r = CaptureReader::open(&path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let mut d = Decoder::default();
    let (mut frames, mut bytes, mut tcp, mut payload) = (0u64, 0u64, 0u64, 0u64);
    loop {
        match r.next_frame() {
            Ok(Some(f)) => {
                frames += 1;
                bytes += f.data.len() as u64;
                if decode {
                    if let Decoded::Tcp(t) = d.decode(&f) {
                        tcp += 1;
                        payload += t.payload.len() as u64;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                eprintln!("{e}");
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let file = r.file_len().unwrap_or(0) as f64;
    println!(
        "{}: {frames} frames, {bytes} captured bytes, {tcp} tcp, {payload} payload bytes; \
         {secs:.3} s, {:.0} MB/s of file, {:.0} MB/s of capture stream, {:.1} Mframes/s",
        path.display(),
        file / secs / 1e6,
        r.stream_offset() as f64 / secs / 1e6,
        frames as f64 / secs / 1e6
    );
}
