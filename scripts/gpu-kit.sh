#!/usr/bin/env bash
# Packs .gpu/ (git-ignored), what a lent GPU machine needs to benchmark Lantern on Dawn: that machine
# has no Node.js, no node_modules and no network, and takes tens of MB (../shared/GPU.md). Holds:
#   node.xz                      this machine's Node, compressed
#   node_modules/webgpu/         Dawn for Node: package.json, index.js, dist/linux-x64/dawn.node.xz
#   lantern/cli.mjs, lantern/write-bench-models.mjs and chunks: vite.gpu-kit.config.ts's bundle
#   vulkan/                      Debian's Vulkan loader (libvulkan1), unpacked
#   stories260K.gguf             the vocabulary the bench models pad
#   run.sh                       scripts/gpu-run.sh: unpack, write models, bench each, JSON into $OUT
# Run there from the repository root, the kit carried along: bash .gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu
rm -rf "$KIT"
npx vite build -c vite.gpu-kit.config.ts
xz -T2 -c "$(command -v node)" > "$KIT/node.xz"
dawn="$KIT/node_modules/webgpu"
mkdir -p "$dawn/dist/linux-x64"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$dawn/"
xz -T2 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$dawn/dist/linux-x64/dawn.node.xz"
(cd "$KIT" && apt-get download libvulkan1 >/dev/null && dpkg -x libvulkan1_*.deb vulkan && rm libvulkan1_*.deb)
cp ../shared/models/stories260K/stories260K.gguf "$KIT/"
cp scripts/gpu-run.sh "$KIT/run.sh"
du -sh "$KIT"
