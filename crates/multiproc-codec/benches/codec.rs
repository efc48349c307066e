//! Micro-benchmarks of message encoding and decoding (criterion):
//! `cargo bench -p multiproc-codec`.
//!
//! A small struct shows the fixed cost of a typed message; 64 KiB of bytes shows the
//! per-byte cost, as a plain `Vec<u8>` (a serde sequence: one varint per byte) and as
//! `serde_bytes::ByteBuf` (one length, then the bytes copied whole).

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiproc_codec::{Bincode, Codec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// A typical small typed message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Task {
    id: u64,
    name: String,
    weights: [f32; 4],
    done: Option<bool>,
}

const BLOB: usize = 64 << 10;

/// Encode and decode benchmarks of `value`, named `name`; `bytes` is the payload size,
/// for a throughput figure.
fn encode_decode<T: Serialize + DeserializeOwned>(c: &mut Criterion, name: &str, value: &T, bytes: Option<u64>) {
    let codec = Bincode::new();
    let mut g = c.benchmark_group("codec");
    if let Some(bytes) = bytes {
        g.throughput(Throughput::Bytes(bytes));
    }
    let mut out = Vec::new();
    g.bench_function(BenchmarkId::new("encode", name), |b| {
        b.iter(|| {
            out.clear();
            codec.encode(black_box(value), &mut out).expect("encode");
        })
    });
    let mut encoded = Vec::new();
    codec.encode(value, &mut encoded).expect("encode");
    g.bench_function(BenchmarkId::new("decode", name), |b| {
        b.iter(|| black_box(codec.decode::<T>(black_box(&encoded)).expect("decode")))
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let task = Task { id: 42, name: "resize image 42".to_owned(), weights: [0.25; 4], done: None };
    encode_decode(c, "small_struct", &task, None);
    let blob: Vec<u8> = (0..BLOB).map(|i| i as u8).collect();
    encode_decode(c, "vec_u8_64k", &blob, Some(BLOB as u64));
    encode_decode(c, "byte_buf_64k", &ByteBuf::from(blob), Some(BLOB as u64));
}

criterion_group!(benches, codec);
criterion_main!(benches);
