import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/paths.ts';

/**
 * The API reference in docs/api (npm run docs, TypeDoc over the doc comments) is committed so that
 * the README's link works on GitHub: every export of src/index.ts must have its page there, and
 * every function and class one with an example. A new export without them fails here; run
 * `npm run docs` after writing its doc comment.
 */
const index = readFileSync(join(REPO_ROOT, 'src/index.ts'), 'utf8');
const exportBlocks = [...index.matchAll(/export (type )?\{([^}]*)\}/g)];
const names = exportBlocks.flatMap(([, typeOnly, list]) =>
  list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => ({ name: s.replace(/^type /, ''), value: !typeOnly && !s.startsWith('type ') })),
);
const API = join(REPO_ROOT, 'docs/api/lantern');
const FOLDERS = ['functions', 'classes', 'interfaces', 'type-aliases', 'variables'];

describe('docs/api', () => {
  it('has a page for every export of src/index.ts', () => {
    expect(names.length).toBeGreaterThan(30);
    const missing = names.filter(({ name }) => !FOLDERS.some((folder) => existsSync(join(API, folder, `${name}.md`))));
    expect(missing.map((n) => n.name)).toEqual([]);
  });

  it('shows an example for every function and class', () => {
    const values = names.filter((n) => n.value);
    expect(values.map((n) => n.name)).toContain('createEngine');
    const withoutExample = values.filter(({ name }) => {
      const page = ['functions', 'classes'].map((folder) => join(API, folder, `${name}.md`)).find((file) => existsSync(file));
      return !page || !/^## Example/m.test(readFileSync(page, 'utf8'));
    });
    expect(withoutExample.map((n) => n.name)).toEqual([]);
  });
});
