//! [`PcapWriter`]: writes classic little-endian pcap files.
//!
//! Classic pcap is the one format every tool reads, so it is the only output format: a 24-byte
//! file header, then a 16-byte header and the captured bytes per record. Timestamps are kept as
//! given, at microsecond or nanosecond resolution.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::{PcapError, MAX_CAPLEN};

/// Writes packet records as a classic little-endian pcap stream.
pub struct PcapWriter<W: Write> {
    name: String,
    inner: W,
    nanosecond: bool,
    /// Bytes written so far.
    offset: u64,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path` and writes the file header.
    pub fn create(
        path: &Path,
        linktype: u32,
        snaplen: u32,
        nanosecond: bool,
    ) -> Result<Self, PcapError> {
        let name = path.display().to_string();
        match File::create(path) {
            Ok(file) => Self::new(&name, BufWriter::new(file), linktype, snaplen, nanosecond),
            Err(source) => Err(PcapError::Io { path: name, source }),
        }
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `inner`: microsecond magic `0xa1b2c3d4`, or nanosecond magic
    /// `0xa1b23c4d` if `nanosecond`. `name` is used in error messages in place of a path.
    pub fn new(
        name: &str,
        inner: W,
        linktype: u32,
        snaplen: u32,
        nanosecond: bool,
    ) -> Result<Self, PcapError> {
        let magic: u32 = if nanosecond { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&linktype.to_le_bytes());
        let mut w = Self {
            name: name.to_owned(),
            inner,
            nanosecond,
            offset: 0,
        };
        w.put(&hdr)?;
        Ok(w)
    }

    /// Writes one record (classic little-endian pcap, usec or nsec magic). Keeps the given
    /// timestamp (truncated to whole microseconds in a microsecond file); the captured length
    /// is `data.len()`, which may not exceed [`MAX_CAPLEN`].
    pub fn write(&mut self, ts_ns: u64, data: &[u8], orig_len: u32) -> Result<(), PcapError> {
        let caplen = match u32::try_from(data.len()) {
            Ok(caplen) if caplen <= MAX_CAPLEN => caplen,
            _ => {
                return Err(
                    self.unwritable(format!("{} captured bytes exceed {MAX_CAPLEN}", data.len()))
                )
            }
        };
        let Ok(sec) = u32::try_from(ts_ns / 1_000_000_000) else {
            return Err(self.unwritable(format!(
                "timestamp {ts_ns} ns is past 2106 (32-bit seconds)"
            )));
        };
        let ns = (ts_ns % 1_000_000_000) as u32;
        let frac = if self.nanosecond { ns } else { ns / 1000 };
        let mut hdr = [0u8; 16];
        for (i, v) in [sec, frac, caplen, orig_len].into_iter().enumerate() {
            hdr[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        self.put(&hdr)?;
        self.put(data)
    }

    /// Flushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.inner.flush().map_err(|e| self.io(e))
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, PcapError> {
        self.flush()?;
        Ok(self.inner)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), PcapError> {
        self.inner.write_all(bytes).map_err(|e| self.io(e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn io(&self, source: io::Error) -> PcapError {
        PcapError::Io {
            path: self.name.clone(),
            source,
        }
    }

    fn unwritable(&self, why: String) -> PcapError {
        PcapError::Unwritable {
            path: self.name.clone(),
            offset: self.offset,
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::{Format, PcapReader, LINKTYPE_ETHERNET};

    const RECS: [(u64, &[u8], u32); 3] = [
        (1_700_000_000_123_456_789, b"first packet", 60),
        (1_700_000_001_000_000_000, b"", 0),
        (4_294_967_295_999_999_999, b"last second of 2106", 1514),
    ];

    fn round_trip(nanosecond: bool) {
        let mut w =
            PcapWriter::new("mem", Vec::new(), LINKTYPE_ETHERNET, 2048, nanosecond).unwrap();
        for (ts, data, orig) in RECS {
            w.write(ts, data, orig).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        assert_eq!(&bytes[4..8], [2, 0, 4, 0]);
        assert_eq!(&bytes[16..24], [0, 8, 0, 0, 1, 0, 0, 0]);

        let mut r = PcapReader::new("mem", &bytes[..]).unwrap();
        assert_eq!(
            r.format(),
            if nanosecond {
                Format::PcapLeNsec
            } else {
                Format::PcapLeUsec
            }
        );
        assert_eq!(r.linktypes(), [LINKTYPE_ETHERNET]);
        for (ts, data, orig) in RECS {
            let rec = r.next_record().unwrap().unwrap();
            let ts = if nanosecond { ts } else { ts / 1000 * 1000 };
            assert_eq!(
                (rec.ts_ns, rec.data, rec.orig_len, rec.interface),
                (ts, data, orig, 0)
            );
        }
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn round_trip_usec() {
        round_trip(false);
    }

    #[test]
    fn round_trip_nsec() {
        round_trip(true);
    }

    #[test]
    fn unrepresentable_records() {
        let mut w = PcapWriter::new("out.pcap", Vec::new(), 1, 65535, false).unwrap();
        let err = w.write(4_294_967_296_000_000_000, b"x", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "out.pcap: byte 24: cannot write record: timestamp 4294967296000000000 ns is past 2106 (32-bit seconds)"
        );
        let big = vec![0u8; MAX_CAPLEN as usize + 1];
        assert!(matches!(
            w.write(0, &big, 0),
            Err(PcapError::Unwritable { offset: 24, .. })
        ));
        w.write(0, &big[1..], 0).unwrap();
        assert_eq!(w.into_inner().unwrap().len(), 24 + 16 + MAX_CAPLEN as usize);
    }

    #[test]
    fn create_and_open_files() {
        let path =
            std::env::temp_dir().join(format!("pmd-pcap-writer-{}.pcap", std::process::id()));
        let mut w = PcapWriter::create(&path, LINKTYPE_ETHERNET, 65535, true).unwrap();
        w.write(42, b"on disk", 7).unwrap();
        w.flush().unwrap();
        drop(w);
        let mut r = PcapReader::open(&path).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().ts_ns, 42);
        std::fs::remove_file(&path).unwrap();

        let err = PcapReader::open(&path).err().unwrap();
        assert!(matches!(err, PcapError::Io { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", path.display())),
            "{err}"
        );
        let missing = path.join("no-such-dir/x.pcap");
        assert!(matches!(
            PcapWriter::create(&missing, 1, 0, false),
            Err(PcapError::Io { .. })
        ));
    }
}
