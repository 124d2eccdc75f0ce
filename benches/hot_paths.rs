//! Criterion micro-benchmarks of herd's per-message hot paths: marker encode and decode, a
//! receipt's accounting, HDR histogram record and snapshot merge, Prometheus bucket export,
//! and parsing a received frame (WebSocket header, then the marker scan). Inputs are fixed (no
//! randomness), so runs compare with runs. `cargo bench`; see benches/README.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use herd::client::phase::Phase;
use herd::measure::accounting::StreamTracker;
use herd::measure::marker::{self, Marker};
use herd::measure::stats::{CoreStats, Merged};
use herd::metrics;
use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

const MARKER: Marker = Marker {
    run: 0x1a2b_3c4d,
    conv: 41_237,
    sender: 2,
    seq: 1_234_567,
    intended_ns: 987_654_321_000,
    sent_ns: 987_654_329_500,
};

/// Latencies spread from 50 µs to ~50 ms, deterministic.
fn latencies_ns(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| 50_000 + (i * 7_919 % 1000) * (i % 50 + 1) * 1_000).collect()
}

/// A core's interval as it would arrive in a snapshot: 10,000 deliveries.
fn snapshot(core: usize) -> herd::measure::stats::Snapshot {
    let mut cs = CoreStats::default();
    for ns in latencies_ns(10_000) {
        cs.record_delivery(ns, ns / 2);
        cs.counters.msgs_delivered += 1;
    }
    cs.counters.msgs_expected = 10_000;
    cs.snapshot(core, 0, false)
}

fn markers(c: &mut Criterion) {
    let mut g = c.benchmark_group("marker");
    g.throughput(Throughput::Elements(1));
    let mut out = String::with_capacity(256);
    g.bench_function("encode_padded_128", |b| {
        b.iter(|| {
            black_box(&MARKER).encode_padded(128, &mut out);
            black_box(out.len())
        })
    });
    let mut text = String::new();
    MARKER.encode_padded(128, &mut text);
    g.bench_function("decode_at", |b| b.iter(|| marker::decode_at(black_box(text.as_bytes())).unwrap()));
    g.finish();
}

fn accounting(c: &mut Criterion) {
    let mut g = c.benchmark_group("accounting");
    g.throughput(Throughput::Elements(1));
    g.bench_function("receive_in_order", |b| {
        let mut t = StreamTracker::default();
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            black_box(t.receive(black_box(seq)))
        })
    });
    // Every pair arrives swapped: a hole opens and closes on each pair.
    g.bench_function("receive_pairs_swapped", |b| {
        let mut t = StreamTracker::default();
        let mut seq = 0u64;
        b.iter(|| {
            seq += 2;
            black_box(t.receive(seq + 1));
            black_box(t.receive(seq))
        })
    });
    g.finish();
}

fn histograms(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    let lat = latencies_ns(1024);
    g.throughput(Throughput::Elements(lat.len() as u64));
    g.bench_function("record_delivery_x1024", |b| {
        let mut cs = CoreStats::default();
        b.iter(|| {
            for &ns in &lat {
                cs.record_delivery(black_box(ns), ns / 2);
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    let snaps = [snapshot(0), snapshot(1)];
    g.bench_function("merge_two_snapshots", |b| {
        b.iter_batched_ref(
            || Merged::new(2),
            |m| {
                m.fold(&snaps[0]);
                m.fold(&snaps[1]);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn prometheus(c: &mut Criterion) {
    let mut g = c.benchmark_group("prometheus");
    let mut m = Merged::new(2);
    m.fold(&snapshot(0));
    m.fold(&snapshot(1));
    g.bench_function("hdr_buckets_42", |b| {
        b.iter(|| metrics::hdr_buckets(black_box(&m.total.corrected), &metrics::DEFAULT_BOUNDS_SECONDS))
    });
    let info = metrics::RunInfo {
        run_id: "1a2b3c4d".into(),
        target: "ws://127.0.0.1:8080/conv/{conv}".into(),
        ..Default::default()
    };
    g.bench_function("encode_run", |b| b.iter(|| metrics::encode("herd", &info, Phase::Sending, black_box(&m)).len()));
    g.finish();
}

fn frames(c: &mut Criterion) {
    use tungstenite::protocol::frame::{Frame, FrameHeader};
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    let mut text = String::new();
    MARKER.encode_padded(128, &mut text);
    let mut wire = vec![];
    Frame::message(
        text.clone().into_bytes(),
        tungstenite::protocol::frame::coding::OpCode::Data(tungstenite::protocol::frame::coding::Data::Text),
        true,
    )
    .format(&mut wire)
    .unwrap();
    // A server frame as herd receives it: header, then the payload scanned for markers.
    g.bench_function("parse_text_128", |b| {
        b.iter(|| {
            let mut cur = Cursor::new(black_box(&wire[..]));
            let (header, len) = FrameHeader::parse(&mut cur).unwrap().unwrap();
            let start = cur.position() as usize;
            let payload = &wire[start..start + len as usize];
            let mut seen = 0u64;
            marker::find_all(payload, |m| seen += m.map(|m| m.seq).unwrap_or(0));
            black_box((header.opcode, seen))
        })
    });
    // The close-code tracker under tungstenite (`herd::ws::frames`): one read holding 64 such frames,
    // fed as the socket returned it.
    let read: Vec<u8> = wire.iter().copied().cycle().take(wire.len() * 64).collect();
    g.throughput(Throughput::Elements(64));
    g.bench_function("track_64_text_128", |b| {
        let mut t = herd::ws::frames::FrameTracker::default();
        b.iter(|| {
            t.feed(black_box(&read));
            black_box(t.close())
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Short, fixed windows: the figures are for comparing runs on one machine, and the whole
    // set should finish in about a minute.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! { name = hot_paths; config = config(); targets = markers, accounting, histograms, prometheus, frames }
criterion_main!(hot_paths);
