import type { ChatMessage } from '../runtime/chat.ts';
import type { ModelInfo } from '../runtime/types.ts';
import type { LoadProgress, ModelInput } from '../storage/open.ts';
import { createEngine, type Engine, type EngineLoadOptions } from '../worker/client.ts';
import { showCachedModels } from './cache-list.ts';
import { BUNDLED, CHECKPOINTS, CUSTOM_URL, HF_REPO, HUB_MODELS, LOCAL_FILE, catalogModel, fileName } from './catalog.ts';
import { type ReplySettings, type ReplyStats, streamReply, usesPlainContinuation } from './chat.ts';
import { describeError, noWebGpuError } from './error-screen.ts';
import { TransferMeter, formatBytes, formatDuration, formatRate } from './format.ts';

/**
 * The demo page: pick a model (bundled, from the hub, a URL or a local file), watch it download
 * into the IndexedDB cache, and chat with it in a Web Worker, with its speed and context use shown.
 */

const el = {
  status: element<HTMLParagraphElement>('status'),
  errorScreen: element<HTMLElement>('error-screen'),
  errorTitle: element<HTMLHeadingElement>('error-title'),
  errorMessage: element<HTMLParagraphElement>('error-message'),
  errorCode: element<HTMLElement>('error-code'),
  retry: element<HTMLButtonElement>('retry'),
  chooseOther: element<HTMLButtonElement>('choose-other'),
  modelForm: element<HTMLFormElement>('model-form'),
  modelSelect: element<HTMLSelectElement>('model-select'),
  customUrlRow: element<HTMLDivElement>('custom-url-row'),
  customUrl: element<HTMLInputElement>('custom-url'),
  fileRow: element<HTMLDivElement>('file-row'),
  hfRepoRow: element<HTMLDivElement>('hf-repo-row'),
  hfRepo: element<HTMLInputElement>('hf-repo'),
  quantizeRow: element<HTMLDivElement>('quantize-row'),
  quantize: element<HTMLSelectElement>('quantize'),
  modelFile: element<HTMLInputElement>('model-file'),
  modelNote: element<HTMLParagraphElement>('model-note'),
  load: element<HTMLButtonElement>('load'),
  progressBox: element<HTMLDivElement>('progress-box'),
  progressLabel: element<HTMLLabelElement>('progress-label'),
  progress: element<HTMLProgressElement>('progress'),
  progressText: element<HTMLParagraphElement>('progress-text'),
  cacheEmpty: element<HTMLParagraphElement>('cache-empty'),
  cacheList: element<HTMLUListElement>('cache-list'),
  cacheHeading: element<HTMLHeadingElement>('cache-heading'),
  modeNote: element<HTMLParagraphElement>('mode-note'),
  transcript: element<HTMLOListElement>('transcript'),
  replyLive: element<HTMLParagraphElement>('reply-live'),
  promptForm: element<HTMLFormElement>('prompt-form'),
  prompt: element<HTMLTextAreaElement>('prompt'),
  send: element<HTMLButtonElement>('send'),
  stop: element<HTMLButtonElement>('stop'),
  regenerate: element<HTMLButtonElement>('regenerate'),
  clear: element<HTMLButtonElement>('clear'),
  systemPrompt: element<HTMLTextAreaElement>('system-prompt'),
  temperature: element<HTMLInputElement>('temperature'),
  topP: element<HTMLInputElement>('top-p'),
  topK: element<HTMLInputElement>('top-k'),
  maxTokens: element<HTMLInputElement>('max-tokens'),
  seed: element<HTMLInputElement>('seed'),
  statPrefill: element<HTMLElement>('stat-prefill'),
  statDecode: element<HTMLElement>('stat-decode'),
  statContext: element<HTMLElement>('stat-context'),
  statAdapter: element<HTMLElement>('stat-adapter'),
  statF16: element<HTMLElement>('stat-f16'),
};

type State = 'loading' | 'ready' | 'generating' | 'error';

let engine: Engine | undefined;
let info: ModelInfo | undefined;
/** What the user picked the model as (the GGUF's own name is often just its architecture). */
let modelLabel = 'Model';
let state: State = 'loading';
/** The turns so far; the system prompt is added per request, from the settings. */
let conversation: ChatMessage[] = [];
let running: AbortController | undefined;
/** What the last load() was given, for Retry: a URL download resumes from the cached chunks. */
let lastLoad: { input: ModelInput; label: string } | undefined;

// ---- Start --------------------------------------------------------------------------------------

fillModelSelect();
wireEvents();
void start();

async function start(): Promise<void> {
  void refreshCache();
  // navigator.gpu exists only in secure contexts (https or localhost) of browsers that ship WebGPU.
  if (!navigator.gpu) {
    el.load.disabled = true;
    showError(noWebGpuError());
    return;
  }
  engine = createEngine();
  // ?model=URL opens the page on another GGUF, for links that share a model.
  const requested = new URLSearchParams(location.search).get('model');
  if (requested) {
    el.modelSelect.value = CUSTOM_URL;
    el.customUrl.value = requested;
    showModelChoice();
    await loadModel(requested, fileName(requested));
    return;
  }
  await loadModel(absoluteUrl(BUNDLED.url), BUNDLED.label);
}

function fillModelSelect(): void {
  el.modelSelect.append(option(BUNDLED.key, `${BUNDLED.label} · bundled story model · ${formatBytes(BUNDLED.sizeBytes)}`));
  const hub = document.createElement('optgroup');
  hub.label = 'Hugging Face hub (downloaded once, then cached)';
  for (const model of HUB_MODELS) hub.append(option(model.key, `${model.label} · ${model.quant} · ${formatBytes(model.sizeBytes)}`));
  el.modelSelect.append(hub);
  const checkpoints = document.createElement('optgroup');
  checkpoints.label = 'Hugging Face checkpoints (compressed on load, then cached)';
  for (const model of CHECKPOINTS) checkpoints.append(option(model.key, `${model.label} · ${formatBytes(model.sizeBytes)} → ${formatBytes(model.compressedBytes!)} at q8_0`));
  el.modelSelect.append(checkpoints);
  const other = document.createElement('optgroup');
  other.label = 'Other';
  other.append(option(CUSTOM_URL, 'A GGUF file from a URL…'), option(HF_REPO, 'Open a Hugging Face model…'), option(LOCAL_FILE, 'Files on this device (GGUF or a model folder)…'));
  el.modelSelect.append(other);
  showModelChoice();
}

function wireEvents(): void {
  el.modelSelect.addEventListener('change', showModelChoice);
  el.modelForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const choice = chosenSource();
    if (choice) void loadModel(choice.input, choice.label);
  });
  el.retry.addEventListener('click', () => {
    if (lastLoad) void loadModel(lastLoad.input, lastLoad.label);
  });
  el.chooseOther.addEventListener('click', () => {
    hideError();
    el.modelSelect.focus();
  });

  // A .gguf dropped anywhere on the page loads as a local file.
  document.addEventListener('dragover', (event) => {
    if (event.dataTransfer?.types.includes('Files')) event.preventDefault();
  });
  document.addEventListener('drop', (event) => {
    const chosen = event.dataTransfer ? localFiles(event.dataTransfer.files) : undefined;
    if (!chosen) return;
    event.preventDefault();
    el.modelSelect.value = LOCAL_FILE;
    showModelChoice();
    void loadModel(chosen.input, chosen.label);
  });

  el.promptForm.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  el.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      el.promptForm.requestSubmit();
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state === 'generating') running?.abort();
  });
  el.stop.addEventListener('click', () => running?.abort());
  el.regenerate.addEventListener('click', () => {
    if (conversation.at(-1)?.role !== 'assistant') return;
    conversation.pop();
    el.transcript.lastElementChild?.remove();
    void reply();
  });
  el.clear.addEventListener('click', () => {
    running?.abort();
    conversation = [];
    el.transcript.replaceChildren();
    el.statContext.textContent = info ? contextText(0, info) : '–';
    el.prompt.focus();
    if (state === 'generating') setState('ready', 'Cleared.');
    else updateButtons();
  });
}

// ---- Models -------------------------------------------------------------------------------------

function showModelChoice(): void {
  const key = el.modelSelect.value;
  el.customUrlRow.hidden = key !== CUSTOM_URL;
  el.fileRow.hidden = key !== LOCAL_FILE;
  el.hfRepoRow.hidden = key !== HF_REPO;
  el.quantizeRow.hidden = !(key === HF_REPO || key === LOCAL_FILE || CHECKPOINTS.some((m) => m.key === key));
  el.customUrl.required = key === CUSTOM_URL;
  el.hfRepo.required = key === HF_REPO;
  el.modelFile.required = key === LOCAL_FILE;
  const model = catalogModel(key);
  if (model === BUNDLED) el.modelNote.textContent = 'Served by this site. A tiny story model: it continues text rather than chatting.';
  else if (model?.compressedBytes) el.modelNote.textContent = `Downloads ${formatBytes(model.sizeBytes)} of ${model.quant} weights from huggingface.co once, compressing them as they arrive; this browser keeps the compressed copy (${formatBytes(model.compressedBytes)} at q8_0).`;
  else if (key === HF_REPO) el.modelNote.textContent = 'A repository with config.json and safetensors weights (GPT-Neo, GPT-2, GPT-NeoX, Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3), run as published and compressed on load.';
  else if (model) el.modelNote.textContent = `Downloads ${formatBytes(model.sizeBytes)} from huggingface.co once; later visits load it from this browser, offline too.`;
  else if (key === CUSTOM_URL) el.modelNote.textContent = 'Any single-file GGUF on a server that allows cross-origin requests (CORS) and Range requests.';
  else el.modelNote.textContent = 'The file is read from your disk; nothing is uploaded.';
}

function chosenSource(): { input: ModelInput; label: string } | undefined {
  const key = el.modelSelect.value;
  const model = catalogModel(key);
  if (model) return { input: absoluteUrl(model.url), label: model.label };
  if (key === CUSTOM_URL) {
    const url = el.customUrl.value.trim();
    return url ? { input: url, label: fileName(url) } : undefined;
  }
  if (key === HF_REPO) {
    const url = el.hfRepo.value.trim();
    return url ? { input: url, label: url.replace(/^https?:\/\/(www\.)?huggingface\.co\//, '') } : undefined;
  }
  return el.modelFile.files ? localFiles(el.modelFile.files) : undefined;
}

/** One file as itself; several as the parts of one split GGUF (the load says so if they are not). */
function localFiles(files: FileList): { input: ModelInput; label: string } | undefined {
  const list = Array.from(files);
  if (list.some((file) => file.name === 'config.json')) return { input: list, label: 'the chosen model folder' };
  if (list.length <= 1) return list[0] && { input: list[0], label: list[0].name };
  const first = list.map((file) => file.name).sort()[0];
  const more = list.length - 1;
  return { input: list, label: `${first} and ${more} more part${more === 1 ? '' : 's'}` };
}

async function loadModel(input: ModelInput, label: string): Promise<void> {
  if (!engine) return;
  running?.abort();
  hideError();
  lastLoad = { input, label };
  // load() replaces the model: the old one is gone even if this one fails to load.
  info = undefined;
  clearModelInfo();
  setState('loading', `Loading ${label}…`);
  el.progressBox.hidden = false;
  const meter = new TransferMeter();
  let loaded: ModelInfo;
  try {
    const quantize = el.quantize.value as EngineLoadOptions['quantize'];
    loaded = await engine.load(input, { quantize, onProgress: (progress) => showProgress(progress, meter) });
  } catch (error) {
    showError(error);
    return;
  } finally {
    el.progressBox.hidden = true;
    void refreshCache();
  }
  info = loaded;
  modelLabel = label;
  conversation = [];
  el.transcript.replaceChildren();
  showModelInfo(loaded);
  setState('ready', `Ready: ${label} on ${loaded.adapter}.`);
}

const PHASES: Record<LoadProgress['phase'], string> = {
  download: 'Downloading',
  verify: 'Checking the stored copy',
  cache: 'Storing in this browser',
  upload: 'Uploading to the GPU',
};

function showProgress({ phase, loadedBytes, totalBytes }: LoadProgress, meter: TransferMeter): void {
  el.progressLabel.textContent = PHASES[phase];
  // Without a value a <progress> is indeterminate: a server that compresses the file may not say its size.
  if (totalBytes === undefined) el.progress.removeAttribute('value');
  else el.progress.value = totalBytes > 0 ? loadedBytes / totalBytes : 0;
  let text = totalBytes === undefined ? formatBytes(loadedBytes) : `${formatBytes(loadedBytes)} of ${formatBytes(totalBytes)}`;
  if (phase === 'download') {
    const speed = meter.update(loadedBytes);
    if (speed !== undefined && speed > 0) {
      text += ` · ${formatBytes(speed)}/s`;
      if (totalBytes !== undefined) text += ` · ${formatDuration((totalBytes - loadedBytes) / speed)} left`;
    }
  } else {
    meter.reset();
  }
  el.progressText.textContent = text;
}

function clearModelInfo(): void {
  for (const stat of [el.statPrefill, el.statDecode, el.statContext, el.statAdapter, el.statF16]) stat.textContent = '–';
  el.modeNote.hidden = true;
}

function showModelInfo(model: ModelInfo): void {
  el.statAdapter.textContent = model.adapter;
  el.statF16.textContent = model.shaderF16 ? 'available' : 'not available (f32 math)';
  el.statPrefill.textContent = '–';
  el.statDecode.textContent = '–';
  el.statContext.textContent = contextText(0, model);
  const plain = usesPlainContinuation(model);
  el.modeNote.hidden = !plain;
  el.modeNote.textContent = plain
    ? `${modelLabel} has no chat template, so it continues your last message as plain text; the system prompt and earlier turns are not sent.`
    : '';
}

function refreshCache(): Promise<void> {
  return showCachedModels({ list: el.cacheList, empty: el.cacheEmpty, heading: el.cacheHeading });
}

// ---- Chat ---------------------------------------------------------------------------------------

function send(): void {
  const text = el.prompt.value;
  if (!info || state === 'generating' || !text.trim()) return;
  conversation.push({ role: 'user', content: text });
  appendMessage('user', text);
  void reply();
}

async function reply(): Promise<void> {
  if (!engine || !info) return;
  const model = info;
  const controller = new AbortController();
  running = controller;
  const output = appendMessage('assistant', '');
  document.querySelector('[data-testid=output]')?.removeAttribute('data-testid');
  output.dataset.testid = 'output';
  output.setAttribute('aria-busy', 'true');
  setState('generating', 'Generating…');

  let text = '';
  let firstTokenAt: number | undefined;
  let stats: ReplyStats;
  try {
    stats = await streamReply(engine, model, conversation, readSettings(), controller.signal, {
      onText(chunk, generated) {
        text += chunk;
        output.append(chunk);
        const now = performance.now();
        firstTokenAt ??= now;
        if (now > firstTokenAt) el.statDecode.textContent = `${formatRate((generated - 1) / ((now - firstTokenAt) / 1000))} (live)`;
      },
    });
  } catch (error) {
    output.removeAttribute('aria-busy');
    if (running === controller) running = undefined;
    if (state === 'generating') showError(error);
    return;
  }
  output.removeAttribute('aria-busy');
  if (running === controller) running = undefined;
  // Cleared, or another model is loading: this reply belongs to a conversation that is gone.
  if (!output.isConnected || state !== 'generating') return;
  conversation.push({ role: 'assistant', content: text });
  el.replyLive.textContent = `Reply: ${text}`;
  el.statPrefill.textContent = formatRate(stats.prefillTokensPerSecond);
  el.statDecode.textContent = formatRate(stats.decodeTokensPerSecond);
  el.statContext.textContent = contextText(stats.promptTokens + stats.generatedTokens, model);
  const outcome = controller.signal.aborted ? 'Stopped' : 'Done';
  setState('ready', `${outcome}: ${stats.promptTokens} prompt tokens at ${formatRate(stats.prefillTokensPerSecond)}, `
    + `${stats.generatedTokens} new tokens at ${formatRate(stats.decodeTokensPerSecond)}, on ${model.adapter}.`);
}

function readSettings(): ReplySettings {
  const number = (input: HTMLInputElement, fallback: number) => (Number.isFinite(input.valueAsNumber) ? input.valueAsNumber : fallback);
  return {
    systemPrompt: el.systemPrompt.value,
    temperature: Math.max(0, number(el.temperature, 0.8)),
    topP: Math.min(1, Math.max(0, number(el.topP, 1))),
    topK: Math.max(0, Math.round(number(el.topK, 0))),
    maxTokens: Math.max(1, Math.round(number(el.maxTokens, 128))),
    seed: Number.isFinite(el.seed.valueAsNumber) ? Math.round(el.seed.valueAsNumber) : undefined,
  };
}

function appendMessage(role: 'user' | 'assistant', text: string): HTMLDivElement {
  const item = document.createElement('li');
  item.className = `message ${role}`;
  const who = document.createElement('span');
  who.className = 'role';
  who.textContent = role === 'user' ? 'You' : modelLabel;
  const body = document.createElement('div');
  body.className = 'text';
  body.textContent = text;
  item.append(who, body);
  el.transcript.append(item);
  return body;
}

function contextText(used: number, model: ModelInfo): string {
  return `${used} of ${model.contextLength} tokens`;
}

// ---- State and errors ---------------------------------------------------------------------------

function setState(next: State, message: string, code?: string): void {
  state = next;
  el.status.dataset.state = next;
  if (code) el.status.dataset.code = code;
  else delete el.status.dataset.code;
  el.status.textContent = message;
  updateButtons();
}

function updateButtons(): void {
  const generating = state === 'generating';
  const usable = info !== undefined && state !== 'loading';
  el.send.disabled = !usable || generating;
  el.stop.disabled = !generating;
  el.regenerate.disabled = !usable || generating || conversation.at(-1)?.role !== 'assistant';
  el.clear.disabled = conversation.length === 0 && el.transcript.childElementCount === 0;
  el.load.disabled = state === 'loading' || !engine;
  el.modelSelect.disabled = state === 'loading';
}

function showError(error: unknown): void {
  console.error(error);
  const screen = describeError(error);
  el.errorTitle.textContent = screen.title;
  el.errorMessage.textContent = screen.message;
  el.errorCode.textContent = screen.code;
  el.errorScreen.dataset.code = screen.code;
  el.retry.hidden = !screen.retry || !lastLoad;
  el.chooseOther.hidden = !screen.chooseOther;
  el.errorScreen.hidden = false;
  // The screen says it all on sight; the status line keeps saying it to screen readers.
  el.status.classList.add('visually-hidden');
  setState('error', `${screen.code}: ${screen.message}`, screen.code);
  // Move focus to the explanation, so that keyboard and screen-reader users land on it.
  el.errorTitle.focus();
}

function hideError(): void {
  el.errorScreen.hidden = true;
  el.status.classList.remove('visually-hidden');
  delete el.errorScreen.dataset.code;
}

// ---- Helpers ------------------------------------------------------------------------------------

function option(value: string, label: string): HTMLOptionElement {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  return o;
}

function absoluteUrl(url: string): string {
  return new URL(url, location.href).href;
}


function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`index.html has no #${id}`);
  return found as T;
}
