//! `raw-produce`: the broker's own produce ceiling, with a client that costs
//! almost nothing.
//!
//! librdkafka spends about 2 CPU seconds per GB producing 1 KiB records (one
//! op, one copy and one delivery report per record), which on a 2-core machine
//! caps what a librdkafka benchmark can show of the broker. This mode builds
//! one record batch of `--batch-bytes` of `--record-size` records once, then
//! sends it over and over in Produce v9 requests on one connection, keeping
//! `--in-flight` requests outstanding, and checks every response. The broker
//! does everything it does for a real producer (parse, CRC, record walk,
//! stamping, append, acks); only the client's per-record work is gone.
//!
//! It uses Klamm's own codec (`klamm-protocol`) to build the request and read
//! the responses; the figures of record are still the librdkafka ones.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use klamm_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use klamm_protocol::messages::{ProduceRequest, ProduceResponse};
use klamm_protocol::records::RecordBatchBuilder;
use klamm_protocol::{Decode, Encode};

use crate::hist::Histogram;
use crate::sys::CpuMark;

const PRODUCE_VERSION: i16 = 9;
const CLIENT_ID: &[u8] = b"klamm-bench-raw";

pub struct RawSettings {
    pub bootstrap: String,
    pub topic: String,
    pub acks: i16,
    pub record_size: usize,
    pub batch_bytes: usize,
    pub in_flight: usize,
    pub total_bytes: u64,
    pub max: Duration,
    pub broker_pid: Option<u32>,
}

pub struct RawResult {
    pub requests: u64,
    pub records: u64,
    pub payload_bytes: u64,
    pub seconds: f64,
    pub hist: Histogram,
    pub broker_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    pub machine_busy_pct: Option<f64>,
}

impl RawResult {
    pub fn line(&self) -> String {
        let mbps = self.payload_bytes as f64 / 1e6 / self.seconds;
        let gb = self.payload_bytes as f64 / 1e9;
        let per_gb = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.3}", s / gb));
        format!(
            "raw produce: {:.1} MB/s, {:.0} records/s, {} requests, request latency p50 {:.2} ms p99 {:.2} ms, broker CPU {} s/GB, client CPU {} s/GB, machine {}% busy",
            mbps,
            self.records as f64 / self.seconds,
            self.requests,
            self.hist.quantile(0.50) as f64 / 1e6,
            self.hist.quantile(0.99) as f64 / 1e6,
            per_gb(self.broker_cpu_s),
            per_gb(self.client_cpu_s),
            self.machine_busy_pct.map_or("-".to_string(), |p| format!("{p:.0}")),
        )
    }
}

/// One Produce request frame (size prefix included) carrying `batch`, with the
/// correlation id at byte 8 so it can be rewritten per send.
fn produce_frame(topic: &str, acks: i16, batch: Bytes) -> Result<BytesMut> {
    let request = ProduceRequest {
        transactional_id: None,
        acks,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: topic.to_string(),
            partition_data: vec![PartitionProduceData { index: 0, records: Some(batch), ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i16(0); // api key: Produce
    frame.put_i16(PRODUCE_VERSION);
    frame.put_i32(0); // correlation id, set per send
    frame.put_i16(CLIENT_ID.len() as i16);
    frame.put_slice(CLIENT_ID);
    frame.put_u8(0); // request header v2: empty tagged fields
    request.encode(&mut frame, PRODUCE_VERSION).context("encoding the produce request")?;
    let size = (frame.len() - 4) as i32;
    frame[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

fn read_response(stream: &mut TcpStream) -> Result<(i32, Bytes)> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).context("reading a response size")?;
    let size = i32::from_be_bytes(size);
    if !(4..=64 << 20).contains(&size) {
        bail!("response size {size} out of bounds");
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).context("reading a response")?;
    let mut body = Bytes::from(body);
    let correlation_id = body.get_i32();
    Ok((correlation_id, body))
}

pub fn produce(s: &RawSettings) -> Result<RawResult> {
    let mut builder = RecordBatchBuilder::new(0);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let records_per_batch = (s.batch_bytes / (s.record_size + 16)).max(1);
    // CreateTime now: the topic's message.timestamp.*.max.ms bounds apply.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    for i in 0..records_per_batch {
        let value: Vec<u8> = (0..s.record_size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        builder.push(now_ms + i as i64 / 1000, None, Some(&value), &[]);
    }
    let batch = builder.build();
    let mut frame = produce_frame(&s.topic, s.acks, batch)?;
    let payload_per_request = (records_per_batch * s.record_size) as u64;
    let requests_wanted = s.total_bytes.div_ceil(payload_per_request.max(1));

    let mut writer = TcpStream::connect(&s.bootstrap).with_context(|| format!("connecting to {}", s.bootstrap))?;
    writer.set_nodelay(true)?;
    let mut reader = writer.try_clone()?;
    reader.set_read_timeout(Some(Duration::from_secs(60)))?;

    let cpu = CpuMark::now(s.broker_pid);
    let start = Instant::now();
    let deadline = start + s.max;
    let mut sent_at: VecDeque<(i32, Instant)> = VecDeque::new();
    let mut hist = Histogram::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < requests_wanted {
        while sent < requests_wanted && sent_at.len() < s.in_flight.max(1) && Instant::now() < deadline {
            let correlation_id = sent as i32;
            frame[8..12].copy_from_slice(&correlation_id.to_be_bytes());
            writer.write_all(&frame).context("sending a produce request")?;
            sent_at.push_back((correlation_id, Instant::now()));
            sent += 1;
        }
        let Some((expected, at)) = sent_at.pop_front() else { break };
        let (correlation_id, mut body) = read_response(&mut reader)?;
        if correlation_id != expected {
            bail!("response {correlation_id} out of order (expected {expected})");
        }
        body.advance(1); // response header v1: empty tagged fields
        let response = ProduceResponse::decode(&mut body, PRODUCE_VERSION).context("decoding a produce response")?;
        for t in &response.responses {
            for p in &t.partition_responses {
                if p.error_code != 0 {
                    bail!("produce failed: error code {} ({:?})", p.error_code, p.error_message);
                }
            }
        }
        hist.record(at.elapsed().as_nanos() as u64);
        acked += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let usage = cpu.since();
    Ok(RawResult {
        requests: acked,
        records: acked * records_per_batch as u64,
        payload_bytes: acked * payload_per_request,
        seconds,
        hist,
        broker_cpu_s: usage.broker_s,
        client_cpu_s: usage.client_s,
        machine_busy_pct: usage.machine_busy_pct(crate::sys::Machine::detect().nproc),
    })
}
