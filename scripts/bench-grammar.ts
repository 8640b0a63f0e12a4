/**
 * Grammar mask speed (issue 16): the time to compute the allowed-token mask for each generated
 * token, over random walks through the schemas of tests/helpers/grammar-schemas.ts, with SmolLM2's
 * vocabulary (49,152 tokens) and a Qwen-sized one (151,936 tokens; see tests/helpers/grammar-vocab.ts).
 * A benchmark, not a test: it prints a markdown table and writes it to bench/results/.
 *
 *   node scripts/run-ts.mjs scripts/bench-grammar.ts [--walks 4] [--steps 48]
 *
 * Each walk is one request: a fresh automaton and mask cache (as a request compiles its schema
 * once), the vocabulary trie shared (built once per model); then the same walks again with the
 * grammar kept, as constraintFor keeps the last few compiled grammars (a repeated schema). A walk takes `steps` tokens chosen
 * uniformly among the allowed ones (an adversarial choice: real models revisit states more), then
 * completes the text byte by byte. Target: median <= 1 ms and p99 <= 10 ms per token.
 *
 * Times are the process's CPU time (process.cpuUsage, microsecond resolution), not wall-clock: on
 * a shared machine wall-clock time counts other processes' turns too.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { grammarFromJsonSchema, jsonObjectGrammar } from '../src/runtime/grammar/json-schema.ts';
import { TokenConstraint, TokenMasker, TokenTrie } from '../src/runtime/grammar/mask.ts';
import { compileGrammar, GrammarAutomaton } from '../src/runtime/grammar/matcher.ts';
import { SCHEMA_CASES } from '../tests/helpers/grammar-schemas.ts';
import { qwenSizedVocabulary, smollm2Vocabulary, type TestVocabulary } from '../tests/helpers/grammar-vocab.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { walks: { type: 'string', default: '4' }, steps: { type: 'string', default: '48' } } });
  const walks = Number(values.walks);
  const steps = Number(values.steps);
  const lines: string[] = [
    `Grammar mask time per token, ${cpus()[0]?.model ?? 'CPU'}, node ${process.version}; ${walks} random walks of ${steps} tokens (+ completion) per schema, ${SCHEMA_CASES.length} schemas.`,
    '',
    '| vocabulary | grammar | tokens | trie nodes | trie build ms | masks | median ms | p90 ms | p99 ms | max ms | compile ms (median) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, load] of [['SmolLM2', async () => smollm2Vocabulary()], ['Qwen-sized', qwenSizedVocabulary]] as const) {
    const vocab: TestVocabulary = await load();
    let t = performance.now();
    const trie = new TokenTrie(vocab);
    const trieMs = performance.now() - t;
    const times: number[] = [];
    const warmTimes: number[] = [];
    const compileTimes: number[] = [];
    let seed = 1;
    const worst: [number, string][] = [];
    for (const c of SCHEMA_CASES) {
      const own: number[] = [];
      let masker: TokenMasker | undefined;
      for (let w = 0; w < walks; w++) {
        t = performance.now();
        const automaton = new GrammarAutomaton(compileGrammar(c.schema === undefined ? jsonObjectGrammar() : grammarFromJsonSchema(c.schema)));
        compileTimes.push(performance.now() - t);
        walk(new TokenConstraint((masker = new TokenMasker(automaton, trie)), vocab), automaton, vocab, seed++, steps, own);
      }
      // The same requests again with the grammar kept (as constraintFor keeps the last few).
      for (let w = 0; w < walks; w++) walk(new TokenConstraint(masker!, vocab), masker!.automaton, vocab, seed - walks + w, steps, warmTimes);
      times.push(...own);
      own.sort((a, b) => a - b);
      worst.push([own[Math.floor(own.length * 0.99)], `${c.name}: median ${own[own.length >> 1].toFixed(3)} ms, p99 ${own[Math.floor(own.length * 0.99)].toFixed(2)} ms, max ${own[own.length - 1].toFixed(1)} ms`]);
    }
    worst.sort((a, b) => b[0] - a[0]);
    process.stdout.write(`${name}, slowest schemas by p99:\n${worst.slice(0, 5).map(([, line]) => `  ${line}\n`).join('')}`);
    compileTimes.sort((a, b) => a - b);
    for (const [kind, all] of [['new per request', times], ['kept (repeat schema)', warmTimes]] as const) {
      all.sort((a, b) => a - b);
      const q = (p: number) => all[Math.min(all.length - 1, Math.floor(p * all.length))];
      lines.push(`| ${name} | ${kind} | ${vocab.bytes.length} | ${trie.nodeCount} | ${trieMs.toFixed(0)} | ${all.length} | ${q(0.5).toFixed(3)} | ${q(0.9).toFixed(3)} | ${q(0.99).toFixed(3)} | ${all[all.length - 1].toFixed(1)} | ${compileTimes[compileTimes.length >> 1].toFixed(2)} |`);
      process.stdout.write(lines[lines.length - 1] + '\n');
    }
  }
  const table = lines.join('\n') + '\n';
  process.stdout.write('\n' + table);
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `grammar-${new Date().toISOString().slice(0, 10)}.md`);
  writeFileSync(file, table);
  process.stdout.write(`\nwritten to ${file}\n`);
  return 0;
}

/** One request: random allowed tokens, then the shortest byte completion; every mask timed. */
function walk(c: TokenConstraint, a: GrammarAutomaton, vocab: TestVocabulary, seed: number, steps: number, times: number[]): void {
  let state = seed >>> 0;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const timedMask = () => {
    const t = process.cpuUsage();
    const mask = c.mask();
    const used = process.cpuUsage(t);
    times.push((used.user + used.system) / 1000);
    return mask;
  };
  for (let step = 0; step < steps; step++) {
    const mask = timedMask();
    const ids: number[] = [];
    for (let w = 0; w < mask.length; w++) {
      for (let bits = mask[w]; bits !== 0; bits &= bits - 1) ids.push(w * 32 + 31 - Math.clz32(bits & -bits));
    }
    const id = ids[Math.floor(random() * ids.length)];
    c.advance(id);
    if (vocab.eog.includes(id)) return;
  }
  // Complete the text: breadth first to the nearest complete state, then one byte token at a time.
  const previous = new Map<number, [number, number]>([[c.state, [-1, -1]]]);
  let frontier = [c.state];
  let end = -1;
  while (end < 0 && frontier.length > 0) {
    const next: number[] = [];
    for (const s of frontier) {
      if (a.isComplete(s)) { end = s; break; }
      for (let b = 0; b < 256; b++) {
        if (vocab.byteToken[b] < 0) continue;
        const t = a.step(s, b);
        if (t !== GrammarAutomaton.DEAD && !previous.has(t)) { previous.set(t, [s, b]); next.push(t); }
      }
    }
    frontier = next;
  }
  const path: number[] = [];
  for (let at = end; at !== c.state;) { const [p, b] = previous.get(at)!; path.push(b); at = p; }
  for (const b of path.reverse()) {
    timedMask();
    c.advance(vocab.byteToken[b]);
  }
}
