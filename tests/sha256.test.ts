/** The incremental SHA-256 that checks whole model files against node:crypto, fed in odd pieces. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Sha256, sha256Hex } from '../src/storage/sha256.ts';

function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

describe('sha256', () => {
  // Lengths around the 55/56/64-byte padding boundaries, and one spanning many blocks.
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100_003]) {
    it(`matches node:crypto for ${n} bytes fed in uneven pieces`, async () => {
      const bytes = pseudoRandomBytes(n, n + 7);
      const want = createHash('sha256').update(bytes).digest('hex');
      const hasher = new Sha256();
      for (let i = 0, k = 1; i < n; i += k, k = (k * 7 + 3) % 251 + 1) hasher.update(bytes.subarray(i, i + k));
      expect(hasher.hex()).toBe(want);
      expect(await sha256Hex(bytes)).toBe(want);
    });
  }
});
