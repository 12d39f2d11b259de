"""IMIX 7:4:1 (64/594/1518-byte frames on the wire), UDP/IPv4, 1000 flows.

    trex> start -f bench/trex/imix.py -m 10gbps --port 0
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_common  # noqa: E402


class Profile(object):
    def get_streams(self, direction=0, port_id=0, tunables=None, **kwargs):
        o = dp_common.parse(tunables, dict(dict(imix=True, flows=1000), **kwargs))
        return dp_common.streams(o, direction, port_id)


def register():
    return Profile()
