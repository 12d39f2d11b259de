//! The `dataplane` command: replay captures offline, run online, or check a configuration.
//!
//! Errors print as one line naming the file (and line, for configurations) and exit non-zero;
//! counters print at the end of every run, with the balance of received against sent and
//! dropped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use dataplane::build::{self, Overrides, ReplayFiles};
use dataplane::config::PortKind;
use dataplane::config::{Config, LayoutMode};

#[derive(Parser)]
#[command(
    name = "dataplane",
    version,
    about = "Userspace packet-processing dataplane for NFV"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Configuration file (default: the built-in default.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Worker cores, overriding the configuration (e.g. 0,1).
    #[arg(long, value_delimiter = ',')]
    workers: Option<Vec<usize>>,
    /// Layout, overriding the configuration.
    #[arg(long, value_parser = ["run-to-completion", "pipeline"])]
    layout: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay captures through the chain, offline (time follows the capture).
    Replay {
        #[command(flatten)]
        common: Common,
        /// Input capture, `[PORT=]FILE`; repeat for several ports. Not needed when the
        /// configuration's ports read on their own (a pcap port's `input`, or a DPDK
        /// `net_pcap` port with `ends = true`).
        #[arg(long = "in")]
        inputs: Vec<String>,
        /// Output capture, `[PORT=]FILE`; repeat for several ports.
        #[arg(long = "out")]
        outputs: Vec<String>,
    },
    /// Run online until SIGINT or SIGTERM.
    Run {
        #[command(flatten)]
        common: Common,
    },
    /// Validate a configuration and print the resolved layout.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

#[allow(unsafe_code)]
fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn load(c: &Common) -> Result<Config, String> {
    let mut cfg = match &c.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::builtin(),
    };
    let layout = c.layout.as_deref().map(|l| {
        if l == "pipeline" {
            LayoutMode::Pipeline
        } else {
            LayoutMode::RunToCompletion
        }
    });
    cfg.apply(&Overrides {
        workers: c.workers.clone(),
        layout,
    })
    .map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Check { common } => load(&common).map(|cfg| {
            print!("{}", build::describe(&cfg));
            println!("ok");
        }),
        Cmd::Replay {
            common,
            inputs,
            outputs,
        } => load(&common).and_then(|cfg| {
            let reads_alone = cfg.ports.iter().any(|p| match &p.kind {
                PortKind::Pcap { input, .. } => input.is_some(),
                PortKind::Dpdk { ends, .. } => *ends,
                _ => false,
            });
            if inputs.is_empty() && !reads_alone {
                return Err(format!(
                    "{}: nothing to replay: give --in [PORT=]FILE (no port of the configuration reads a capture of its own)",
                    cfg.file
                ));
            }
            install_signal_handlers();
            let files = ReplayFiles { inputs, outputs };
            let r = build::run(&cfg, Some(&files), &STOP).map_err(|e| e.to_string())?;
            eprint!("{}", r.render());
            if r.balanced() {
                Ok(())
            } else {
                Err("counters do not balance (a bug: please report it with the capture)".into())
            }
        }),
        Cmd::Run { common } => load(&common).and_then(|cfg| {
            install_signal_handlers();
            let r = build::run(&cfg, None, &STOP).map_err(|e| e.to_string())?;
            eprint!("{}", r.render());
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
