//! `pcap-fixtures`: writes the golden cases, or checks the committed ones are current.
//!
//! ```text
//! cargo run -p pcap-fixtures -- [--check] [DIR]
//! ```
//!
//! Without `--check`, writes `DIR/<case>/{config.toml, in.pcap, in-<port>.pcap...,
//! expected.pcap, expected-<port>.pcap..., expected-counters.toml, case.toml}` for every case
//! (DIR defaults to the `pcap-fixtures/` crate directory). With `--check`, generates into a temporary directory instead and exits non-zero,
//! naming each file, if anything under DIR differs: CI runs this so that golden files are only
//! ever changed by changing the generator.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: pcap-fixtures [--check] [DIR]\n\
    Writes the golden cases into DIR (default: the pcap-fixtures crate directory);\n\
    with --check, verifies the files in DIR are exactly what the generator makes.";

fn main() -> ExitCode {
    let mut check = false;
    let mut dir: Option<PathBuf> = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') => {
                eprintln!("pcap-fixtures: unknown option {a}\n{USAGE}");
                return ExitCode::from(2);
            }
            a if dir.is_none() => dir = Some(PathBuf::from(a)),
            a => {
                eprintln!("pcap-fixtures: one directory only (got a second: {a})\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if check {
        let scratch =
            std::env::temp_dir().join(format!("pcap-fixtures-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let result = pcap_fixtures::check_all(&dir, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        match result {
            Ok(problems) if problems.is_empty() => {
                println!("pcap-fixtures: {} is up to date", dir.display());
                ExitCode::SUCCESS
            }
            Ok(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!(
                    "pcap-fixtures: {} problem(s); regenerate with `cargo run -p pcap-fixtures`",
                    problems.len()
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("pcap-fixtures: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        match pcap_fixtures::write_all(&dir) {
            Ok(dirs) => {
                for d in dirs {
                    println!("wrote {}", d.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pcap-fixtures: {e}");
                ExitCode::FAILURE
            }
        }
    }
}
