import { LanternError } from '../errors.ts';
import type { ChatMessage } from '../runtime/chat.ts';
import type { ModelInfo } from '../runtime/types.ts';
import { createEmbedEngine, type EmbedEngine } from './engine-adapter.ts';
import { buildTurn } from './prompt.ts';
import { WIDGET_CSS } from './style.ts';

/** Detail of the `token` event: one generated token, as the worker sampled it. */
export interface TokenEventDetail {
  id: number;
  text: string;
}

/** Detail of the `done` event: the whole reply and its figures (finishReason 'abort' after Stop). */
export interface DoneEventDetail {
  text: string;
  finishReason?: 'stop' | 'length' | 'abort';
  promptTokens?: number;
  generatedTokens?: number;
  prefillTokensPerSecond?: number;
  decodeTokensPerSecond?: number;
}

/** Detail of the `error` event: a LanternError code (or 'UNKNOWN') and what to do. */
export interface ErrorEventDetail {
  code: string;
  message: string;
}

type Status = 'idle' | 'loading' | 'ready' | 'generating' | 'error';

const FLOATING = new Set(['bottom-right', 'bottom-left']);

const MARKUP = `
<button class="launcher" part="launcher" type="button" aria-expanded="false" aria-controls="panel" data-testid="launcher">Chat</button>
<section class="panel" id="panel" part="panel" aria-label="Chat with a language model running in this browser">
  <header>
    <span class="title">Lantern</span>
    <button class="close" type="button" aria-label="Close the chat" data-testid="close">×</button>
  </header>
  <ol class="log" data-testid="log" aria-live="polite"></ol>
  <p class="status" role="status" data-testid="status" data-state="idle"></p>
  <form>
    <label class="visually-hidden" for="prompt">Message</label>
    <textarea id="prompt" rows="2" placeholder="Write a message…" data-testid="prompt"></textarea>
    <div class="actions">
      <button type="submit" data-testid="send">Send</button>
      <button type="button" data-testid="stop" disabled>Stop</button>
    </div>
  </form>
</section>`;

/**
 * `<lantern-chat model="URL" system-prompt="…" template="…" theme="light|dark"
 * position="inline|bottom-right|bottom-left" max-tokens="128" temperature="0.8">`: a chat box whose
 * replies are generated in this browser by a Lantern worker. It renders in a shadow root, and fires
 * `token`, `done` and `error` CustomEvents (bubbling, composed) with the details above.
 * `template` is a Jinja chat template for models whose GGUF has none, or "none" to make a chat
 * model continue text (see prompt.ts).
 *
 * The worker and the model load on first use (opening the panel, focusing the box, or sending),
 * not when the page loads. A relative `model` resolves against the page; without one the widget
 * loads the model bundled beside lantern-embed.js.
 */
export class LanternChatElement extends HTMLElement {
  static observedAttributes = ['model', 'open', 'position'];

  /** Where lantern-embed.js was loaded from; the worker and the bundled model sit beside it. */
  static assetBase: URL = new URL(document.baseURI);
  /** The engine worker, when it is not lantern-worker.js beside assetBase (the package's module entry sets it). */
  static workerUrl: URL | undefined;

  readonly #root: ShadowRoot;
  readonly #log: HTMLOListElement;
  readonly #status: HTMLParagraphElement;
  readonly #prompt: HTMLTextAreaElement;
  readonly #send: HTMLButtonElement;
  readonly #stop: HTMLButtonElement;
  readonly #launcher: HTMLButtonElement;
  #engine: EmbedEngine | undefined;
  #loaded: Promise<{ engine: EmbedEngine; info: ModelInfo }> | undefined;
  /** The conversation so far, for models that chat; a new model starts a new one. */
  #history: ChatMessage[] = [];
  #generating = false;
  #reported: unknown;

  constructor() {
    super();
    // Open, so tests and assistive tools can look inside; page CSS cannot reach in either way.
    this.#root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = WIDGET_CSS;
    const body = document.createElement('template');
    body.innerHTML = MARKUP;
    this.#root.append(style, body.content);
    const q = <T extends Element>(selector: string) => this.#root.querySelector<T>(selector)!;
    this.#log = q('.log');
    this.#status = q('.status');
    this.#prompt = q('textarea');
    this.#send = q('[data-testid=send]');
    this.#stop = q('[data-testid=stop]');
    this.#launcher = q('.launcher');

    this.#launcher.addEventListener('click', () => this.toggleAttribute('open'));
    q<HTMLButtonElement>('.close').addEventListener('click', () => {
      this.removeAttribute('open');
      this.#launcher.focus();
    });
    this.#prompt.addEventListener('focus', () => void this.#ensureLoaded().catch(() => {}));
    this.#prompt.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send(this.#prompt.value);
      }
    });
    q<HTMLFormElement>('form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.send(this.#prompt.value);
    });
    this.#stop.addEventListener('click', () => void this.stop());
  }

  connectedCallback(): void {
    if (!this.hasAttribute('position')) this.setAttribute('position', 'inline');
    if (!this.hasAttribute('theme')) this.setAttribute('theme', 'light');
    this.#syncOpen();
  }

  disconnectedCallback(): void {
    this.#disposeEngine();
  }

  attributeChangedCallback(name: string, before: string | null, after: string | null): void {
    if (before === after) return;
    // A new model: the next use loads it in a fresh worker.
    if (name === 'model') this.#disposeEngine();
    else if (this.isConnected) this.#syncOpen();
  }

  /** Sends `message` as the user's turn and streams the reply; resolves when it ends. */
  async send(message: string): Promise<void> {
    const text = message.trim();
    if (!text || this.#generating) return;
    this.#generating = true;
    this.#prompt.value = '';
    this.#send.disabled = true;
    this.#addMessage('user', text);
    const reply = this.#addMessage('assistant', '');
    let replyText = '';
    try {
      const { engine, info } = await this.#ensureLoaded();
      this.#setStatus('generating', 'Writing…');
      this.#stop.disabled = false;
      const history: ChatMessage[] = [...this.#history, { role: 'user', content: text }];
      const turn = buildTurn(history, this.getAttribute('system-prompt') ?? '', this.getAttribute('template'), info.hasChatTemplate);
      const options = { maxTokens: this.#numberAttribute('max-tokens', 128), temperature: this.#numberAttribute('temperature', 0.8) };
      for await (const token of engine.generate(turn, options)) {
        replyText += token.text;
        reply.textContent = replyText;
        this.#log.scrollTop = this.#log.scrollHeight;
        this.#emit<TokenEventDetail>('token', { id: token.id, text: token.text });
      }
      const stats = engine.stats;
      if ('messages' in turn) this.#history = [...history, { role: 'assistant', content: replyText }];
      const stopped = stats?.finishReason === 'abort';
      this.#setStatus('ready', stats ? `${stopped ? 'Stopped' : 'Done'}: ${stats.generatedTokens} tokens at ${stats.decodeTokensPerSecond.toFixed(1)} tok/s` : 'Done');
      this.#emit<DoneEventDetail>('done', { text: replyText, ...stats });
    } catch (error) {
      reply.remove();
      // A failed load has been reported by #ensureLoaded already.
      if (error !== this.#reported) this.#fail(error);
    } finally {
      this.#generating = false;
      this.#send.disabled = false;
      this.#stop.disabled = true;
    }
  }

  /** Stops the reply being written after the current token. */
  async stop(): Promise<void> {
    if (!this.#generating || !this.#engine) return;
    await this.#engine.abort();
  }

  #ensureLoaded(): Promise<{ engine: EmbedEngine; info: ModelInfo }> {
    if (this.#loaded) return this.#loaded;
    const modelUrl = this.getAttribute('model')
      ? new URL(this.getAttribute('model')!, document.baseURI)
      : new URL('models/stories260K.gguf', LanternChatElement.assetBase);
    const engine = createEmbedEngine(LanternChatElement.workerUrl ?? new URL('lantern-worker.js', LanternChatElement.assetBase));
    this.#engine = engine;
    this.#setStatus('loading', 'Loading the model…');
    const loaded = engine.load(modelUrl.href).then(
      (info) => {
        this.#setStatus('ready', `${info.name || info.architecture} is ready, on ${info.adapter}.`);
        return { engine, info };
      },
      (error: unknown) => {
        // Let the next use try again (e.g. after the network comes back).
        if (this.#loaded === loaded) this.#disposeEngine();
        this.#fail(error);
        throw error;
      },
    );
    this.#loaded = loaded;
    return loaded;
  }

  #disposeEngine(): void {
    this.#engine?.dispose();
    this.#engine = undefined;
    this.#loaded = undefined;
    this.#history = [];
  }

  #syncOpen(): void {
    const floating = FLOATING.has(this.getAttribute('position') ?? '');
    const open = !floating || this.hasAttribute('open');
    this.#launcher.setAttribute('aria-expanded', String(open));
    if (floating && open) {
      void this.#ensureLoaded().catch(() => {});
      this.#prompt.focus();
    }
  }

  #addMessage(role: 'user' | 'assistant', text: string): HTMLLIElement {
    const item = document.createElement('li');
    item.className = role;
    item.dataset.testid = role === 'user' ? 'message' : 'reply';
    item.textContent = text;
    this.#log.append(item);
    return item;
  }

  #setStatus(state: Status, text: string): void {
    this.#status.dataset.state = state;
    this.#status.textContent = text;
  }

  #fail(error: unknown): void {
    this.#reported = error;
    const code = error instanceof LanternError ? error.code : 'UNKNOWN';
    const message = error instanceof Error ? error.message : String(error);
    this.#status.dataset.code = code;
    this.#setStatus('error', message);
    this.#emit<ErrorEventDetail>('error', { code, message });
  }

  #numberAttribute(name: string, fallback: number): number {
    const value = Number(this.getAttribute(name) ?? NaN);
    return Number.isFinite(value) ? value : fallback;
  }

  #emit<T>(type: string, detail: T): void {
    this.dispatchEvent(new CustomEvent<T>(type, { detail, bubbles: true, composed: true }));
  }
}
