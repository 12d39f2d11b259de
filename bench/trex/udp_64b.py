"""64-byte frames (60 without FCS), UDP/IPv4, 1000 flows: the RFC 2544 small-packet test.

    trex> start -f bench/trex/udp_64b.py -m 100% --port 0
    trex> start -f bench/trex/udp_64b.py -m 10mpps -t flows=100000      (old TRex)
    trex> start -f bench/trex/udp_64b.py -m 10mpps -t --flows 100000    (new TRex)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_common  # noqa: E402


class Profile(object):
    def get_streams(self, direction=0, port_id=0, tunables=None, **kwargs):
        o = dp_common.parse(tunables, dict(dict(size=60, flows=1000), **kwargs))
        return dp_common.streams(o, direction, port_id)


def register():
    return Profile()
