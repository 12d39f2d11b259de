//! `bench memif`: memif between two dataplane processes against a dpdk-testpmd memif pair.
//!
//! Not built yet (issue 6): it says so and fails rather than print a number that measures
//! nothing.

use clap::Args as ClapArgs;

use super::Res;

/// Options of `bench memif`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// `bench memif`.
pub fn run(_a: &Args) -> Res<()> {
    println!("memif: not built yet: waiting for issue 6");
    Err("memif is not built yet".into())
}
