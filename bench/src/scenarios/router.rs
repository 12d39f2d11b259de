//! `bench router`: Router stage: FIB lookups on the full BGP table against dpdk-test-fib, and the stage's Mpps.
//!
//! Not built yet (issue 3): it says so and fails rather than print a number that measures
//! nothing.

use clap::Args as ClapArgs;

use super::Res;

/// Options of `bench router`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// `bench router`.
pub fn run(_a: &Args) -> Res<()> {
    println!("router: not built yet: waiting for issue 3");
    Err("router is not built yet".into())
}
