"""Many flows: 64-byte UDP/IPv4 frames over 1,000,000 flows (65,536 sources x 16 source ports),
to load the firewall's connection table and the NAT's sessions the way a carrier edge does.

    trex> start -f bench/trex/many_flows.py -m 5mpps --port 0
    trex> start -f bench/trex/many_flows.py -m 5mpps -t flows=4000000
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_common  # noqa: E402


class Profile(object):
    def get_streams(self, direction=0, port_id=0, tunables=None, **kwargs):
        o = dp_common.parse(tunables, dict(dict(size=60, flows=1_000_000), **kwargs))
        return dp_common.streams(o, direction, port_id)


def register():
    return Profile()
