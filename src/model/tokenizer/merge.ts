/**
 * The merge loop SentencePiece-style and BPE tokenizers share (llama.cpp's llm_tokenizer_spm and
 * llm_tokenizer_bpe sessions): start from one symbol per code point, keep a queue of adjacent
 * pairs that form a token, and repeatedly merge the best pair, leftmost first among equals.
 * A queued pair goes stale once either side has changed; it is then skipped.
 */

/** Rates the pair `left + right`: higher merges first; undefined when the pair is no token. */
export type PairPriority = (left: string, right: string) => number | undefined;

interface Candidate { left: number; right: number; priority: number; length: number }

/** Returns the merged symbols of `text`, in order. */
export function mergeSymbols(text: string, priority: PairPriority): string[] {
  // One symbol per code point: [start, length) in UTF-16 units of `text`, linked left and right.
  const start: number[] = [];
  const length: number[] = [];
  for (let i = 0; i < text.length;) {
    const unit = text.codePointAt(i)! > 0xffff ? 2 : 1;
    start.push(i);
    length.push(unit);
    i += unit;
  }
  const n = start.length;
  const prev = Array.from({ length: n }, (_, i) => i - 1);
  const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const symbol = (i: number) => text.slice(start[i], start[i] + length[i]);

  const queue = new Heap<Candidate>((a, b) => a.priority > b.priority || (a.priority === b.priority && a.left < b.left));
  const offer = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const p = priority(symbol(left), symbol(right));
    if (p !== undefined) queue.push({ left, right, priority: p, length: length[left] + length[right] });
  };
  for (let i = 1; i < n; i++) offer(i - 1, i);

  while (queue.size > 0) {
    const c = queue.pop();
    if (length[c.left] === 0 || length[c.right] === 0 || length[c.left] + length[c.right] !== c.length) continue;
    length[c.left] += length[c.right];
    length[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    offer(prev[c.left], c.left);
    offer(c.left, next[c.left]);
  }

  const out: string[] = [];
  for (let i = n > 0 ? 0 : -1; i !== -1; i = next[i]) out.push(symbol(i));
  return out;
}

/** A binary heap; `before(a, b)` says a leaves first. */
class Heap<T> {
  private items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number { return this.items.length; }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.before(a[i], a[parent])) break;
      [a[i], a[parent]] = [a[parent], a[i]];
      i = parent;
    }
  }

  pop(): T {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < a.length && this.before(a[l], a[best])) best = l;
        if (r < a.length && this.before(a[r], a[best])) best = r;
        if (best === i) break;
        [a[i], a[best]] = [a[best], a[i]];
        i = best;
      }
    }
    return top;
  }
}
