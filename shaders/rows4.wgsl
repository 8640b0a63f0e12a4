// Four rows per invocation, for the CPU adapters' matvecs (matvec_int8.wgsl, matvec_rows.wgsl):
// the x values all lanes share are loaded a quarter by each of lanes 0..3 and handed round.
// Expects: what linear_store.wgsl expects (y, params, step, bias); `enable subgroups`.
// Provides: spread(v), the row indices of an invocation, and store_rows(acc, ...).

// v as lanes 0, 1, 2, 3 of the subgroup hold it.
fn spread(v: u32) -> vec4<u32> {
  return vec4<u32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}

// The first of the 4 rows invocation `lid` of workgroup `wid` computes (WG invocations per workgroup).
fn first_row(wid: vec3<u32>, lid: vec3<u32>, wg: u32) -> u32 {
  return ((wid.x + wid.y * 65535u) * wg + lid.x) * 4u;
}

// Rows past the end repeat the last one (their results are not stored): every lane stays in the
// loops, as subgroupBroadcast needs.
fn clamped_rows(row0: u32) -> vec4<u32> {
  return min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.n - 1u));
}

#include "linear_store"

// y for token t at rows row0 .. row0 + 3 (those below n), plus the bias.
fn store_rows(sums: vec4<f32>, row0: u32, t: u32) {
  for (var r = 0u; r < 4u; r++) {
    if (row0 + r < params.n) { store_y(t, row0 + r, sums[r]); }
  }
}
