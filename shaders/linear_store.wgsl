// The store of every linear kernel (matvec, matmul, matvec_rows, matvec_int8): y[t, row], plus the
// bias, and with a stacked weight, each linear's rows into its own output.
// Expects: the includer's y [n_tokens, ...] f32, params {n, cache_rows, n0, n1}, step {pos0}; with
//          BIAS, bias [n_out] f32 (stacked like the weight).
// Variants: STACK2, STACK3: the weight stacks the rows of 2 or 3 linears that read the same x (q, k
//           and v; gate and up), so that one dispatch runs them all: rows [0, n0) go to y
//           [n_tokens, n0], with STACK3 rows [n0, n0 + n1) to y_mid (binding 8) [n_tokens, n1], and
//           the rest to y_last (binding 9) [n_tokens, n - n0 - n1].
// cache_rows > 0: the last part's token t lands at row (pos0 + t) % cache_rows (V straight into a
// full KV cache, or a ring of cache_rows rows for a sliding-window layer); 0 = row t.

#ifdef STACK3
#define STACKED
@group(0) @binding(8) var<storage, read_write> y_mid: array<f32>;
#endif
#ifdef STACK2
#define STACKED
#endif
#ifdef STACKED
@group(0) @binding(9) var<storage, read_write> y_last: array<f32>;
#endif

// Token t's output at (stacked) row `row`, the bias added.
fn store_y(t: u32, row: u32, value: f32) {
  var v = value;
#ifdef BIAS
  v += bias[row];
#endif
  var at = t;
  if (params.cache_rows != 0u) { at = (step.pos0 + t) % params.cache_rows; }
#ifdef STACKED
  if (row < params.n0) {
    y[t * params.n0 + row] = v;
    return;
  }
#ifdef STACK3
  if (row < params.n0 + params.n1) {
    y_mid[t * params.n1 + row - params.n0] = v;
    return;
  }
#endif
  let first = params.n0 + params.n1;
  y_last[at * (params.n - first) + row - first] = v;
#else
  y[at * params.n + row] = v;
#endif
}
