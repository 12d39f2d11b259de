//! Pcap ports: a capture file as a packet source, another as a sink.
//!
//! Offline replay and the golden tests run the very same engine as the online dataplane; only
//! the ports differ. The input file is scanned once when the port opens, so a broken file is
//! refused (with its path and byte offset) before a single packet is processed, a capture of
//! another link type is refused by name, and a truncated last record is reported up front. A
//! file is not a wire: when the pool runs dry the port simply stops reading until buffers come
//! back, so replay never loses a packet for lack of memory.
//!
//! Output keeps each packet's input timestamp (nanosecond pcap), so expected outputs are
//! byte-for-byte reproducible. An input port can read one record ahead
//! ([`Port::next_timestamp`]) and stop before a capture time ([`Port::rx_burst_until`]): that
//! is how replay merges several input files by capture time.

use std::fs::File;
use std::io::BufReader;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::{Port, PortDrop, PortError, PortStats};
use crate::mbuf::Burst;
use crate::pcap::{PcapError, PcapReader, PcapWriter, Record, LINKTYPE_ETHERNET};
use crate::pool::PoolCache;

/// What the opening scan found in an input capture.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Complete packets in the file.
    pub packets: u64,
    /// The truncated last record, if any (the packets before it are replayed).
    pub truncated: Option<String>,
}

/// Scans a capture: counts packets, checks every link type is Ethernet, finds a truncated tail.
pub fn scan(path: &Path) -> Result<ScanReport, PortError> {
    let mut r = PcapReader::open(path)?;
    let mut rep = ScanReport::default();
    loop {
        let off = r.offset();
        match r.next_record() {
            Ok(Some(rec)) => {
                if rec.linktype != LINKTYPE_ETHERNET {
                    return Err(PortError::Other {
                        port: path.display().to_string(),
                        msg: format!(
                            "byte {off}: packet {} is on interface {} with link type {}; only \
                             Ethernet (link type 1) captures can be replayed",
                            rep.packets + 1,
                            rec.interface,
                            rec.linktype
                        ),
                    });
                }
                rep.packets += 1;
            }
            Ok(None) => return Ok(rep),
            Err(e @ PcapError::Truncated { .. }) => {
                rep.truncated = Some(e.to_string());
                return Ok(rep);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A pcap-file port: reads one capture, writes another (either side optional).
pub struct PcapPort {
    name: String,
    id: u16,
    input: Option<PcapReader<BufReader<File>>>,
    input_path: Option<PathBuf>,
    remaining: u64,
    output: Option<PcapWriter<BufWriter<File>>>,
    stats: PortStats,
    scan: ScanReport,
    /// The next record, read ahead (for [`Port::next_timestamp`]) and not received yet: its
    /// capture time, original length and bytes (a buffer reused record after record).
    ahead: Option<(u64, u32)>,
    ahead_data: Vec<u8>,
}

impl PcapPort {
    /// Opens a port `id` named `name` reading `input` and/or writing `output`.
    pub fn open(
        name: &str,
        id: u16,
        input: Option<&Path>,
        output: Option<&Path>,
    ) -> Result<PcapPort, PortError> {
        let (reader, scan) = match input {
            Some(p) => {
                let rep = scan(p)?;
                (Some(PcapReader::open(p)?), rep)
            }
            None => (None, ScanReport::default()),
        };
        let writer = match output {
            Some(p) => Some(PcapWriter::create(p, LINKTYPE_ETHERNET, 65535, true)?),
            None => None,
        };
        Ok(PcapPort {
            name: name.into(),
            id,
            input: reader,
            input_path: input.map(Path::to_path_buf),
            remaining: scan.packets,
            output: writer,
            stats: PortStats::default(),
            scan,
            ahead: None,
            ahead_data: Vec::new(),
        })
    }

    /// What the opening scan of the input found.
    pub fn scan_report(&self) -> &ScanReport {
        &self.scan
    }

    /// The input path, if any.
    pub fn input_path(&self) -> Option<&Path> {
        self.input_path.as_deref()
    }
}

/// Keeps a record read ahead of its turn: its time and length in `ahead`, its bytes in `data`
/// (a buffer reused record after record, so reading ahead allocates nothing once warm).
fn keep_ahead(ahead: &mut Option<(u64, u32)>, data: &mut Vec<u8>, rec: &Record<'_>) {
    data.clear();
    data.extend_from_slice(rec.data);
    *ahead = Some((rec.ts_ns, rec.orig_len));
}

impl Port for PcapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        self.rx_burst_until(queue, pool, burst, max, u64::MAX)
    }

    fn rx_burst_until(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
        until: u64,
    ) -> Result<usize, PortError> {
        let Some(reader) = self.input.as_mut() else {
            return Ok(0);
        };
        let mut got = 0;
        while got < max && (self.remaining > 0 || self.ahead.is_some()) && burst.room() > 0 {
            // Take the buffer first: with none free, stop reading (back-pressure, no loss).
            let Some(mut m) = pool.alloc() else { break };
            let (ts, orig_len, fits) = match self.ahead {
                // The record read ahead: received now unless it is still too late.
                Some((ts, _)) if ts > until => {
                    pool.free(m);
                    break;
                }
                Some((ts, orig_len)) => {
                    self.ahead = None;
                    (ts, orig_len, m.copy_from(&self.ahead_data))
                }
                None => {
                    let rec = match reader.next_record() {
                        Ok(Some(rec)) => rec,
                        Ok(None) | Err(PcapError::Truncated { .. }) => {
                            self.remaining = 0;
                            pool.free(m);
                            break;
                        }
                        Err(e) => {
                            pool.free(m);
                            return Err(e.into());
                        }
                    };
                    self.remaining -= 1;
                    if rec.ts_ns > until {
                        // Captured after what may be received now: kept for later.
                        keep_ahead(&mut self.ahead, &mut self.ahead_data, &rec);
                        pool.free(m);
                        break;
                    }
                    (rec.ts_ns, rec.orig_len, m.copy_from(rec.data))
                }
            };
            if !fits {
                self.stats.drop_one(PortDrop::RxOversize);
                pool.free(m);
                continue;
            }
            let len = m.len();
            m.set_timestamp(ts);
            m.set_snap_cut(orig_len.saturating_sub(len as u32));
            m.set_port(self.id);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            let _ = burst.push(m);
            got += 1;
        }
        Ok(got)
    }

    fn next_timestamp(&mut self) -> Result<Option<u64>, PortError> {
        if let Some((ts, _)) = self.ahead {
            return Ok(Some(ts));
        }
        let Some(reader) = self.input.as_mut() else {
            return Ok(None);
        };
        if self.remaining == 0 {
            return Ok(None);
        }
        match reader.next_record() {
            Ok(Some(rec)) => {
                self.remaining -= 1;
                keep_ahead(&mut self.ahead, &mut self.ahead_data, &rec);
                Ok(Some(rec.ts_ns))
            }
            Ok(None) | Err(PcapError::Truncated { .. }) => {
                self.remaining = 0;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn tx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = burst.len();
        let Some(w) = self.output.as_mut() else {
            // A port with no output file discards what it is sent, counted.
            self.stats.drops[PortDrop::TxError as usize] += n as u64;
            pool.free_burst(burst);
            return Ok(n);
        };
        let mut err = None;
        for m in burst.as_slice() {
            if err.is_some() {
                self.stats.drop_one(PortDrop::TxError);
                continue;
            }
            let orig = m.len() as u32 + m.snap_cut();
            match w.write(m.timestamp(), m.data(), orig) {
                Ok(()) => {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += m.len() as u64;
                }
                Err(e) => {
                    self.stats.drop_one(PortDrop::TxError);
                    err = Some(e);
                }
            }
        }
        pool.free_burst(burst);
        match err {
            Some(e) => Err(e.into()),
            None => Ok(n),
        }
    }

    fn flush(&mut self) -> Result<(), PortError> {
        if let Some(w) = self.output.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn at_end(&self) -> bool {
        self.remaining == 0 && self.ahead.is_none()
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HugePolicy;
    use crate::{Pool, PoolConfig};

    #[test]
    fn reads_ahead_and_stops_at_a_capture_time() {
        let dir = std::env::temp_dir().join(format!("pcap-until-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.pcap");
        let mut w = PcapWriter::create(&path, LINKTYPE_ETHERNET, 65535, true).unwrap();
        for ts in [1u64, 2, 3, 10] {
            let f = [ts as u8; 60];
            w.write(ts, &f, 60).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let pool = Pool::new(&PoolConfig {
            count: 64,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut cache = pool.cache();
        let mut port = PcapPort::open("in", 0, Some(&path), None).unwrap();
        let mut burst = Burst::new();
        assert_eq!(port.next_timestamp().unwrap(), Some(1));
        assert_eq!(
            port.next_timestamp().unwrap(),
            Some(1),
            "peeking twice reads once"
        );
        assert_eq!(
            port.rx_burst_until(0, &mut cache, &mut burst, 32, 2)
                .unwrap(),
            2
        );
        assert_eq!(port.next_timestamp().unwrap(), Some(3));
        assert!(!port.at_end(), "a packet read ahead is still to come");
        assert_eq!(port.rx_burst(0, &mut cache, &mut burst, 32).unwrap(), 2);
        assert!(port.at_end());
        assert_eq!(port.next_timestamp().unwrap(), None);
        let got: Vec<(u64, u8)> = burst
            .as_slice()
            .iter()
            .map(|m| (m.timestamp(), m.data()[0]))
            .collect();
        assert_eq!(
            got,
            [(1, 1), (2, 2), (3, 3), (10, 10)],
            "every packet once, in order"
        );
        assert_eq!(port.stats().rx_packets, 4);
        cache.free_burst(&mut burst);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
