/**
 * A uniform layout defined once, from which both the WGSL struct and the host-side packing are
 * derived, so the two cannot drift. Fields are 4-byte scalars; the struct is padded to 16 bytes.
 */
export type UniformField = 'u32' | 'i32' | 'f32';

export class UniformLayout<F extends Record<string, UniformField>> {
  readonly byteSize: number;
  private readonly names: (keyof F & string)[];

  constructor(readonly structName: string, readonly fields: F) {
    this.names = Object.keys(fields) as (keyof F & string)[];
    this.byteSize = Math.max(16, Math.ceil((this.names.length * 4) / 16) * 16);
  }

  /** The WGSL declaration, e.g. `struct Params { k: u32, n: u32, }`. */
  get wgsl(): string {
    return `struct ${this.structName} {\n${this.names.map((n) => `  ${n}: ${this.fields[n]},`).join('\n')}\n}\n`;
  }

  pack(values: { [K in keyof F]: number }): ArrayBuffer {
    const buf = new ArrayBuffer(this.byteSize);
    const view = new DataView(buf);
    this.names.forEach((name, i) => {
      const v = values[name];
      const type = this.fields[name];
      if (type === 'f32') view.setFloat32(i * 4, v, true);
      else if (type === 'i32') view.setInt32(i * 4, v, true);
      else view.setUint32(i * 4, v, true);
    });
    return buf;
  }
}
