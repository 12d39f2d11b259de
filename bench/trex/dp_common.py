"""Shared stream builder for the dataplane's TRex stateless profiles.

Every profile here builds its streams with `streams()`: Ethernet (optional 802.1Q) / IPv4 or
IPv6 / UDP or TCP, a frame size (bytes without FCS, TRex style: 60 is a 64-byte frame on the
wire) or IMIX, and N flows made by TRex's field engine (source address and source port,
advanced per packet), with checksums fixed by the NIC (`STLVmFixChecksumHw`) or by the field
engine (`STLVmFixIpv4`). Direction 0 is inside -> outside (the chain's `inside` port); direction
1 swaps addresses, for a router-only or firewall-only run where both ways are forwarded.

The defaults mirror `bench` (the in-process generator): 10.0.0.0/8 sources, 192.168.0.1
destination, UDP to port 53 from ports 1024 up.

Tunables work with both TRex APIs: the old keyword style (`-t size=60,flows=1000`) and the
newer argparse style (`-t --size 60 --flows 1000`).
"""
import argparse

from trex_stl_lib.api import (
    CTRexVmInsFixHwCs,
    Dot1Q,
    Ether,
    IP,
    IPv6,
    STLFlowLatencyStats,
    STLPktBuilder,
    STLScVmRaw,
    STLStream,
    STLTXCont,
    STLVmFixChecksumHw,
    STLVmFlowVar,
    STLVmWrFlowVar,
    TCP,
    UDP,
)

# IMIX 7:4:1, frame sizes without FCS (64/594/1518 on the wire).
IMIX = [(60, 7), (590, 4), (1514, 1)]

DEFAULTS = dict(size=60, imix=False, flows=1000, ipv6=False, vlan=0, proto="udp",
                src="10.0.0.1", dst="192.168.0.1", src6="2001:db8::100:0", dst6="2001:db8:1::1",
                latency=False)


def parse(tunables, kwargs):
    """Merge old-style keyword tunables and new-style argparse tunables over DEFAULTS."""
    opts = dict(DEFAULTS)
    for k, v in kwargs.items():
        if k in opts:
            opts[k] = type(opts[k])(v) if not isinstance(opts[k], bool) else str(v).lower() in ("1", "true", "yes")
    if tunables:
        p = argparse.ArgumentParser(prog="dataplane profile", add_help=False)
        p.add_argument("--size", type=int, default=opts["size"])
        p.add_argument("--imix", action="store_true", default=opts["imix"])
        p.add_argument("--flows", type=int, default=opts["flows"])
        p.add_argument("--ipv6", action="store_true", default=opts["ipv6"])
        p.add_argument("--vlan", type=int, default=opts["vlan"])
        p.add_argument("--proto", choices=["udp", "tcp"], default=opts["proto"])
        p.add_argument("--latency", action="store_true", default=opts["latency"])
        opts.update(vars(p.parse_args(tunables)))
    return opts


def _base(o, direction):
    # TRex replaces both MACs with the port's configuration (trex_cfg.yaml) unless told not
    # to; explicit values here only keep scapy from looking up routes.
    l2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if o["vlan"]:
        l2 = l2 / Dot1Q(vlan=o["vlan"])
    if o["ipv6"]:
        src, dst = o["src6"], o["dst6"]
        if direction:
            src, dst = dst, src
        l3 = IPv6(src=src, dst=dst)
    else:
        src, dst = o["src"], o["dst"]
        if direction:
            src, dst = dst, src
        l3 = IP(src=src, dst=dst)
    if o["proto"] == "tcp":
        l4 = TCP(sport=1024, dport=80, flags="A")
    else:
        l4 = UDP(sport=1024, dport=53)
    return l2 / l3 / l4


def _vm(o, direction):
    """Field engine: flow k = (source address base + k % 65536, source port 1024 + k / 65536)."""
    flows = max(1, int(o["flows"]))
    n_ips = min(flows, 65536)
    n_ports = max(1, (flows + n_ips - 1) // n_ips)
    # Numeric offsets (TRex's field names need its patched scapy; numbers work with any).
    l3 = 18 if o["vlan"] else 14
    l4 = l3 + (40 if o["ipv6"] else 20)
    if o["ipv6"]:
        addr_off = l3 + (24 if direction else 8) + 12  # the last 4 bytes of the address
    else:
        addr_off = l3 + (16 if direction else 12)
    if o["ipv6"]:
        base = 0x01000000  # the last 32 bits of src6 (2001:db8::100:0)
    else:
        a = [int(x) for x in o["src"].split(".")]
        base = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]
    ops = [
        STLVmFlowVar(name="ip", min_value=base, max_value=base + n_ips - 1, size=4, op="inc"),
        STLVmWrFlowVar(fv_name="ip", pkt_offset=addr_off),
    ]
    if n_ports > 1:
        ops += [
            STLVmFlowVar(name="port", min_value=1024, max_value=1024 + n_ports - 1, size=2,
                         op="inc", step=1),
            STLVmWrFlowVar(fv_name="port", pkt_offset=l4 + (2 if direction else 0)),
        ]
    ops.append(STLVmFixChecksumHw(
        l3_offset=l3, l4_offset=l4,
        l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP if o["proto"] == "tcp" else CTRexVmInsFixHwCs.L4_TYPE_UDP))
    # Small flow counts: let TRex cache the built packets (faster on the generator side).
    return STLScVmRaw(ops, cache_size=flows if flows <= 10000 else None)


def _stream(o, direction, size, mode, pg_id=None):
    pkt = _base(o, direction)
    pad = max(0, size - len(pkt))
    kw = {}
    if pg_id is not None:
        kw["flow_stats"] = STLFlowLatencyStats(pg_id=pg_id)
    return STLStream(
        packet=STLPktBuilder(pkt=pkt / ("\x00" * pad), vm=_vm(o, direction)),
        mode=mode,
        **kw)


def streams(o, direction=0, port_id=0):
    """The streams for options `o` (see DEFAULTS)."""
    if o["imix"]:
        total = sum(w for _, w in IMIX)
        # Rates in the IMIX weights: TRex scales them together with -m.
        out = [_stream(o, direction, s, STLTXCont(pps=w * 1000 / total)) for s, w in IMIX]
    else:
        out = [_stream(o, direction, o["size"], STLTXCont())]
    if o["latency"]:
        # A slow stream with TRex's own latency measurement (flow stats with timestamps).
        out.append(_stream(dict(o, flows=1), direction, 60 if not o["ipv6"] else 78,
                           STLTXCont(pps=1000), pg_id=100 + port_id))
    return out
