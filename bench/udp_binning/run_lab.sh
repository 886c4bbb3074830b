#!/bin/bash
# Measurement of docs/methodology.md ("UDP", "Goodput"); needs binaries built after add_trace.py (root).
# usage: run_lab.sh NAME RATE_MBIT INTERVAL: two namespaces joined by a veth pair, a tbf of RATE on each
# side's egress (burst 1 ms at the rate, at least 16 KiB; queue 50 ms at the rate, at least 64 KiB: the netlab's
# settings), speedsrv in one, speedcli in the other, 10 s each direction at the link rate.
set -e
cd "$(git rev-parse --show-toplevel)"
out=${OUT:-/tmp/udp_binning}/$1; rm -rf $out; mkdir -p $out
c=udpbin-c; s=udpbin-s
ip netns del $c 2>/dev/null || true; ip netns del $s 2>/dev/null || true
ip netns add $c; ip netns add $s
ip link add eth0 netns $c type veth peer name eth0 netns $s
ip -n $c addr add 10.209.0.1/24 dev eth0; ip -n $s addr add 10.209.0.2/24 dev eth0
ip -n $c link set eth0 up; ip -n $s link set eth0 up; ip -n $c link set lo up; ip -n $s link set lo up
rate=$2
burst=$(( rate * 1000000 / 8 / 1000 )); [ $burst -lt 16384 ] && burst=16384
limit=$(( rate * 1000000 / 8 / 20 )); [ $limit -lt 65536 ] && limit=65536
for n in $c $s; do tc -n $n qdisc add dev eth0 root tbf rate ${rate}mbit burst $burst limit $limit; done
export SPEED_WAIT_TRACE=$out
ip netns exec $s build/release/server/speedsrv --allow-root -B 10.209.0.2 -p 15201 > $out/srv.log 2>&1 & srv=$!
sleep 0.5
# the UDP payload rate that fills the link: 1472 of every 1514 frame bytes
bitrate=$(( rate * 1000000 * 1472 / 1514 * 99 / 100 ))
ip netns exec $c build/release/client/speedcli 10.209.0.2 -p 15201 --udp -b $bitrate -t 10 -i $3 -J > $out/cli.json 2>$out/cli.err & cli=$!; echo $cli > $out/client.pid; wait $cli || echo "speedcli rc=$?"
kill $srv; wait $srv || true
ip netns del $c; ip netns del $s
python3 -c "
import json;d=json.load(open('$out/cli.json'))
for k in ('download','upload'):
  x=d.get(k); print(k, 'by', x['measured_by'], x['bits_per_second']/1e6, 'Mbit/s lost', x['lost_packets'], 'late', x['late_packets'])"
python3 bench/udp_binning/analyze.py $out $out/cli.json | grep -v '^  interval'
