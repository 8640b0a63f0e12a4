/**
 * An independent check of constrained output: ajv (JSON Schema draft 2020-12) with the format
 * checks Lantern's grammars support written here, so that a reply is judged by a validator that
 * shares no code with src/runtime/grammar.
 */
import Ajv2020 from 'ajv/dist/2020.js';


function isCalendarDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}
const TIME = /^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

const ajv = new Ajv2020({ strict: false, allErrors: false });
ajv.addFormat('date', { validate: isCalendarDate });
ajv.addFormat('time', { validate: (s: string) => TIME.test(s) });
ajv.addFormat('date-time', { validate: (s: string) => { const [d, t, more] = s.split('T'); return more === undefined && t !== undefined && isCalendarDate(d) && TIME.test(t); } });
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
ajv.addFormat('email', /^[^\s@"(),:;<>[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/);

/** Whether a text is JSON that validates (json_object mode: any JSON object). */
export function validates(schema: Record<string, unknown> | undefined, text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  if (schema === undefined) return typeof value === 'object' && value !== null && !Array.isArray(value);
  return ajv.validate(schema, value) as boolean;
}

