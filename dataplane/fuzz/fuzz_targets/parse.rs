//! `wire::parse` on arbitrary frames, then every view's `new_checked` at the
//! offsets it found, every accessor, the flow key and hash, and the
//! fill/verify and incremental-update round trips on a copy.
//!
//! Asserts: nothing panics; what `parse` accepted, the views accept too; the
//! flow hash is symmetric; a filled checksum verifies, and stays valid through
//! incremental rewrites.

#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::wire::{
    ip_proto, parse, symmetric_hash, ArpPacket, EthernetFrame, FlowKey, Icmpv4Packet, Icmpv6Packet,
    Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, VlanHeader, L3,
};
use libfuzzer_sys::fuzz_target;

fn tcp_v4(l4: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut buf = l4.to_vec();
    if let Ok(mut t) = TcpPacket::new_checked(&mut buf[..]) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.seq(),
            t.ack(),
            t.flags(),
            t.syn(),
        );
        let _ = (
            t.window(),
            t.checksum(),
            t.urgent(),
            t.options(),
            t.payload(),
        );
        let _ = t.verify_checksum_v4(&src, &dst);
        t.fill_checksum_v4(&src, &dst);
        assert!(t.verify_checksum_v4(&src, &dst));
        let p = t.src_port();
        t.set_src_port_incremental(p ^ 0x5a5a);
        let new_src = Ipv4Addr::from(src.to_bits() ^ 0x0102_0304);
        t.patch_checksum(&src.octets(), &new_src.octets());
        assert!(t.verify_checksum_v4(&new_src, &dst));
    }
}

fn tcp_v6(l4: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let mut buf = l4.to_vec();
    if let Ok(mut t) = TcpPacket::new_checked(&mut buf[..]) {
        let _ = (t.header_len(), t.options(), t.payload());
        t.fill_checksum_v6(&src, &dst);
        assert!(t.verify_checksum_v6(&src, &dst));
        let p = t.dst_port();
        t.set_dst_port_incremental(!p);
        assert!(t.verify_checksum_v6(&src, &dst));
    }
}

fn udp_v4(l4: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut buf = l4.to_vec();
    if let Ok(mut u) = UdpPacket::new_checked(&mut buf[..]) {
        let _ = (
            u.src_port(),
            u.dst_port(),
            u.len(),
            u.checksum(),
            u.payload(),
        );
        let _ = u.verify_checksum_v4(&src, &dst);
        let was_zero = u.checksum() == 0;
        let p = u.src_port();
        u.set_src_port_incremental(p.wrapping_add(1));
        if was_zero {
            assert_eq!(u.checksum(), 0, "zero UDP checksum must stay zero");
        }
        u.fill_checksum_v4(&src, &dst);
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum_v4(&src, &dst));
        let new_dst = Ipv4Addr::from(!dst.to_bits());
        u.patch_checksum(&dst.octets(), &new_dst.octets());
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum_v4(&src, &new_dst));
    }
}

fn udp_v6(l4: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let mut buf = l4.to_vec();
    if let Ok(mut u) = UdpPacket::new_checked(&mut buf[..]) {
        let _ = u.verify_checksum_v6(&src, &dst);
        u.fill_checksum_v6(&src, &dst);
        assert!(u.verify_checksum_v6(&src, &dst));
    }
}

fn icmp_v4(l4: &[u8]) {
    let mut buf = l4.to_vec();
    if let Ok(mut i) = Icmpv4Packet::new_checked(&mut buf[..]) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.checksum(),
            i.rest_of_header(),
            i.is_error(),
        );
        let _ = (i.identifier(), i.sequence(), i.next_hop_mtu(), i.data());
        let _ = i.verify_checksum();
        i.fill_checksum();
        assert!(i.verify_checksum());
        let id = i.identifier();
        i.set_identifier_incremental(id.rotate_left(3));
        assert!(i.verify_checksum());
    }
}

fn icmp_v6(l4: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let mut buf = l4.to_vec();
    if let Ok(mut i) = Icmpv6Packet::new_checked(&mut buf[..]) {
        let _ = (
            i.msg_type(),
            i.code(),
            i.mtu(),
            i.nd_target(),
            i.is_error(),
            i.data(),
        );
        i.fill_checksum(&src, &dst);
        assert!(i.verify_checksum(&src, &dst));
    }
}

fuzz_target!(|data: &[u8]| {
    // Views straight on the input must never panic after new_checked.
    if let Ok(v) = Ipv4Packet::new_checked(data) {
        let _ = (
            v.options(),
            v.payload(),
            v.verify_checksum(),
            v.frag_offset_bytes(),
        );
    }
    if let Ok(v) = Ipv6Packet::new_checked(data) {
        let _ = (v.payload(), v.walk_ext(), v.flow_label(), v.traffic_class());
    }
    if let Ok(v) = ArpPacket::new_checked(data) {
        let _ = (
            v.operation(),
            v.sender_hw(),
            v.sender_ip(),
            v.target_hw(),
            v.target_ip(),
        );
    }

    let Ok(p) = parse(data) else { return };

    let eth = EthernetFrame::new_checked(data).expect("parse accepted a short frame");
    let _ = (eth.dst(), eth.src(), eth.ethertype(), eth.payload());
    let mut off = 14;
    for i in 0..usize::from(p.vlan_count) {
        let tag = VlanHeader::new_checked(&data[off..]).expect("parse accepted a short tag");
        assert_eq!(tag.vid(), p.vlan_ids[i]);
        let _ = (tag.pcp(), tag.dei(), tag.ethertype(), tag.payload());
        off += 4;
    }
    assert_eq!(off, usize::from(p.l3_offset));

    let h = symmetric_hash(data, &p);
    if let Some(k) = FlowKey::from_frame(data, &p) {
        assert_eq!(k.symmetric_hash(), k.reversed().symmetric_hash());
        if FlowKey::from_icmp_error(data, &p).is_none() {
            assert_eq!(h, k.symmetric_hash());
        }
    }
    if let Some(k) = FlowKey::from_icmp_error(data, &p) {
        assert_eq!(h, k.symmetric_hash());
    }

    let l3 = &data[usize::from(p.l3_offset)..];
    let l4_off = usize::from(p.l4_offset);
    match p.l3 {
        L3::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).expect("parse accepted a bad IPv4 header");
            let _ = (ip.dscp(), ip.ecn(), ip.ident(), ip.ttl(), ip.options());
            let _ = ip.verify_checksum();
            assert_eq!(usize::from(p.l3_offset) + ip.header_len(), l4_off);
            let end = usize::from(p.l3_offset) + usize::from(ip.total_len());
            assert_eq!(&data[l4_off..end], ip.payload());

            let mut copy = l3.to_vec();
            let mut m = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
            m.fill_checksum();
            assert!(m.verify_checksum());
            let ttl = m.ttl();
            m.set_ttl_incremental(ttl.wrapping_sub(1));
            m.set_src_incremental(Ipv4Addr::from(ip.dst().to_bits().rotate_left(7)));
            assert!(m.verify_checksum());

            if p.has_l4_header() {
                let l4 = &data[l4_off..end];
                let (s, d) = (ip.src(), ip.dst());
                match p.l4_proto {
                    ip_proto::TCP => tcp_v4(l4, s, d),
                    ip_proto::UDP => udp_v4(l4, s, d),
                    ip_proto::ICMP => icmp_v4(l4),
                    _ => {}
                }
            }
        }
        L3::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).expect("parse accepted a bad IPv6 header");
            let _ = (ip.hop_limit(), ip.flow_label(), ip.next_header());
            let end = usize::from(p.l3_offset) + 40 + usize::from(ip.payload_len());
            assert!(l4_off <= end);
            if p.has_l4_header() {
                let l4 = &data[l4_off..end];
                let (s, d) = (ip.src(), ip.dst());
                match p.l4_proto {
                    ip_proto::TCP => tcp_v6(l4, s, d),
                    ip_proto::UDP => udp_v6(l4, s, d),
                    ip_proto::ICMPV6 => icmp_v6(l4, s, d),
                    _ => {}
                }
            }
        }
        L3::Arp => {
            if let Ok(a) = ArpPacket::new_checked(l3) {
                let _ = (a.operation(), a.sender_ip(), a.target_ip(), a.sender_hw());
            }
        }
        L3::Other | L3::None => {}
    }
});
