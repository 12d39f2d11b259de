#!/usr/bin/env bash
# Reserves 2 MiB hugepages for packet memory (default 512 pages = 1 GiB; HUGEPAGES=N to change)
# and mounts hugetlbfs at /dev/hugepages if nothing is mounted. Needs root.
# Without hugepages the dataplane still runs on ordinary pages and says so once.
set -euo pipefail
want="${HUGEPAGES:-512}"
sys=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ ! -e "$sys" ]; then
  echo "setup-hugepages.sh: this kernel has no 2 MiB hugepages ($sys missing)" >&2; exit 1
fi
have="$(cat "$sys")"
if [ "$have" -lt "$want" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-hugepages.sh: $have of $want hugepages reserved; run as root to reserve more" >&2; exit 1
  fi
  echo "$want" > "$sys"
  have="$(cat "$sys")"
fi
if ! grep -q hugetlbfs /proc/mounts; then
  if [ "$(id -u)" -eq 0 ]; then mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; fi
fi
echo "setup-hugepages.sh: $have x 2 MiB hugepages reserved, $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages) free"
