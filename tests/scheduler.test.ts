import { describe, expect, it } from 'vitest';
import { Scheduler } from '../src/runtime/scheduler.ts';

/** The scheduler alone, with jobs that record when they run. */

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('scheduler', () => {
  it('runs one request at a time and lets callers take turns', async () => {
    const s = new Scheduler();
    const order: string[] = [];
    let running = 0;
    const job = (name: string) => async () => {
      running++;
      expect(running).toBe(1);
      await tick();
      order.push(name);
      running--;
      return name;
    };
    // Caller A queues three before B and C queue one each: B and C do not wait for all of A's.
    const done = [
      s.submit('a1', 'A', job('a1')), s.submit('a2', 'A', job('a2')), s.submit('a3', 'A', job('a3')),
      s.submit('b1', 'B', job('b1')), s.submit('c1', 'C', job('c1')), s.submit('b2', 'B', job('b2')),
    ];
    expect(await Promise.all(done)).toEqual(['a1', 'a2', 'a3', 'b1', 'c1', 'b2']);
    expect(order).toEqual(['a1', 'a2', 'b1', 'c1', 'a3', 'b2']);
  });

  it('cancels a queued request before it starts, by id or by signal', async () => {
    const s = new Scheduler();
    const started: string[] = [];
    const job = (name: string) => async () => {
      started.push(name);
      await tick();
    };
    const controller = new AbortController();
    const first = s.submit('1', 'A', job('1'));
    const second = s.submit('2', 'B', job('2'));
    const third = s.submit('3', 'C', job('3'), controller.signal);
    expect(s.queued).toBe(2);
    expect(s.cancel('2')).toBe(true);
    controller.abort();
    await expect(second).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(third).rejects.toMatchObject({ code: 'ABORTED' });
    await first;
    expect(started).toEqual(['1']);
    expect(s.cancel('nope')).toBe(false);
  });

  it('aborts the running request through its signal, and the next one starts', async () => {
    const s = new Scheduler();
    let steps = 0;
    const long = s.submit('long', 'A', async (signal) => {
      while (!signal.aborted) {
        steps++;
        await tick();
      }
      return 'aborted';
    });
    const next = s.submit('next', 'B', async () => 'ran');
    await tick();
    expect(s.active).toBe('long');
    s.cancel('long');
    expect(await long).toBe('aborted');
    expect(await next).toBe('ran');
    expect(steps).toBeGreaterThan(0);
  });

  it('keeps going after a request fails, and refuses duplicate ids', async () => {
    const s = new Scheduler();
    const failing = s.submit('x', 'A', async () => {
      throw new Error('boom');
    });
    const dup = s.submit('x', 'B', async () => 1);
    await expect(dup).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(failing).rejects.toThrow('boom');
    expect(await s.submit('y', 'A', async () => 2)).toBe(2);
  });
});
