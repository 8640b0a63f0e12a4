/**
 * llama.cpp as a test oracle, through node-llama-cpp's prebuilt CPU binaries.
 *
 * It never downloads or builds anything: `build: 'never'` with `skipDownload` uses the prebuilt
 * binary in node_modules/@node-llama-cpp/linux-x64 or throws `NoBinaryFoundError`.
 * Token ids go in exactly as given: nothing here adds BOS, so callers write `[1, ...]` themselves.
 *
 * One Llama instance and one loaded model per path are kept between calls; each call gets a fresh
 * context, so no KV state leaks from one call to the next. Call `disposeLlamaCpp()` in `afterAll`.
 */
import {
  getLlama,
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  type ControlledEvaluateInputItem,
  type Llama,
  type LlamaContext,
  type LlamaContextOptions,
  LlamaEmbeddingContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';

// Pinned: node-llama-cpp's default uses every core, and on these 2-core machines GGML's spinning
// threads contend with everything else. 256 greedy tokens of stories260K: 0.26 s with 1 thread, 4.7 s with 2.
const THREADS = 1;

let llamaPromise: Promise<Llama> | undefined;
const models = new Map<string, Promise<LlamaModel>>();
/** Vocabulary-only loads (a GGUF with no tensors), kept apart from the full models above. */
const vocabs = new Map<string, Promise<LlamaModel>>();
/** Whether a load was refused since the backend started (disposeLlamaCpp). */
let loadRefused = false;

function loadLlama(): Promise<Llama> {
  llamaPromise ??= getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: THREADS,
    // Warnings such as "bad special token ... using default id -1" are noise for small GGUFs.
    logLevel: LlamaLogLevel.error,
  });
  return llamaPromise;
}

function loadModel(modelPath: string): Promise<LlamaModel> {
  let model = models.get(modelPath);
  if (!model) {
    model = loadLlama().then((llama) => llama.loadModel({ modelPath, gpuLayers: 0 }));
    models.set(modelPath, model);
    model.catch(() => models.delete(modelPath));
  }
  return model;
}

// node-llama-cpp logs "missing tensor 'token_embd.weight'" for such a file (seen with 3.22.1; the
// vocab-only load itself succeeds, and tokenize/detokenize work on it).
function loadVocab(modelPath: string): Promise<LlamaModel> {
  let model = vocabs.get(modelPath);
  if (!model) {
    model = loadLlama().then((llama) => llama.loadModel({ modelPath, vocabOnly: true }));
    vocabs.set(modelPath, model);
    model.catch(() => {
      vocabs.delete(modelPath);
      loadRefused = true;
    });
  }
  return model;
}

/**
 * The KV cache types llama.cpp is run with (type_k / type_v). Lantern's default tests compare f32
 * with f32; tests of Lantern's f16 and Q8_0 caches pass the same type here. llama.cpp quantizes V
 * only with flash attention, so Q8_0 turns it on (its CPU path then rounds Q to the K type too).
 */
export type LlamaCppKvCache = 'F32' | 'F16' | 'Q8_0';

/** Runs `fn` with a single-sequence CPU context big enough for `nTokens`, then frees it. */
async function withSequence<T>(
  modelPath: string,
  nTokens: number,
  fn: (sequence: LlamaContextSequence) => Promise<T>,
  kvCache: LlamaCppKvCache = 'F32',
): Promise<T> {
  const model = await loadModel(modelPath);
  const context = await model.createContext({
    // A context of exactly the prompt's length gave wrong logits for some models (seen with
    // node-llama-cpp 3.22 on 9-token prompts); a little headroom gives llama.cpp's usual result.
    contextSize: nTokens + 8,
    sequences: 1,
    threads: THREADS,
    flashAttention: kvCache === 'Q8_0',
    // Like with like: llama.cpp keeps its KV cache in F16 by default, Lantern's tests pick the type.
    experimentalKvCacheKeyType: kvCache,
    experimentalKvCacheValueType: kvCache,
  });
  try {
    // llama.cpp rounds n_ctx up (to 256); anything shorter than asked would mean a silent context shift.
    if (context.contextSize < nTokens) {
      throw new Error(`llama.cpp gave a context of ${context.contextSize} tokens, ${nTokens} are needed`);
    }
    return await fn(context.getSequence());
  } finally {
    await context.dispose();
  }
}

/** node-llama-cpp brands token ids; ours are plain numbers from the GGUF vocabulary. */
function asTokens(promptIds: number[]): Token[] {
  if (promptIds.length === 0) throw new Error('llama.cpp oracle: promptIds is empty (pass [bos, ...] explicitly)');
  return promptIds as Token[];
}

/** Greedy continuation: evaluates promptIds exactly as given (no BOS added) and returns the next n greedy token ids. */
export async function llamaCppGreedy(modelPath: string, promptIds: number[], n: number, kvCache: LlamaCppKvCache = 'F32'): Promise<number[]> {
  const prompt = asTokens(promptIds);
  if (n <= 0) return [];
  // temperature 0 makes node-llama-cpp's sampler chain a lone llama_sampler_init_greedy (plus
  // token bias / repeat penalty samplers, which are only added when those options are given).
  const withNext = (id: Token): ControlledEvaluateInputItem => [id, { generateNext: { token: true, options: { temperature: 0 } } }];
  return withSequence(modelPath, promptIds.length + n, async (sequence) => {
    const ids: number[] = [];
    let input: ControlledEvaluateInputItem[] = [...prompt.slice(0, -1), withNext(prompt[prompt.length - 1])];
    while (ids.length < n) {
      const out = await sequence.controlledEvaluate(input);
      const token = out[input.length - 1]?.next.token;
      if (token == null) throw new Error(`llama.cpp oracle: no token sampled at step ${ids.length}`);
      ids.push(token);
      // controlledEvaluate does not stop at EOS: greedy decoding continues through it like the references do.
      input = [withNext(token)];
    }
    return ids;
  }, kvCache);
}

/**
 * Greedy continuation under a GBNF grammar (llama.cpp's own grammar sampler, through
 * node-llama-cpp's LlamaGrammar): at most n ids after promptIds as given, ending early at an
 * end-of-generation token, which is not returned (`eog` says whether one came).
 */
export async function llamaCppGrammarGreedy(modelPath: string, promptIds: number[], gbnf: string, n: number): Promise<{ ids: number[]; eog: boolean }> {
  const prompt = asTokens(promptIds);
  const llama = await loadLlama();
  const model = await loadModel(modelPath);
  const grammar = await llama.createGrammar({ grammar: gbnf });
  return withSequence(modelPath, promptIds.length + n, async (sequence) => {
    const state = new LlamaGrammarEvaluationState({ model, grammar });
    const ids: number[] = [];
    // The sampler chain at temperature 0 is the grammar, then greedy; the grammar accepts each pick.
    for await (const token of sequence.evaluate(prompt, { temperature: 0, grammarEvaluationState: state, yieldEogToken: true })) {
      if (model.isEogToken(token)) return { ids, eog: true };
      ids.push(token);
      if (ids.length >= n) break;
    }
    return { ids, eog: false };
  });
}

/** Next-token logits (full vocab, raw, not softmaxed) after the last prompt id. */
export async function llamaCppLogits(modelPath: string, promptIds: number[], kvCache: LlamaCppKvCache = 'F32'): Promise<Float32Array> {
  const prompt = asTokens(promptIds);
  const model = await loadModel(modelPath);
  const nVocab = vocabSize(model);
  return withSequence(modelPath, promptIds.length, async (sequence) => {
    const last: ControlledEvaluateInputItem = [
      prompt[prompt.length - 1],
      { generateNext: { logits: true, options: { temperature: 0 } } },
    ];
    const out = await sequence.controlledEvaluate([...prompt.slice(0, -1), last]);
    // A Map<token, logit>, sorted by logit, read from the greedy sampler's candidates before it picks.
    const map = out[promptIds.length - 1]?.next.logits;
    if (!map || map.size !== nVocab) {
      throw new Error(`llama.cpp oracle: expected ${nVocab} logits, got ${map?.size ?? 'none'}`);
    }
    const logits = new Float32Array(nVocab); // [n_vocab] f32
    for (const [token, logit] of map) logits[token] = logit;
    return logits;
  }, kvCache);
}

/**
 * llama.cpp's context shift: evaluates promptIds, erases positions [erase.start, erase.end) from
 * the sequence (node-llama-cpp's eraseContextTokenRanges: llama_memory_seq_rm, then seq_add moves
 * the later cells down by the erased count, and the next decode re-rotates their K: the K-shift),
 * then evaluates `next` and returns the next-token logits after its last id.
 */
export async function llamaCppShiftedLogits(
  modelPath: string, promptIds: number[], erase: { start: number; end: number }, next: number[], kvCache: LlamaCppKvCache = 'F32',
): Promise<Float32Array> {
  const prompt = asTokens(promptIds);
  const after = asTokens(next);
  const nVocab = vocabSize(await loadModel(modelPath));
  return withSequence(modelPath, promptIds.length, async (sequence) => {
    await sequence.controlledEvaluate(prompt);
    await sequence.eraseContextTokenRanges([erase]);
    const last: ControlledEvaluateInputItem = [after[after.length - 1], { generateNext: { logits: true, options: { temperature: 0 } } }];
    const out = await sequence.controlledEvaluate([...after.slice(0, -1), last]);
    const map = out[after.length - 1]?.next.logits;
    if (!map || map.size !== nVocab) throw new Error(`llama.cpp oracle: expected ${nVocab} logits, got ${map?.size ?? 'none'}`);
    const logits = new Float32Array(nVocab); // [n_vocab] f32
    for (const [token, logit] of map) logits[token] = logit;
    return logits;
  }, kvCache);
}

/**
 * Raw logits at every position from `from` on, evaluated in one pass over promptIds as given:
 * entry i is [n_vocab] f32, the next-token logits after promptIds[0 .. from + i].
 */
export async function llamaCppLogitsFrom(modelPath: string, promptIds: number[], from: number): Promise<Float32Array[]> {
  const prompt = asTokens(promptIds);
  if (!(from >= 0 && from < promptIds.length)) throw new Error(`llama.cpp oracle: from ${from} is outside the ${promptIds.length} prompt ids`);
  const model = await loadModel(modelPath);
  const nVocab = vocabSize(model);
  return withSequence(modelPath, promptIds.length, async (sequence) => {
    const input: ControlledEvaluateInputItem[] = prompt.map((id, i) =>
      i < from ? id : [id, { generateNext: { logits: true, options: { temperature: 0 } } }]);
    const out = await sequence.controlledEvaluate(input);
    return out.slice(from).map((item, i) => {
      const map = item?.next.logits;
      if (!map || map.size !== nVocab) throw new Error(`llama.cpp oracle: expected ${nVocab} logits at position ${from + i}, got ${map?.size ?? 'none'}`);
      const logits = new Float32Array(nVocab); // [n_vocab] f32
      for (const [token, logit] of map) logits[token] = logit;
      return logits;
    });
  });
}

/**
 * llama.cpp's embedding of `ids` as given (BOS included by the caller; node-llama-cpp adds BOS, and
 * EOS where the model adds it, only when they are missing): a context with embeddings on, pooled as
 * the GGUF's {arch}.pooling_type says (llama-graph.cpp build_pooling; the last token with none),
 * over the final hidden states after the output norm. Not normalized ([n_embd], f64 as returned).
 */
export async function llamaCppEmbedding(modelPath: string, ids: number[], kvCache: LlamaCppKvCache = 'F32'): Promise<number[]> {
  const model = await loadModel(modelPath);
  // createEmbeddingContext takes no KV cache type: its context is made here as it makes one (an
  // embeddings context), with the cache like Lantern's under test (an F16 cache rounds Q to f16 too).
  const llamaContext = await model.createContext({
    contextSize: ids.length + 8,
    sequences: 1,
    threads: THREADS,
    flashAttention: kvCache === 'Q8_0',
    experimentalKvCacheKeyType: kvCache,
    experimentalKvCacheValueType: kvCache,
    _embeddings: true,
  } as LlamaContextOptions);
  const context = new (LlamaEmbeddingContext as unknown as new (options: { _llamaContext: LlamaContext }) => LlamaEmbeddingContext)({ _llamaContext: llamaContext });
  try {
    return [...(await context.getEmbeddingFor(asTokens(ids))).vector];
  } finally {
    await context.dispose();
  }
}

/** llama.cpp's tokenization of `text`: BOS (when the model asks for it) + SentencePiece/BPE ids. */
export async function llamaCppTokenize(modelPath: string, text: string): Promise<number[]> {
  const model = await loadModel(modelPath);
  const ids = model.tokenize(text, false);
  const bos = model.tokens.bos;
  return model.tokens.shouldPrependBosToken && bos != null ? [bos, ...ids] : ids;
}

/** llama.cpp's detokenization of `ids` (special tokens rendered as empty text). */
export async function llamaCppDetokenize(modelPath: string, ids: number[]): Promise<string> {
  return (await loadModel(modelPath)).detokenize(ids as Token[]);
}

/**
 * llama.cpp's tokenization of `text` with a vocabulary-only GGUF (no tensors): add_special = false,
 * and special-token text parsed only when `parseSpecial` is set (common_tokenize).
 */
export async function llamaCppVocabTokenize(vocabPath: string, text: string, parseSpecial = false): Promise<number[]> {
  return (await loadVocab(vocabPath)).tokenize(text, parseSpecial).map(Number);
}

/** llama.cpp's llama_detokenize with a vocabulary-only GGUF: control tokens rendered only when `special` is set. */
export async function llamaCppVocabDetokenize(vocabPath: string, ids: number[], special = false): Promise<string> {
  return (await loadVocab(vocabPath)).detokenize(ids as Token[], special);
}

/** The ids llama.cpp ends generation at (llama_vocab_is_eog), for a vocabulary-only GGUF. */
export async function llamaCppVocabEog(vocabPath: string): Promise<number[]> {
  const model = await loadVocab(vocabPath);
  const eog: number[] = [];
  for (let id = 0; id < vocabSize(model); id++) if (model.isEogToken(id as Token)) eog.push(id);
  return eog;
}

/** Frees every loaded model and the llama.cpp backend; the next call loads them again. */
export async function disposeLlamaCpp(): Promise<void> {
  const loaded = [...models.values(), ...vocabs.values()];
  models.clear();
  vocabs.clear();
  for (const model of loaded) await (await model.catch(() => undefined))?.dispose();
  const llama = await llamaPromise?.catch(() => undefined);
  llamaPromise = undefined;
  // node-llama-cpp 3.22's Llama.dispose() never settles after a refused loadModel once other models
  // were loaded and disposed (seen in tokenizer-families.test.ts); the backend then goes with the
  // test worker's process instead.
  if (loadRefused) {
    loadRefused = false;
    return;
  }
  await llama?.dispose();
}

function vocabSize(model: LlamaModel): number {
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  if (!tokens) throw new Error('llama.cpp oracle: the GGUF has no tokenizer.ggml.tokens');
  return tokens.length;
}
