//! Reads every capture of the shared third-party corpus with `pmd::pcap::PcapReader`.
//!
//! The unit tests use files built by hand; this test checks the reader against captures
//! written by real tools (libpcap, Wireshark, PcapPlusPlus, gopacket's pcapng generator...).
//! `pcap/INDEX.tsv` in the corpus lists each file's size, format, packet count and largest
//! original length, and the reader must agree on all of them; the two files with malformed
//! headers must be refused. The corpus lives outside the repository: set `DATAPLANE_CORPUS`
//! to its directory, or the test looks in `../shared/corpus` beside the workspace and is
//! skipped if that is absent.

/// Prints why a test skipped, straight to stderr: the test harness captures `eprintln!` of
/// passing tests, and a skip must be seen.
macro_rules! skip_note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::path::{Path, PathBuf};

use pmd::pcap::{Format, PcapError, PcapReader};

/// Files whose header is malformed on purpose; INDEX.tsv still counts the packet a lenient
/// reader would find in each.
const INVALID: [&str; 2] = [
    "libpcap_pcap_invalid_version.pcap",
    "libpcap_pcapng_invalid_version.pcapng",
];

/// One line of INDEX.tsv.
struct Entry<'a> {
    file: &'a str,
    bytes: u64,
    /// e.g. "pcap-LE-usec snaplen=96 linktype=1" or "pcapng-BE".
    format: &'a str,
    packets: u64,
    max_origlen: u32,
}

fn corpus_dir() -> PathBuf {
    match std::env::var_os("DATAPLANE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")),
    }
}

fn parse_line(line: &str) -> Result<Entry<'_>, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    let [file, bytes, format, packets, max_origlen, ..] = cols[..] else {
        return Err(format!(
            "INDEX.tsv line has {} columns: {line:?}",
            cols.len()
        ));
    };
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|e| format!("{file}: bad number {s:?}: {e}"))
    };
    Ok(Entry {
        file,
        bytes: num(bytes)?,
        format,
        packets: num(packets)?,
        max_origlen: u32::try_from(num(max_origlen)?).map_err(|e| e.to_string())?,
    })
}

/// The format named by the first word of the format column, if it is one we know.
fn expected_format(column: &str) -> Option<Format> {
    Some(match column.split_whitespace().next()? {
        "pcap-LE-usec" => Format::PcapLeUsec,
        "pcap-BE-usec" => Format::PcapBeUsec,
        "pcap-LE-nsec" => Format::PcapLeNsec,
        "pcap-BE-nsec" => Format::PcapBeNsec,
        "pcapng-LE" => Format::PcapNgLe,
        "pcapng-BE" => Format::PcapNgBe,
        _ => return None,
    })
}

/// Reads to the end; returns (records, largest orig_len).
fn read_all(reader: &mut PcapReader<impl std::io::Read>) -> Result<(u64, u32), PcapError> {
    let (mut count, mut max_origlen) = (0, 0);
    while let Some(rec) = reader.next_record()? {
        let (linktype, interface) = (rec.linktype, rec.interface as usize);
        count += 1;
        max_origlen = max_origlen.max(rec.orig_len);
        assert_eq!(reader.linktypes().get(interface), Some(&linktype));
    }
    Ok((count, max_origlen))
}

fn check(dir: &Path, e: &Entry) -> Result<u64, String> {
    let path = dir.join(e.file);
    let size = std::fs::metadata(&path)
        .map_err(|err| format!("{}: {err}", path.display()))?
        .len();
    if size != e.bytes {
        return Err(format!("{} bytes, INDEX.tsv says {}", size, e.bytes));
    }
    let opened = PcapReader::open(&path);
    if INVALID.contains(&e.file) {
        return match opened.and_then(|mut r| read_all(&mut r)) {
            Err(PcapError::UnsupportedVersion { .. }) => Ok(0),
            Err(err) => Err(format!("refused, but not for its version: {err}")),
            Ok((n, _)) => Err(format!("accepted with {n} records; it has a bad version")),
        };
    }
    let mut reader = opened.map_err(|err| err.to_string())?;
    if let Some(format) = expected_format(e.format) {
        if reader.format() != format {
            return Err(format!(
                "format {:?}, INDEX.tsv says {:?}",
                reader.format(),
                e.format
            ));
        }
    }
    let linktype = e
        .format
        .split_whitespace()
        .find_map(|w| w.strip_prefix("linktype="));
    if let Some(lt) = linktype.and_then(|lt| lt.parse::<u32>().ok()) {
        if reader.linktypes() != [lt] {
            return Err(format!(
                "link types {:?}, INDEX.tsv says {lt}",
                reader.linktypes()
            ));
        }
    }
    let (count, max_origlen) = read_all(&mut reader).map_err(|err| err.to_string())?;
    if (count, max_origlen) != (e.packets, e.max_origlen) {
        return Err(format!(
            "{count} records (max orig_len {max_origlen}), INDEX.tsv says {} (max {})",
            e.packets, e.max_origlen
        ));
    }
    Ok(count)
}

#[test]
fn corpus_captures_read_as_indexed() {
    let dir = corpus_dir().join("pcap");
    if !dir.is_dir() {
        skip_note!(
            "skipping pcap corpus test: {} is not a directory (set DATAPLANE_CORPUS to the corpus)",
            dir.display()
        );
        return;
    }
    let index = dir.join("INDEX.tsv");
    let text =
        std::fs::read_to_string(&index).unwrap_or_else(|e| panic!("{}: {e}", index.display()));
    let (mut files, mut records, mut failures) = (0, 0, Vec::new());
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        match parse_line(line).and_then(|e| check(&dir, &e).map_err(|m| format!("{}: {m}", e.file)))
        {
            Ok(n) => records += n,
            Err(msg) => failures.push(msg),
        }
        files += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {files} corpus files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let invalid_listed = INVALID.iter().filter(|f| text.contains(*f)).count();
    assert_eq!(
        invalid_listed,
        INVALID.len(),
        "INDEX.tsv no longer lists the malformed files"
    );
    assert!(files > 0, "INDEX.tsv lists no files");
    eprintln!("pcap corpus: {files} files, {records} records");
}
