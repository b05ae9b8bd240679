#!/usr/bin/env bash
# Installs what a fresh Debian 12 / Ubuntu 24.04 machine lacks to build hymba. Does nothing when
# everything is already there (so it is cheap to run before every build). The CUDA toolkit
# (nvcc, cuBLAS, cuDNN, NCCL) is optional: without it the CPU backend is built.
set -euo pipefail

packages=(build-essential cmake libyaml-cpp-dev libhdf5-dev libopenmpi-dev openmpi-bin
          libgtest-dev zlib1g-dev liblzma-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
