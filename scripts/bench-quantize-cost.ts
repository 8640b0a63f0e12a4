/**
 * What each `quantize` choice costs at SmolLM2-135M's shape, where no trained checkpoint is at hand:
 * how far each choice's next-token distributions move from the unquantized model's, as llama.cpp's
 * `llama-perplexity --kl-divergence` measures a quantization (scripts/lib/kl-divergence.ts).
 *
 *   nice -n 10 node scripts/run-ts.mjs scripts/bench-quantize-cost.ts [--chunks N] [--output-scale G (6)]
 *     [--choices none,q8_0,q4_0,q4_k] [--text tests/data/story.txt] [--out bench/models/smollm2-shape] [--json FILE]
 *
 * 1. Writes a LlamaForCausalLM checkpoint of SmolLM2-135M's shape (hidden 576, 30 layers, 9 heads /
 *    3 KV heads, FF 1536, vocabulary 49,152 with SmolLM2's own tokenizer.json, tied embeddings,
 *    rope theta 100000) with random weights initialised as HF initialises this config: every
 *    matrix normal with std = initializer_range (1/√576), every norm 1 (scripts/lib/hf-writer.ts,
 *    from a GGUF of scripts/lib/model-writer.ts rescaled so). With that init the logits have a std
 *    of about 1 across the vocabulary and every next-token distribution is flat (the base's mean
 *    top-1 probability is printed at each output scale, to choose by): the final norm's weight is
 *    set to --output-scale instead, a temperature on the logits that leaves the tied embedding,
 *    and so the input, as it is, so that the base model is as confident as a trained one.
 * 2. Converts it with each choice as the CLI does (src/cli/model-source.ts, src/model/hf/convert.ts).
 * 3. Runs each GGUF in Chromium on the machine's WebGPU (SwiftShader here) over the text with
 *    llama-perplexity's windowing: PPL ± as `lantern perplexity` gives it, and, against `none`
 *    (the first choice), mean KL divergence, top-1 agreement ("same top p") and RMS Δp.
 *
 * Files go under --out (git-ignored bench/models/ by default; it must be inside the repository,
 * whose dev server the page fetches them from); a checkpoint and GGUFs written with the same recipe
 * are reused.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openGpuPage } from '../src/cli/chromium-host.ts';
import { openFileSource } from '../src/cli/file-source.ts';
import { convertCliModel, writeSource } from '../src/cli/model-source.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { QUANTIZE_CHOICES, type QuantizeChoice } from '../src/model/hf/convert.ts';
import { hfTokenizerMetadata } from '../src/model/hf/tokenizer.ts';
import { tokenizerFromGGUF } from '../src/model/tokenizer/index.ts';
import { bytesSource } from '../src/storage/source.ts';
import { hfCheckpointFromGGUF, writeCheckpointDir } from './lib/hf-writer.ts';
import { writeRandomModel } from './lib/model-writer.ts';
import type { Measured, MeasureRequest } from './lib/quantize-cost-page.ts';
import { BENCH_SHAPES } from './write-bench-models.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOKENIZER_DIR = resolve(ROOT, '../shared/models/smollm2-135m-tokenizer');
const PAGE_MODULE = '/scripts/lib/quantize-cost-page.ts';
/** SmolLM2-135M's config.json: HF draws every Linear and Embedding with this std. */
const INITIALIZER_RANGE = 1 / Math.sqrt(576);
const RMS_NORM_EPS = 1e-5;

export async function main(argv: string[]): Promise<number> {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      chunks: { type: 'string' },
      'output-scale': { type: 'string', default: '6' },
      choices: { type: 'string', default: 'none,q8_0,q4_0,q4_k' },
      text: { type: 'string', default: join(ROOT, 'tests/data/story.txt') },
      context: { type: 'string', default: '512' },
      out: { type: 'string', default: join(ROOT, 'bench/models/smollm2-shape') },
      json: { type: 'string' },
      seed: { type: 'string', default: '1' },
    },
    strict: true,
  });
  const outputScale = Number(args['output-scale']);
  const seed = Number(args.seed);
  const nCtx = Number(args.context);
  const choices = args.choices.split(',').map((c) => c.trim()) as QuantizeChoice[];
  for (const c of choices) if (!QUANTIZE_CHOICES.includes(c)) throw new Error(`unknown choice ${c}; choose from ${QUANTIZE_CHOICES.join(', ')}`);
  const out = resolve(args.out);
  const servedAs = relative(ROOT, out);
  if (servedAs.startsWith('..')) throw new Error(`--out must be inside ${ROOT}: the page fetches the files from its dev server`);
  const t0 = performance.now();
  const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1e3).toFixed(0).padStart(5)} s] ${line}\n`);

  // 1. The checkpoint, unless one of this recipe is there.
  const recipe = JSON.stringify({ shape: 'smollm2-135m', seed, initializerRange: INITIALIZER_RANGE, outputScale, rmsNormEps: RMS_NORM_EPS });
  const checkpointDir = join(out, 'checkpoint');
  const recipeFile = join(out, 'recipe.json');
  const reuse = existsSync(recipeFile) && readFileSync(recipeFile, 'utf8') === recipe;
  if (!reuse) {
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    await writeCheckpoint(checkpointDir, seed, outputScale);
    writeFileSync(recipeFile, recipe);
    log(`wrote ${checkpointDir} (seed ${seed}, std ${INITIALIZER_RANGE.toFixed(5)}, output norm ${outputScale})`);
  } else log(`reusing ${checkpointDir} (same recipe)`);

  // 2. One GGUF per choice, as the CLI converts a folder.
  const ggufs: { choice: QuantizeChoice; path: string; bytes: number; convertSeconds?: number }[] = [];
  for (const choice of choices) {
    const path = join(out, `${choice}.gguf`);
    if (existsSync(path)) {
      ggufs.push({ choice, path, bytes: statSync(path).size });
      continue;
    }
    const t = performance.now();
    const converted = await convertCliModel(checkpointDir, choice);
    try {
      await writeSource(converted.source, path + '.part');
    } finally {
      await converted.close();
    }
    renameSync(path + '.part', path);
    const convertSeconds = (performance.now() - t) / 1e3;
    ggufs.push({ choice, path, bytes: converted.source.size, convertSeconds });
    log(`converted ${choice}: ${(converted.source.size / 1e6).toFixed(1)} MB in ${convertSeconds.toFixed(0)} s`);
  }

  // 3. The text, tokenized as the model says (SmolLM2 adds no BOS).
  const source = await openFileSource(ggufs[0].path);
  const tokenizer = tokenizerFromGGUF(await readGGUF(source));
  await source.close();
  const tokens = tokenizer.encode(readFileSync(args.text, 'utf8'), { addSpecial: true, parseSpecial: false });
  const available = Math.floor(tokens.length / nCtx);
  const chunks = Math.min(available, args.chunks ? Number(args.chunks) : available);
  if (chunks < 1) throw new Error(`${args.text} gives ${tokens.length} tokens: not one chunk of ${nCtx}`);
  log(`${tokens.length} tokens: ${chunks} chunks of ${nCtx}, ${chunks * (nCtx - 1 - Math.floor(nCtx / 2))} scored positions`);

  // 4. Each GGUF in one page, the first one's distributions kept there for the others.
  const page = await openGpuPage({ warmup: [`.${PAGE_MODULE}`] });
  const results: (Measured & { choice: QuantizeChoice; bytes: number; convertSeconds?: number })[] = [];
  try {
    for (const [i, gguf] of ggufs.entries()) {
      const request: MeasureRequest = {
        url: `${page.url}/${servedAs}/${gguf.choice}.gguf`,
        tokens,
        nCtx,
        bos: tokenizer.addBos ? tokenizer.bos : undefined,
        chunks,
        role: i === 0 ? 'base' : 'compare',
        // The base's confidence at HF's own output scale (1), and at half and twice the one used.
        logitScales: [1 / outputScale, 0.5, 2],
      };
      // Serialized into the page: everything it uses comes in its argument.
      const measured = await page.evaluate(async ([module, r]) => (await window.lanternImport(module)).measureModel(r) as Promise<Measured>, [PAGE_MODULE, request] as const);
      results.push({ ...measured, ...gguf });
      const kl = measured.kl;
      log(`${gguf.choice}: PPL ${measured.ppl.toFixed(2)} ± ${measured.margin.toFixed(2)}, mean top-1 p ${measured.confidence.meanTop1.toFixed(3)}` +
        (kl ? `, KLD ${kl.kld.toFixed(5)} ± ${kl.kldError.toFixed(5)}, same top ${(100 * kl.sameTop).toFixed(2)} %, RMS Δp ${(100 * kl.rmsDp).toFixed(3)} %` : '') +
        ` (${measured.seconds.toFixed(0)} s on ${measured.adapter})`);
      if (i === 0) log(`base mean top-1 p with the logits multiplied by ${JSON.stringify(measured.confidence.top1AtScale)}`);
    }
  } finally {
    await page.close();
  }

  const total = (performance.now() - t0) / 1e3;
  printTable(results, { chunks, nCtx, tokens: tokens.length, outputScale });
  process.stdout.write(`\n${results[0].adapter}; int8 activations ${results[0].int8Activations ? 'on' : 'off'}; whole run ${(total / 60).toFixed(1)} min\n`);
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ recipe: JSON.parse(recipe), nCtx, chunks, tokens: tokens.length, seconds: total, results }, null, 2) + '\n');
  }
  return 0;
}

/**
 * The checkpoint: model-writer's random llama at SmolLM2-135M's shape (all F32), its matrices
 * rescaled to HF's init and its norms set to 1 (the final one to `outputScale`), written as HF
 * lays it out, with SmolLM2's tokenizer.json.
 */
async function writeCheckpoint(dir: string, seed: number, outputScale: number): Promise<void> {
  const { shape, vocabSize } = BENCH_SHAPES['smollm2-135m'];
  const tokenizerJson = readFileSync(join(TOKENIZER_DIR, 'tokenizer.json'));
  // SmolLM2-135M-Instruct's tokenizer_config.json (../shared holds only tokenizer.json): no BOS added.
  const tokenizerConfig = {
    add_prefix_space: false,
    bos_token: '<|im_start|>',
    eos_token: '<|im_end|>',
    pad_token: '<|im_end|>',
    unk_token: '<|endoftext|>',
    clean_up_tokenization_spaces: false,
    model_max_length: 8192,
    tokenizer_class: 'GPT2Tokenizer',
  };
  const vocabulary = hfTokenizerMetadata({ tokenizerJson: JSON.parse(tokenizerJson.toString('utf8')), tokenizerConfig }, { vocabSize });
  const gguf = writeRandomModel(shape, vocabulary, GGMLType.F32, seed);
  const file = await readGGUF(bytesSource(gguf));
  for (const t of file.tensors) {
    const values = new Float32Array(gguf.buffer, gguf.byteOffset + t.offset, t.nBytes / 4);
    if (t.dims.length === 2) {
      let sum2 = 0;
      for (const v of values) sum2 += v * v;
      const scale = INITIALIZER_RANGE / Math.sqrt(sum2 / values.length);
      for (let i = 0; i < values.length; i++) values[i] *= scale;
    } else if (t.name === 'output_norm.weight') values.fill(outputScale);
    else if (t.name.endsWith('norm.weight')) values.fill(1);
  }
  const checkpoint = hfCheckpointFromGGUF(file, gguf, {
    tokenizer: 'none',
    files: { 'tokenizer.json': tokenizerJson, 'tokenizer_config.json': new TextEncoder().encode(JSON.stringify(tokenizerConfig, null, 2) + '\n') },
  });
  const config = { ...checkpoint.config, _name_or_path: 'random weights, SmolLM2-135M shape', rms_norm_eps: RMS_NORM_EPS, initializer_range: INITIALIZER_RANGE };
  checkpoint.files.set('config.json', new TextEncoder().encode(JSON.stringify(config, null, 2) + '\n'));
  writeCheckpointDir(dir, checkpoint);
}

function printTable(
  results: (Measured & { choice: QuantizeChoice; bytes: number })[],
  about: { chunks: number; nCtx: number; tokens: number; outputScale: number },
): void {
  const pct = (x: number, e: number, digits: number) => `${(100 * x).toFixed(digits)} ± ${(100 * e).toFixed(digits)} %`;
  process.stdout.write(`\nSmolLM2-135M shape, random weights (output norm ${about.outputScale}); ${about.tokens} tokens, ${about.chunks} chunks of ${about.nCtx}:\n\n`);
  process.stdout.write('| choice | GGUF size | PPL | ± | mean top-1 p | mean KLD vs none | same top p | RMS Δp |\n');
  process.stdout.write('|---|---:|---:|---:|---:|---:|---:|---:|\n');
  for (const r of results) {
    const kl = r.kl;
    process.stdout.write(
      `| \`${r.choice}\` | ${(r.bytes / 1e6).toFixed(1)} MB | ${r.ppl.toFixed(3)} | ${r.margin.toFixed(3)} | ${r.confidence.meanTop1.toFixed(3)} | ` +
        (kl ? `${kl.kld.toFixed(5)} ± ${kl.kldError.toFixed(5)} | ${pct(kl.sameTop, kl.sameTopError, 2)} | ${pct(kl.rmsDp, kl.rmsDpError, 3)} |` : '(base) | | |') +
        '\n',
    );
  }
}
