//! Build script: with the `dpdk` feature, finds the system's DPDK with pkg-config, checks its
//! version, compiles the small C shim for DPDK's static-inline burst functions, and generates
//! bindings with bindgen. Without the feature it does nothing, so a default build needs no DPDK.

fn main() {
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;
    use std::process::Command;

    /// DPDK releases whose ABI the bindings and shim are known to work with.
    const SUPPORTED: &[&str] = &["22.11", "23.11"];

    fn pkg_config(args: &[&str]) -> Result<String, String> {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("libdpdk")
            .output()
            .map_err(|e| format!("cannot run pkg-config: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn fail(msg: &str) -> ! {
        panic!(
            "\n\nthe `dpdk` feature of pmd cannot be built: {msg}\n\
             Install DPDK's development files (Debian: `apt-get install libdpdk-dev libclang-dev \
             pkg-config`, or run scripts/setup.sh as root), or build without `--features dpdk`.\n\n"
        )
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=src/dpdk/shim.c");
        println!("cargo:rerun-if-changed=src/dpdk/wrapper.h");
        println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
        let version = pkg_config(&["--modversion"])
            .unwrap_or_else(|e| fail(&format!("pkg-config finds no libdpdk ({e})")));
        if !SUPPORTED.iter().any(|s| version.starts_with(s)) {
            fail(&format!(
                "DPDK {version} is installed; supported releases are {}",
                SUPPORTED.join(", ")
            ));
        }
        let cflags = pkg_config(&["--cflags"]).unwrap_or_else(|e| fail(&e));
        let libs = pkg_config(&["--libs"]).unwrap_or_else(|e| fail(&e));
        let cflags: Vec<String> = cflags.split_whitespace().map(String::from).collect();

        let mut cc = cc::Build::new();
        cc.file("src/dpdk/shim.c")
            .warnings(false)
            .flag("-Werror=implicit-function-declaration");
        let mut it = cflags.iter();
        while let Some(f) = it.next() {
            if f == "-include" {
                if let Some(h) = it.next() {
                    cc.flag("-include").flag(h);
                }
            } else {
                cc.flag(f);
            }
        }
        cc.compile("dpdk_shim");

        for f in libs.split_whitespace() {
            if let Some(l) = f.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={l}");
            } else if let Some(p) = f.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={p}");
            } else if f.starts_with("-Wl,") {
                println!("cargo:rustc-link-arg={f}");
            }
        }

        let bindings = bindgen::Builder::default()
            .header("src/dpdk/wrapper.h")
            .clang_args(cflags.iter().filter(|f| !f.starts_with("-march")))
            .allowlist_function("rte_eal_(init|cleanup)")
            .allowlist_function("rte_eth_(dev_count_avail|dev_configure|rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|stats_get|dev_info_get|macaddr_get|dev_socket_id|promiscuous_enable|dev_get_name_by_port|dev_rss_hash_conf_get)")
            .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_mempool_obj_iter|rte_mempool_avail_count|rte_socket_id|rte_strerror|rte_thread_register|rte_eth_dev_get_port_by_name")
            .allowlist_function("rte_dev_probe|rte_eal_hotplug_remove|rte_mbuf_dyn_rx_timestamp_register")
            .allowlist_function("dp_.*")
            .allowlist_type("rte_mbuf|rte_eth_conf|rte_eth_stats|rte_eth_dev_info|rte_ether_addr|rte_eth_rx_mq_mode")
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            ;
        // bindgen panics when it cannot load libclang; say what to install instead.
        let bindings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || bindings.generate()))
            .unwrap_or_else(|_| {
                fail("bindgen could not load libclang: install libclang-dev (scripts/setup.sh does, as root) or set LIBCLANG_PATH")
            })
            .unwrap_or_else(|e| fail(&format!("bindgen failed: {e}")));
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        bindings
            .write_to_file(out.join("dpdk_sys.rs"))
            .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
        println!("cargo:rustc-env=DATAPLANE_DPDK_VERSION={version}");
    }
}
