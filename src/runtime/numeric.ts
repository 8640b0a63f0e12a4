import { LanternError } from '../errors.ts';

/**
 * Numeric faults: logits that hold NaN or ±Inf (damaged weights, or activations that overflow in
 * the precision they run in). The GPU counts them next to the argmax id and the top-k result
 * (shaders/argmax.wgsl, topk.wgsl); full logits read back are counted here. Either way the request
 * ends with NUMERIC_ERROR instead of a token picked from garbage.
 */

/** How many of `logits` are NaN or ±Inf. */
export function countNonFinite(logits: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < logits.length; i++) if (!Number.isFinite(logits[i])) n++;
  return n;
}

/** Where in a request a forward step ran: the prompt's prefill (which picks token 1) or the decode of token n. */
export type NumericStep = { step: 'prefill' } | { step: 'decode'; token: number };

/**
 * The error for `nonFinite` bad logits of `vocabSize`; `at` names the step when the caller knows
 * it (the forward pass does not; Runtime adds it with numericErrorAt).
 */
export function numericError(nonFinite: number, vocabSize: number, at?: NumericStep): LanternError {
  const where = at === undefined ? 'a forward step' : at.step === 'prefill' ? 'the prefill of the prompt' : `the decode of token ${at.token}`;
  return new LanternError(
    'NUMERIC_ERROR',
    `The model produced ${nonFinite} NaN or infinite logits of ${vocabSize} in ${where}, so no token can be picked: the file's weights are damaged or overflow. ` +
      'Download the file again; if it repeats, load with f32 activations (int8Activations: false) or use another quantization of the model.',
    { nonFinite, vocabSize, ...(at ?? {}) },
  );
}

/** A NUMERIC_ERROR from the forward pass, now naming its step; any other error as it was. */
export function numericErrorAt(e: unknown, at: NumericStep): unknown {
  if (!(e instanceof LanternError) || e.code !== 'NUMERIC_ERROR' || e.details?.step !== undefined) return e;
  return numericError(Number(e.details?.nonFinite), Number(e.details?.vocabSize), at);
}
