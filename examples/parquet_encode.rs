//! Encodes messages from a benchmark record file into one Strata Parquet data file,
//! timing only the encoding (messages in memory → Parquet bytes in memory, one thread).
//! Driven by `benches/parquet_vs_pyarrow.py`.
//!
//! ```text
//! parquet_encode <records> <out.parquet> [--zstd-level N] [--row-group-rows N]
//!                [--row-group-bytes N] [--repeat N] [--serve] [--station NAME]
//!                [--threads N]
//! ```
//!
//! `--threads N` (default 1) encodes the file's row groups on N threads
//! (`columnar::encode_file_on_threads`, the same bytes as one thread).
//!
//! With `--serve`, it loads the messages once, then encodes once per line read from
//! stdin and answers each with `{"encode_seconds": S}`, so a driver can interleave its
//! runs with other encoders in the same conditions (warm process, same machine load).
//!
//! Record file (all integers little endian):
//!
//! ```text
//! "STRATA-BENCH-1\n"
//! repeated: u64 seq | i64 timestamp (UTC micros)
//!           | i32 id_len (-1 = none) | id bytes | i32 subject_len (-1 = none) | subject bytes
//!           | u32 header_count | header_count × (u32 len | name | u32 len | value)
//!           | u32 payload_len | payload bytes
//! ```
//!
//! At the end it prints one JSON object: rows, payload bytes, file bytes, the encode
//! seconds of every run, and the best time of converting the messages to Arrow alone.

use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use strata::columnar::{encode_file, encode_file_on_threads, to_record_batch, ParquetOptions};
use strata::{Header, Message, StationName, Timestamp};

const MAGIC: &[u8] = b"STRATA-BENCH-1\n";

struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, String> {
        if self.buf.len() - self.pos < n {
            return Err(format!("record file truncated at byte {}", self.pos));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn string(&mut self, len: usize) -> Result<String, String> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|e| format!("bad UTF-8: {e}"))
    }
    fn optional_string(&mut self) -> Result<Option<String>, String> {
        let len = i32::from_le_bytes(self.array()?);
        if len < 0 {
            return Ok(None);
        }
        self.string(len as usize).map(Some)
    }
}

fn read_records(buf: Bytes, station: &StationName) -> Result<Vec<Message>, String> {
    if !buf.starts_with(MAGIC) {
        return Err("not a STRATA-BENCH-1 record file".into());
    }
    let mut r = Reader {
        buf,
        pos: MAGIC.len(),
    };
    let mut out = Vec::new();
    while r.pos < r.buf.len() {
        let seq = u64::from_le_bytes(r.array()?);
        let timestamp = Timestamp(i64::from_le_bytes(r.array()?));
        let id = r.optional_string()?;
        let subject = r.optional_string()?;
        let count = r.u32()?;
        let mut headers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let n = r.u32()? as usize;
            let name = r.string(n)?;
            let n = r.u32()? as usize;
            let value = r.string(n)?;
            headers.push(Header { name, value });
        }
        let n = r.u32()? as usize;
        let payload = r.take(n)?;
        out.push(Message {
            station: station.clone(),
            seq,
            timestamp,
            id,
            subject,
            headers,
            payload,
        });
    }
    Ok(out)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut opts = ParquetOptions::default();
    let mut repeat = 1usize;
    let mut serve = false;
    let mut station = "events".to_string();
    let mut threads = 1usize;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--zstd-level" => opts.zstd_level = parse(&value(&arg)?)?,
            "--row-group-rows" => opts.row_group_rows = parse(&value(&arg)?)?,
            "--row-group-bytes" => opts.row_group_bytes = parse(&value(&arg)?)?,
            "--repeat" => repeat = parse(&value(&arg)?)?,
            "--station" => station = value(&arg)?,
            "--threads" => threads = parse(&value(&arg)?)?,
            "--serve" => serve = true,
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => positional.push(arg),
        }
    }
    let [input, output] = positional.as_slice() else {
        return Err("usage: parquet_encode <records> <out.parquet> [options]".into());
    };
    let station = StationName::new(station).map_err(|e| e.to_string())?;
    let buf = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let msgs = read_records(Bytes::from(buf), &station)?;
    let payload_bytes: usize = msgs.iter().map(|m| m.payload.len()).sum();

    let mut seconds = Vec::new();
    let mut file = Bytes::new();
    let encode = |file: &mut Bytes| -> Result<f64, String> {
        *file = Bytes::new();
        let start = Instant::now();
        let encoded = if threads > 1 {
            encode_file_on_threads(&station, &msgs, &opts, threads)
        } else {
            encode_file(&station, &msgs, &opts)
        };
        let (bytes, _summary) = encoded.map_err(|e| e.to_string())?;
        let elapsed = start.elapsed().as_secs_f64();
        *file = bytes;
        Ok(elapsed)
    };
    if serve {
        println!("{{\"ready\": true}}");
        for line in std::io::stdin().lines() {
            line.map_err(|e| format!("cannot read stdin: {e}"))?;
            let s = encode(&mut file)?;
            seconds.push(s);
            println!("{{\"encode_seconds\": {s:.6}}}");
        }
    } else {
        for _ in 0..repeat.max(1) {
            seconds.push(encode(&mut file)?);
        }
    }
    std::fs::write(output, &file).map_err(|e| format!("cannot write {output}: {e}"))?;

    // How much of an encode is the conversion of messages to Arrow (the encoder
    // converts in chunks of this size), for context.
    let mut convert_seconds = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        for chunk in msgs.chunks(8 * 1024) {
            drop(to_record_batch(chunk).map_err(|e| e.to_string())?);
        }
        convert_seconds = convert_seconds.min(start.elapsed().as_secs_f64());
    }

    let seconds: Vec<String> = seconds.iter().map(|s| format!("{s:.6}")).collect();
    println!(
        "{{\"rows\": {}, \"payload_bytes\": {payload_bytes}, \"file_bytes\": {}, \
         \"encode_seconds\": [{}], \"convert_seconds\": {convert_seconds:.6}}}",
        msgs.len(),
        file.len(),
        seconds.join(", ")
    );
    Ok(())
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parquet_encode: {e}");
            ExitCode::FAILURE
        }
    }
}
