//! `bench chain`: Firewall, NAT44 and router on one core and over two.
//!
//! Not built yet (issue 3, 4 and 5): it says so and fails rather than print a number that measures
//! nothing.

use clap::Args as ClapArgs;

use super::Res;

/// Options of `bench chain`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// `bench chain`.
pub fn run(_a: &Args) -> Res<()> {
    println!("chain: not built yet: waiting for issue 3, 4 and 5");
    Err("chain is not built yet".into())
}
