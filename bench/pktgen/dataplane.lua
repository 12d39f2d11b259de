-- pktgen-dpdk script: RFC 2544-style throughput search against a deployed dataplane.
--
-- Port 0 of pktgen sends into the dataplane's inside port; port 1 receives from its outside
-- port. For each frame size, a binary search on the send rate finds the highest rate with no
-- loss (received == sent after a drain), the RFC 2544 throughput, then prints one line per size
-- and a final summary. Flows: the source address and source port are varied by pktgen's range
-- mode (1000 flows by default), like bench/trex/udp_64b.py.
--
--   pktgen -l 0-4 -n 4 -a <PCI tx> -a <PCI rx> -- -P -m "[1:2].0, [3:4].1" -f bench/pktgen/dataplane.lua
--
-- Settings below; pktgen's sizes include the 4-byte FCS (64 = the smallest Ethernet frame).

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local tx, rx       = "0", "1"
local sizes        = { 64, 128, 256, 512, 1024, 1280, 1518 }
local trial_ms     = 10000      -- RFC 2544 asks for 60 s per trial; 10 s while searching
local drain_ms     = 2000
local precision    = 0.5        -- stop when the search window is under 0.5 % of line rate
local src_ip       = "10.0.0.1"
local dst_ip       = "192.168.0.1"
local flows_ips    = 100        -- sources 10.0.0.1 .. 10.0.0.100
local flows_ports  = 10         -- source ports 1024 .. 1033  => 1000 flows
local dut_mac      = "02:00:00:00:00:10"  -- the dataplane's inside port MAC: set yours
local link_mbps    = 10000      -- line rate of the links, Mb/s (pktgen's rate is a percentage)

local function setup(size)
    pktgen.set(tx, "size", size)
    pktgen.set_proto(tx, "udp")
    pktgen.set_type(tx, "ipv4")
    pktgen.range.dst_mac(tx, "start", dut_mac)
    pktgen.range.dst_mac(tx, "inc", "00:00:00:00:00:00")
    pktgen.range.src_ip(tx, "start", src_ip)
    pktgen.range.src_ip(tx, "inc", "0.0.0.1")
    pktgen.range.src_ip(tx, "min", src_ip)
    pktgen.range.src_ip(tx, "max", "10.0.0." .. flows_ips)
    pktgen.range.dst_ip(tx, "start", dst_ip)
    pktgen.range.dst_ip(tx, "inc", "0.0.0.0")
    pktgen.range.dst_ip(tx, "min", dst_ip)
    pktgen.range.dst_ip(tx, "max", dst_ip)
    pktgen.range.src_port(tx, "start", 1024)
    pktgen.range.src_port(tx, "inc", 1)
    pktgen.range.src_port(tx, "min", 1024)
    pktgen.range.src_port(tx, "max", 1024 + flows_ports - 1)
    pktgen.range.dst_port(tx, "start", 53)
    pktgen.range.dst_port(tx, "inc", 0)
    pktgen.range.dst_port(tx, "min", 53)
    pktgen.range.dst_port(tx, "max", 53)
    pktgen.range.pkt_size(tx, "start", size)
    pktgen.range.pkt_size(tx, "inc", 0)
    pktgen.range.pkt_size(tx, "min", size)
    pktgen.range.pkt_size(tx, "max", size)
    pktgen.set_range(tx, "on")
end

-- One trial at `rate` percent of line rate: returns sent, received.
local function trial(rate)
    pktgen.clr()
    pktgen.set(tx, "rate", rate)
    pktgen.start(tx)
    pktgen.delay(trial_ms)
    pktgen.stop(tx)
    pktgen.delay(drain_ms)
    local s = pktgen.portStats(tx, "port")[tonumber(tx)]
    local r = pktgen.portStats(rx, "port")[tonumber(rx)]
    return s.opackets, r.ipackets
end

local results = {}
for _, size in ipairs(sizes) do
    setup(size)
    local lo, hi, best = 0, 100, 0
    local sent, got = trial(100)
    if got >= sent then
        best = 100
    else
        while hi - lo > precision do
            local mid = (lo + hi) / 2
            sent, got = trial(mid)
            if got >= sent then lo = mid; best = mid else hi = mid end
            printf("size %4d: %6.2f %% of line rate: sent %d received %d -> %s\n",
                   size, mid, sent, got, got >= sent and "no loss" or "loss")
        end
    end
    -- Frames per second at `best` percent: line rate / ((size + 20 B preamble and gap) * 8).
    local mbps = link_mbps
    local fps = best / 100 * mbps * 1e6 / ((size + 20) * 8)
    results[#results + 1] = string.format("size %4d B: zero-loss %6.2f %% of %d Mb/s = %.3f Mpps",
                                          size, best, mbps, fps / 1e6)
    printf("%s\n", results[#results])
end
printf("\nRFC 2544 throughput (zero loss):\n")
for _, l in ipairs(results) do printf("  %s\n", l) end
