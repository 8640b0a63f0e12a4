/**
 * A tiny WGSL preprocessor for structural variants (quant format, `enable f16`, subgroups).
 * Numbers (workgroup and tile sizes) are WGSL `override` constants instead.
 *
 *   #include "name"     splices in another shader source, resolved by the caller
 *   #define NAME        (only as a flag; values belong in overrides)
 *   #ifdef NAME / #ifndef NAME / #else / #endif   nest freely
 */
export function preprocess(
  source: string,
  defines: ReadonlySet<string>,
  resolveInclude: (name: string) => string,
  depth = 0,
): string {
  if (depth > 8) throw new Error('WGSL #include nests deeper than 8: is there a cycle?');
  const flags = new Set(defines);
  const out: string[] = [];
  // Each entry says whether lines at that nesting level are emitted.
  const stack: { active: boolean; parentActive: boolean; sawElse: boolean }[] = [];
  const active = (): boolean => stack.length === 0 || stack[stack.length - 1].active;

  source.split('\n').forEach((line, i) => {
    const m = /^\s*#(\w+)\s*(.*?)\s*$/.exec(line);
    if (!m) {
      if (active()) out.push(line);
      return;
    }
    const [, directive, arg] = m;
    const where = `line ${i + 1}`;
    switch (directive) {
      case 'ifdef':
      case 'ifndef': {
        const parentActive = active();
        const cond = flags.has(arg) === (directive === 'ifdef');
        stack.push({ active: parentActive && cond, parentActive, sawElse: false });
        break;
      }
      case 'else': {
        const top = stack[stack.length - 1];
        if (!top || top.sawElse) throw new Error(`WGSL preprocessor: stray #else at ${where}`);
        top.active = top.parentActive && !top.active;
        top.sawElse = true;
        break;
      }
      case 'endif':
        if (!stack.pop()) throw new Error(`WGSL preprocessor: stray #endif at ${where}`);
        break;
      case 'define':
        if (active()) flags.add(arg);
        break;
      case 'include':
        if (active()) out.push(preprocess(resolveInclude(arg.replace(/^"|"$/g, '')), flags, resolveInclude, depth + 1));
        break;
      default:
        throw new Error(`WGSL preprocessor: unknown directive #${directive} at ${where}`);
    }
  });
  if (stack.length) throw new Error('WGSL preprocessor: #ifdef without #endif');
  return out.join('\n');
}
