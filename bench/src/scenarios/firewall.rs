//! `bench firewall`: Firewall stage: ClassBench classification against dpdk-test-acl, rule updates, the stage's Mpps.
//!
//! Not built yet (issue 4): it says so and fails rather than print a number that measures
//! nothing.

use clap::Args as ClapArgs;

use super::Res;

/// Options of `bench firewall`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// `bench firewall`.
pub fn run(_a: &Args) -> Res<()> {
    println!("firewall: not built yet: waiting for issue 4");
    Err("firewall is not built yet".into())
}
