/**
 * Stop strings that may span token boundaries. Generated text passes through `push`; text that
 * could still be the start of a stop string is held back until the next token decides, and a stop
 * string itself is never released.
 */
export class StopMatcher {
  private held = '';
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds newly decoded text; returns what may be shown now and whether a stop string completed. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.stopped) return { text: '', stopped: true };
    this.held += text;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.held.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.stopped = true;
      const out = this.held.slice(0, cut);
      this.held = '';
      return { text: out, stopped: true };
    }
    const keep = this.partialMatchLength();
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { text: out, stopped: false };
  }

  /** At the end of generation nothing can complete a stop string any more: release the rest. */
  flush(): string {
    const out = this.stopped ? '' : this.held;
    this.held = '';
    return out;
  }

  /** Length of the longest tail of the held text that is a proper prefix of some stop string. */
  private partialMatchLength(): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.held.length); n > longest; n--) {
        if (this.held.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
