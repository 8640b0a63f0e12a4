/**
 * One model, many callers: requests run one at a time, and callers take turns (round robin), so
 * one tab that queues ten requests does not starve another that queued one. A queued request can
 * be cancelled before it starts; a running one is aborted through its AbortSignal, which the
 * generation loop checks between prefill chunks and between tokens.
 */
import { LanternError } from '../errors.ts';

interface Queued {
  id: string;
  caller: string;
  run: (signal: AbortSignal) => Promise<unknown>;
  controller: AbortController;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class Scheduler {
  /** Queued requests per caller, oldest first. */
  private readonly queues = new Map<string, Queued[]>();
  /** Callers with queued requests, in the order they get their next turn. */
  private readonly turns: string[] = [];
  private running: Queued | undefined;

  /**
   * Queues `run` for `caller`; it starts when the requests before it in the rotation are done.
   * Rejects with ABORTED when cancelled before it starts; once started, cancelling aborts the
   * signal passed to `run` and `run` decides how to end.
   */
  submit<T>(id: string, caller: string, run: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.running?.id === id || [...this.queues.values()].some((q) => q.some((r) => r.id === id))) {
      return Promise.reject(new LanternError('BAD_ARGUMENT', `A request with id "${id}" is already queued or running; give each request its own id.`));
    }
    return new Promise<T>((resolve, reject) => {
      const request: Queued = { id, caller, run, controller: new AbortController(), resolve: resolve as (v: unknown) => void, reject };
      if (signal?.aborted) {
        reject(abortedBeforeStart(id));
        return;
      }
      signal?.addEventListener('abort', () => this.cancel(id), { once: true });
      let queue = this.queues.get(caller);
      if (!queue) this.queues.set(caller, (queue = []));
      queue.push(request);
      if (!this.turns.includes(caller)) this.turns.push(caller);
      this.pump();
    });
  }

  /** Cancels a queued or running request; false when no request has that id. */
  cancel(id: string): boolean {
    if (this.running?.id === id) {
      this.running.controller.abort();
      return true;
    }
    for (const [caller, queue] of this.queues) {
      const i = queue.findIndex((r) => r.id === id);
      if (i === -1) continue;
      const [request] = queue.splice(i, 1);
      if (queue.length === 0) this.dropCaller(caller);
      request.reject(abortedBeforeStart(id));
      return true;
    }
    return false;
  }

  /** Cancels every queued and running request of one caller. */
  cancelCaller(caller: string): void {
    for (const r of [...(this.queues.get(caller) ?? [])]) this.cancel(r.id);
    if (this.running?.caller === caller) this.running.controller.abort();
  }

  /** Cancels everything, queued and running (used by unload and on device loss). */
  cancelAll(): void {
    for (const queue of [...this.queues.values()]) for (const r of [...queue]) this.cancel(r.id);
    this.running?.controller.abort();
  }

  /** Requests waiting to start. */
  get queued(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  /** Id of the running request, if any. */
  get active(): string | undefined {
    return this.running?.id;
  }

  private pump(): void {
    if (this.running) return;
    const caller = this.turns.shift();
    if (caller === undefined) return;
    const queue = this.queues.get(caller)!;
    const request = queue.shift()!;
    if (queue.length === 0) this.queues.delete(caller);
    else this.turns.push(caller); // back of the line for this caller's next request
    this.running = request;
    void (async () => {
      try {
        request.resolve(await request.run(request.controller.signal));
      } catch (e) {
        request.reject(e);
      } finally {
        this.running = undefined;
        this.pump();
      }
    })();
  }

  private dropCaller(caller: string): void {
    this.queues.delete(caller);
    const i = this.turns.indexOf(caller);
    if (i !== -1) this.turns.splice(i, 1);
  }
}

function abortedBeforeStart(id: string): LanternError {
  return new LanternError('ABORTED', `Request ${id} was cancelled before it started.`, { id });
}
