import type { OpenModelOptions } from './open.ts';

/** Load progress: what the phases are, and one reporter that keeps the events monotonic and sparse. */

export type LoadPhase = 'download' | 'verify' | 'cache' | 'upload';

/**
 * Monotonic within a phase; `totalBytes` is the model file's size (of all its parts, when split),
 * or undefined while it is not known: a server that compresses the file and will not say its size
 * (show an indeterminate bar). The phase's last event carries it.
 */
export interface LoadProgress {
  phase: LoadPhase;
  loadedBytes: number;
  totalBytes: number | undefined;
}

/** Progress events come every 256 KiB or 1% of the file, whichever is less, and for every stored chunk. */
const PROGRESS_STEP = 1 << 18;

export type Report = (phase: LoadPhase, loadedBytes: number, totalBytes: number | undefined, force?: boolean) => void;

/**
 * Drops events that would go backwards, and thins out ones that move less than a step. An event
 * that brings the total, learnt at the end of a body, passes with the bytes of the one before.
 */
export function progressReporter(onProgress: OpenModelOptions['onProgress']): Report {
  const last = new Map<LoadPhase, { loaded: number; total: number | undefined }>();
  return (phase, loadedBytes, totalBytes, force = false) => {
    if (!onProgress) return;
    const previous = last.get(phase);
    const done = totalBytes !== undefined && loadedBytes >= totalBytes;
    const learnt = previous !== undefined && previous.total === undefined && totalBytes !== undefined;
    if (previous !== undefined && (loadedBytes < previous.loaded || (loadedBytes === previous.loaded && !learnt))) return;
    const step = totalBytes === undefined ? PROGRESS_STEP : Math.min(PROGRESS_STEP, totalBytes / 100);
    if (previous !== undefined && !force && !done && !learnt && loadedBytes - previous.loaded < step) return;
    last.set(phase, { loaded: loadedBytes, total: totalBytes });
    void Promise.resolve(onProgress({ phase, loadedBytes, totalBytes })).catch(() => {});
  };
}
/**
 * One reporter per part; each event reports the sum over all parts, against the whole model's
 * size once every part's size is known (a part that would not say reports it at its end).
 */
export function summedReporter(report: Report, sizes: (number | undefined)[]): (part: number) => Report {
  const loaded = new Map<LoadPhase, number[]>();
  return (part) => (phase, loadedBytes, partTotal, force) => {
    if (partTotal !== undefined) sizes[part] = partTotal;
    const perPart = loaded.get(phase) ?? sizes.map(() => 0);
    loaded.set(phase, perPart);
    perPart[part] = loadedBytes;
    const total = sizes.every((size) => size !== undefined) ? sizes.reduce((a: number, b) => a + b!, 0) : undefined;
    report(phase, perPart.reduce((a, b) => a + b, 0), total, force);
  };
}
