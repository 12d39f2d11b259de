//! Golden cases for the `router` stage (owned by the router's engineer): its model and its
//! cases, each named `router-...`. See `pcap-fixtures/README.md` for how to add one.

use super::Case;

/// The router's golden cases.
pub fn cases() -> Vec<Case> {
    Vec::new()
}
