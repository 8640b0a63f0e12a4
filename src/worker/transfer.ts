import { transferHandlers, type TransferHandler } from 'comlink';
import { LanternError, type LanternErrorCode } from '../errors.ts';

/** comlink's wrapper around a thrown value: `{ value, [throwMarker]: 0 }`. */
interface Thrown {
  value: unknown;
}

interface SerializedLanternError {
  lanternError: { code: LanternErrorCode; message: string; details?: Record<string, unknown> };
}

let registered = false;

/**
 * Lets a LanternError thrown on one side of the worker boundary be thrown on the other as a
 * LanternError, `code` and `details` included. Both sides call this before they talk.
 *
 * comlink sends every thrown value through its built-in "throw" handler, which keeps only an
 * Error's message, name and stack. We wrap that handler rather than add one of our own, because
 * a thrown value reaches the "throw" handler first.
 */
export function registerLanternErrorTransfer(): void {
  if (registered) return;
  registered = true;
  const builtin = transferHandlers.get('throw') as TransferHandler<Thrown, unknown>;
  const handler: TransferHandler<Thrown, unknown> = {
    canHandle: builtin.canHandle,
    serialize(thrown) {
      if (thrown.value instanceof LanternError) return [{ lanternError: thrown.value.toJSON() }, []];
      return builtin.serialize(thrown);
    },
    deserialize(serialized) {
      if (isSerializedLanternError(serialized)) throw LanternError.fromJSON(serialized.lanternError);
      return builtin.deserialize(serialized);
    },
  };
  transferHandlers.set('throw', handler);
}

function isSerializedLanternError(value: unknown): value is SerializedLanternError {
  return typeof value === 'object' && value !== null && 'lanternError' in value;
}
