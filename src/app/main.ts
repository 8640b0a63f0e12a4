import { LanternError } from '../errors.ts';
import type { GenerationStats, ModelInfo } from '../runtime/types.ts';
import { createEngine, type Engine } from '../worker/client.ts';

/** The minimal demo: load the bundled model in a worker, stream a completion, show its speed. */

const MODEL_URL = `${import.meta.env.BASE_URL}models/stories260K.gguf`;

const statusEl = element<HTMLParagraphElement>('status');
const form = element<HTMLFormElement>('prompt-form');
const promptEl = element<HTMLTextAreaElement>('prompt');
const maxTokensEl = element<HTMLInputElement>('max-tokens');
const temperatureEl = element<HTMLInputElement>('temperature');
const sendButton = element<HTMLButtonElement>('send');
const stopButton = element<HTMLButtonElement>('stop');
const outputEl = element<HTMLOutputElement>('output');

type State = 'loading' | 'ready' | 'generating' | 'error';
let modelLoaded = false;
let stopRequested = false;
let running: AbortController | undefined;

async function start(): Promise<void> {
  // navigator.gpu exists only in secure contexts (https or localhost) of browsers that ship WebGPU.
  if (!navigator.gpu) {
    showError(new LanternError(
      'NO_WEBGPU',
      'This browser does not offer WebGPU, so the model cannot run here. Open the page in a recent Chrome or Edge (113 or later) or Safari 26, over https or from localhost, or turn WebGPU on in the browser settings, then reload.',
    ));
    return;
  }
  const engine = createEngine();
  let info: ModelInfo;
  try {
    info = await engine.load(MODEL_URL);
  } catch (error) {
    showError(error);
    return;
  }
  modelLoaded = true;
  setState('ready', `Ready: ${info.name} on ${info.adapter}.`);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void generate(engine, info);
  });
  stopButton.addEventListener('click', () => {
    stopRequested = true;
    running?.abort();
  });
}

async function generate(engine: Engine, info: ModelInfo): Promise<void> {
  outputEl.value = '';
  stopRequested = false;
  running = new AbortController();
  setState('generating', 'Generating…');
  let stats: GenerationStats;
  try {
    const stream = engine.generate(promptEl.value, {
      maxTokens: maxTokensEl.valueAsNumber,
      temperature: temperatureEl.valueAsNumber,
      signal: running.signal,
    });
    for await (const chunk of stream) outputEl.append(chunk.text);
    stats = await stream.result;
  } catch (error) {
    showError(error);
    return;
  }
  const outcome = stopRequested ? 'Stopped' : 'Done';
  setState('ready', `${outcome}: ${describeSpeed(stats, info)}`);
}

function describeSpeed(stats: GenerationStats, info: ModelInfo): string {
  const rate = (tokensPerSecond: number) => `${tokensPerSecond.toFixed(1)} tok/s`;
  return `${stats.promptTokens} prompt tokens at ${rate(stats.prefillTokensPerSecond)}, `
    + `${stats.generatedTokens} new tokens at ${rate(stats.decodeTokensPerSecond)}, on ${info.adapter}.`;
}

function setState(state: State, message: string, code?: string): void {
  statusEl.dataset.state = state;
  if (code) statusEl.dataset.code = code;
  else delete statusEl.dataset.code;
  statusEl.textContent = message;
  // After a failed generation the model is still loaded, so the user may try again.
  sendButton.disabled = !modelLoaded || state === 'generating';
  stopButton.disabled = state !== 'generating';
}

function showError(error: unknown): void {
  console.error(error);
  if (error instanceof LanternError) {
    setState('error', `${error.code}: ${error.message}`, error.code);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    setState('error', `Something went wrong (${message}); reload the page to try again.`);
  }
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`index.html has no #${id}`);
  return found as T;
}

void start();
