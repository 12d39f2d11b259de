//! NAT44: carrier-grade source and destination NAT (RFC 4787, 5382, 5508, 7857).
//!
//! Not built yet (issue 5): a configuration that names this stage is refused with a
//! message saying so, rather than running without it.

use crate::config::{ConfigError, StageSpec, StageTable};

/// Parses a `nat44` stage's table.
pub fn parse_config(t: &StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError> {
    Err(t.err(0..0, "kind", "the nat44 stage is not built yet"))
}
