/**
 * The page side of scripts/bench-quantize-cost.ts, imported in a Chromium page (openGpuPage's
 * lanternImport): runs one GGUF through Runtime.tokenLogProbs with llama-perplexity's windowing,
 * and keeps the first model's distributions in the page, so that the models measured after it are
 * compared with it without 50 MB of logits per chunk crossing to Node.
 */
import { perplexityChunks } from '../../src/runtime/perplexity.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import { urlSource } from '../../src/storage/source.ts';
import { BaseDistributions, type Confidence, KlDivergence, type KlResult } from './kl-divergence.ts';

export interface MeasureRequest {
  /** Where the page fetches the GGUF (by Range). */
  url: string;
  /** The text's tokens, BOS first where the model adds one. */
  tokens: number[];
  nCtx: number;
  bos?: number;
  /** Score only this many chunks (the first ones; one is enough for the KL divergence). */
  chunks: number;
  /** 'base': record the distributions the next models are compared with; 'compare': compare with them. */
  role: 'base' | 'compare';
  /** For the base: also report its mean top-1 probability with its logits multiplied by each of these. */
  logitScales?: number[];
}

export interface Measured {
  adapter: string;
  int8Activations: boolean;
  ppl: number;
  margin: number;
  estimates: number[];
  scored: number;
  /** Seconds of tokenLogProbs (loading not counted). */
  seconds: number;
  confidence: Confidence & { top1AtScale?: Record<string, number> };
  /** Against the base; undefined for the base itself. */
  kl?: KlResult;
}

let base: BaseDistributions | undefined;

export async function measureModel(request: MeasureRequest): Promise<Measured> {
  const { nCtx, bos } = request;
  if (request.role === 'compare' && !base) throw new Error('measure the base model first');
  const runtime = await Runtime.load(navigator.gpu, await urlSource(request.url), { contextLength: nCtx });
  try {
    const vocab = runtime.info.vocabSize;
    const first = Math.floor(nCtx / 2);
    if (request.role === 'base') base = new BaseDistributions(vocab, nCtx - 1 - first, request.logitScales);
    const kl = request.role === 'compare' ? new KlDivergence(base!) : undefined;
    // llama-perplexity's chunks, as src/runtime/perplexity.ts cuts them; here fewer may be scored.
    const chunks = perplexityChunks(request.tokens, { nCtx, bos }).slice(0, request.chunks);
    let nll = 0;
    let nll2 = 0;
    let scored = 0;
    const estimates: number[] = [];
    const t0 = performance.now();
    for (const [chunk, ids] of chunks.entries()) {
      const onRows = (logits: Float32Array, row: number) => {
        if (kl) kl.add(chunk, logits, row, (r) => ids[first + r + 1]);
        else base!.record(chunk, logits, row);
      };
      for (const logProb of await runtime.tokenLogProbs(ids, first, onRows)) {
        nll -= logProb;
        nll2 += logProb * logProb;
        scored++;
      }
      estimates.push(Math.exp(nll / scored));
    }
    const seconds = (performance.now() - t0) / 1e3;
    const klResult = kl?.result();
    // PPL ± as perplexity() gives it: exp(mean nll), times the standard error of the mean nll.
    const mean = nll / scored;
    const variance = nll2 / scored - mean * mean;
    return {
      adapter: runtime.info.adapter,
      int8Activations: runtime.info.int8Activations,
      ppl: Math.exp(mean),
      margin: Math.sqrt(variance / (scored - 1)) * Math.exp(mean),
      estimates,
      scored,
      seconds,
      confidence: klResult ?? base!.result(),
      kl: klResult,
    };
  } finally {
    runtime.dispose();
  }
}
