import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { LanternError } from '../errors.ts';
import { readGGUF } from '../model/gguf.ts';
import { tokenizerFromGGUF } from '../model/tokenizer/index.ts';
import { chatPromptIds, chatTemplateOf, type ChatMessage, systemPromptLength } from '../runtime/chat.ts';
import { modelConfig } from '../runtime/models/index.ts';
import { perplexity as scoreText, perplexityChunks, type PerplexityOptions } from '../runtime/perplexity.ts';
import type { GeneratedToken, GenerateOptions, TokenLogprob } from '../runtime/types.ts';
import { TOP_LOGPROBS_MAX } from '../runtime/logprobs.ts';
import type { KvCacheType } from '../kernels/ops.ts';
import { openFileSource } from './file-source.ts';
import { type CliModel, convertCliModel, isCheckpoint, openCliModel, writeSource } from './model-source.ts';
import { QUANTIZE_CHOICES, type QuantizeChoice } from '../model/hf/convert.ts';
import { openSession, type ModelSession } from './session.ts';

/**
 * `lantern`, the command line: generate, chat, logits, perplexity, embed, tokenize, bench. bin/lantern.mjs loads this file through
 * Vite, so the runtime's `?raw` shader imports work without a build.
 * Exit codes: 0 done, 1 a LanternError (or any failure), 2 bad arguments, 130 interrupted.
 */

const USAGE = `Usage: lantern <command> [options]

Commands:
  generate  --model FILE (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N] [--temperature T]
            [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--stop TEXT]...
            [--context N] [--kv-cache f16|q8_0|f32] [--json-schema FILE | --json-object | --grammar FILE]
            [--json [--logprobs N]]
            Streams the continuation to stdout. --prompt is tokenized with the model's own BOS
            rules; --prompt-ids are used as given. Default: 64 tokens, temperature 0 (greedy).
            --stop (repeatable) ends before that text, which is not printed. --logprobs N (0..20,
            with --json) adds "logprobs": each token's log-probability at temperature 1 (the
            log-softmax of the raw logits) and the N most likely tokens at its step.
            --json-schema FILE (a JSON Schema), --json-object (any JSON object) and --grammar FILE
            (GBNF, llama.cpp's format) constrain the output: every token keeps it a prefix of the
            language, so output that ends by itself (not by --max-tokens) is complete.
  chat      --model FILE --message TEXT [--system TEXT] [--chat-template FILE] [sampling and
            constraint flags as for generate] [--json [--logprobs N]]
            --context-overflow shift [--keep N]: at a full context, drop the older half of the
            tokens after the first N (default: the BOS; for chat, the system prompt) and go on;
            default error: stop with finishReason "length".
            One assistant reply to --message, in the model's chat template (or --chat-template,
            a Jinja file); a model without one is an error NO_CHAT_TEMPLATE.
  logits    --model FILE --prompt-ids 1,2,3 [--context N] [--kv-cache T] [--json]
            Next-token logits after the last id: {"logits":[...]} with --json, else the top 10.
  perplexity --model FILE --text-file FILE [--context N] [--kv-cache T] [--json]
            Perplexity of the text, windowed as llama.cpp's llama-perplexity does: the text is
            tokenized once (BOS first where the model adds one) and cut into chunks of N tokens
            (default 512, or the model's context if shorter; the tail is dropped), each run from
            an empty context with its first token replaced by BOS where the model adds one. Only
            each chunk's second half is scored: the logits at positions N/2 .. N-2 predict the
            next token. Prints the running estimate after each chunk ([1]x,[2]y,...), then
            PPL = exp(mean negative log-likelihood) +/- its standard error. The text must give
            at least 2N tokens; N may not exceed the model's context.
  embed     --model FILE (--text TEXT | --text-file FILE) [--context N] [--json]
            The text's embedding: its final hidden states (after the output norm), pooled as the
            model declares ({arch}.pooling_type; the mean where it declares none, as chat models
            do: they embed too, as well as they happen to) and L2-normalized. The text is
            tokenized with the model's BOS/EOS rules. Prints the numbers on one line, or
            {"embedding":[...],"tokens":N} with --json.
  tokenize  --model FILE (--text TEXT | --text-file FILE) [--add-special] [--no-parse-special] [--json]
            No GPU needed. BOS/EOS only with --add-special; special tokens written as text
            (e.g. <s>) are parsed unless --no-parse-special, as llama.cpp's llama-tokenize does.
  bench     --model FILE [--prompt-tokens N] [--gen-tokens N] [--context N] [--kv-cache T] [--profile]
            [--op-costs] [--json-schema FILE] [--positions P,P,...] [--json]
            Prefill (N=128 prompt tokens) and greedy decode (N=64) tokens/s, the weight bandwidth
            decoding reaches and the adapter's streaming-read bandwidth, on GPU timestamps where
            the adapter has them. --profile adds each kernel's GPU time per decode step;
            --op-costs what each kind of WGSL operation costs on the adapter, in u32 adds.
            --context: the KV cache's length (default: what the run needs); the GPU memory by
            category is reported (gpuBytes). --json-schema adds a greedy decode of N tokens
            constrained to the schema: the grammar mask's CPU time per token, median and p99.
            category is reported (gpuBytes). --positions adds decode tokens/s from each position
            of the context (N steps after a warm-up one, over whatever the KV cache holds) and the
            bytes a step reads there (weights + the K and V rows attention reads), with the ratios
            decode(last)/decode(first) and bytes(first)/bytes(last).
  convert   --model DIR|URL --out FILE.gguf [--type auto|none|f16|q8_0|q4_0|q4_k] [--json]
            Writes a Hugging Face model (a folder with config.json and safetensors weights, or
            https://huggingface.co/ORG/NAME[@REV]) as one GGUF: llama.cpp's architecture and keys
            where llama.cpp has the family, Lantern's gpt-neo (docs/gguf-gpt-neo.md) for GPT-Neo.
            --type auto: q8_0 for F32/BF16 weights, none (kept as stored) for F16.
  help      This text.

--model is a .gguf file, or a Hugging Face model (folder or hub address), converted on the way
in; --quantize auto|none|f16|q8_0|q4_0|q4_k says to what (default auto, as for convert --type).
--kv-cache: how the KV cache stores keys and values (default f16; q8_0 is about half of that).
--json prints one JSON object on stdout; errors then print as {"error":{"code","message"}}.

Environment:
  LANTERN_GPU=dawn|chromium  Force the WebGPU used (default: Dawn on a real GPU, else Chromium).
  CHROMIUM_PATH=FILE         The Chromium to use (default: /usr/bin/chromium).
`;

const OPTIONS = {
  model: { type: 'string' },
  quantize: { type: 'string' },
  out: { type: 'string' },
  type: { type: 'string' },
  prompt: { type: 'string' },
  'prompt-ids': { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  seed: { type: 'string' },
  context: { type: 'string' },
  text: { type: 'string' },
  'text-file': { type: 'string' },
  'add-special': { type: 'boolean' },
  'no-parse-special': { type: 'boolean' },
  'prompt-tokens': { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repeat-penalty': { type: 'string' },
  stop: { type: 'string', multiple: true },
  message: { type: 'string' },
  system: { type: 'string' },
  'chat-template': { type: 'string' },
  'gen-tokens': { type: 'string' },
  profile: { type: 'boolean' },
  'op-costs': { type: 'boolean' },
  positions: { type: 'string' },
  'kv-cache': { type: 'string' },
  logprobs: { type: 'string' },
  'json-schema': { type: 'string' },
  'json-object': { type: 'boolean' },
  grammar: { type: 'string' },
  'context-overflow': { type: 'string' },
  keep: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Which options each command takes; any other is a usage error. */
const COMMAND_OPTIONS: Record<string, readonly (keyof typeof OPTIONS)[]> = {
  convert: ['model', 'out', 'type', 'json'],
  bench: ['model', 'quantize', 'prompt-tokens', 'gen-tokens', 'context', 'kv-cache', 'profile', 'op-costs', 'json', 'json-schema', 'positions'],
  generate: ['model', 'quantize', 'prompt', 'prompt-ids', 'max-tokens', 'temperature', 'seed', 'context', 'kv-cache', 'json', 'top-k', 'top-p', 'min-p', 'repeat-penalty', 'stop', 'logprobs', 'json-schema', 'json-object', 'grammar', 'context-overflow', 'keep'],
  chat: ['model', 'quantize', 'message', 'system', 'chat-template', 'max-tokens', 'temperature', 'seed', 'context', 'kv-cache', 'json', 'top-k', 'top-p', 'min-p', 'repeat-penalty', 'stop', 'logprobs', 'json-schema', 'json-object', 'grammar', 'context-overflow', 'keep'],
  embed: ['model', 'quantize', 'text', 'text-file', 'context', 'kv-cache', 'json'],
  logits: ['model', 'quantize', 'prompt-ids', 'context', 'kv-cache', 'json'],
  perplexity: ['model', 'quantize', 'text-file', 'context', 'kv-cache', 'json'],
  tokenize: ['model', 'quantize', 'text', 'text-file', 'add-special', 'no-parse-special', 'json'],
};

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

class UsageError extends Error {}

const EXIT_INTERRUPTED = 130;

export async function main(argv: string[]): Promise<number> {
  let json = argv.includes('--json'); // until parsing says otherwise: usage errors are JSON too
  let command: string;
  let values: Values;
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    values = parsed.values as Values;
    json = values.json ?? false;
    command = parsed.positionals[0] ?? 'help';
    if (values.help || command === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (!(command in COMMAND_OPTIONS)) throw new UsageError(`unknown command "${command}"`);
    if (parsed.positionals.length > 1) throw new UsageError(`unexpected argument "${parsed.positionals[1]}"`);
    for (const name of Object.keys(values) as (keyof typeof OPTIONS)[]) {
      if (!COMMAND_OPTIONS[command].includes(name)) throw new UsageError(`${command} does not take --${name}`);
    }
    if (!values.model) throw new UsageError(`${command} needs --model FILE`);
  } catch (e) {
    // parseArgs reports unknown options and missing values as TypeErrors with an ERR_PARSE_ARGS code.
    if (!(e instanceof UsageError) && !String((e as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) throw e;
    return reportUsageError((e as Error).message, json);
  }

  // Ctrl-C closes the browser and server before exiting; a second Ctrl-C exits at once.
  let session: ModelSession | undefined;
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    process.stderr.write('\ninterrupted\n');
    void session?.close();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let model: CliModel | undefined;
  try {
    if (command === 'convert') {
      await convert(values, json);
      return 0;
    }
    // A Hugging Face model (a folder or a hub address) is converted into a GGUF first.
    model = await openCliModel(values.model!, quantizeChoice(values.quantize));
    if (model.converted) {
      process.stderr.write(`converted ${values.model} (${model.converted.architecture}, ${formatBytes(model.converted.checkpointBytes)} of weights) at ${model.converted.quantize}\n`);
    }
    values = { ...values, model: model.path };
    if (command === 'tokenize') {
      await tokenize(values, json);
      return 0;
    }
    if (command === 'perplexity') {
      const request = await perplexityRequest(values); // tokenized and checked before any browser starts
      session = await openSession(values.model!, { contextLength: request.nCtx, kvCache: parseKvCache(values['kv-cache']) });
      if (interrupted) return EXIT_INTERRUPTED;
      await perplexity(session, request, json);
      return 0;
    }
    if (command === 'chat') {
      const request = await chatRequest(values); // the template is rendered before any browser starts
      session = await openSession(values.model!, { contextLength: request.contextLength, kvCache: parseKvCache(values['kv-cache']) });
      if (interrupted) return EXIT_INTERRUPTED;
      await chat(session, request, json);
      return 0;
    }
    if (command === 'embed') {
      const text = await embedText(values); // read before any browser starts
      session = await openSession(values.model!, { contextLength: parseCount('--context', values.context), kvCache: parseKvCache(values['kv-cache']) });
      if (interrupted) return EXIT_INTERRUPTED;
      await embed(session, text, json);
      return 0;
    }
    const request = command === 'generate' ? generateRequest(values) : command === 'bench' ? benchRequest(values) : logitsRequest(values);
    // Constraint files are read (and a schema parsed) before any browser starts.
    if (request.kind === 'generate') Object.assign(request.sampling, await constraintFlags(values));
    if (request.kind === 'bench' && values['json-schema'] !== undefined) request.jsonSchema = await readJsonSchema(values['json-schema']);
    const kvCache = parseKvCache(values['kv-cache']);
    // Reading the header first turns a bad file into an error before any browser starts.
    const source = await openFileSource(values.model!);
    try {
      await readGGUF(source);
    } finally {
      await source.close();
    }
    session = await openSession(values.model!, { contextLength: request.contextLength, kvCache });
    if (interrupted) return EXIT_INTERRUPTED;
    if (request.kind === 'generate') await generate(session, request, values.prompt, json);
    else if (request.kind === 'bench') await bench(session, request, values.model!, json);
    else await logits(session, request.promptIds, json);
    return 0;
  } catch (e) {
    if (interrupted) return EXIT_INTERRUPTED;
    if (e instanceof UsageError) return reportUsageError(e.message, json);
    reportError(e, json);
    return 1;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await session?.close();
    await model?.dispose();
  }
}

function quantizeChoice(value: string | undefined): QuantizeChoice | 'auto' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'auto' && !QUANTIZE_CHOICES.includes(value as QuantizeChoice)) {
    throw new UsageError(`--quantize must be auto or one of ${QUANTIZE_CHOICES.join(', ')}, not "${value}"`);
  }
  return value as QuantizeChoice | 'auto';
}

/** `lantern convert`: a Hugging Face model written as one GGUF file. */
async function convert(values: Values, json: boolean): Promise<void> {
  if (values.out === undefined) throw new UsageError('convert needs --out FILE.gguf');
  const quantize = quantizeChoice(values.type) ?? 'auto';
  if (!isCheckpoint(values.model!)) {
    throw new LanternError('BAD_ARGUMENT', `${values.model} is not a Hugging Face model (a folder with config.json, or a hub address); convert reads those.`);
  }
  const converted = await convertCliModel(values.model!, quantize);
  try {
    await writeSource(converted.source, values.out);
  } finally {
    await converted.close();
  }
  const { source, close: _, ...about } = converted;
  if (json) writeJSON({ out: values.out, bytes: source.size, ...about });
  else process.stdout.write(`wrote ${values.out}: ${converted.architecture}, ${converted.quantize}, ${formatBytes(source.size)} (from ${formatBytes(converted.checkpointBytes)} of weights)\n`);
}

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

interface GenerateRequest {
  kind: 'generate';
  promptIds?: number[];
  maxTokens: number;
  temperature: number;
  seed?: number;
  contextLength?: number;
  /** --top-k, --top-p, --min-p, --repeat-penalty, --stop. */
  sampling: GenerateOptions;
}

function generateRequest(values: Values): GenerateRequest {
  if ((values.prompt === undefined) === (values['prompt-ids'] === undefined)) {
    throw new UsageError('generate needs exactly one of --prompt TEXT or --prompt-ids 1,2,3');
  }
  const temperature = values.temperature === undefined ? 0 : Number(values.temperature);
  if (!Number.isFinite(temperature) || temperature < 0) throw new UsageError(`--temperature must be a number >= 0, not "${values.temperature}"`);
  return {
    kind: 'generate',
    promptIds: values['prompt-ids'] === undefined ? undefined : parseIds(values['prompt-ids']),
    maxTokens: parseCount('--max-tokens', values['max-tokens']) ?? 64,
    temperature,
    seed: values.seed === undefined ? undefined : parseInteger('--seed', values.seed, 0),
    contextLength: parseCount('--context', values.context),
    sampling: samplingFlags(values),
  };
}

function logitsRequest(values: Values): { kind: 'logits'; promptIds: number[]; contextLength?: number } {
  if (values['prompt-ids'] === undefined) throw new UsageError('logits needs --prompt-ids 1,2,3');
  return { kind: 'logits', promptIds: parseIds(values['prompt-ids']), contextLength: parseCount('--context', values.context) };
}

async function generate(session: ModelSession, request: GenerateRequest, prompt: string | undefined, json: boolean): Promise<void> {
  const promptIds = request.promptIds ?? (await session.encode(prompt!, true));
  const tokens: GeneratedToken[] = [];
  const stats = await session.generate(
    promptIds,
    { maxTokens: request.maxTokens, temperature: request.temperature, seed: request.seed, ...request.sampling },
    (token) => {
      tokens.push(token);
      if (!json) process.stdout.write(token.text);
    },
  );
  const text = tokens.map((t) => t.text).join('');
  const prefill = stats?.prefillTokensPerSecond ?? null;
  const decode = stats?.decodeTokensPerSecond ?? null;
  if (json) {
    writeJSON({
      promptTokens: promptIds,
      tokens: tokens.map((t) => t.id),
      text,
      finishReason: stats?.finishReason ?? null,
      ...(request.sampling.logprobs === undefined ? {} : { logprobs: jsonLogprobs(tokens) }),
      prefillTokensPerSecond: prefill,
      decodeTokensPerSecond: decode,
      adapter: session.info.adapter,
    });
  } else {
    const speed = (value: number | null) => (value === null ? '?' : value.toFixed(1));
    process.stdout.write('\n');
    process.stderr.write(
      `${promptIds.length} prompt tokens at ${speed(prefill)} tok/s, ${tokens.length} generated at ${speed(decode)} tok/s` +
        ` on ${session.info.adapter} (${session.backend}); KV cache ${(session.info.kvBytes / 1e6).toFixed(2)} MB, ${session.info.kvBytesPerToken} bytes per token of context\n` +
        `loaded: ${session.info.loadSummary}\n`,
    );
  }
}

interface BenchRequest {
  kind: 'bench';
  promptTokens: number;
  genTokens: number;
  profile: boolean;
  opCosts: boolean;
  positions?: number[];
  contextLength: number;
  /** --json-schema: also time a constrained decode. */
  jsonSchema?: Record<string, unknown>;
}

function benchRequest(values: Values): BenchRequest {
  const promptTokens = parseCount('--prompt-tokens', values['prompt-tokens']) ?? 128;
  const genTokens = parseCount('--gen-tokens', values['gen-tokens']) ?? 64;
  // Headroom: a generation that ends early (end-of-generation token) is restarted a little further on.
  const needed = promptTokens + genTokens + 16;
  const positions = values.positions === undefined ? undefined : values.positions.split(',').map((p) => parseInteger('--positions', p.trim(), 0));
  // A position takes a warm-up step and --gen-tokens more.
  const reach = positions ? Math.max(...positions) + 1 + genTokens : 0;
  const contextLength = parseCount('--context', values.context) ?? Math.max(needed, reach);
  if (contextLength < needed) throw new UsageError(`--context must be at least ${needed} (--prompt-tokens + --gen-tokens + 16), not ${contextLength}`);
  if (contextLength < reach) throw new UsageError(`--context must be at least ${reach} (the last of --positions + 1 + --gen-tokens), not ${contextLength}`);
  return { kind: 'bench', promptTokens, genTokens, profile: Boolean(values.profile), opCosts: Boolean(values['op-costs']), positions, contextLength };
}

/** `lantern bench`: one object with --json (the keys of BenchResult, plus model file and backend), else a few lines. */
async function bench(session: ModelSession, request: BenchRequest, modelFile: string, json: boolean): Promise<void> {
  const result = await session.bench({ promptTokens: request.promptTokens, genTokens: request.genTokens, profile: request.profile, opCosts: request.opCosts, jsonSchema: request.jsonSchema, positions: request.positions });
  if (json) {
    writeJSON({ ...result, model: basename(modelFile), modelName: result.model, backend: session.backend });
    return;
  }
  const f = (value: number) => value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2);
  process.stdout.write(
    `${basename(modelFile)} on ${result.adapter} (${session.backend}), timed by ${result.timing}\n` +
      `prefill  ${request.promptTokens} tokens: ${f(result.prefillTokensPerSecond)} tok/s (wall clock ${f(result.wallClock.prefillTokensPerSecond)})\n` +
      `decode   ${request.genTokens} tokens: ${f(result.decodeTokensPerSecond)} tok/s (wall clock ${f(result.wallClock.decodeTokensPerSecond)})\n` +
      `weights  ${f(result.weightBytesPerToken / 1e6)} MB per token: decode reads ${f(result.decodeGBps)} GB/s, ` +
      `${f(100 * result.decodeBandwidthFraction)}% of the ${f(result.streamReadGBps)} GB/s a streaming read gets (${result.streamPattern} pattern)\n` +
      `kv cache ${f(result.kvBytes.total / 1e6)} MB (${result.kvCache}) at ${session.info.contextLength} tokens of context, ${result.kvBytes.perToken} bytes per token\n` +
      `gpu      ${f(result.gpuBytes.total / 1e6)} MB: weights ${f(result.gpuBytes.weights / 1e6)}, kv cache ${f(result.gpuBytes.kvCache / 1e6)}, ` +
      `activations ${f(result.gpuBytes.activations / 1e6)}, staging ${f(result.gpuBytes.staging / 1e6)}\n`,
  );
  if (result.grammar) {
    const g = result.grammar;
    process.stdout.write(`grammar  ${g.tokens} tokens under --json-schema (${g.finishReason}): mask ${f(g.maskMsMedian)} ms per token median, ${f(g.maskMsP99)} ms p99; ${f(g.decodeTokensPerSecond)} tok/s\n`);
  }
  if (result.positions) {
    process.stdout.write(`positions decode ${request.genTokens} tokens from each position of the context of ${session.info.contextLength}\n`);
    for (const p of result.positions.at) {
      process.stdout.write(`  at ${String(p.position).padStart(6)}: ${f(p.decodeTokensPerSecond)} tok/s (wall clock ${f(p.wallClockDecodeTokensPerSecond)}), ${f(p.bytesPerStep / 1e6)} MB read per step\n`);
    }
    const r = result.positions.ratios;
    if (r) process.stdout.write(`  decode(last)/decode(first) ${r.decode.toFixed(3)}, bytes(first)/bytes(last) ${r.bytes.toFixed(3)}\n`);
  }
  if (result.profile === null) process.stdout.write('profile  not available: this device has no timestamp-query\n');
  if (result.profile) {
    const total = result.profile.reduce((sum, p) => sum + p.ms, 0);
    process.stdout.write(`profile  one decode step, each dispatch in its own timed pass: ${f(total)} ms\n`);
    for (const p of result.profile) {
      process.stdout.write(`  ${p.kernel.padEnd(40)} ${String(Math.round(p.dispatches)).padStart(5)} dispatches ${f(p.ms).padStart(7)} ms ${f((100 * p.ms) / total).padStart(5)}%\n`);
    }
  }
  if (result.opCosts) {
    process.stdout.write('op costs  per kind of WGSL operation: 1e9 per second over all invocations, and in u32 adds\n');
    for (const c of result.opCosts) process.stdout.write(`  ${c.op.padEnd(32)} ${f(c.gOpsPerSecond).padStart(7)} G/s ${f(c.adds).padStart(7)} adds\n`);
  }
}

/** --kv-cache: the KV cache's form, or undefined for the runtime's default. */
function parseKvCache(value: string | undefined): KvCacheType | undefined {
  if (value === undefined) return undefined;
  if (value !== 'f16' && value !== 'q8_0' && value !== 'f32') throw new UsageError(`--kv-cache must be f16, q8_0 or f32, not "${value}"`);
  return value;
}

/** --top-k, --top-p, --min-p, --repeat-penalty and --stop, shared by generate and chat. */
function samplingFlags(values: Values): GenerateOptions {
  const number = (name: string, value: string | undefined, ok: (n: number) => boolean, want: string) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (value.trim() === '' || !ok(n)) throw new UsageError(`--${name} must be ${want}, not "${value}"`);
    return n;
  };
  return {
    topK: values['top-k'] === undefined ? undefined : parseInteger('--top-k', values['top-k'], 0),
    topP: number('top-p', values['top-p'], (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    minP: number('min-p', values['min-p'], (n) => n >= 0 && n <= 1, 'a number in [0, 1]'),
    repetitionPenalty: number('repeat-penalty', values['repeat-penalty'], (n) => n > 0 && Number.isFinite(n), 'a number > 0'),
    // parseArgs gives a repeatable option as an array.
    stop: values.stop as unknown as string[] | undefined,
    logprobs: logprobsFlag(values),
    contextOverflow: contextOverflowFlag(values['context-overflow']),
    keep: values.keep === undefined ? undefined : parseInteger('--keep', values.keep, 0),
  };
}

/** --context-overflow: error (the default) or shift. */
function contextOverflowFlag(value: string | undefined): GenerateOptions['contextOverflow'] {
  if (value === undefined) return undefined;
  if (value !== 'error' && value !== 'shift') throw new UsageError(`--context-overflow must be error or shift, not "${value}"`);
  return value;
}

/** --logprobs N: how many alternatives each token lists, 0..20; printed with --json only. */
function logprobsFlag(values: Values): number | undefined {
  if (values.logprobs === undefined) return undefined;
  const n = parseInteger('--logprobs', values.logprobs, 0);
  if (n > TOP_LOGPROBS_MAX) throw new UsageError(`--logprobs must be a whole number from 0 to ${TOP_LOGPROBS_MAX}, not "${values.logprobs}"`);
  if (!values.json) throw new UsageError('--logprobs is printed in the --json output; add --json');
  return n;
}

/** Each generated token's log-probability and its step's alternatives, with the token's text (its bytes as UTF-8). */
function jsonLogprobs(tokens: readonly GeneratedToken[]) {
  const utf8 = new TextDecoder();
  const entry = (t: TokenLogprob) => ({ id: t.id, token: utf8.decode(Uint8Array.from(t.bytes)), logprob: t.logprob, bytes: t.bytes });
  return tokens.filter((t) => t.id >= 0).map((t) => ({ ...entry({ id: t.id, logprob: t.logprob!, bytes: t.bytes! }), topLogprobs: t.topLogprobs!.map(entry) }));
}

async function embedText(values: Values): Promise<string> {
  if ((values.text === undefined) === (values['text-file'] === undefined)) {
    throw new UsageError('embed needs exactly one of --text TEXT or --text-file FILE');
  }
  const text = values.text ?? (await readTextFile(values['text-file']!));
  if (text === '') throw new UsageError('embed needs a text that is not empty');
  return text;
}

/** `lantern embed`: the vector on one line, or {"embedding", "tokens"} with --json. */
async function embed(session: ModelSession, text: string, json: boolean): Promise<void> {
  const ids = await session.encode(text, true);
  const vector = await session.embed(ids);
  if (json) writeJSON({ embedding: Array.from(vector), tokens: ids.length });
  else {
    process.stdout.write(Array.from(vector).join(' ') + '\n');
    process.stderr.write(`${ids.length} tokens, ${vector.length} dimensions, L2-normalized, on ${session.info.adapter} (${session.backend})\n`);
  }
}

interface ChatRequest {
  promptIds: number[];
  options: GenerateOptions;
  contextLength?: number;
}

/** Reads the model's header and tokenizer, renders the conversation with its chat template, tokenizes it. */
async function chatRequest(values: Values): Promise<ChatRequest> {
  if (values.message === undefined) throw new UsageError('chat needs --message TEXT');
  const messages: ChatMessage[] = [];
  if (values.system !== undefined) messages.push({ role: 'system', content: values.system });
  messages.push({ role: 'user', content: values.message });
  const template = values['chat-template'] === undefined ? undefined : await readTextFile(values['chat-template']);
  // The flags chat shares with generate, checked the same way (the prompt is the rendered template).
  const base = generateRequest({ ...values, prompt: '' });
  const source = await openFileSource(values.model!);
  try {
    const file = await readGGUF(source);
    const tokenizer = tokenizerFromGGUF(file);
    const promptIds = chatPromptIds(tokenizer, chatTemplateOf(file), messages, template);
    // A context shift keeps the system prompt unless --keep says otherwise.
    const keep = base.sampling.keep ?? (base.sampling.contextOverflow === 'shift' ? systemPromptLength(tokenizer, chatTemplateOf(file), messages, promptIds, template) : undefined);
    return {
      promptIds,
      options: { maxTokens: base.maxTokens, temperature: base.temperature, seed: base.seed, ...base.sampling, ...(await constraintFlags(values)), keep },
      contextLength: base.contextLength,
    };
  } finally {
    await source.close();
  }
}

/** `lantern chat`: the reply streamed to stdout, or one JSON object with --json. */
async function chat(session: ModelSession, request: ChatRequest, json: boolean): Promise<void> {
  const tokens: GeneratedToken[] = [];
  const stats = await session.generate(request.promptIds, request.options, (token) => {
    tokens.push(token);
    if (!json) process.stdout.write(token.text);
  });
  const text = tokens.map((t) => t.text).join('');
  if (json) {
    writeJSON({
      message: { role: 'assistant', content: text },
      finishReason: stats?.finishReason ?? null,
      promptTokens: request.promptIds.length,
      tokens: tokens.filter((t) => t.id >= 0).map((t) => t.id),
      ...(request.options.logprobs === undefined ? {} : { logprobs: jsonLogprobs(tokens) }),
      prefillTokensPerSecond: stats?.prefillTokensPerSecond ?? null,
      decodeTokensPerSecond: stats?.decodeTokensPerSecond ?? null,
      adapter: session.info.adapter,
    });
  } else {
    process.stdout.write('\n');
  }
}

async function logits(session: ModelSession, promptIds: number[], json: boolean): Promise<void> {
  const values = await session.logits(promptIds);
  if (json) {
    // JSON has no Infinity or NaN: a masked logit prints as null.
    writeJSON({ logits: Array.from(values) });
    return;
  }
  const top = Array.from(values.keys()).sort((a, b) => values[b] - values[a]).slice(0, 10);
  process.stdout.write(`top ${top.length} of ${values.length} logits after ${promptIds.length} tokens:\n`);
  for (const id of top) process.stdout.write(`${String(id).padStart(8)}  ${values[id].toFixed(4)}\n`);
}

interface PerplexityRequest extends PerplexityOptions {
  tokens: number[];
}

/** llama-perplexity's default context, used where the model's own is not shorter. */
const PERPLEXITY_DEFAULT_CONTEXT = 512;

/** Reads and tokenizes the text (BOS as the model adds it) and checks the context against the model and the text. */
async function perplexityRequest(values: Values): Promise<PerplexityRequest> {
  if (values['text-file'] === undefined) throw new UsageError('perplexity needs --text-file FILE');
  const text = await readTextFile(values['text-file']);
  const asked = parseCount('--context', values.context);
  const source = await openFileSource(values.model!);
  try {
    const file = await readGGUF(source);
    const { contextLength } = modelConfig(file).config;
    const tokenizer = tokenizerFromGGUF(file);
    if (asked !== undefined && asked > contextLength) {
      throw new LanternError('BAD_ARGUMENT', `--context ${asked} is more than this model's context of ${contextLength} tokens; give --context ${contextLength} or less.`, { context: asked, contextLength });
    }
    // llama-perplexity refuses such a vocabulary too (it asserts !add_eos): every chunk would be cut off by EOS.
    if (tokenizer.addEos) {
      throw new LanternError('BAD_ARGUMENT', "This model's tokenizer adds EOS after every text, which perplexity as llama.cpp computes it cannot take; choose another model.");
    }
    const nCtx = asked ?? Math.min(PERPLEXITY_DEFAULT_CONTEXT, contextLength);
    const request = { tokens: tokenizer.encode(text, { addSpecial: true, parseSpecial: false }), nCtx, bos: tokenizer.addBos ? tokenizer.bos : undefined };
    perplexityChunks(request.tokens, request); // too short a text is an error before any browser starts
    return request;
  } finally {
    await source.close();
  }
}

/** `lantern perplexity`: the running estimates as llama-perplexity prints them, then the final one; or one JSON object. */
async function perplexity(session: ModelSession, request: PerplexityRequest, json: boolean): Promise<void> {
  const { nCtx } = request;
  const chunks = Math.floor(request.tokens.length / nCtx);
  if (!json) {
    process.stderr.write(
      `${request.tokens.length} tokens: ${chunks} chunks of ${nCtx}, each scored at positions ${Math.floor(nCtx / 2)}..${nCtx - 2}, on ${session.info.adapter} (${session.backend})
`,
    );
  }
  const result = await scoreText(request.tokens, request, (ids, from) => session.tokenLogProbs(ids, from), (chunk, estimate) => {
    if (!json) process.stdout.write(`[${chunk}]${estimate.toFixed(4)},`);
  });
  if (json) {
    writeJSON({ ...result, chunks, adapter: session.info.adapter });
    return;
  }
  process.stdout.write(`\nFinal estimate: PPL = ${result.ppl.toFixed(4)} +/- ${result.margin.toFixed(5)}\n`);
}

async function tokenize(values: Values, json: boolean): Promise<void> {
  if ((values.text === undefined) === (values['text-file'] === undefined)) {
    throw new UsageError('tokenize needs exactly one of --text TEXT or --text-file FILE');
  }
  const text = values.text ?? (await readTextFile(values['text-file']!));
  const source = await openFileSource(values.model!);
  let tokenizer;
  try {
    tokenizer = tokenizerFromGGUF(await readGGUF(source));
  } finally {
    await source.close();
  }
  const tokens = tokenizer.encode(text, { addSpecial: values['add-special'] ?? false, parseSpecial: !values['no-parse-special'] });
  if (json) {
    writeJSON({ tokens });
    return;
  }
  // The same listing as llama-tokenize: id, then the piece it stands for.
  for (const id of tokens) process.stdout.write(`${String(id).padStart(6)} -> '${tokenizer.decode([id])}'\n`);
}

/** --json-schema FILE, --json-object, --grammar FILE: at most one, as GenerateOptions. */
async function constraintFlags(values: Values): Promise<Pick<GenerateOptions, 'grammar' | 'responseFormat'>> {
  const given = (['json-schema', 'json-object', 'grammar'] as const).filter((name) => values[name] !== undefined && values[name] !== false);
  if (given.length > 1) throw new UsageError(`--${given.join(' and --')} cannot be combined; give one constraint`);
  if (values['json-schema'] !== undefined) {
    const schema = await readJsonSchema(values['json-schema']);
    return { responseFormat: { type: 'json_schema', json_schema: { name: basename(values['json-schema']).replace(/\.json$/, ''), schema } } };
  }
  if (values['json-object']) return { responseFormat: { type: 'json_object' } };
  if (values.grammar !== undefined) return { grammar: await readTextFile(values.grammar) };
  return {};
}

/** A JSON Schema file: a JSON object (what it may contain is checked when the request starts: UNSUPPORTED_SCHEMA). */
async function readJsonSchema(path: string): Promise<Record<string, unknown>> {
  const text = await readTextFile(path);
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (e) {
    throw new LanternError('BAD_ARGUMENT', `The JSON Schema file ${path} is not JSON (${(e as Error).message}); check the file.`, { path });
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new LanternError('BAD_ARGUMENT', `The JSON Schema file ${path} holds ${Array.isArray(schema) ? 'an array' : JSON.stringify(schema)}, not a schema object; write the schema as a JSON object.`, { path });
  }
  return schema as Record<string, unknown>;
}

async function readTextFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new LanternError('BAD_ARGUMENT', `Cannot read the text file ${path}: ${(e as Error).message}; check the path.`, { path });
  }
}

function parseIds(list: string): number[] {
  const ids = list.split(',').map((part) => part.trim());
  if (ids.some((id) => !/^\d+$/.test(id))) throw new UsageError(`--prompt-ids must be token ids separated by commas, like 1,2,3, not "${list}"`);
  return ids.map(Number);
}

function parseCount(name: string, value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseInteger(name, value, 1);
}

function parseInteger(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} must be a whole number >= ${min}, not "${value}"`);
  return n;
}

function writeJSON(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function reportUsageError(message: string, json: boolean): number {
  if (json) writeJSON({ error: { code: 'BAD_ARGUMENT', message } });
  process.stderr.write(`lantern: ${message}\nRun "lantern help" for usage.\n`);
  return 2;
}

function reportError(e: unknown, json: boolean): void {
  if (e instanceof LanternError) {
    if (json) writeJSON({ error: { code: e.code, message: e.message } });
    else process.stderr.write(`error ${e.code}: ${e.message}\n`);
    return;
  }
  // Not one of ours: a bug, so the stack goes along (code INTERNAL exists only here, in the CLI).
  const error = e instanceof Error ? e : new Error(String(e));
  if (json) writeJSON({ error: { code: 'INTERNAL', message: error.message } });
  process.stderr.write(`error: ${error.stack ?? error.message}\n`);
}
