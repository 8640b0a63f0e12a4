/**
 * `lantern/embed`, the package's module entry for the chat widget:
 *
 * ```ts
 * import 'lantern/embed';
 *
 * const widget = document.createElement('lantern-chat');
 * widget.setAttribute('model', '/models/model.gguf');
 * widget.setAttribute('position', 'bottom-right');
 * document.body.append(widget);
 * // or in HTML: <lantern-chat model="/models/model.gguf" position="bottom-right"></lantern-chat>
 * ```
 *
 * Importing it defines <lantern-chat>. Its engine worker is the package's lantern-worker.js, named
 * with `new URL(…, import.meta.url)` so that the app's bundler emits it. A widget without a `model`
 * attribute looks for models/stories260K.gguf beside the page. The script-tag build is index.ts.
 *
 * @module lantern/embed
 */
import { LanternChatElement } from './chat-element.ts';

LanternChatElement.workerUrl = new URL('./lantern-worker.js', import.meta.url);
if (!customElements.get('lantern-chat')) customElements.define('lantern-chat', LanternChatElement);

export { LanternChatElement };

declare global {
  interface HTMLElementTagNameMap {
    'lantern-chat': LanternChatElement;
  }
}
