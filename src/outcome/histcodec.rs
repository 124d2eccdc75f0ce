//! The run's HDR histograms in the results JSON: serialized (HdrHistogram V2, the format every
//! HdrHistogram library reads), base64, so that results of several processes merge exactly.

use crate::measure::stats::{new_histogram, Histos};
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// How the histograms are encoded; a reader checks it before decoding.
pub const ENCODING: &str = "hdr-v2-base64";

/// The corrected, uncorrected, connect, send-lag and read-lag histograms of a run (microseconds).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EncodedHistos {
    pub encoding: String,
    pub corrected: String,
    pub uncorrected: String,
    pub connect: String,
    /// herd's own send and read lag; absent from results of herd versions before them (read as
    /// empty).
    #[serde(default)]
    pub send_lag: String,
    #[serde(default)]
    pub read_lag: String,
}

impl Default for EncodedHistos {
    fn default() -> Self {
        encode(&Histos::default())
    }
}

/// One histogram, serialized (V2) and base64.
pub fn encode_one(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Serializing into a Vec fails only for counts beyond what V2 can hold; keep the results
    // file valid anyway with an empty histogram (the reader sees a count of 0).
    if V2Serializer::new().serialize(h, &mut buf).is_err() {
        buf.clear();
        let _ = V2Serializer::new().serialize(&new_histogram(), &mut buf);
    }
    base64::engine::general_purpose::STANDARD.encode(&buf)
}

/// Encodes the three histograms.
pub fn encode(h: &Histos) -> EncodedHistos {
    EncodedHistos {
        encoding: ENCODING.to_string(),
        corrected: encode_one(&h.corrected),
        uncorrected: encode_one(&h.uncorrected),
        connect: encode_one(&h.connect),
        send_lag: encode_one(&h.send_lag),
        read_lag: encode_one(&h.read_lag),
    }
}

/// Reads one histogram written by [`encode_one`]; `name` says where it was, for errors.
pub fn decode_one(name: &str, text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("histograms.{name}: not base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histograms.{name}: not an HdrHistogram V2 histogram: {e:?}"))?;
    // Re-home the values in herd's own bounds, so that adding them cannot fail.
    let mut out = new_histogram();
    out.add(&h).map_err(|e| format!("histograms.{name}: values outside herd's range: {e:?}"))?;
    Ok(out)
}

/// [`decode_one`], with an absent histogram (an older results file) read as empty.
fn decode_optional(name: &str, text: &str) -> Result<Histogram<u64>, String> {
    if text.trim().is_empty() {
        return Ok(new_histogram());
    }
    decode_one(name, text)
}

/// Decodes the histograms; the error names the one that is bad.
pub fn decode(e: &EncodedHistos) -> Result<Histos, String> {
    if e.encoding != ENCODING {
        return Err(format!("histograms.encoding is {:?}, not {ENCODING:?}", e.encoding));
    }
    Ok(Histos {
        corrected: decode_one("corrected", &e.corrected)?,
        uncorrected: decode_one("uncorrected", &e.uncorrected)?,
        connect: decode_one("connect", &e.connect)?,
        send_lag: decode_optional("send_lag", &e.send_lag)?,
        read_lag: decode_optional("read_lag", &e.read_lag)?,
        // Per-phase connect histograms are not carried in results files: merged results have
        // the connect total only.
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_exactly() {
        let mut h = Histos::default();
        for us in [1u64, 7, 999, 1500, 250_000, 3_600_000_000] {
            h.corrected.record(us).unwrap();
            h.uncorrected.record(us / 2 + 1).unwrap();
        }
        h.connect.record_n(1234, 40).unwrap();
        h.send_lag.record_n(3, 7).unwrap();
        h.read_lag.record_n(40, 2).unwrap();
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.send_lag, h.send_lag);
        assert_eq!(back.read_lag, h.read_lag);
        let mut older = encode(&h);
        (older.send_lag, older.read_lag) = (String::new(), String::new());
        assert_eq!(decode(&older).unwrap().send_lag.len(), 0, "results without lags merge as empty");
        assert_eq!(back.corrected, h.corrected);
        assert_eq!(back.uncorrected, h.uncorrected);
        assert_eq!(back.connect, h.connect);
        assert_eq!(decode(&EncodedHistos::default()).unwrap().corrected.len(), 0);
    }

    #[test]
    fn bad_histograms_are_named() {
        let mut e = encode(&Histos::default());
        e.uncorrected = "@@@".into();
        assert!(decode(&e).unwrap_err().contains("histograms.uncorrected: not base64"));
        e.uncorrected = base64::engine::general_purpose::STANDARD.encode(b"not a histogram");
        assert!(decode(&e).unwrap_err().contains("histograms.uncorrected: not an HdrHistogram"));
        e.encoding = "x".into();
        assert!(decode(&e).unwrap_err().contains("histograms.encoding"));
    }
}
