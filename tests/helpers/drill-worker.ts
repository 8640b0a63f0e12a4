/// <reference lib="webworker" />
/**
 * The SharedWorker of tests/e2e/drills.test.ts: what src/worker/engine-shared-worker.ts does (one
 * WorkerEngine for every tab that connects), plus two things the drills need and the product does
 * not export: a census of live GPU buffers, and a way to lose the GPU device mid-generation.
 * Pages reach it through tests/helpers/drill-page.ts, which points createEngine's SharedWorker here.
 */
import { expose } from 'comlink';
import { registerLanternErrorTransfer } from '../../src/worker/transfer.ts';
import { WorkerEngine } from '../../src/worker/worker-engine.ts';

/** Buffers created and not destroyed, per device that is not lost. */
const live = new Map<GPUDevice, Set<GPUBuffer>>();
const owners = new WeakMap<GPUBuffer, GPUDevice>();

// Wrapped on the prototypes, before any device exists: every buffer the runtime makes is counted.
if (typeof GPUDevice !== 'undefined') {
  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (this: GPUDevice, descriptor: GPUBufferDescriptor): GPUBuffer {
    const buffer = createBuffer.call(this, descriptor);
    let buffers = live.get(this);
    if (!buffers) {
      live.set(this, (buffers = new Set()));
      // A lost or destroyed device frees every buffer it had.
      void this.lost.then(() => live.delete(this));
    }
    buffers.add(buffer);
    owners.set(buffer, this);
    return buffer;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function (this: GPUBuffer): undefined {
    const device = owners.get(this);
    if (device) live.get(device)?.delete(this);
    return destroy.call(this);
  };
}

export interface BufferCensus {
  devices: number;
  buffers: number;
  bytes: number;
}

export class DrillEngine extends WorkerEngine {
  /** Live GPU buffers of this worker, over every device that is not lost. */
  liveBuffers(): BufferCensus {
    let buffers = 0;
    let bytes = 0;
    for (const set of live.values()) {
      buffers += set.size;
      for (const buffer of set) bytes += buffer.size;
    }
    return { devices: live.size, buffers, bytes };
  }

  /** What a driver reset does: every live device of this worker is destroyed (reason "destroyed"). */
  destroyDevices(): number {
    const devices = [...live.keys()];
    for (const device of devices) device.destroy();
    return devices.length;
  }
}

registerLanternErrorTransfer();
const engine = new DrillEngine();
(self as unknown as SharedWorkerGlobalScope).addEventListener('connect', (event) => {
  expose(engine, (event as MessageEvent).ports[0]);
});
