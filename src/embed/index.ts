/**
 * lantern-embed.js, a classic script any page can include:
 *
 *   <script src="https://…/lantern-embed.js" data-model="URL" defer></script>
 *
 * defines <lantern-chat> and, when the tag has `data-model` (or `data-position`), adds one floating
 * widget to the page. Other `data-*` attributes on the tag (system-prompt, template, theme,
 * position, max-tokens, temperature) become the widget's attributes. The engine worker
 * (lantern-worker.js) and the bundled model are found beside this script, on its own origin.
 */
import { LanternChatElement } from './chat-element.ts';

const WIDGET_ATTRIBUTES = ['model', 'system-prompt', 'template', 'theme', 'position', 'max-tokens', 'temperature'];

// Set while a classic script runs (also with `defer`); null when loaded as a module or injected
// by another script after the fact, where the tag is found by its file name instead.
const script =
  (document.currentScript instanceof HTMLScriptElement ? document.currentScript : null) ??
  document.querySelector<HTMLScriptElement>('script[src*="lantern-embed"]');
if (script?.src) LanternChatElement.assetBase = new URL('.', script.src);

if (!customElements.get('lantern-chat')) customElements.define('lantern-chat', LanternChatElement);

if (script && (script.hasAttribute('data-model') || script.hasAttribute('data-position'))) {
  const widget = document.createElement('lantern-chat');
  for (const name of WIDGET_ATTRIBUTES) {
    const value = script.getAttribute(`data-${name}`);
    if (value !== null) widget.setAttribute(name, value);
  }
  if (!widget.hasAttribute('position')) widget.setAttribute('position', 'bottom-right');
  const mount = () => document.body.append(widget);
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount, { once: true });
}

declare global {
  interface HTMLElementTagNameMap {
    'lantern-chat': LanternChatElement;
  }
}
