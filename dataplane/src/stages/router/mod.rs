//! IPv4/IPv6 router: full-table LPM, neighbours, the RFC 1812 fast path.
//!
//! Not built yet (issue 3): a configuration that names this stage is refused with a
//! message saying so, rather than running without it.

use crate::config::{ConfigError, StageSpec, StageTable};

/// Parses a `router` stage's table.
pub fn parse_config(t: &StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError> {
    Err(t.err(0..0, "kind", "the router stage is not built yet"))
}
