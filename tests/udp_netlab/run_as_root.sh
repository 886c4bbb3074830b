#!/bin/sh
# Runs a namespace test binary when it can work: root, ip and nft present. Otherwise prints why and exits 77,
# which ctest reports as skipped.
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: namespace tests need root (network namespaces, veth, nftables)"
    exit 77
fi
for tool in ip nft; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: '$tool' is not installed"
        exit 77
    fi
done
exec "$@"
