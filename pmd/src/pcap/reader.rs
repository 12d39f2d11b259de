//! [`PcapReader`]: a streaming reader for classic pcap and pcapng files.
//!
//! The reader pulls bytes from any [`Read`] and keeps one growable buffer for record data, so
//! after the first few records no packet causes an allocation. It trusts no field: block and
//! record lengths are range-checked before use, and the buffer grows at most [`GROW_STEP`]
//! bytes ahead of data actually received, so a header claiming gigabytes costs nothing.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::Path;

use super::ng::{self, Iface};
use super::{get_u16, get_u32, Format, PcapError, Record, MAX_BLOCK_LEN, MAX_CAPLEN};

/// How far the record buffer may grow ahead of the bytes actually read into it.
const GROW_STEP: usize = 64 << 10;

/// Link type bits of a classic pcap header's link type field (the upper bits carry FCS
/// information; same mask as libpcap's `LT_LINKTYPE`).
const LINKTYPE_MASK: u32 = 0x03FF_FFFF;

/// Reads packet records from a classic pcap or pcapng stream.
///
/// After an error the reader is finished: later calls to [`next_record`](Self::next_record)
/// return `Ok(None)`.
pub struct PcapReader<R: Read> {
    name: String,
    inner: R,
    offset: u64,
    format: Format,
    /// Record data (classic) or the current block's body and trailer (pcapng).
    buf: Vec<u8>,
    /// Link type of every interface seen, indexed by [`Record::interface`].
    linktypes: Vec<u32>,
    /// pcapng: every interface seen, indexed like `linktypes`. Empty for classic pcap.
    ifaces: Vec<Iface>,
    /// pcapng: index in `ifaces` of the current section's interface 0.
    section_base: usize,
    required_linktype: Option<u32>,
    failed: bool,
}

/// A record located in `buf`, before it is handed out as a [`Record`].
struct Located {
    ts_ns: u64,
    orig_len: u32,
    iface: usize,
    data: Range<usize>,
}

impl PcapReader<BufReader<File>> {
    /// Opens a capture file; errors name it by its path.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        let name = path.display().to_string();
        match File::open(path) {
            Ok(file) => Self::new(&name, BufReader::with_capacity(64 << 10, file)),
            Err(source) => Err(PcapError::Io { path: name, source }),
        }
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header (classic) or first section header (pcapng) from `inner`.
    /// `name` is used in error messages in place of a path.
    pub fn new(name: &str, inner: R) -> Result<Self, PcapError> {
        let mut r = Self {
            name: name.to_owned(),
            inner,
            offset: 0,
            format: Format::PcapLeUsec,
            buf: Vec::new(),
            linktypes: Vec::new(),
            ifaces: Vec::new(),
            section_base: 0,
            required_linktype: None,
            failed: false,
        };
        let mut magic = [0u8; 4];
        let n = r.fill(&mut magic)?;
        if n < 4 {
            return Err(r.truncated(0, "file header", 4, n));
        }
        let classic = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => Format::PcapLeUsec,
            [0xa1, 0xb2, 0xc3, 0xd4] => Format::PcapBeUsec,
            [0x4d, 0x3c, 0xb2, 0xa1] => Format::PcapLeNsec,
            [0xa1, 0xb2, 0x3c, 0x4d] => Format::PcapBeNsec,
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                let mut hdr = [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0];
                let n = r.fill(&mut hdr[4..])?;
                if n < 4 {
                    return Err(r.truncated(0, "section header block", 28, 4 + n));
                }
                r.read_shb(0, hdr)?;
                return Ok(r);
            }
            _ => {
                return Err(PcapError::BadMagic {
                    path: r.name,
                    magic: u32::from_be_bytes(magic),
                })
            }
        };
        r.format = classic;
        let be = classic.big_endian();
        // After the magic: version major, minor, thiszone, sigfigs, snaplen, linktype.
        let mut hdr = [0u8; 20];
        let n = r.fill(&mut hdr)?;
        if n < hdr.len() {
            return Err(r.truncated(0, "file header", 24, 4 + n));
        }
        let (major, minor) = (get_u16(be, &hdr, 0), get_u16(be, &hdr, 2));
        if (major, minor) != (2, 4) {
            return Err(PcapError::UnsupportedVersion {
                path: r.name,
                major,
                minor,
            });
        }
        r.linktypes.push(get_u32(be, &hdr, 16) & LINKTYPE_MASK);
        Ok(r)
    }

    /// Container format and byte order (for pcapng: of the current section).
    pub fn format(&self) -> Format {
        self.format
    }

    /// The name given to [`new`](Self::new) (or the path given to `open`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes [`next_record`](Self::next_record) fail with [`PcapError::LinkType`] on a record
    /// whose interface has another link type.
    pub fn require_linktype(&mut self, linktype: u32) {
        self.required_linktype = Some(linktype);
    }

    /// Next packet, `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, PcapError> {
        if self.failed {
            return Ok(None);
        }
        let found = if self.is_ng() {
            self.next_ng()
        } else {
            self.next_classic()
        };
        let rec = match found {
            Ok(Some(rec)) => rec,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let linktype = self.linktypes[rec.iface];
        let interface = rec.iface as u32;
        if let Some(expected) = self.required_linktype.filter(|&lt| lt != linktype) {
            self.failed = true;
            let path = self.name.clone();
            return Err(PcapError::LinkType {
                path,
                linktype,
                interface,
                expected,
            });
        }
        Ok(Some(Record {
            ts_ns: rec.ts_ns,
            orig_len: rec.orig_len,
            linktype,
            interface,
            data: &self.buf[rec.data],
        }))
    }

    /// Byte offset of the next unread byte (for error messages).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Link types of all interfaces seen so far (classic pcap: the header's), indexed by
    /// [`Record::interface`].
    pub fn linktypes(&self) -> &[u32] {
        &self.linktypes
    }

    fn is_ng(&self) -> bool {
        matches!(self.format, Format::PcapNgLe | Format::PcapNgBe)
    }

    fn next_classic(&mut self) -> Result<Option<Located>, PcapError> {
        let start = self.offset;
        // ts_sec, ts_usec (or ts_nsec), caplen, orig_len.
        let mut hdr = [0u8; 16];
        match self.fill(&mut hdr)? {
            0 => return Ok(None),
            16 => {}
            n => return Err(self.truncated(start, "record header", 16, n)),
        }
        let be = self.format.big_endian();
        let caplen = get_u32(be, &hdr, 8);
        if caplen > MAX_CAPLEN {
            let why = format!("record captured length {caplen} exceeds {MAX_CAPLEN}");
            return Err(self.corrupt(start, why));
        }
        let caplen = caplen as usize;
        let have = self.fill_buf(0, caplen)?;
        if have < caplen {
            return Err(self.truncated(start + 16, "record data", caplen, have));
        }
        let frac = u64::from(get_u32(be, &hdr, 4));
        let frac_ns = match self.format {
            Format::PcapLeNsec | Format::PcapBeNsec => frac,
            _ => frac * 1000,
        };
        Ok(Some(Located {
            ts_ns: u64::from(get_u32(be, &hdr, 0)) * 1_000_000_000 + frac_ns,
            orig_len: get_u32(be, &hdr, 12),
            iface: 0,
            data: 0..caplen,
        }))
    }

    fn next_ng(&mut self) -> Result<Option<Located>, PcapError> {
        loop {
            let start = self.offset;
            let mut hdr = [0u8; 8];
            match self.fill(&mut hdr)? {
                0 => return Ok(None),
                8 => {}
                n => return Err(self.truncated(start, "block header", 8, n)),
            }
            let be = self.format.big_endian();
            let ty = get_u32(be, &hdr, 0);
            if ty == ng::SHB {
                self.read_shb(start, hdr)?;
                continue;
            }
            let len = get_u32(be, &hdr, 4);
            let body_len = self.read_block(start, be, ty, len, 0)?;
            let body = &self.buf[..body_len];
            match ty {
                ng::IDB => {
                    let iface = ng::parse_idb(be, body).map_err(|why| self.corrupt(start, why))?;
                    self.ifaces.push(iface);
                    self.linktypes.push(iface.linktype);
                }
                ng::EPB | ng::PB => {
                    // EPB: interface (32 bits); PB: interface (16), drops (16). Then both have
                    // timestamp high, low, caplen, orig_len, data.
                    let id = match ty {
                        ng::EPB => get_u32(be, body, 0),
                        _ => u32::from(get_u16(be, body, 0)),
                    };
                    let ts =
                        (u64::from(get_u32(be, body, 4)) << 32) | u64::from(get_u32(be, body, 8));
                    let caplen = get_u32(be, body, 12) as usize;
                    let orig_len = get_u32(be, body, 16);
                    if caplen > body_len - 20 {
                        let why = format!(
                            "packet captured length {caplen} overruns its {len}-byte block"
                        );
                        return Err(self.corrupt(start, why));
                    }
                    let iface = self.iface_index(start, id)?;
                    let ts_ns = ng::ts_to_ns(ts, &self.ifaces[iface]);
                    return Ok(Some(Located {
                        ts_ns,
                        orig_len,
                        iface,
                        data: 20..20 + caplen,
                    }));
                }
                ng::SPB => {
                    let orig_len = get_u32(be, body, 0);
                    let iface = self.iface_index(start, 0)?;
                    let mut caplen = (orig_len as usize).min(body_len - 4);
                    match self.ifaces[iface].snaplen {
                        0 => {}
                        snaplen => caplen = caplen.min(snaplen as usize),
                    }
                    return Ok(Some(Located {
                        ts_ns: 0,
                        orig_len,
                        iface,
                        data: 4..4 + caplen,
                    }));
                }
                _ => {} // NRB, ISB, DSB, custom and unknown blocks carry no packets.
            }
        }
    }

    /// Reads the rest of a section header block whose first 8 bytes are `hdr` and starts a new
    /// section: interfaces defined before are no longer addressable.
    fn read_shb(&mut self, start: u64, hdr: [u8; 8]) -> Result<(), PcapError> {
        // Byte-order magic, major and minor version.
        let mut fixed = [0u8; 8];
        let n = self.fill(&mut fixed)?;
        if n < fixed.len() {
            return Err(self.truncated(start, "section header block", 28, 8 + n));
        }
        let bom = [fixed[0], fixed[1], fixed[2], fixed[3]];
        let be = match bom {
            ng::BOM_BE => true,
            ng::BOM_LE => false,
            _ => return Err(self.corrupt(start + 8, format!("bad byte-order magic {bom:02x?}"))),
        };
        let (major, minor) = (get_u16(be, &fixed, 4), get_u16(be, &fixed, 6));
        if major != 1 {
            return Err(PcapError::UnsupportedVersion {
                path: self.name.clone(),
                major,
                minor,
            });
        }
        if self.buf.len() < fixed.len() {
            self.buf.resize(fixed.len(), 0);
        }
        self.buf[..fixed.len()].copy_from_slice(&fixed);
        self.read_block(start, be, ng::SHB, get_u32(be, &hdr, 4), fixed.len())?;
        self.format = if be {
            Format::PcapNgBe
        } else {
            Format::PcapNgLe
        };
        self.section_base = self.ifaces.len();
        Ok(())
    }

    /// Checks a block's total length `len`, reads the rest of the block into `buf` (whose
    /// first `prefilled` bytes already hold the start of the body) and checks the trailing
    /// length. Returns the body length; the body is `buf[..body_len]`.
    fn read_block(
        &mut self,
        start: u64,
        be: bool,
        ty: u32,
        len: u32,
        prefilled: usize,
    ) -> Result<usize, PcapError> {
        let min = ng::min_block_len(ty);
        if !len.is_multiple_of(4) || len < min || len > MAX_BLOCK_LEN {
            let why = format!(
                "block type {ty:#x} has bad total length {len} \
                 (need a multiple of 4 from {min} to {MAX_BLOCK_LEN})"
            );
            return Err(self.corrupt(start, why));
        }
        let end = len as usize - 8; // body and trailing length
        let have = prefilled + self.fill_buf(prefilled, end)?;
        if have < end {
            return Err(self.truncated(start, "block", len as usize, 8 + have));
        }
        let body_len = end - 4;
        let trailer = get_u32(be, &self.buf, body_len);
        if trailer != len {
            let why = format!("trailing block length {trailer} differs from leading length {len}");
            return Err(self.corrupt(start + 8 + body_len as u64, why));
        }
        Ok(body_len)
    }

    /// Global index of interface `id` of the current section.
    fn iface_index(&self, start: u64, id: u32) -> Result<usize, PcapError> {
        let defined = self.ifaces.len() - self.section_base;
        match usize::try_from(id) {
            Ok(id) if id < defined => Ok(self.section_base + id),
            _ => {
                let why = format!(
                    "packet refers to interface {id}, but its section defines {defined} interface(s)"
                );
                Err(self.corrupt(start, why))
            }
        }
    }

    /// Reads until `dst` is full or the input ends; returns the bytes read.
    fn fill(&mut self, dst: &mut [u8]) -> Result<usize, PcapError> {
        let n = read_full(&mut self.inner, dst).map_err(|e| self.io(e))?;
        self.offset += n as u64;
        Ok(n)
    }

    /// Reads into `buf[from..to]`, growing `buf` only as data arrives; returns the bytes read.
    fn fill_buf(&mut self, from: usize, to: usize) -> Result<usize, PcapError> {
        let mut pos = from;
        while pos < to {
            let want = to.min(pos + GROW_STEP);
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let n = read_full(&mut self.inner, &mut self.buf[pos..want]);
            let n = n.map_err(|e| self.io(e))?;
            pos += n;
            self.offset += n as u64;
            if pos < want {
                break;
            }
        }
        Ok(pos - from)
    }

    fn io(&self, source: io::Error) -> PcapError {
        PcapError::Io {
            path: self.name.clone(),
            source,
        }
    }

    fn truncated(&self, offset: u64, what: &'static str, need: usize, have: usize) -> PcapError {
        let (need, have) = (need as u64, have as u64);
        PcapError::Truncated {
            path: self.name.clone(),
            offset,
            what,
            need,
            have,
        }
    }

    fn corrupt(&self, offset: u64, why: String) -> PcapError {
        PcapError::Corrupt {
            path: self.name.clone(),
            offset,
            why,
        }
    }
}

/// Reads until `dst` is full or `src` ends, retrying interrupted reads.
fn read_full(src: &mut impl Read, dst: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < dst.len() {
        match src.read(&mut dst[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::LINKTYPE_ETHERNET;
    use proptest::prelude::*;

    /// Appends fields in one byte order.
    struct Out {
        be: bool,
        v: Vec<u8>,
    }

    impl Out {
        fn new(be: bool) -> Self {
            Self { be, v: Vec::new() }
        }
        fn u16(&mut self, x: u16) -> &mut Self {
            self.v.extend(if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
            self
        }
        fn u32(&mut self, x: u32) -> &mut Self {
            self.v.extend(if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
            self
        }
        fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.v.extend(b);
            self
        }
        fn pad(&mut self) -> &mut Self {
            self.v.resize(self.v.len().next_multiple_of(4), 0);
            self
        }
    }

    /// Classic pcap file: (ts_sec, ts_frac, data, orig_len) records.
    fn classic(
        be: bool,
        magic: u32,
        version: (u16, u16),
        recs: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let mut o = Out::new(be);
        o.u32(magic)
            .u16(version.0)
            .u16(version.1)
            .u32(0)
            .u32(0)
            .u32(65535)
            .u32(1);
        for &(sec, frac, data, orig) in recs {
            o.u32(sec)
                .u32(frac)
                .u32(data.len() as u32)
                .u32(orig)
                .bytes(data);
        }
        o.v
    }

    fn block(be: bool, ty: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len().next_multiple_of(4) as u32;
        let mut o = Out::new(be);
        o.u32(ty).u32(len).bytes(body).pad().u32(len);
        o.v
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut o = Out::new(be);
        o.u32(0x1A2B_3C4D).u16(1).u16(0).u32(u32::MAX).u32(u32::MAX);
        block(be, ng::SHB, &o.v)
    }

    /// IDB with options (code, value).
    fn idb(be: bool, linktype: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut o = Out::new(be);
        o.u16(linktype).u16(0).u32(snaplen);
        for &(code, val) in opts {
            o.u16(code).u16(val.len() as u16).bytes(val).pad();
        }
        if !opts.is_empty() {
            o.u32(0);
        }
        block(be, ng::IDB, &o.v)
    }

    fn epb(be: bool, iface: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
        let mut o = Out::new(be);
        o.u32(iface)
            .u32((ts >> 32) as u32)
            .u32(ts as u32)
            .u32(data.len() as u32)
            .u32(orig);
        o.bytes(data).pad().u16(1).u16(4).bytes(b"note").u32(0); // opt_comment, end
        block(be, ng::EPB, &o.v)
    }

    /// Two sections: LE with interfaces 0 (Ethernet, usec) and 1 (raw IP, nsec, offset +10 s,
    /// snaplen 3), then BE with one Ethernet interface at 2^-10 s.
    fn sample_ng() -> Vec<u8> {
        let mut f = shb(false);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(idb(
            false,
            101,
            3,
            &[(2, b"eth1"), (9, &[9]), (14, &10u64.to_le_bytes())],
        ));
        f.extend(epb(false, 1, 5, b"abc", 60));
        f.extend(block(false, 4, &[0; 8])); // name resolution block: skipped
        f.extend(epb(false, 0, 2_000_001, b"hello", 5));
        f.extend(block(false, 0x4000_0BAD, b"custom")); // custom block: skipped
        let mut spb = Out::new(false);
        spb.u32(7).bytes(b"spb-data");
        f.extend(block(false, ng::SPB, &spb.v)); // interface 0, unlimited snaplen
        let mut pb = Out::new(false);
        pb.u16(1).u16(0).u32(1).u32(7).u32(2).u32(2).bytes(b"pb");
        f.extend(block(false, ng::PB, &pb.v));

        f.extend(shb(true));
        f.extend(idb(true, 1, 0, &[(9, &[0x8a])]));
        f.extend(epb(true, 0, 1536, b"big-endian", 100));
        f.extend(block(true, 5, &[0; 16])); // interface statistics block: skipped
        f
    }

    /// ts_ns, orig_len, linktype, interface, data.
    type Rec = (u64, u32, u32, u32, Vec<u8>);

    fn read_all(name: &str, bytes: &[u8]) -> Result<Vec<Rec>, PcapError> {
        let mut r = PcapReader::new(name, bytes)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push((
                rec.ts_ns,
                rec.orig_len,
                rec.linktype,
                rec.interface,
                rec.data.to_vec(),
            ));
        }
        Ok(out)
    }

    #[test]
    fn classic_both_byte_orders_and_resolutions() {
        let recs: &[(u32, u32, &[u8], u32)] = &[(10, 999_999, b"one", 3), (11, 1, b"", 60)];
        for (be, magic, nsec, format) in [
            (false, 0xa1b2_c3d4, false, Format::PcapLeUsec),
            (true, 0xa1b2_c3d4, false, Format::PcapBeUsec),
            (false, 0xa1b2_3c4d, true, Format::PcapLeNsec),
            (true, 0xa1b2_3c4d, true, Format::PcapBeNsec),
        ] {
            let file = classic(be, magic, (2, 4), recs);
            let mut r = PcapReader::new("t.pcap", &file[..]).unwrap();
            assert_eq!(r.format(), format);
            assert_eq!(r.linktypes(), [LINKTYPE_ETHERNET]);
            assert_eq!(r.offset(), 24);
            let unit = if nsec { 1 } else { 1000 };
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(
                rec,
                Record {
                    ts_ns: 10_000_000_000 + 999_999 * unit,
                    orig_len: 3,
                    linktype: 1,
                    interface: 0,
                    data: b"one"
                }
            );
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(
                (rec.ts_ns, rec.orig_len, rec.data),
                (11_000_000_000 + unit, 60, &b""[..])
            );
            assert!(r.next_record().unwrap().is_none());
            assert!(r.next_record().unwrap().is_none());
            assert_eq!(r.offset(), file.len() as u64);
        }
    }

    #[test]
    fn classic_linktype_fcs_bits_are_masked() {
        let mut file = classic(false, 0xa1b2_c3d4, (2, 4), &[]);
        file[20..24].copy_from_slice(&0x1400_0071u32.to_le_bytes());
        assert_eq!(PcapReader::new("t", &file[..]).unwrap().linktypes(), [113]);
    }

    #[test]
    fn pcapng_sections_interfaces_and_resolutions() {
        let file = sample_ng();
        let mut r = PcapReader::new("t.pcapng", &file[..]).unwrap();
        assert_eq!(r.format(), Format::PcapNgLe);
        let mut got = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            got.push((
                rec.ts_ns,
                rec.orig_len,
                rec.linktype,
                rec.interface,
                rec.data.to_vec(),
            ));
            if rec.interface == 2 {
                assert_eq!(r.format(), Format::PcapNgBe);
            }
        }
        let want: Vec<Rec> = vec![
            (10_000_000_005, 60, 101, 1, b"abc".to_vec()),
            (2_000_001_000, 5, 1, 0, b"hello".to_vec()),
            (0, 7, 1, 0, b"spb-dat".to_vec()), // caplen = orig_len 7 < 8 bytes present
            (10_000_000_000 + (1 << 32) + 7, 2, 101, 1, b"pb".to_vec()),
            (1_500_000_000, 100, 1, 2, b"big-endian".to_vec()),
        ];
        assert_eq!(got, want);
        assert_eq!(r.linktypes(), [1, 101, 1]);
        assert_eq!(r.offset(), file.len() as u64);
    }

    #[test]
    fn simple_packet_block_honours_snaplen() {
        let mut f = shb(true);
        f.extend(idb(true, 1, 4, &[]));
        let mut spb = Out::new(true);
        spb.u32(100).bytes(b"abcdefgh");
        f.extend(block(true, ng::SPB, &spb.v));
        assert_eq!(
            read_all("t", &f).unwrap(),
            [(0, 100, 1, 0, b"abcd".to_vec())]
        );
    }

    #[test]
    fn new_section_forgets_interfaces() {
        let mut f = shb(false);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(shb(false));
        let at = f.len() as u64;
        f.extend(epb(false, 0, 0, b"x", 1));
        let err = read_all("ng", &f).unwrap_err();
        assert!(
            matches!(err, PcapError::Corrupt { offset, .. } if offset == at),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("ng: byte {at}: packet refers to interface 0, but its section defines 0 interface(s)")
        );
    }

    #[test]
    fn truncated_records() {
        let file = classic(
            false,
            0xa1b2_c3d4,
            (2, 4),
            &[(1, 2, b"0123456789", 10), (3, 4, b"abcdef", 6)],
        );
        let second = 24 + 16 + 10;
        // Cut inside the second record's header.
        let err = read_all("in.pcap", &file[..second + 7]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.pcap: byte 50: record header truncated (need 16 bytes, have 7)"
        );
        // Cut inside its data.
        let err = read_all("in.pcap", &file[..file.len() - 1]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Truncated {
                    offset: 66,
                    what: "record data",
                    need: 6,
                    have: 5,
                    ..
                }
            ),
            "{err}"
        );
        // Cut inside the file header.
        let err = read_all("in.pcap", &file[..10]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Truncated {
                    offset: 0,
                    need: 24,
                    have: 10,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_all("in.pcap", &[]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Truncated {
                    offset: 0,
                    need: 4,
                    have: 0,
                    ..
                }
            ),
            "{err}"
        );
        // The first record is still delivered before the error.
        let mut r = PcapReader::new("in.pcap", &file[..second + 3]).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().data, b"0123456789");
        assert!(r.next_record().is_err());
        assert!(
            r.next_record().unwrap().is_none(),
            "reader is finished after an error"
        );
    }

    #[test]
    fn truncated_blocks() {
        let file = sample_ng();
        let first_epb = shb(false).len()
            + idb(false, 1, 0, &[]).len()
            + idb(false, 101, 3, &[(2, b"eth1"), (9, &[9]), (14, &[0; 8])]).len();
        let err = read_all("t", &file[..first_epb + 5]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Truncated {
                    what: "block header",
                    need: 8,
                    have: 5,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_all("t", &file[..first_epb + 20]).unwrap_err();
        let len = epb(false, 1, 5, b"abc", 60).len() as u64;
        assert!(
            matches!(err, PcapError::Truncated { what: "block", have: 20, need, offset, .. }
            if need == len && offset == first_epb as u64),
            "{err}"
        );
        let err = read_all("t", &file[..10]).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::Truncated {
                    what: "section header block",
                    offset: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_magic_and_versions() {
        let err = read_all("junk.bin", b"GIF89a....").unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::BadMagic {
                    magic: 0x4749_4638,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "junk.bin: not a pcap or pcapng file (magic 0x47494638)"
        );

        for version in [(1, 4), (2, 3), (3, 0)] {
            let file = classic(true, 0xa1b2_c3d4, version, &[]);
            let err = read_all("v.pcap", &file).unwrap_err();
            assert!(
                matches!(err, PcapError::UnsupportedVersion { major, minor, .. } if (major, minor) == version)
            );
        }
        let mut f = shb(false);
        f[12..14].copy_from_slice(&2u16.to_le_bytes());
        let err = read_all("v.pcapng", &f).unwrap_err();
        assert!(
            matches!(
                err,
                PcapError::UnsupportedVersion {
                    major: 2,
                    minor: 0,
                    ..
                }
            ),
            "{err}"
        );
        // A later section with a bad version is refused as well.
        let mut f2 = shb(true);
        f2.extend(f);
        assert!(matches!(
            read_all("v.pcapng", &f2),
            Err(PcapError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn corrupt_fields() {
        let is_corrupt = |bytes: &[u8], at: u64, text: &str| match read_all("c", bytes) {
            Err(PcapError::Corrupt { offset, why, .. }) => {
                assert_eq!(offset, at, "{why}");
                assert!(why.contains(text), "{why}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        };
        // Classic record with an absurd captured length.
        let mut f = classic(false, 0xa1b2_c3d4, (2, 4), &[(0, 0, b"a", 1)]);
        f[32..36].copy_from_slice(&0x4_0001u32.to_le_bytes());
        is_corrupt(&f, 24, "exceeds 262144");

        let hdr = shb(false);
        let at = hdr.len() as u64;
        let with = |blk: &[u8]| [&hdr[..], blk].concat();
        let mut b = idb(false, 1, 0, &[]);
        b[4] = 21; // length not a multiple of 4
        is_corrupt(&with(&b), at, "bad total length 21");
        b[4] = 8; // too short
        is_corrupt(&with(&b), at, "bad total length 8");
        b[4..8].copy_from_slice(&(MAX_BLOCK_LEN + 4).to_le_bytes());
        is_corrupt(&with(&b), at, "bad total length");
        let mut b = idb(false, 1, 0, &[]);
        let end = b.len();
        b[end - 4] = 24;
        is_corrupt(
            &with(&b),
            at + 16,
            "trailing block length 24 differs from leading length 20",
        );
        // EPB whose captured length runs past its block.
        let mut b = epb(false, 0, 0, b"abcd", 4);
        b[20] = 200;
        is_corrupt(
            &with(&[idb(false, 1, 0, &[]), b].concat()),
            at + 20,
            "overruns",
        );
        // EPB for an interface the section never defined.
        is_corrupt(&with(&epb(false, 3, 0, b"x", 1)), at, "interface 3");
        // IDB option longer than the block.
        let mut b = idb(false, 1, 0, &[(2, b"abcd")]);
        b[18] = 40;
        is_corrupt(&with(&b), at, "overruns");
        // Bad byte-order magic.
        let mut f = shb(false);
        f[8] = 0;
        is_corrupt(&f, 8, "byte-order magic");
    }

    #[test]
    fn required_linktype() {
        let file = sample_ng();
        let mut r = PcapReader::new("t", &file[..]).unwrap();
        r.require_linktype(LINKTYPE_ETHERNET);
        let err = r.next_record().unwrap_err();
        assert_eq!(
            err.to_string(),
            "t: interface 1 has link type 101, expected 1"
        );
        assert!(r.next_record().unwrap().is_none());
    }

    /// Yields one byte per read, interrupting every other call.
    struct Trickle<'a>(&'a [u8], bool);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.0.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_reads_and_interrupts() {
        let file = sample_ng();
        let mut r = PcapReader::new("t", Trickle(&file, false)).unwrap();
        let mut n = 0;
        while r.next_record().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn buffer_is_reused() {
        let data = [7u8; 1500];
        let recs: Vec<(u32, u32, &[u8], u32)> = (0..100).map(|i| (i, 0, &data[..], 1500)).collect();
        let file = classic(false, 0xa1b2_c3d4, (2, 4), &recs);
        let mut r = PcapReader::new("t", &file[..]).unwrap();
        r.next_record().unwrap();
        let warm = (r.buf.as_ptr(), r.buf.capacity());
        while r.next_record().unwrap().is_some() {}
        assert_eq!((r.buf.as_ptr(), r.buf.capacity()), warm);
    }

    #[test]
    fn huge_claimed_block_allocates_only_what_arrives() {
        let mut f = shb(false);
        f.extend(
            Out::new(false)
                .u32(ng::EPB)
                .u32(MAX_BLOCK_LEN)
                .bytes(&[0; 100])
                .v
                .clone(),
        );
        let mut r = PcapReader::new("t", &f[..]).unwrap();
        assert!(matches!(
            r.next_record(),
            Err(PcapError::Truncated { have: 108, .. })
        ));
        assert!(r.buf.len() <= GROW_STEP);
    }

    /// Reads to the end or the first error; every record consumes at least 12 bytes.
    fn drain(bytes: &[u8]) {
        let Ok(mut r) = PcapReader::new("fuzz", bytes) else {
            return;
        };
        let mut n = 0;
        while let Ok(Some(rec)) = r.next_record() {
            assert!(rec.data.len() <= bytes.len());
            n += 1;
            assert!(n <= bytes.len() / 12, "too many records");
        }
        assert!(r.offset() <= bytes.len() as u64);
    }

    fn seeds() -> Vec<Vec<u8>> {
        let recs: &[(u32, u32, &[u8], u32)] = &[(1, 2, b"first", 5), (3, 4, b"second!", 9)];
        vec![
            classic(false, 0xa1b2_c3d4, (2, 4), recs),
            classic(true, 0xa1b2_3c4d, (2, 4), recs),
            sample_ng(),
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(prefix in 0usize..6, tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let magics: [&[u8]; 6] = [
                b"", b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", b"\xa1\xb2\x3c\x4d\x00\x02\x00\x04",
                b"\x0a\x0d\x0d\x0a", b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00",
                b"\x0a\x0d\x0d\x0a\x00\x00\x00\x1c\x1a\x2b\x3c\x4d\x00\x01",
            ];
            drain(&[magics[prefix], &tail[..]].concat());
        }

        #[test]
        fn mutated_files_never_panic(
            seed in 0usize..3,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            words in proptest::collection::vec((any::<usize>(), prop_oneof![
                Just(0u32), Just(1), Just(11), Just(12), Just(0x1c), Just(u32::MAX), Just(0x4_0001),
                Just(MAX_BLOCK_LEN), Just(MAX_BLOCK_LEN + 4), Just(0x1000_0000), any::<u32>(),
            ]), 0..3),
            cut in any::<usize>(),
        ) {
            let mut f = seeds().swap_remove(seed);
            for (at, x) in flips {
                let len = f.len();
                f[at % len] ^= x;
            }
            for (at, w) in words {
                let at = (at % (f.len() / 4)) * 4;
                f[at..at + 4].copy_from_slice(&w.to_le_bytes());
            }
            f.truncate(cut % (f.len() + 1));
            drain(&f);
        }
    }
}
