/**
 * One error class for the whole runtime: a machine-readable `code` and a message that says what
 * to do. It is plain data (name, code, message, details) so it survives the worker boundary.
 */
export type LanternErrorCode =
  | 'BAD_MODEL_FILE'
  | 'UNSUPPORTED_VERSION'
  | 'UNSUPPORTED_TENSOR_TYPE'
  | 'UNSUPPORTED_ARCH'
  | 'UNSUPPORTED_FORMAT'
  | 'TRUNCATED_FILE'
  | 'TENSOR_OUT_OF_BOUNDS'
  | 'BAD_TOKENIZER'
  | 'NO_WEBGPU'
  | 'ADAPTER_LIMITS'
  | 'OUT_OF_MEMORY'
  | 'GPU_ERROR'
  | 'DEVICE_LOST'
  | 'CONTEXT_OVERFLOW'
  | 'BAD_ARGUMENT'
  | 'NOT_LOADED'
  | 'FETCH_FAILED'
  | 'QUOTA_EXCEEDED'
  | 'CHECKSUM_MISMATCH'
  | 'ABORTED'
  | 'NUMERIC_ERROR'
  | 'NO_CHAT_TEMPLATE'
  | 'BAD_CHAT_TEMPLATE'
  | 'BAD_GRAMMAR'
  | 'UNSUPPORTED_SCHEMA'
  | 'NO_TOOL_SUPPORT';

/**
 * Every error Lantern throws, also across the worker boundary: branch on `code`; `message` says
 * what to do.
 *
 * @example
 * ```ts
 * import { LanternError } from 'lantern';
 *
 * try {
 *   await engine.load(url);
 * } catch (e) {
 *   if (e instanceof LanternError && e.code === 'NO_WEBGPU') showFallback(e.message);
 *   else throw e;
 * }
 * ```
 */
export class LanternError extends Error {
  override readonly name = 'LanternError';
  constructor(
    readonly code: LanternErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  toJSON(): { name: string; code: LanternErrorCode; message: string; details?: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }

  /** Rebuilds an error that crossed a worker or process boundary as plain data. */
  static fromJSON(data: { code: LanternErrorCode; message: string; details?: Record<string, unknown> }): LanternError {
    return new LanternError(data.code, data.message, data.details);
  }
}
