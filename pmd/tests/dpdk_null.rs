//! The `dpdk` feature end to end on DPDK's own `net_null` device: the EAL comes up without
//! hugepages, the bindings and the C shim move real bursts of `rte_mbuf`s.
#![cfg(feature = "dpdk")]

use pmd::dpdk::{sys, Eal};

#[test]
fn eal_null_device_bursts_through_the_shim() {
    let eal = Eal::init(&[
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--file-prefix",
        "pmd-test",
        "--no-telemetry",
        "--log-level",
        "error",
        "--vdev",
        "net_null0",
        "-l",
        "0",
    ])
    .expect("EAL");
    assert!(eal.version().contains("22.11") || eal.version().contains("23.11"), "{}", eal.version());
    assert_eq!(eal.port_count(), 1);
    // SAFETY: the EAL is up; every pointer passed below is either null (allowed by the API) or
    // points at live, correctly typed memory; port 0 exists (counted above).
    unsafe {
        let name = std::ffi::CString::new("test-pool").unwrap();
        let pool = sys::rte_pktmbuf_pool_create(name.as_ptr(), 4095, 256, 0, 2048 + 128, 0);
        assert!(!pool.is_null(), "mempool");
        let conf = sys::rte_eth_conf::default();
        assert_eq!(sys::rte_eth_dev_configure(0, 1, 1, &conf), 0);
        assert_eq!(sys::rte_eth_rx_queue_setup(0, 0, 512, 0, std::ptr::null(), pool), 0);
        assert_eq!(sys::rte_eth_tx_queue_setup(0, 0, 512, 0, std::ptr::null()), 0);
        assert_eq!(sys::rte_eth_dev_start(0), 0);
        let mut pkts = [std::ptr::null_mut::<sys::rte_mbuf>(); 32];
        let mut total = 0u64;
        for _ in 0..100 {
            let n = sys::dp_rx_burst(0, 0, pkts.as_mut_ptr(), 32);
            assert!(n as usize <= pkts.len());
            total += n as u64;
            let sent = sys::dp_tx_burst(0, 0, pkts.as_mut_ptr(), n);
            assert_eq!(sent, n, "net_null takes every packet");
        }
        assert_eq!(total, 3200, "net_null hands out a full burst every call");
        let mut st = sys::rte_eth_stats::default();
        assert_eq!(sys::rte_eth_stats_get(0, &mut st), 0);
        assert_eq!(st.ipackets, 3200);
        assert_eq!(st.opackets, 3200);
        sys::rte_eth_dev_stop(0);
        sys::rte_eth_dev_close(0);
    }
}
