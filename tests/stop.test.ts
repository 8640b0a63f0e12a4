import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../src/runtime/stop.ts';

/** Stop strings over a stream of token texts: never emitted, found across token boundaries. */
function run(stops: string[], pieces: string[]): { out: string[]; stoppedAt: number } {
  const m = new StopMatcher(stops);
  const out: string[] = [];
  for (const [i, piece] of pieces.entries()) {
    const r = m.push(piece);
    out.push(r.text);
    if (r.stopped) return { out, stoppedAt: i };
  }
  out.push(m.flush());
  return { out, stoppedAt: -1 };
}

describe('stop strings', () => {
  it('finds a stop string that spans three tokens and never emits it', () => {
    const { out, stoppedAt } = run(['<|end|>'], ['Hello', ' wor', 'ld<|', 'en', 'd|>', 'after']);
    expect(stoppedAt).toBe(4);
    expect(out.join('')).toBe('Hello world');
    expect(out[2]).toBe('ld'); // "<|" held back until it is known
  });

  it('releases held text when the match fails or the stream ends', () => {
    expect(run(['STOP'], ['a S', 'T', 'x', 'y']).out.join('')).toBe('a STxy');
    expect(run(['STOP'], ['a S', 'TO']).out).toEqual(['a ', '', 'STO']);
  });

  it('stops at the earliest of several strings, within one token too', () => {
    expect(run(['\n\n', 'The end'], ['One day.', '\nThe end\n', '\nmore']).out.join('')).toBe('One day.\n');
    expect(run(['yz', 'xy'], ['axyzb']).out.join('')).toBe('a');
  });
});
