/// <reference lib="webworker" />
import { expose } from 'comlink';
import { registerLanternErrorTransfer } from './transfer.ts';
import { WorkerEngine } from './worker-engine.ts';

// One WorkerEngine, and so one loaded model and one queue, for every tab that connects.
registerLanternErrorTransfer();
const engine = new WorkerEngine();
(self as unknown as SharedWorkerGlobalScope).addEventListener('connect', (event) => {
  const port = (event as MessageEvent).ports[0];
  expose(engine, port);
});
