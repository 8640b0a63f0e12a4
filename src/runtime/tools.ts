/**
 * Tool (function) calls in OpenAI's shape, for the chat templates that take tools. A template's
 * tool-call syntax is its "format", found in the template text:
 *
 * - `hermes` (Qwen2.5, Qwen3, Hermes): `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`,
 *   several in a reply, text around them.
 * - `llama3` (Llama 3.1-3.3): the whole reply is `{"name": …, "parameters": {…}}`, possibly after
 *   `<|python_tag|>`; one call per turn (`;` between several is read too).
 * - `mistral`: `[TOOL_CALLS][{"name": …, "arguments": {…}, "id": …}, …]`, or the newer
 *   `[TOOL_CALLS]name[ARGS]{…}`.
 * - `phi4` (Phi-4-mini): `<|tool_call|>[{"name": …, "arguments": {…}}, …]<|/tool_call|>`; the tools
 *   go into the system message as a JSON string, not into a `tools` variable.
 *
 * Where the marker before the calls is a control token (Llama's `<|python_tag|>`, Mistral's
 * `[TOOL_CALLS]`, Phi's `<|tool_call|>` in their GGUF vocabularies), decoding drops it, so those
 * formats also read calls that start the reply without it.
 *
 * The parser is one function of the text so far (`readToolCalls`): with `final` false it commits
 * only what no later text can change, which is what the streaming reader emits as deltas. This
 * file is what the page needs; tool-prompt.ts puts tools into the prompt and forces calls.
 */

import type { ToolCall, ToolCallFormat } from './tool-format.ts';

export { toolCallFormatOf, type ChatTool, type ToolCall, type ToolCallFormat, type ToolChoice } from './tool-format.ts';

// ---- reading calls from the reply ----------------------------------------------------------------

/** A call as read so far: `arguments` may still grow while `done` is false. */
export interface ReadCall {
  name: string;
  arguments: string;
  /** The id the model wrote (Mistral), if any. */
  id?: string;
  done: boolean;
}

/** The reply read so far: the text outside the calls, and the calls. */
export interface ReadReply {
  content: string;
  calls: ReadCall[];
}

interface Syntax {
  /** The marker before a block of calls. */
  opener: string;
  /** The marker after it, where there is one (optional at the end of a reply). */
  closer?: string;
  /** A block may open the reply without the marker (a control token that decoding drops): starting with this. */
  bare?: '{' | '[';
  body: 'object' | 'objects' | 'array' | 'mistral';
}

const SYNTAX: Record<ToolCallFormat, Syntax> = {
  hermes: { opener: '<tool_call>', closer: '</tool_call>', body: 'object' },
  llama3: { opener: '<|python_tag|>', bare: '{', body: 'objects' },
  mistral: { opener: '[TOOL_CALLS]', bare: '[', body: 'mistral' },
  phi4: { opener: '<|tool_call|>', closer: '<|/tool_call|>', bare: '[', body: 'array' },
};

/**
 * The calls and the text around them in `text`, a reply (`final`) or its beginning so far. A
 * block that is not a well-formed call stays in the content, marker and all; whitespace between
 * text and a call is dropped. Not final, it holds back what later text could still change: a
 * possible marker, whitespace at the end, a call whose name is not yet known.
 */
export function readToolCalls(text: string, format: ToolCallFormat, final: boolean): ReadReply {
  const syntax = SYNTAX[format];
  const out: ReadReply = { content: '', calls: [] };
  let pos = 0;
  let afterBlock = false;
  if (syntax.bare !== undefined) {
    const q = skipWs(text, 0);
    if (q === text.length && !final) return out;
    if (text[q] === syntax.bare && !text.startsWith(syntax.opener, q)) {
      const r = readBlock(text, q, syntax, final, true);
      if (r.status === 'partial') return { content: '', calls: r.calls };
      if (r.status === 'done') {
        out.calls.push(...r.calls);
        pos = r.end;
        afterBlock = true;
      }
    }
  }
  for (;;) {
    const j = text.indexOf(syntax.opener, pos);
    let piece = text.slice(pos, j < 0 ? text.length : j);
    if (afterBlock) piece = piece.replace(/^\s+/, '');
    if (j < 0) {
      if (!final) piece = piece.slice(0, piece.length - heldBack(piece, syntax.opener));
      out.content += piece;
      return out;
    }
    const r = readBlock(text, j + syntax.opener.length, syntax, final, false);
    if (r.status === 'invalid') {
      out.content += piece + syntax.opener;
      pos = j + syntax.opener.length;
      afterBlock = false;
      continue;
    }
    out.content += piece.replace(/\s+$/, '');
    out.calls.push(...r.calls);
    if (r.status === 'partial') return out;
    pos = r.end;
    afterBlock = true;
  }
}

/** How many characters at the end of `piece` to hold back: trailing whitespace and a possible start of `opener`. */
function heldBack(piece: string, opener: string): number {
  let n = 0;
  for (let k = Math.min(opener.length - 1, piece.length); k > 0; k--) {
    if (opener.startsWith(piece.slice(piece.length - k))) {
      n = k;
      break;
    }
  }
  const rest = piece.slice(0, piece.length - n);
  return n + (rest.length - rest.replace(/\s+$/, '').length);
}

type Block = { status: 'done'; calls: ReadCall[]; end: number } | { status: 'partial'; calls: ReadCall[] } | { status: 'invalid' };

/** The calls of one block from `p` (after the marker, or at a bare start). */
function readBlock(text: string, p: number, syntax: Syntax, final: boolean, bare: boolean): Block {
  const calls: ReadCall[] = [];
  let q = skipWs(text, p);
  const partial = (): Block => (final ? { status: 'invalid' } : { status: 'partial', calls });
  const one = (at: number): { end: number } | Block => {
    const r = readCallObject(text, at, final);
    if (r.status === 'invalid') return r;
    if (r.status === 'partial') {
      if (r.call) calls.push(r.call);
      return partial();
    }
    calls.push(r.call);
    return { end: r.end };
  };
  const isBlock = (r: { end: number } | Block): r is Block => 'status' in r;

  if (syntax.body === 'mistral' && text[q] !== '[') {
    // [TOOL_CALLS]name[ARGS]{…} (with [CALL_ID]id before [ARGS] in some versions)
    if (bare) return { status: 'invalid' };
    const m = /^([A-Za-z0-9_.-]+)(?:\[CALL_ID\]([A-Za-z0-9]+))?\[ARGS\]/.exec(text.slice(q));
    if (!m) return /^[A-Za-z0-9_.\-[\]]*$/.test(text.slice(q)) && !final ? partial() : { status: 'invalid' };
    const at = q + m[0].length;
    const scan = scanJson(text, at);
    if (scan.status === 'invalid' || (text[at] !== undefined && text[at] !== '{')) return { status: 'invalid' };
    const call: ReadCall = { name: m[1], arguments: scan.status === 'done' ? text.slice(at, scan.end) : text.slice(at), done: scan.status === 'done', ...(m[2] ? { id: m[2] } : {}) };
    if (scan.status === 'partial') {
      if (text.length > at) calls.push(call);
      return partial();
    }
    if (!validObject(call.arguments)) return { status: 'invalid' };
    return { status: 'done', calls: [call], end: scan.end };
  }

  if (syntax.body === 'object' || syntax.body === 'objects') {
    for (;;) {
      const r = one(q);
      if (isBlock(r)) return r;
      q = skipWs(text, r.end);
      if (syntax.body === 'objects') {
        if (text[q] === ';') {
          q = skipWs(text, q + 1);
          continue;
        }
        if (q === text.length && !final) return partial();
        return { status: 'done', calls, end: r.end };
      }
      return closeBlock(text, r.end, q, syntax, final, calls);
    }
  }

  // a JSON array of calls
  if (text[q] === undefined) return partial();
  if (text[q] !== '[') return { status: 'invalid' };
  q = skipWs(text, q + 1);
  for (;;) {
    const r = one(q);
    if (isBlock(r)) return r;
    q = skipWs(text, r.end);
    if (text[q] === ',') {
      q = skipWs(text, q + 1);
      continue;
    }
    if (text[q] === undefined) return partial();
    if (text[q] !== ']') return { status: 'invalid' };
    return closeBlock(text, q + 1, skipWs(text, q + 1), syntax, final, calls);
  }
}

/** After a block's calls: its closing marker if there is one (missing is forgiven; a beginning of it waits). */
function closeBlock(text: string, end: number, q: number, syntax: Syntax, final: boolean, calls: ReadCall[]): Block {
  const closer = syntax.closer;
  if (closer === undefined) return { status: 'done', calls, end };
  if (text.startsWith(closer, q)) return { status: 'done', calls, end: q + closer.length };
  if (!final && closer.startsWith(text.slice(q))) return { status: 'partial', calls };
  return { status: 'done', calls, end };
}

const HEADER = /\{\s*"name"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.)*")\s*,\s*"(?:arguments|parameters)"\s*:\s*/y;
const CALL_KEYS = new Set(['name', 'arguments', 'parameters', 'id', 'type']);

type CallObject = { status: 'done'; call: ReadCall; end: number } | { status: 'partial'; call?: ReadCall } | { status: 'invalid' };

/**
 * `{"name": …, "arguments": {…}}` at `p` (or "parameters"; an "id" and "type": "function" may come
 * too). While it is unfinished, the call is known once its name is and its arguments come first
 * after it: they grow as text arrives.
 */
function readCallObject(text: string, p: number, final: boolean): CallObject {
  if (text[p] === undefined) return final ? { status: 'invalid' } : { status: 'partial' };
  if (text[p] !== '{') return { status: 'invalid' };
  const scan = scanJson(text, p);
  if (scan.status === 'invalid') return scan;
  if (scan.status === 'partial') {
    if (final) return { status: 'invalid' };
    HEADER.lastIndex = p;
    const header = HEADER.exec(text);
    if (!header) return { status: 'partial' };
    const at = p + header[0].length;
    if (text[at] !== '{') return { status: 'partial' };
    const args = scan.members.find((m) => m.start === at);
    return { status: 'partial', call: { name: JSON.parse(header[1]) as string, arguments: args ? text.slice(at, args.end) : text.slice(at), done: false } };
  }
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text.slice(p, scan.end)) as Record<string, unknown>;
  } catch {
    return { status: 'invalid' };
  }
  const keys = Object.keys(value);
  const argsKey = keys.includes('arguments') ? 'arguments' : 'parameters';
  const args = scan.members.find((m) => m.key === argsKey);
  if (typeof value.name !== 'string' || !args || !keys.every((k) => CALL_KEYS.has(k)) || (keys.includes('arguments') && keys.includes('parameters')) ||
    !validObject(text.slice(args.start, args.end)) || (value.type !== undefined && value.type !== 'function') || (value.id !== undefined && typeof value.id !== 'string')) {
    return { status: 'invalid' };
  }
  const call: ReadCall = { name: value.name, arguments: text.slice(args.start, args.end), done: true, ...(typeof value.id === 'string' ? { id: value.id } : {}) };
  return { status: 'done', call, end: scan.end };
}

function validObject(json: string): boolean {
  try {
    const v: unknown = JSON.parse(json);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

function skipWs(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  return i;
}

/** The span of one member's value in a top-level object. */
interface Member { key: string; start: number; end: number }
type Scan = { status: 'done'; end: number; members: Member[] } | { status: 'partial'; members: Member[] } | { status: 'invalid' };

/**
 * Where the JSON value at `start` ends: `partial` when the text ends inside it, `invalid` at the
 * first character JSON does not allow. The members of a top-level object are noted as they end.
 */
export function scanJson(text: string, start: number): Scan {
  const stack: ('{' | '[')[] = [];
  const members: Member[] = [];
  let expect: 'value' | 'after' | 'key' | 'colon' = 'value';
  let empty = false; // just after { or [
  let key = '';
  let valueStart = -1;
  let i = skipWs(text, start);
  const PARTIAL = -1, INVALID = -2;
  const valueEnded = (end: number): Scan | undefined => {
    if (stack.length === 0) return { status: 'done', end, members };
    if (stack.length === 1 && stack[0] === '{') members.push({ key, start: valueStart, end });
    expect = 'after';
    return undefined;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') {
      i++;
      continue;
    }
    if (expect === 'value') {
      if (stack.length === 1 && stack[0] === '{') valueStart = i;
      if (c === '{' || c === '[') {
        stack.push(c);
        i++;
        expect = c === '{' ? 'key' : 'value';
        empty = true;
        continue;
      }
      if (c === ']' && empty && stack.at(-1) === '[') {
        stack.pop();
        const done = valueEnded(++i);
        if (done) return done;
        continue;
      }
      const end = c === '"' ? scanString(text, i) : c === '-' || (c >= '0' && c <= '9') ? scanNumber(text, i) : scanLiteral(text, i);
      if (end === INVALID) return { status: 'invalid' };
      if (end === PARTIAL) return { status: 'partial', members };
      i = end;
      const done = valueEnded(i);
      if (done) return done;
      continue;
    }
    if (expect === 'key') {
      if (c === '}' && empty) {
        stack.pop();
        const done = valueEnded(++i);
        if (done) return done;
        continue;
      }
      if (c !== '"') return { status: 'invalid' };
      const end = scanString(text, i);
      if (end === INVALID) return { status: 'invalid' };
      if (end === PARTIAL) return { status: 'partial', members };
      if (stack.length === 1) key = JSON.parse(text.slice(i, end)) as string;
      i = end;
      expect = 'colon';
      continue;
    }
    if (expect === 'colon') {
      if (c !== ':') return { status: 'invalid' };
      i++;
      expect = 'value';
      empty = false;
      continue;
    }
    // after a value inside a container
    const top = stack.at(-1)!;
    if (c === ',') {
      i++;
      expect = top === '{' ? 'key' : 'value';
      empty = false;
      continue;
    }
    if (c === (top === '{' ? '}' : ']')) {
      stack.pop();
      const done = valueEnded(++i);
      if (done) return done;
      continue;
    }
    return { status: 'invalid' };
  }
  return { status: 'partial', members };

  function scanString(s: string, at: number): number {
    let k = at + 1;
    while (k < s.length) {
      const ch = s.charCodeAt(k);
      if (ch === 0x22) return k + 1;
      if (ch < 0x20) return INVALID;
      if (ch === 0x5c) {
        const e = s[k + 1];
        if (e === undefined) return PARTIAL;
        if (e === 'u') {
          const hex = s.slice(k + 2, k + 6);
          if (!/^[0-9a-fA-F]*$/.test(hex)) return INVALID;
          if (hex.length < 4) return PARTIAL;
          k += 6;
          continue;
        }
        if (!'"\\/bfnrt'.includes(e)) return INVALID;
        k += 2;
        continue;
      }
      k++;
    }
    return PARTIAL;
  }

  function scanNumber(s: string, at: number): number {
    const m = /-?(?:0|[1-9][0-9]*)?(?:\.[0-9]*)?(?:[eE][+-]?[0-9]*)?/y;
    m.lastIndex = at;
    const found = m.exec(s)![0];
    const end = at + found.length;
    if (end === s.length) return /^-?(0|[1-9][0-9]*)?(\.[0-9]*)?([eE][+-]?[0-9]*)?$/.test(found) && !/^-?0[0-9]/.test(found) ? PARTIAL : INVALID;
    return /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(found) ? end : INVALID;
  }

  function scanLiteral(s: string, at: number): number {
    for (const word of ['true', 'false', 'null']) {
      const got = s.slice(at, at + word.length);
      if (got === word) return at + word.length;
      if (at + got.length === s.length && word.startsWith(got)) return PARTIAL;
    }
    return INVALID;
  }
}

/** A whole reply's calls in OpenAI's shape; content is null when there are calls and no other text. */
export function parseToolCalls(text: string, format: ToolCallFormat, newId: () => string = () => toolCallId(format)): { content: string | null; toolCalls: ToolCall[] } {
  const { content, calls } = readToolCalls(text, format, true);
  return {
    content: calls.length > 0 && content === '' ? null : content,
    toolCalls: calls.map((c) => ({ id: c.id ?? newId(), type: 'function', function: { name: c.name, arguments: c.arguments } })),
  };
}

/** What the streaming reader emits, in order. */
export type ToolStreamEvent =
  | { kind: 'content'; text: string }
  /** A call begins: OpenAI's first delta of a call (arguments ''). */
  | { kind: 'call'; index: number; id: string; name: string }
  | { kind: 'arguments'; index: number; text: string };

/**
 * Reads a reply as it streams: `push` the text of each step, `end` once it is over. Text that
 * could still become part of a call is held back; a call is announced once its name is read and
 * its arguments then follow as they arrive, so that the fragments add up to the arguments
 * parseToolCalls gives for the whole reply. Where a call turns out malformed after it was announced
 * (a reply cut off by max_tokens, or garbage without a grammar), the calls keep what was sent and
 * the text of the broken call comes as content at the end. An id the model writes after the
 * arguments (Mistral's) is known too late for a stream: its calls get fresh ids.
 */
export class ToolCallStream {
  private text = '';
  private sentContent = '';
  private readonly sent: { name: string; args: string }[] = [];
  private frozen = false;

  constructor(private readonly format: ToolCallFormat, private readonly newId: () => string = () => toolCallId(format)) {}

  push(text: string): ToolStreamEvent[] {
    this.text += text;
    return this.emit(false);
  }

  end(): ToolStreamEvent[] {
    return this.emit(true);
  }

  /** Whether any call was announced (the finish reason is then "tool_calls"). */
  get hasCalls(): boolean {
    return this.sent.length > 0;
  }

  private emit(final: boolean): ToolStreamEvent[] {
    const read = readToolCalls(this.text, this.format, final);
    const events: ToolStreamEvent[] = [];
    // Only a malformed call can make a later reading disagree with what was sent: then the calls
    // stop where they are, and what follows is content.
    const consistent = this.sent.every((s, k) => read.calls[k]?.name === s.name && read.calls[k].arguments.startsWith(s.args));
    if (!consistent) this.frozen = true;
    if (this.frozen && !final) return events;
    if (read.content.length > this.sentContent.length && read.content.startsWith(this.sentContent)) {
      events.push({ kind: 'content', text: read.content.slice(this.sentContent.length) });
      this.sentContent = read.content;
    }
    if (this.frozen) return events;
    read.calls.forEach((call, k) => {
      if (k >= this.sent.length) {
        this.sent.push({ name: call.name, args: '' });
        events.push({ kind: 'call', index: k, id: call.id ?? this.newId(), name: call.name });
      }
      const s = this.sent[k];
      if (call.arguments.length > s.args.length) {
        events.push({ kind: 'arguments', index: k, text: call.arguments.slice(s.args.length) });
        s.args = call.arguments;
      }
    });
    return events;
  }
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A fresh call id: OpenAI's form ("call_" and 24 letters and digits), or 9 letters and digits for Mistral, whose template requires them. */
export function toolCallId(format?: ToolCallFormat): string {
  const bytes = new Uint8Array(format === 'mistral' ? 9 : 24);
  globalThis.crypto.getRandomValues(bytes);
  const id = Array.from(bytes, (b) => ID_CHARS[b % ID_CHARS.length]).join('');
  return format === 'mistral' ? id : `call_${id}`;
}
