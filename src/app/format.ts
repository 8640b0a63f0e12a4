/** Numbers as the demo shows them: sizes, durations, rates. */

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function formatRate(tokensPerSecond: number): string {
  return `${tokensPerSecond.toFixed(1)} tok/s`;
}

/**
 * Bytes per second over the last few seconds of a transfer, so that the speed and the time left
 * follow the network rather than the average since the start (which a resumed download skews).
 */
export class TransferMeter {
  private samples: { at: number; bytes: number }[] = [];

  constructor(private readonly windowMs = 3000) {}

  reset(): void {
    this.samples = [];
  }

  /** Records `loadedBytes` now; returns bytes per second, or undefined until two samples exist. */
  update(loadedBytes: number, now = performance.now()): number | undefined {
    this.samples.push({ at: now, bytes: loadedBytes });
    while (this.samples.length > 2 && now - this.samples[0].at > this.windowMs) this.samples.shift();
    const first = this.samples[0];
    const elapsed = (now - first.at) / 1000;
    if (this.samples.length < 2 || elapsed <= 0) return undefined;
    return (loadedBytes - first.bytes) / elapsed;
  }
}
