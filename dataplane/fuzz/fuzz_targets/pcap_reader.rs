//! `pmd::pcap::PcapReader` on arbitrary bytes: read every record, and feed
//! each captured packet through `wire::parse` and the flow hash.

#![no_main]

use dataplane::wire::{parse, symmetric_hash};
use libfuzzer_sys::fuzz_target;
use pmd::pcap::PcapReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = PcapReader::new("fuzz", data) else {
        return;
    };
    // Every record consumes input, so this bound is never the limit in
    // practice; it guards against a reader that stops making progress.
    for _ in 0..100_000 {
        match reader.next_record() {
            Ok(Some(rec)) => {
                assert!(rec.data.len() <= data.len());
                if let Ok(p) = parse(rec.data) {
                    let _ = symmetric_hash(rec.data, &p);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
