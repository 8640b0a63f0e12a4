/**
 * The widget's stylesheet, inside its shadow root. `all: initial` on the host stops the page's
 * inherited properties (font, color, line-height) from leaking in; the page's selectors cannot
 * reach the shadow tree at all. Pages may theme it through the --lantern-* custom properties, which
 * inherit on purpose, or style the `launcher` and `panel` parts with ::part().
 */
export const WIDGET_CSS = `
:host {
  all: initial;
  display: block;
  --bg: var(--lantern-background, #ffffff);
  --fg: var(--lantern-foreground, #1b1f24);
  --muted: var(--lantern-muted, #59636e);
  --line: var(--lantern-border, #d1d9e0);
  --accent: var(--lantern-accent, #b45309);
  --on-accent: #ffffff;
  --bubble: var(--lantern-bubble, #f3f4f6);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg);
}
:host([theme=dark]) {
  --bg: var(--lantern-background, #17191c);
  --fg: var(--lantern-foreground, #e6e8eb);
  --muted: var(--lantern-muted, #9aa4ae);
  --line: var(--lantern-border, #343a40);
  --accent: var(--lantern-accent, #f59e0b);
  --on-accent: #17191c;
  --bubble: var(--lantern-bubble, #24282d);
}
:host([hidden]) { display: none; }
:host([position=bottom-right]), :host([position=bottom-left]) {
  position: fixed;
  bottom: 16px;
  z-index: 2147483000;
  /* The launcher stays in the corner; the panel opens above it. */
  display: flex;
  flex-direction: column-reverse;
  align-items: flex-end;
}
:host([position=bottom-right]) { right: 16px; }
:host([position=bottom-left]) { left: 16px; align-items: flex-start; }
* { box-sizing: border-box; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
}
button {
  font: inherit; cursor: pointer; border-radius: 8px; padding: 6px 12px;
  border: 1px solid var(--accent); background: var(--accent); color: var(--on-accent);
}
button:disabled { opacity: 0.5; cursor: default; }
button:focus-visible, textarea:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.launcher { display: none; border-radius: 999px; padding: 10px 18px; box-shadow: 0 4px 14px rgb(0 0 0 / 0.25); }
:host([position=bottom-right]) .launcher, :host([position=bottom-left]) .launcher { display: block; }
.panel {
  display: flex; flex-direction: column; gap: 8px;
  width: 100%; max-width: 420px; height: 420px; padding: 12px;
  background: var(--bg); color: var(--fg);
  border: 1px solid var(--line); border-radius: 12px;
}
:host([position=bottom-right]) .panel, :host([position=bottom-left]) .panel {
  width: min(360px, calc(100vw - 32px)); height: min(480px, calc(100vh - 96px));
  margin-bottom: 10px; box-shadow: 0 8px 28px rgb(0 0 0 / 0.25);
}
:host([position=bottom-right]:not([open])) .panel, :host([position=bottom-left]:not([open])) .panel { display: none; }
header { display: flex; align-items: center; justify-content: space-between; }
.title { font-weight: 600; }
.close { display: none; background: transparent; color: var(--fg); border-color: transparent; padding: 0 6px; font-size: 20px; }
:host([position=bottom-right]) .close, :host([position=bottom-left]) .close { display: block; }
.log { flex: 1; overflow-y: auto; margin: 0; padding: 0; list-style: none; display: flex; flex-direction: column; gap: 6px; }
.log li { padding: 6px 10px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; max-width: 90%; }
.log .user { align-self: flex-end; background: var(--accent); color: var(--on-accent); }
.log .assistant { align-self: flex-start; background: var(--bubble); }
.log .assistant:empty::after { content: "…"; color: var(--muted); }
.status { margin: 0; min-height: 1.45em; font-size: 12px; color: var(--muted); }
.status[data-state=error] { color: #d1242f; }
form { display: flex; flex-direction: column; gap: 6px; margin: 0; }
textarea {
  font: inherit; color: var(--fg); background: var(--bg); resize: vertical; width: 100%;
  border: 1px solid var(--line); border-radius: 8px; padding: 6px 8px;
}
.actions { display: flex; gap: 6px; justify-content: flex-end; }
`;
