//! Golden pcap cases for the dataplane, and the code that writes them.
//!
//! A golden case is a directory `<case>/` holding
//!
//! * `config.toml`: a complete dataplane configuration (pcap ports, one worker; `[replay]`
//!   maps the files in the order below),
//! * `in.pcap`: what the first `[replay] inputs` port reads, and `in-<port>.pcap` for each
//!   other input port (nanosecond pcap, Ethernet),
//! * `expected.pcap`: what must leave the first `[replay] outputs` port, packet for packet
//!   (bytes and timestamps), and `expected-<port>.pcap` for each other output port,
//! * `expected-counters.toml`: the port counters, drop counts (engine reasons and
//!   `stage.reason`) and created packets the replay must end with,
//! * `case.toml`: the index: which port reads and writes which of those files, and the layouts
//!   the case runs in.
//!
//! The dataplane's golden test (`dataplane/tests/golden.rs`) replays every case in every
//! layout it allows (one worker, two run-to-completion workers, a two-core pipeline) and
//! compares.
//!
//! **Where the expected output comes from.** Never from running the dataplane: that would
//! only prove the dataplane agrees with itself. Each stage states its behaviour as a model in
//! its own file under [`cases`] (for forwarding, [`cases::forward::Setup::model`]: "a frame
//! longer than the data room is dropped at the port", "the source MAC becomes the egress
//! port's"), and the frames are made by the byte builders in [`packet`], which share no code
//! with `dataplane::wire` (their unit tests check the two agree on every checksum).
//!
//! **Reproducible.** Timestamps are fixed and every random choice comes from a seeded
//! [`Rng`], so generating twice gives identical bytes; `--check` regenerates into a temporary
//! directory and fails on any difference from the committed files, so a hand edit (or a
//! generator change without regenerating) is caught in CI. Regenerate with
//! `cargo run -p pcap-fixtures`.

pub mod cases;
pub mod packet;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pmd::pcap::{PcapWriter, LINKTYPE_ETHERNET};

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The frame, from the destination MAC on (no FCS).
    pub data: Vec<u8>,
}

/// A small seeded generator (SplitMix64): the same seed gives the same sequence on every
/// platform and every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        self.next() % n
    }
}

/// Encodes packets as a nanosecond, little-endian, Ethernet pcap file (snaplen 65535), the
/// format the dataplane's pcap ports write.
pub fn pcap_bytes(packets: &[Packet]) -> Vec<u8> {
    let mut w = PcapWriter::new("fixture", Vec::new(), LINKTYPE_ETHERNET, 65535, true)
        .expect("writing to memory cannot fail");
    for p in packets {
        w.write(p.ts_ns, &p.data, p.data.len() as u32)
            .expect("fixture packets are representable");
    }
    w.into_inner().expect("writing to memory cannot fail")
}

/// The contents of every file of `case`, by file name: `config.toml`, the input captures,
/// the expected captures, `expected-counters.toml` and `case.toml`.
pub fn case_files(case: &cases::Case) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "config.toml".to_string(),
        (case.header_comment() + &case.config).into_bytes(),
    )];
    for (i, (_, packets)) in case.inputs.iter().enumerate() {
        files.push((case.input_file(i), pcap_bytes(packets)));
    }
    for (i, (_, packets)) in case.expected.iter().enumerate() {
        files.push((case.expected_file(i), pcap_bytes(packets)));
    }
    files.push((
        "expected-counters.toml".to_string(),
        case.resolved_counters().to_toml(&case.name).into_bytes(),
    ));
    files.push(("case.toml".to_string(), case.index_toml().into_bytes()));
    files
}

/// Every case, checked: each valid ([`cases::Case::validate`]) and named once.
pub fn checked_cases() -> io::Result<Vec<cases::Case>> {
    let all = cases::all();
    for (i, case) in all.iter().enumerate() {
        case.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if all[..i].iter().any(|c| c.name == case.name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("two cases are named `{}`", case.name),
            ));
        }
    }
    Ok(all)
}

/// Writes every case under `dir` (creating `dir/<case>/`); returns the case directories.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for case in checked_cases()? {
        let d = dir.join(&case.name);
        fs::create_dir_all(&d).map_err(|e| with_path(&d, e))?;
        for (name, bytes) in case_files(&case) {
            let p = d.join(name);
            fs::write(&p, bytes).map_err(|e| with_path(&p, e))?;
        }
        dirs.push(d);
    }
    Ok(dirs)
}

/// Compares the cases committed under `dir` with freshly generated ones written to
/// `scratch`. Returns one line per problem: a file that differs or is missing, an extra file
/// in a case directory, or a case directory (one with a `config.toml`) the generator does
/// not make.
pub fn check_all(dir: &Path, scratch: &Path) -> io::Result<Vec<String>> {
    write_all(scratch)?;
    let mut problems = Vec::new();
    let cases = checked_cases()?;
    for case in &cases {
        let have_dir = dir.join(&case.name);
        let files = case_files(case);
        for (file, _) in &files {
            let have = have_dir.join(file);
            let want =
                fs::read(scratch.join(&case.name).join(file)).map_err(|e| with_path(&have, e))?;
            match fs::read(&have) {
                Ok(bytes) if bytes == want => {}
                Ok(bytes) => problems.push(format!(
                    "{}: differs from what the generator makes ({})",
                    have.display(),
                    first_difference(&bytes, &want)
                )),
                Err(e) => problems.push(format!("{}: missing ({e})", have.display())),
            }
        }
        if let Ok(entries) = fs::read_dir(&have_dir) {
            for e in entries {
                let e = e?;
                let fname = e.file_name();
                if !files.iter().any(|(f, _)| fname == f.as_str()) {
                    problems.push(format!("{}: not made by the generator", e.path().display()));
                }
            }
        }
    }
    for e in fs::read_dir(dir).map_err(|e| with_path(dir, e))? {
        let e = e?;
        let path = e.path();
        let fname = e.file_name();
        if path.join("config.toml").is_file() && !cases.iter().any(|c| fname == c.name.as_str()) {
            problems.push(format!(
                "{}: a case directory the generator does not make (delete it or add the case)",
                path.display()
            ));
        }
    }
    Ok(problems)
}

fn first_difference(have: &[u8], want: &[u8]) -> String {
    match have.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!("first at byte {i}"),
        None => format!("{} bytes, expected {}", have.len(), want.len()),
    }
}

fn with_path(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pcap-fixtures-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rng_is_fixed() {
        let mut r = Rng::new(0);
        // SplitMix64's published first outputs for seed 0.
        assert_eq!(r.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn generation_is_deterministic_and_check_catches_edits() {
        let a = scratch("a");
        write_all(&a).unwrap();
        let b = scratch("b");
        assert!(check_all(&a, &b).unwrap().is_empty());

        // A hand edit, a missing file, a stray file and an unknown case are all reported.
        let edited = a.join("oversize/expected.pcap");
        let mut bytes = fs::read(&edited).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&edited, bytes).unwrap();
        fs::remove_file(a.join("timestamps/in.pcap")).unwrap();
        fs::write(a.join("mac-rewrite/notes.txt"), "x").unwrap();
        fs::create_dir_all(a.join("old-case")).unwrap();
        fs::write(a.join("old-case/config.toml"), "").unwrap();
        let c = scratch("c");
        let problems = check_all(&a, &c).unwrap();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        for want in [
            "oversize/expected.pcap: differs",
            "timestamps/in.pcap: missing",
            "notes.txt: not made",
            "old-case: a case directory",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{want}: {problems:#?}"
            );
        }
        for d in [a, b, c] {
            fs::remove_dir_all(d).unwrap();
        }
    }
}
