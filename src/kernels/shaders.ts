/** The WGSL sources in shaders/, imported as text and looked up by name (for #include too). */
import add from '../../shaders/add.wgsl?raw';
import argmax from '../../shaders/argmax.wgsl?raw';
import attention from '../../shaders/attention.wgsl?raw';
import embedding from '../../shaders/embedding.wgsl?raw';
import matmul from '../../shaders/matmul.wgsl?raw';
import matvec from '../../shaders/matvec.wgsl?raw';
import rmsnorm from '../../shaders/rmsnorm.wgsl?raw';
import rope from '../../shaders/rope.wgsl?raw';
import swiglu from '../../shaders/swiglu.wgsl?raw';
import weights from '../../shaders/weights.wgsl?raw';

export const SHADERS: Readonly<Record<string, string>> = {
  add, argmax, attention, embedding, matmul, matvec, rmsnorm, rope, swiglu, weights,
};

export function shaderSource(name: string): string {
  const source = SHADERS[name];
  if (source === undefined) throw new Error(`No shader named "${name}" in shaders/`);
  return source;
}
