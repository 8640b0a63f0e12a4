/**
 * Tool (function) calls: OpenAI's shapes, and which call format a chat template uses (see tools.ts
 * for the formats). Apart from tools.ts, so that what renders a prompt (chat.ts, tool-prompt.ts,
 * the runtime) does not bring in the reply's parser, which the page loads only for requests that
 * offer tools.
 */

/** OpenAI's function tool. `parameters` is a JSON schema of an object (the subset in the README when a call is forced). */
export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
}

/** `auto`: the model decides; `none`: no tools are offered; `required` or a named function: a call is forced by a grammar. */
export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

/** One call in a reply; `arguments` is JSON text, as the model wrote it. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ToolCallFormat = 'hermes' | 'llama3' | 'mistral' | 'phi4';

/** The tool-call format a chat template uses, or undefined when it takes no tools. */
export function toolCallFormatOf(template: string): ToolCallFormat | undefined {
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('[TOOL_CALLS]')) return 'mistral';
  if (template.includes('<|tool|>') && template.includes("message['tools']")) return 'phi4';
  if (template.includes('ipython') && template.includes('"parameters"')) return 'llama3';
  return undefined;
}
