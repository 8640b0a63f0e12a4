import { expose } from 'comlink';
import { registerLanternErrorTransfer } from './transfer.ts';
import { WorkerEngine } from './worker-engine.ts';

// The worker's whole surface is one WorkerEngine; src/worker/client.ts is its other half.
registerLanternErrorTransfer();
expose(new WorkerEngine());
