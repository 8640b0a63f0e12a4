/** The runtime's surface, shared by the in-thread runtime, the Web Worker and the CLI. */

export interface ModelInfo {
  architecture: string;
  name: string;
  /** Context length the KV cache was allocated for. */
  contextLength: number;
  vocabSize: number;
  /** Human-readable adapter description, e.g. "swiftshader (Google)". */
  adapter: string;
  shaderF16: boolean;
}

export interface GenerateOptions {
  /** Tokens to generate after the prompt (stops early at an end-of-generation token). */
  maxTokens?: number;
  /** 0 (default) is greedy decoding on the GPU. */
  temperature?: number;
  seed?: number;
}

export interface GeneratedToken {
  id: number;
  /** Text this token completes; '' while a UTF-8 character is still incomplete. */
  text: string;
}

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}
