//! DPDK, behind the `dpdk` cargo feature: bindings generated at build time against the
//! system's DPDK, and the Environment Abstraction Layer brought up once per process.
//!
//! DPDK reaches what no kernel-free Rust driver here does: real NICs and DPDK's own virtual
//! devices (`net_null`, `net_ring`, `net_pcap`, `net_memif`, `net_af_packet`, `net_tap`). The
//! bindings come from bindgen over `wrapper.h`; the burst functions, which are `static inline`
//! in DPDK's headers, go through a C shim of one-line wrappers (`shim.c`), called once per
//! burst. [`port`] is the ethdev `Port`, with packets kept in their `rte_mbuf`s end to end.

pub mod port;

pub use port::{DpdkPool, DpdkPort, DpdkPortOptions};

use std::ffi::{CStr, CString};
use std::sync::Mutex;

/// The generated bindings.
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/dpdk_sys.rs"));
}

/// The DPDK release the bindings were generated against (`pkg-config --modversion libdpdk`).
pub const BUILT_AGAINST: &str = env!("DATAPLANE_DPDK_VERSION");

/// Errors from DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// EAL initialisation failed.
    #[error("DPDK EAL initialisation failed ({args}): {why}")]
    Eal {
        /// The EAL arguments given.
        args: String,
        /// DPDK's error text.
        why: String,
    },
    /// A packet pool could not be made.
    #[error("DPDK pool {name}: {why}")]
    Pool {
        /// Pool name.
        name: String,
        /// Why.
        why: String,
    },
    /// A device could not be opened.
    #[error("DPDK device {device}: {why}")]
    Port {
        /// The device.
        device: String,
        /// Why.
        why: String,
    },
    /// An argument contained a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArg(String),
}

/// The running EAL (one per process; DPDK cannot be initialised twice).
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: Mutex<Option<Result<Vec<String>, DpdkError>>> = Mutex::new(None);

/// DPDK's text for error number `e`.
fn strerror(e: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    unsafe {
        CStr::from_ptr(sys::rte_strerror(e))
            .to_string_lossy()
            .into_owned()
    }
}

/// DPDK's text for its current `rte_errno`.
fn last_error() -> String {
    // SAFETY: dp_errno reads a thread-local int; rte_strerror returns a pointer to a static or
    // thread-local NUL-terminated string, valid until the next call on this thread.
    unsafe {
        let e = sys::dp_errno();
        CStr::from_ptr(sys::rte_strerror(e))
            .to_string_lossy()
            .into_owned()
    }
}

impl Eal {
    /// Initialises the EAL with `args` (as on a DPDK command line, without the program name),
    /// or returns the already running EAL if the arguments match the first call's.
    pub fn init(args: &[&str]) -> Result<Eal, DpdkError> {
        let mut g = EAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = g.as_ref() {
            return r.clone().map(|args| Eal { args });
        }
        let mut owned = vec![CString::new("dataplane").expect("no NUL")];
        for a in args {
            owned.push(CString::new(*a).map_err(|_| DpdkError::BadArg(a.to_string()))?);
        }
        let mut argv: Vec<*mut libc::c_char> = owned
            .iter()
            .map(|c| c.as_ptr() as *mut libc::c_char)
            .collect();
        // SAFETY: argv holds `owned.len()` valid NUL-terminated strings that outlive the call
        // (`owned` is kept alive below: DPDK may keep pointers into argv).
        let r = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        std::mem::forget(owned);
        let res = if r < 0 {
            Err(DpdkError::Eal {
                args: args.join(" "),
                why: last_error(),
            })
        } else {
            Ok(args.iter().map(|s| s.to_string()).collect())
        };
        *g = Some(res.clone());
        res.map(|args| Eal { args })
    }

    /// The arguments the EAL runs with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Ethernet devices DPDK found (NICs bound to a DPDK driver, plus `--vdev`s).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised (we hold an `Eal`).
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The DPDK release running (`rte_version()`).
    pub fn version(&self) -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        unsafe {
            CStr::from_ptr(sys::dp_version())
                .to_string_lossy()
                .into_owned()
        }
    }
}
