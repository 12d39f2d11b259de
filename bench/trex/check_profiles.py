"""Loads every profile in this directory with the TRex stateless client library and compiles
its streams to the JSON TRex's server would receive, without a TRex server.

    python3 -m venv /tmp/trex && /tmp/trex/bin/pip install trex-stl-lib
    /tmp/trex/bin/python bench/trex/check_profiles.py

What it checks: the profile imports, `register().get_streams()` runs for both directions and for
each tunable set below (old keyword style and new argparse style), every stream's packet builds
(scapy) with its field-engine program, and frame sizes are what the profile says. It does not
check rates on a wire: that needs a TRex server and a NIC.
"""
import os
import sys

from trex_stl_lib.api import STLProfile

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = [
    ("udp_64b.py", {}, None, [60]),
    ("udp_64b.py", {"flows": 100000}, None, [60]),
    ("udp_64b.py", {}, ["--ipv6", "--proto", "tcp", "--vlan", "7", "--size", "60"], [78]),
    ("udp_64b.py", {}, ["--latency"], [60, 60]),
    ("imix.py", {}, None, [60, 590, 1514]),
    ("imix.py", {}, ["--ipv6"], [62, 590, 1514]),
    ("many_flows.py", {}, None, [60]),
    ("many_flows.py", {"flows": 4000000, "proto": "tcp"}, None, [60]),
]


def main():
    failed = 0
    for name, kw, tun, sizes in CASES:
        for direction in (0, 1):
            label = "%s dir %d %s %s" % (name, direction, kw or "", " ".join(tun or []))
            try:
                if tun is not None:
                    kw2 = dict(kw, tunables=tun)
                else:
                    kw2 = kw
                prof = STLProfile.load_py(os.path.join(HERE, name), direction=direction,
                                          port_id=direction, **kw2)
                streams = prof.get_streams()
                got = []
                for s in streams:
                    j = s.to_json()
                    assert j["vm"]["instructions"], "no field-engine program"
                    got.append(len(s.get_pkt()))
                assert got == sizes, "frame sizes %s, expected %s" % (got, sizes)
                print("ok   %s: %d streams, frames %s" % (label, len(streams), got))
            except Exception as e:  # report every case, then fail
                failed += 1
                print("FAIL %s: %s" % (label, getattr(e, "msg", None) or repr(e)))
    print("%d passed, %d failed" % (2 * len(CASES) - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
