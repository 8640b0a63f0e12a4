/**
 * Constrained decoding for a request: GenerateOptions' `grammar` (GBNF) or `responseFormat`
 * (OpenAI's json_object / json_schema) compiled once, before any token, into a TokenConstraint
 * over the model's vocabulary. The vocabulary trie is built once per tokenizer; compiled grammars
 * are kept for a few requests, so that a repeated schema starts with its states and masks warm.
 */
import { LanternError } from '../../errors.ts';
import type { Tokenizer } from '../../model/tokenizer/index.ts';
import { parseGbnf, type Grammar } from './gbnf.ts';
import { grammarFromJsonSchema, jsonObjectGrammar } from './json-schema.ts';
import { maskVocabulary, TokenConstraint, TokenMasker, TokenTrie, type MaskVocabulary } from './mask.ts';
import { compileGrammar, GrammarAutomaton } from './matcher.ts';

export { applyMask, TokenConstraint } from './mask.ts';

/** OpenAI's response_format. `text` is no constraint. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null } };

const vocabularies = new WeakMap<Tokenizer, { vocab: MaskVocabulary; trie: TokenTrie; maskers: Map<string, TokenMasker> }>();
/** Compiled grammars kept per tokenizer (each holds its states and masks). */
const MASKERS_KEPT = 8;

/** The request's constraint, or undefined when it asks for none. Throws BAD_GRAMMAR / UNSUPPORTED_SCHEMA / BAD_ARGUMENT. */
export function constraintFor(tokenizer: Tokenizer, options: { grammar?: string; responseFormat?: ResponseFormat }): TokenConstraint | undefined {
  const { grammar, responseFormat } = options;
  if (grammar !== undefined && responseFormat !== undefined && responseFormat.type !== 'text') {
    throw new LanternError('BAD_ARGUMENT', 'A request can have a grammar or a JSON response_format, not both; drop one of them.');
  }
  let key: string;
  let build: () => Grammar;
  if (grammar !== undefined) {
    if (typeof grammar !== 'string') throw new LanternError('BAD_ARGUMENT', 'grammar must be GBNF text (a string).');
    key = `gbnf:${grammar}`;
    build = () => parseGbnf(grammar);
  } else if (responseFormat === undefined || responseFormat.type === 'text') {
    return undefined;
  } else if (responseFormat.type === 'json_object') {
    key = 'json_object';
    build = jsonObjectGrammar;
  } else if (responseFormat.type === 'json_schema') {
    const schema = responseFormat.json_schema?.schema ?? {};
    key = `schema:${JSON.stringify(schema)}`;
    build = () => grammarFromJsonSchema(schema);
  } else {
    throw new LanternError('BAD_ARGUMENT', `response_format type ${JSON.stringify((responseFormat as { type: unknown }).type)} is not one of text, json_object, json_schema.`);
  }

  let entry = vocabularies.get(tokenizer);
  if (!entry) {
    const vocab = maskVocabulary(tokenizer);
    entry = { vocab, trie: new TokenTrie(vocab), maskers: new Map() };
    vocabularies.set(tokenizer, entry);
  }
  let masker = entry.maskers.get(key);
  if (masker) {
    entry.maskers.delete(key); // most recently used last
  } else {
    masker = new TokenMasker(new GrammarAutomaton(compileGrammar(build())), entry.trie);
    if (entry.maskers.size >= MASKERS_KEPT) entry.maskers.delete(entry.maskers.keys().next().value!);
  }
  entry.maskers.set(key, masker);
  return new TokenConstraint(masker, entry.vocab);
}
