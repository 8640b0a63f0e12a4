/**
 * A float64 CPU twin of a small all-F32 llama GGUF (stories260K): the forward pass built from the
 * kernels' CPU twins (tests/kernels/reference.ts), one token at a time over a KV cache. It gives
 * real next-token logits fast enough, for a model this small, to run the constrained-decoding
 * corpus hundreds of times in Node (the GPU path is held to the same tokens elsewhere).
 */
import { GGMLType, type GGUFFile } from '../../src/model/gguf.ts';
import { attention, embedding, linear, rmsnorm, rope, swiglu } from '../kernels/reference.ts';

export class CpuLlama {
  private readonly w = new Map<string, Float64Array>();
  private readonly k: Float64Array[] = [];
  private readonly v: Float64Array[] = [];
  private pos = 0;
  readonly nEmbd: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly nFF: number;
  readonly vocab: number;
  private readonly eps: number;
  private readonly ropeShape: { nHeads: number; headDim: number; ropeDim: number; thetaBase: number; neox: boolean };

  constructor(file: GGUFFile, bytes: Uint8Array, readonly contextLength = 256) {
    const meta = (key: string) => Number(file.metadata.get(`llama.${key}`));
    this.nEmbd = meta('embedding_length');
    this.nLayers = meta('block_count');
    this.nHeads = meta('attention.head_count');
    this.nKvHeads = meta('attention.head_count_kv');
    this.nFF = meta('feed_forward_length');
    this.eps = meta('attention.layer_norm_rms_epsilon');
    this.headDim = this.nEmbd / this.nHeads;
    const theta = Number(file.metadata.get('llama.rope.freq_base') ?? 10000);
    this.ropeShape = { nHeads: this.nHeads, headDim: this.headDim, ropeDim: this.headDim, thetaBase: theta, neox: false };
    for (const t of file.tensors) {
      if (t.type !== GGMLType.F32) throw new Error(`CpuLlama reads F32 tensors only; ${t.name} is not`);
      this.w.set(t.name, Float64Array.from(new Float32Array(new Uint8Array(bytes.subarray(t.offset, t.offset + t.nBytes)).buffer)));
    }
    this.vocab = file.tensors.find((t) => t.name === 'token_embd.weight')!.dims[1];
    const kvWidth = this.nKvHeads * this.headDim;
    for (let l = 0; l < this.nLayers; l++) {
      this.k.push(new Float64Array(contextLength * kvWidth));
      this.v.push(new Float64Array(contextLength * kvWidth));
    }
  }

  /** Starts a new sequence (the cache's rows are overwritten from position 0). */
  reset(): void {
    this.pos = 0;
  }

  /** Runs one token at the next position; its next-token logits [vocab]. */
  step(token: number): Float32Array<ArrayBuffer> {
    if (this.pos >= this.contextLength) throw new Error(`CpuLlama's context of ${this.contextLength} is full`);
    const W = (name: string) => this.w.get(name)!;
    const { nEmbd: d, nFF, headDim, nHeads, nKvHeads, eps } = this;
    const kvWidth = nKvHeads * headDim;
    let x = embedding(W('token_embd.weight'), d, [token]);
    for (let l = 0; l < this.nLayers; l++) {
      const p = `blk.${l}.`;
      const xn = rmsnorm(x, W(`${p}attn_norm.weight`), eps);
      const q = rope(linear(xn, W(`${p}attn_q.weight`), d, d), this.ropeShape, this.pos);
      const k = rope(linear(xn, W(`${p}attn_k.weight`), d, kvWidth), { ...this.ropeShape, nHeads: nKvHeads }, this.pos);
      this.k[l].set(k, this.pos * kvWidth);
      this.v[l].set(linear(xn, W(`${p}attn_v.weight`), d, kvWidth), this.pos * kvWidth);
      const a = attention(q, this.k[l], this.v[l], { nHeads, nKvHeads, headDim }, this.pos);
      const o = linear(a, W(`${p}attn_output.weight`), d, d);
      for (let i = 0; i < d; i++) x[i] += o[i];
      const hn = rmsnorm(x, W(`${p}ffn_norm.weight`), eps);
      const f = linear(swiglu(linear(hn, W(`${p}ffn_gate.weight`), d, nFF), linear(hn, W(`${p}ffn_up.weight`), d, nFF)), W(`${p}ffn_down.weight`), nFF, d);
      for (let i = 0; i < d; i++) x[i] += f[i];
    }
    this.pos++;
    const out = this.w.get('output.weight') ?? W('token_embd.weight');
    return Float32Array.from(linear(rmsnorm(x, W('output_norm.weight'), eps), out, d, this.vocab));
  }
}
