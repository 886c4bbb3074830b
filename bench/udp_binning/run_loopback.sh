#!/bin/bash
# Measurement of docs/methodology.md ("UDP", "Goodput"); needs binaries built after add_trace.py (root, for --allow-root).
# usage: run_loopback.sh NAME RATE INTERVAL  (loopback, both directions, 10 s)
set -e
cd "$(git rev-parse --show-toplevel)"
out=${OUT:-/tmp/udp_binning}/$1; rm -rf $out; mkdir -p $out
export SPEED_WAIT_TRACE=$out
build/release/server/speedsrv --allow-root -B 127.0.0.1 -p 15201 > $out/srv.log 2>&1 & srv=$!
sleep 0.5
build/release/client/speedcli 127.0.0.1 -p 15201 --udp -b $2 -t 10 -i $3 -J > $out/cli.json 2>$out/cli.err & cli=$!; echo $cli > $out/client.pid; wait $cli || echo "speedcli rc=$?"
kill $srv; wait $srv || true
python3 -c "
import json;d=json.load(open('$out/cli.json'))
for k in ('download','upload'):
  x=d.get(k); print(k, 'by', x['measured_by'], x['bits_per_second']/1e6, 'Mbit/s lost', x['lost_packets'], 'late', x['late_packets'])"
python3 bench/udp_binning/analyze.py $out $out/cli.json | grep -v '^  interval'
