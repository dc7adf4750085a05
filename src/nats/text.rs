//! Header values of restored messages written without `format!` or chrono:
//! decimal numbers and RFC 3339 timestamps into stack buffers. Pure; the
//! output is byte for byte what [`u64::to_string`] and
//! [`Timestamp::to_rfc3339`] give.

use crate::message::Timestamp;

/// A `u64` in decimal, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    /// The decimal digits of `n`.
    pub fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written from `start` on.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or_default()
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// `9999-12-31T23:59:59.999999Z`: the last instant of the fixed-width form.
const LAST_FAST: i64 = 253_402_300_799_999_999;

/// `ts` as RFC 3339 in UTC with six fractional digits
/// (`2026-11-24T10:00:00.123456Z`), the text of [`Timestamp::to_rfc3339`].
pub fn rfc3339(ts: Timestamp) -> String {
    match rfc3339_fixed(ts) {
        Some(text) => String::from_utf8_lossy(&text).into_owned(),
        None => ts.to_rfc3339(),
    }
}

/// The fixed-width form for instants from 1970 to the end of year 9999;
/// `None` outside (left to chrono).
fn rfc3339_fixed(ts: Timestamp) -> Option<[u8; 27]> {
    let micros = ts.micros();
    if !(0..=LAST_FAST).contains(&micros) {
        return None;
    }
    let days = micros / MICROS_PER_DAY;
    let in_day = micros % MICROS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3600);
    put(14, 2, secs / 60 % 60);
    put(17, 2, secs % 60);
    put(20, 6, frac);
    Some(out)
}

/// Year, month, day of the day `days` after 1970-01-01 (days ≥ 0; Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_match_to_string() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn timestamps_match_chrono() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut cases = vec![
            0,
            1,
            999_999,
            MICROS_PER_DAY - 1,
            MICROS_PER_DAY,
            951_782_400_000_000,   // 2000-02-29
            4_107_542_400_000_000, // 2100-03-01
            LAST_FAST,
            LAST_FAST + 1,
            -1,
            -MICROS_PER_DAY * 800,
            i64::MIN,
            i64::MAX,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x % (LAST_FAST as u64 + 1)) as i64);
        }
        for micros in cases {
            let ts = Timestamp(micros);
            assert_eq!(rfc3339(ts), ts.to_rfc3339(), "{micros}");
        }
    }
}
