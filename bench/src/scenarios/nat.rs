//! `bench nat`: NAT44 stage: Mpps at 1M and 10M sessions, new sessions per second, memory per session.
//!
//! Not built yet (issue 5): it says so and fails rather than print a number that measures
//! nothing.

use clap::Args as ClapArgs;

use super::Res;

/// Options of `bench nat`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// `bench nat`.
pub fn run(_a: &Args) -> Res<()> {
    println!("nat: not built yet: waiting for issue 5");
    Err("nat is not built yet".into())
}
