import { LanternError } from '../errors.ts';

/** What the error screen says for an error, and which way out it offers. */
export interface ErrorScreen {
  code: string;
  title: string;
  /** The error's own sentence, which says what to do. */
  message: string;
  /** A download that broke off: loading the same source again resumes from the cache. */
  retry: boolean;
  /** The model cannot run here: pick a smaller one. */
  chooseOther: boolean;
}

export function describeError(error: unknown): ErrorScreen {
  if (!(error instanceof LanternError)) {
    const message = error instanceof Error ? error.message : String(error);
    return { code: 'UNKNOWN', title: 'Something went wrong', message: `${message}. Reload the page to try again.`, retry: false, chooseOther: false };
  }
  const base = { code: error.code, message: error.message, retry: false, chooseOther: false };
  switch (error.code) {
    case 'NO_WEBGPU':
      return { ...base, title: 'This browser has no WebGPU' };
    case 'ADAPTER_LIMITS':
    case 'OUT_OF_MEMORY':
    case 'QUOTA_EXCEEDED':
      return { ...base, title: 'This model is too large for this device', chooseOther: true };
    case 'FETCH_FAILED':
      return { ...base, title: 'The download failed', retry: true, chooseOther: true };
    case 'UNSUPPORTED_TENSOR_TYPE':
    case 'UNSUPPORTED_ARCH':
    case 'UNSUPPORTED_VERSION':
    case 'BAD_MODEL_FILE':
    case 'TRUNCATED_FILE':
    case 'CHECKSUM_MISMATCH':
      return { ...base, title: 'Lantern cannot run this file', chooseOther: true };
    case 'DEVICE_LOST':
      return { ...base, title: 'The GPU was lost', retry: true };
    case 'NUMERIC_ERROR':
      return { ...base, title: 'The model computed NaN or infinity', chooseOther: true };
    default:
      return { ...base, title: 'Something went wrong', chooseOther: true };
  }
}

/** For a browser without navigator.gpu: raised by the page before any engine starts. */
export function noWebGpuError(): LanternError {
  return new LanternError(
    'NO_WEBGPU',
    'This browser does not offer WebGPU, so the model cannot run here. Open the page in a recent Chrome or Edge (113 or later) or Safari 26, over https or from localhost, or turn WebGPU on in the browser settings, then reload.',
  );
}
