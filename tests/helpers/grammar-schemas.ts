/**
 * JSON schemas for the constrained-decoding tests and benchmark, one or more per keyword of the
 * supported subset. `accept`: texts the grammar must accept (each also validates with ajv);
 * `reject`: texts it must refuse that are invalid JSON or fail the schema; `stricter`: texts that
 * are valid for the schema but that the grammar refuses on purpose (documented in json-schema.ts).
 */
export interface SchemaCase {
  name: string;
  /** undefined: OpenAI's json_object mode. */
  schema: Record<string, unknown> | undefined;
  accept: string[];
  reject: string[];
  stricter?: string[];
}

const person = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer' }, email: { type: 'string', format: 'email' } },
  required: ['name'],
};

export const SCHEMA_CASES: SchemaCase[] = [
  {
    name: 'string',
    schema: { type: 'string', description: 'ignored', title: 'ignored' },
    accept: ['"hi"', '"a\\"b\\\\c\\n\\u00e9\\/"', '"é漢😀"', '""'],
    reject: ['"a', 'hi', '"\n"', '"\\x"', '"a"b"'],
    stricter: ['"\\ud800"'],
  },
  {
    name: 'number',
    schema: { type: 'number' },
    accept: ['0', '-1.5', '3e10', '2.5E-3', '7'],
    reject: ['01', '1.', '.5', '+1', '1e', '"1"'],
  },
  {
    name: 'integer',
    schema: { type: 'integer' },
    accept: ['0', '-17', '123456'],
    reject: ['1.5', '--1', '00', 'true'],
    stricter: ['1.0'],
  },
  {
    name: 'boolean or null',
    schema: { type: ['boolean', 'null'] },
    accept: ['true', 'false', 'null'],
    reject: ['True', 'nul', '0', '"null"'],
  },
  {
    name: 'object: properties, required, order',
    schema: person,
    accept: ['{"name":"a"}', '{"name": "a", "age": 3}', '{\n  "name": "a",\n  "age": 3,\n  "email": "x.y@ex-ample.org"\n}', '{"name":"a","email":"b@c.de"}'],
    reject: ['{}', '{"age":3}', '{"name":1}', '{"name":"a","email":"nope"}', '{"name":"a",}'],
    stricter: ['{"age":3,"name":"a"}', '{"name":"a"} ', '{"name":"a","extra":1}'],
  },
  {
    name: 'object: additionalProperties schema',
    schema: { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: { type: 'string' } },
    accept: ['{"a":1,"b":"x"}', '{"zz":"y"}', '{"ab":"x","a2":"y"}', '{}', '{"":"empty key"}'],
    reject: ['{"b":1}', '{"a":"x"}', '{"a":1,"b":"x",}'],
    stricter: ['{"b":"x","a":1}', '{"a":1,"a":2}'],
  },
  {
    name: 'object: additionalProperties false, all optional',
    schema: { type: 'object', properties: { x: { type: 'boolean' }, y: { type: 'null' } }, additionalProperties: false },
    accept: ['{}', '{"x":true}', '{"y":null}', '{"x":false,"y":null}'],
    reject: ['{"z":1}', '{"x":1}', '{,}'],
  },
  {
    name: 'enum of mixed types',
    schema: { enum: ['red', 1, null, true, { a: 1 }, [1, 2]] },
    accept: ['"red"', '1', 'null', 'true', '{"a":1}', '[1,2]'],
    reject: ['"blue"', '2', 'false', '[1]'],
  },
  {
    name: 'enum with type',
    schema: { type: 'string', enum: ['a', 'b', 3] },
    accept: ['"a"', '"b"'],
    reject: ['3', '"c"'],
  },
  {
    name: 'const',
    schema: { const: { x: [1, 'y'] } },
    accept: ['{"x":[1,"y"]}'],
    reject: ['{"x":[1]}', '{"x":[1,"z"]}'],
    stricter: ['{"x": [1, "y"]}'],
  },
  {
    name: 'array: items, minItems, maxItems',
    schema: { type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 3 },
    accept: ['[1]', '[1, 2, 3]', '[\n  1,\n  2\n]'],
    reject: ['[]', '[1,2,3,4]', '[1.5]', '[1,]'],
  },
  {
    name: 'array: prefixItems, items false',
    schema: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }], items: false, minItems: 1 },
    accept: ['["a", 1]', '["a"]', '["a",2.5]'],
    reject: ['["a",1,2]', '[1]', '[]'],
  },
  {
    name: 'array: prefixItems then items',
    schema: { type: 'array', prefixItems: [{ const: 'x' }], items: { type: 'boolean' }, maxItems: 3 },
    accept: ['["x"]', '["x",true,false]', '[]'],
    reject: ['["x",true,false,true]', '[true]', '["x",1]'],
  },
  {
    name: 'anyOf',
    schema: { anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 2 }] },
    accept: ['5', '"ab"', '""'],
    reject: ['"abc"', '1.5', 'null'],
  },
  {
    name: 'oneOf of tagged objects',
    schema: {
      oneOf: [
        { type: 'object', properties: { kind: { const: 'a' }, x: { type: 'integer' } }, required: ['kind', 'x'], additionalProperties: false },
        { type: 'object', properties: { kind: { const: 'b' }, y: { type: 'string' } }, required: ['kind', 'y'], additionalProperties: false },
      ],
    },
    accept: ['{"kind":"a","x":1}', '{"kind":"b","y":"z"}'],
    reject: ['{"kind":"a","y":"z"}', '{"kind":"c","x":1}', '{"kind":"a"}'],
  },
  {
    name: 'allOf of objects, closed',
    schema: {
      allOf: [{ $ref: '#/$defs/base' }, { properties: { extra: { type: 'boolean' } }, required: ['extra'] }],
      unevaluatedProperties: false,
      $defs: { base: { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'] } },
    },
    accept: ['{"id":1,"extra":true}', '{ "id": -4, "extra": false }'],
    reject: ['{"id":1}', '{"id":1,"extra":true,"z":1}', '{"extra":true}'],
    stricter: ['{"extra":true,"id":1}'],
  },
  {
    name: '$ref recursion through $defs',
    schema: {
      $defs: { node: { type: 'object', properties: { value: { type: 'integer' }, children: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['value'] } },
      $ref: '#/$defs/node',
    },
    accept: ['{"value":1,"children":[{"value":2},{"value":3,"children":[{"value":4}]}]}', '{"value":0}'],
    reject: ['{"value":1,"children":[{}]}', '{"value":1,"children":[{"value":1},{"value":2},{"value":3}]}'],
  },
  {
    name: '$ref to the root',
    schema: { type: 'object', properties: { label: { type: 'string', maxLength: 3 }, next: { $ref: '#' } }, additionalProperties: false },
    accept: ['{"next":{"next":{}}}', '{"label":"a","next":{"label":"b"}}'],
    reject: ['{"next":1}', '{"next":{"label":"abcd"}}'],
  },
  {
    name: 'string minLength/maxLength',
    schema: { type: 'string', minLength: 2, maxLength: 4 },
    accept: ['"ab"', '"abcd"', '"é漢"', '"\\n\\t"', '"😀😀😀"'],
    reject: ['"a"', '"abcde"', '""'],
  },
  {
    name: 'pattern, anchored',
    schema: { type: 'string', pattern: '^[a-z]+-\\d{2,3}$' },
    accept: ['"ab-12"', '"x-999"'],
    reject: ['"ab-1"', '"AB-12"', '"ab-1234"', '"-12"'],
  },
  {
    name: 'pattern, unanchored',
    schema: { type: 'string', pattern: 'ab+c' },
    accept: ['"xxabbbcyy"', '"abc"', '"\\"abc"'],
    reject: ['"ac"', '"abbx"'],
  },
  {
    name: 'pattern: groups, alternation, escapes',
    schema: { type: 'string', pattern: '^(?:foo|ba[rz])(-\\w+)*\\.(txt|md)?$' },
    accept: ['"foo."', '"baz-x_1-y.md"', '"bar.txt"'],
    reject: ['"ba."', '"foo-.txt"', '"foo.doc"'],
  },
  {
    name: 'pattern: quotes, backslash and dot',
    schema: { type: 'string', pattern: '^a"b\\\\c.[^x]$' },
    accept: ['"a\\"b\\\\c!y"', '"a\\"b\\\\cz\\n"'],
    reject: ['"a\\"b\\\\c!x"', '"ab\\\\c!y"'],
  },
  {
    name: 'format date, time, date-time',
    schema: { type: 'object', properties: { d: { type: 'string', format: 'date' }, t: { type: 'string', format: 'time' }, dt: { type: 'string', format: 'date-time' } }, required: ['d', 't', 'dt'] },
    accept: ['{"d":"2024-02-29","t":"23:59:59Z","dt":"1999-12-31T00:00:00.123+05:30"}', '{"d":"2000-02-29","t":"00:00:00-08:00","dt":"2023-06-30T12:00:00Z"}'],
    reject: ['{"d":"2023-02-29","t":"23:59:59Z","dt":"1999-12-31T00:00:00Z"}', '{"d":"1900-02-29","t":"12:00:00Z","dt":"2000-01-01T00:00:00Z"}', '{"d":"2024-04-31","t":"12:00:00Z","dt":"2000-01-01T00:00:00Z"}', '{"d":"2024-01-01","t":"24:00:00Z","dt":"2000-01-01T00:00:00Z"}', '{"d":"2024-01-01","t":"12:00:00","dt":"2000-01-01T00:00:00Z"}'],
  },
  {
    name: 'format uuid and email',
    schema: { type: 'array', prefixItems: [{ type: 'string', format: 'uuid' }, { type: 'string', format: 'email' }], items: false, minItems: 2 },
    accept: ['["123e4567-e89b-12d3-a456-426614174000","first.last+tag@mail.example.com"]', '["ABCDEF01-2345-6789-abcd-ef0123456789","a@b.co"]'],
    reject: ['["123e4567-e89b-12d3-a456-42661417400","a@b.co"]', '["123e4567-e89b-12d3-a456-426614174000","a@b"]', '["123e4567-e89b-12d3-a456-426614174000","a b@c.de"]'],
  },
  {
    name: 'integer minimum/maximum',
    schema: { type: 'integer', minimum: -20, maximum: 1005 },
    accept: ['-20', '-1', '0', '9', '10', '999', '1000', '1005'],
    reject: ['-21', '1006', '10000', '-100', '1.5'],
    stricter: ['-0'],
  },
  {
    name: 'integer minimum only, maximum only',
    schema: { type: 'array', prefixItems: [{ type: 'integer', minimum: 7 }, { type: 'integer', maximum: -3 }], items: false, minItems: 2 },
    accept: ['[7,-3]', '[100,-100]', '[8, -4]'],
    reject: ['[6,-3]', '[7,-2]', '[7,0]', '[-7,-3]'],
  },
  {
    name: 'number minimum/maximum (whole-number bounds)',
    schema: { type: 'number', minimum: -1, maximum: 2 },
    accept: ['-1', '-0.5', '0', '1.99', '2', '2.000', '-1.0', '0.25'],
    reject: ['2.01', '-1.5', '3', '-2'],
    stricter: ['1e0'],
  },
  {
    name: 'type list with per-type keywords',
    schema: { type: ['string', 'null', 'array'], maxLength: 3, maxItems: 1 },
    accept: ['null', '"abc"', '[]', '["x"]'],
    reject: ['"abcd"', '[1,2]', '1'],
  },
  {
    name: 'array of objects with nested arrays',
    schema: { type: 'array', items: { type: 'object', properties: { id: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } }, required: ['id'] } },
    accept: ['[]', '[{"id":1,"tags":["a","b"]},{"id":2}]'],
    reject: ['[{"tags":[]}]', '[{"id":1,"tags":[1]}]'],
  },
  {
    name: 'any value (empty schema)',
    schema: {},
    accept: ['1', '"x"', '[{}]', '{"a":[true,null]}'],
    reject: ['', '{', 'undefined', '[1,]'],
  },
  {
    name: 'whitespace is bounded',
    schema: { type: 'object', properties: { k: { type: 'integer' } }, required: ['k'] },
    accept: ['{"k":1}', '{ "k" : 1 }', `{\n${' '.repeat(20)}"k": 1\n}`],
    reject: ['{"k":'],
    stricter: ['{  "k":1}', `{\n${' '.repeat(21)}"k": 1}`, '{\n\n"k":1}'],
  },
  {
    name: 'json_object mode',
    schema: undefined,
    accept: ['{}', '{"a":[1,{"b":null}],"c":"d"}', '{"x": -1.5e3}'],
    reject: ['[]', '1', '"{}"', '{"a"}'],
  },
];
