//! Golden cases for the `nat44` stage (owned by the NAT's engineer): its model and its cases,
//! each named `nat-...`. See `pcap-fixtures/README.md` for how to add one.

use super::Case;

/// The NAT44 stage's golden cases.
pub fn cases() -> Vec<Case> {
    Vec::new()
}
