#!/usr/bin/env bash
# On a lent GPU machine, from the kit scripts/gpu-kit.sh packs (as .gpu/run.sh): writes the bench
# models and runs `lantern bench` on Dawn for each, one JSON file per model into $OUT (or .gpu/out).
#   MODELS=smollm2-135m,llama3.2-1b TYPES=Q8_0,Q4_K_M,F16 PROMPT=128 GEN=64 bash .gpu/run.sh
set -euo pipefail
KIT="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$KIT/out}"
mkdir -p "$OUT" "$KIT/models"
[ -x "$KIT/node" ] || { xz -dc "$KIT/node.xz" > "$KIT/node"; chmod +x "$KIT/node"; }
dawn="$KIT/node_modules/webgpu/dist/linux-x64/dawn.node"
[ -f "$dawn" ] || xz -dc "$dawn.xz" > "$dawn"
export LD_LIBRARY_PATH="$KIT/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VK_DRIVER_FILES="${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
export LANTERN_GPU=dawn
node="$KIT/node"
"$node" -e "import('$KIT/lantern/write-bench-models.mjs').then(async (m) => process.exit(await m.main(process.argv.slice(1))))" -- \
  --vocab "$KIT/stories260K.gguf" --out "$KIT/models" --models "${MODELS:-smollm2-135m,llama3.2-1b}" --types "${TYPES:-Q8_0,Q4_K_M,F16}"
for model in "$KIT"/models/*.gguf; do
  name="$(basename "$model" .gguf)"
  echo "bench $name" >&2
  "$node" -e "import('$KIT/lantern/cli.mjs').then(async (m) => process.exit(await m.main(process.argv.slice(1))))" -- \
    bench --model "$model" --prompt-tokens "${PROMPT:-128}" --gen-tokens "${GEN:-64}" --json > "$OUT/$name.json" || echo "bench $name failed" >&2
done
ls -la "$OUT"
