/**
 * The WGSL sources in shaders/, imported as text and looked up by file name without extension
 * (also for #include). A new .wgsl file is picked up without being listed here.
 */
const files = import.meta.glob<string>('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true });

export const SHADERS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(files).map(([path, source]) => [path.replace(/^.*\/(.+)\.wgsl$/, '$1'), source]),
);

export function shaderSource(name: string): string {
  const source = SHADERS[name];
  if (source === undefined) throw new Error(`No shader named "${name}" in shaders/`);
  return source;
}
