#!/usr/bin/env bash
# Draws the PWA icons in public/icons with ImageMagick (apt-get install imagemagick): a lantern's
# flame on an amber tile. The maskable icon is full-bleed; its drawing sits inside the 80% safe zone.
# Where another `convert` shadows ImageMagick's, run it as PATH=/usr/bin:$PATH bash scripts/make-icons.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../public/icons"

draw() { # size, corner radius, scale of the drawing (1 = full tile), output
  local s=$1 r=$2 k=$3 out=$4
  local c=$((s / 2))
  convert -size "${s}x${s}" xc:none \
    -fill '#b45309' -draw "roundrectangle 0,0 $((s - 1)),$((s - 1)) $r,$r" \
    -fill '#fde68a' -draw "ellipse $c,$((c + s * 6 * k / 100)) $((s * 22 * k / 100)),$((s * 30 * k / 100)) 0,360" \
    -fill '#ffffff' -draw "ellipse $c,$((c + s * 12 * k / 100)) $((s * 10 * k / 100)),$((s * 16 * k / 100)) 0,360" \
    -fill '#78350f' -draw "rectangle $((c - s * 18 * k / 100)),$((c - s * 36 * k / 100)) $((c + s * 18 * k / 100)),$((c - s * 30 * k / 100))" \
    -depth 8 -strip "$out"
}

draw 192 36 1 icon-192.png
draw 512 96 1 icon-512.png
# Maskable: a full-bleed square; the platform applies its own mask.
draw 512 0 1 icon-maskable-512.png
