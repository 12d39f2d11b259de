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
//! byte-for-byte reproducible.

use std::fs::File;
use std::io::BufReader;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::{Port, PortDrop, PortError, PortStats};
use crate::mbuf::Burst;
use crate::pcap::{PcapError, PcapReader, PcapWriter, LINKTYPE_ETHERNET};
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

impl Port for PcapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let Some(reader) = self.input.as_mut() else {
            return Ok(0);
        };
        let mut got = 0;
        while got < max && self.remaining > 0 && burst.room() > 0 {
            // Take the buffer first: with none free, stop reading (back-pressure, no loss).
            let Some(mut m) = pool.alloc() else { break };
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
            if !m.copy_from(rec.data) {
                self.stats.drop_one(PortDrop::RxOversize);
                pool.free(m);
                continue;
            }
            m.set_timestamp(rec.ts_ns);
            m.set_snap_cut(rec.orig_len.saturating_sub(rec.data.len() as u32));
            m.set_port(self.id);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += rec.data.len() as u64;
            let _ = burst.push(m);
            got += 1;
        }
        Ok(got)
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
        self.remaining == 0
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
