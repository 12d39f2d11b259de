//! Golden cases for the `firewall` stage (owned by the firewall's engineer): its model and its
//! cases, each named `firewall-...`. See `pcap-fixtures/README.md` for how to add one.

use super::Case;

/// The firewall's golden cases.
pub fn cases() -> Vec<Case> {
    Vec::new()
}
