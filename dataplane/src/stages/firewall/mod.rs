//! Stateful firewall: multi-field classification, connection tracking, fragments.
//!
//! Not built yet (issue 4): a configuration that names this stage is refused with a
//! message saying so, rather than running without it.

use crate::config::{ConfigError, StageSpec, StageTable};

/// Parses a `firewall` stage's table.
pub fn parse_config(t: &StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError> {
    Err(t.err(0..0, "kind", "the firewall stage is not built yet"))
}
