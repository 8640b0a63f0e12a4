import { LanternError } from '../../errors.ts';
import { type NamedFiles, openFileSet, readText } from '../../storage/files.ts';
import type { MadeFile } from '../../storage/open.ts';
import type { ByteSource } from '../../storage/source.ts';
import { GGMLType, tensorByteSize } from '../gguf.ts';
import { ggufHeader, type MetaValue } from '../gguf-writer.ts';
import { quantizeRows } from '../quantize.ts';
import { decodeF32, readSafetensors, type SafetensorsTensor } from '../safetensors.ts';
import { planArchitecture } from './architectures.ts';
import { type CheckpointTensor, type TensorRecipe, applyRecipe } from './plan.ts';
import { hfTokenizerMetadata } from './tokenizer.ts';

/**
 * A Hugging Face checkpoint (config.json, safetensors weights, tokenizer files) as a GGUF file
 * that is made as it is read: the header comes from the plan (architectures.ts) and the tokenizer
 * files (tokenizer.ts); each tensor's bytes are computed when a read reaches them, from ranges of
 * the safetensors files, converted and quantized on the way. The runtime, the cache and
 * `lantern convert` read it as any other GGUF: the cache stores the small, converted form, and a
 * later visit reads that without asking for the checkpoint again.
 *
 * Memory: a tensor whose recipe keeps rows in place (most of them, the embeddings included) is
 * made a range of rows at a time, as the reads ask; one that is transposed, stacked or permuted
 * (GPT-2's Conv1D, llama's Q/K) is made whole, one at a time. Nothing holds the checkpoint.
 */

/** What the weight matrices become: llama.cpp's types, or `none` to keep each one's own (F32, F16, BF16). */
export type QuantizeChoice = 'none' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k';
export const QUANTIZE_CHOICES: readonly QuantizeChoice[] = ['none', 'f16', 'q8_0', 'q4_0', 'q4_k'];

export interface ConvertOptions {
  /** Default 'auto': q8_0 for F32 and BF16 checkpoints, none for F16 ones (already half the size). */
  quantize?: QuantizeChoice | 'auto';
}

export interface ConvertedModel {
  /** The GGUF file, made as it is read. */
  source: ByteSource;
  /** general.architecture of the GGUF. */
  architecture: string;
  /** The choice made ('auto' resolved). */
  quantize: QuantizeChoice;
  /** Bytes of the checkpoint's weight files, for "download size" against the converted size. */
  checkpointBytes: number;
}

const QUANT_TYPE: Record<Exclude<QuantizeChoice, 'none'>, GGMLType> = { f16: GGMLType.F16, q8_0: GGMLType.Q8_0, q4_0: GGMLType.Q4_0, q4_k: GGMLType.Q4_K };
const TYPE_NAME = new Map<GGMLType, 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k'>([
  [GGMLType.F16, 'f16'], [GGMLType.BF16, 'bf16'], [GGMLType.Q8_0, 'q8_0'], [GGMLType.Q4_0, 'q4_0'], [GGMLType.Q4_K, 'q4_k'],
]);
/** llama.cpp's general.file_type (llama_ftype) for each choice. */
const FILE_TYPE = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2, q4_k: 15 } as const;

/** A weight file name from an index: a plain name beside the index, nothing that climbs out of the folder. */
const SHARD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$/;

/** Opens a checkpoint's files and plans its GGUF; tensor bytes are made later, as they are read. */
export async function convertCheckpoint(files: NamedFiles, options: ConvertOptions = {}): Promise<ConvertedModel> {
  const requested = options.quantize ?? 'auto';
  if (requested !== 'auto' && !QUANTIZE_CHOICES.includes(requested)) {
    throw new LanternError('BAD_ARGUMENT', `quantize must be one of ${QUANTIZE_CHOICES.join(', ')} or auto, not "${String(requested)}".`);
  }
  if (!(await files.has('config.json'))) {
    throw new LanternError('BAD_MODEL_FILE', `${files.where} has no config.json, so it is not a Hugging Face model repository; give the repository's address, or a .gguf file.`, { file: 'config.json' });
  }
  const config = await readJson(files, 'config.json');
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new LanternError('BAD_MODEL_FILE', `config.json in ${files.where} is not a JSON object; download it again from the model's repository.`, { file: 'config.json' });
  }
  const weights = await openWeights(files);
  const plan = planArchitecture(config as Record<string, unknown>, weights.tensors);
  const tokenizer = hfTokenizerMetadata({
    tokenizerJson: await optionalJson(files, 'tokenizer.json'),
    vocabJson: (await files.has('tokenizer.json')) ? undefined : await optionalJson(files, 'vocab.json'),
    mergesTxt: (await files.has('tokenizer.json')) || !(await files.has('merges.txt')) ? undefined : await readText(files, 'merges.txt'),
    tokenizerConfig: await optionalJson(files, 'tokenizer_config.json'),
    specialTokensMap: await optionalJson(files, 'special_tokens_map.json'),
    generationConfig: await optionalJson(files, 'generation_config.json'),
  }, { vocabSize: vocabSizeOf(plan.tensors) });

  /** A recipe's checkpoint dtype (of its first source; F32 for values made from config.json). */
  const dtypeOf = (r: TensorRecipe) => (r.from.length > 0 ? weights.byName.get(r.from[0])!.tensor.dtype : 'F32');
  const dtypes = new Set(plan.tensors.filter((r) => r.quantizable).map(dtypeOf));
  const quantize: QuantizeChoice = requested !== 'auto' ? requested : dtypes.size === 1 && dtypes.has('F16') ? 'none' : 'q8_0';
  const hasOutput = plan.tensors.some((r) => r.name === 'output.weight');
  const types = plan.tensors.map((r) => storageType(r, dtypeOf(r), quantize, hasOutput));

  const fileType = quantize !== 'none' ? FILE_TYPE[quantize] : dtypes.size === 1 && dtypes.has('F16') ? FILE_TYPE.f16 : dtypes.size === 1 && dtypes.has('BF16') ? FILE_TYPE.bf16 : FILE_TYPE.f32;
  const metadata: Record<string, MetaValue> = {
    ...plan.metadata,
    ...tokenizer,
    'general.file_type': { type: 'u32', value: fileType },
    'general.quantization_version': { type: 'u32', value: 2 },
    'general.source.url': { type: 'string', value: files.id },
    'lantern.quantize': { type: 'string', value: quantize },
  };
  const layout = ggufHeader({ metadata, tensors: plan.tensors.map((r, i) => ({ name: r.name, type: types[i], dims: r.dims })) });
  const tensors = plan.tensors.map((recipe, i) => new TensorMaker(recipe, types[i], recipe.from.map((name) => weights.byName.get(name)!)));
  return {
    source: convertedSource(layout.header, layout.offsets, layout.sizes, layout.header.byteLength + layout.dataBytes, tensors),
    architecture: plan.architecture,
    quantize,
    checkpointBytes: weights.bytes,
  };
}

/**
 * The GGUF type a tensor is stored as. Norms, biases and position embeddings stay F32. Matrices
 * take the chosen type where their rows are whole blocks of it; llama.cpp's fallbacks otherwise
 * (Q4_K rows not a multiple of 256 → Q4_0 where they are of 32; anything else → F16). With q4_0 or
 * q4_k, the output projection (or the embedding that serves as it) is kept at Q8_0: llama.cpp keeps
 * it at Q6_K in its Q4 mixes, for the same reason, and the browser has no Q6_K quantizer.
 */
function storageType(recipe: TensorRecipe, dtype: string, quantize: QuantizeChoice, hasOutput: boolean): GGMLType {
  if (!recipe.quantizable) return GGMLType.F32;
  if (quantize === 'none') return dtype === 'F16' ? GGMLType.F16 : dtype === 'BF16' ? GGMLType.BF16 : GGMLType.F32;
  const isOutput = recipe.name === 'output.weight' || (!hasOutput && recipe.name === 'token_embd.weight');
  let type = isOutput && (quantize === 'q4_0' || quantize === 'q4_k') ? GGMLType.Q8_0 : QUANT_TYPE[quantize];
  const row = recipe.dims[0];
  if (type === GGMLType.Q4_K && row % 256 !== 0) type = GGMLType.Q4_0;
  if (row % 32 !== 0) type = GGMLType.F16; // F16 itself has no blocks
  return type;
}

/** The rows of the token embedding: the tokenizer is padded to them, as convert_hf_to_gguf.py pads it. */
function vocabSizeOf(tensors: readonly TensorRecipe[]): number | undefined {
  return tensors.find((t) => t.name === 'token_embd.weight')?.dims[1];
}

/** A checkpoint tensor and the file it lies in. */
interface Located {
  tensor: SafetensorsTensor;
  file: ByteSource;
}

/** The weight files (one, or the shards an index names), their tensors by name, and their total size. */
async function openWeights(files: NamedFiles): Promise<{ byName: Map<string, Located>; tensors: Map<string, CheckpointTensor>; bytes: number }> {
  let shardNames: string[];
  if (await files.has('model.safetensors')) {
    shardNames = ['model.safetensors'];
  } else if (await files.has('model.safetensors.index.json')) {
    const index = await readJson(files, 'model.safetensors.index.json');
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new LanternError('BAD_MODEL_FILE', `model.safetensors.index.json in ${files.where} has no weight_map object; download it again from the model's repository.`, { file: 'model.safetensors.index.json' });
    }
    shardNames = [...new Set(Object.values(map as Record<string, unknown>))].map((name) => {
      if (typeof name !== 'string' || !SHARD_NAME.test(name)) {
        throw new LanternError('BAD_MODEL_FILE', `model.safetensors.index.json names the weight file ${JSON.stringify(name)?.slice(0, 80)}, which is not a plain .safetensors name beside it; the index is damaged: download it again.`, { file: 'model.safetensors.index.json' });
      }
      return name;
    });
    for (const name of shardNames) {
      if (!(await files.has(name))) {
        throw new LanternError('BAD_MODEL_FILE', `model.safetensors.index.json names ${name}, but ${files.where} has no such file; the repository is incomplete: choose all of its files, or another revision.`, { file: name });
      }
    }
  } else if ((await files.has('pytorch_model.bin')) || (await files.has('pytorch_model.bin.index.json'))) {
    throw new LanternError(
      'UNSUPPORTED_FORMAT',
      `${files.where} has its weights only as pytorch_model.bin, a Python pickle, which Lantern never runs (a pickle can execute code). Pick a revision with model.safetensors: the hub's safetensors conversion pull requests (refs/pr/N) often have one.`,
      { file: 'pytorch_model.bin' },
    );
  } else {
    throw new LanternError('BAD_MODEL_FILE', `${files.where} has no model.safetensors and no model.safetensors.index.json; Lantern reads a Hugging Face model's weights from those. Choose a repository or revision that has them.`, { file: 'model.safetensors' });
  }
  const byName = new Map<string, Located>();
  const tensors = new Map<string, CheckpointTensor>();
  let bytes = 0;
  for (const name of shardNames) {
    const file = await files.open(name);
    const parsed = await readSafetensors(file);
    bytes += parsed.size;
    for (const tensor of parsed.tensors) {
      if (byName.has(tensor.name)) {
        throw new LanternError('BAD_MODEL_FILE', `Tensor ${tensor.name} is in two weight files of ${files.where}; the checkpoint is damaged: download it again.`, { tensor: tensor.name, file: name });
      }
      byName.set(tensor.name, { tensor, file });
      tensors.set(tensor.name, { dtype: tensor.dtype, shape: tensor.shape });
    }
  }
  return { byName, tensors, bytes };
}

async function optionalJson(files: NamedFiles, name: string): Promise<unknown> {
  return (await files.has(name)) ? readJson(files, name) : undefined;
}

async function readJson(files: NamedFiles, name: string): Promise<unknown> {
  const text = await readText(files, name);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new LanternError('BAD_MODEL_FILE', `${name} in ${files.where} is not valid JSON (${(e as Error).message}); download it again from the model's repository.`, { file: name });
  }
}

/** Makes one GGUF tensor's bytes, or a range of them. */
class TensorMaker {
  private readonly rowLength: number;
  private readonly rowBytes: number;
  private readonly rowCount: number;
  /** Rows stay in place: a range of rows is made from the same rows of the one source. */
  private readonly byRows: boolean;
  private whole: Uint8Array | undefined;

  constructor(readonly recipe: TensorRecipe, readonly type: GGMLType, private readonly sources: Located[]) {
    this.rowLength = recipe.dims[0];
    this.rowCount = recipe.dims.reduce((a, b) => a * b, 1) / this.rowLength;
    this.rowBytes = tensorByteSize(type, this.rowLength, recipe.name);
    this.byRows = sources.length === 1 && !recipe.transpose && !recipe.rows && !recipe.values;
    for (const { tensor } of sources) {
      if (!tensor.supported) {
        throw new LanternError('UNSUPPORTED_TENSOR_TYPE', `Tensor ${tensor.name} is ${tensor.dtype}, which Lantern cannot read; use a checkpoint of F32, F16 or BF16 weights.`, { tensor: tensor.name, type: tensor.dtype });
      }
    }
  }

  /** Bytes [from, to) of the tensor's data. */
  async range(from: number, to: number): Promise<Uint8Array> {
    if (!this.byRows) {
      this.whole ??= await this.makeWhole();
      return this.whole.subarray(from, to);
    }
    const r0 = Math.floor(from / this.rowBytes);
    const r1 = Math.min(this.rowCount, Math.ceil(to / this.rowBytes));
    const { tensor, file } = this.sources[0];
    const width = tensor.dtype === 'F32' ? 4 : 2;
    const at = tensor.begin + r0 * this.rowLength * width;
    const raw = await file.read(at, (r1 - r0) * this.rowLength * width);
    let values = decodeF32(raw.slice(), tensor.dtype);
    if (this.recipe.add !== undefined) values = applyRecipe({ ...this.recipe, dims: [this.rowLength, r1 - r0], from: [tensor.name] }, [values]) as Float32Array<ArrayBuffer>;
    const bytes = encode(values, this.type, this.rowLength);
    return bytes.subarray(from - r0 * this.rowBytes, to - r0 * this.rowBytes);
  }

  /** Drops the whole tensor kept for reads that come after the first. */
  release(): void {
    this.whole = undefined;
  }

  private async makeWhole(): Promise<Uint8Array> {
    const values: Float32Array[] = [];
    for (const { tensor, file } of this.sources) {
      const raw = await file.read(tensor.begin, tensor.end - tensor.begin);
      values.push(decodeF32(raw.slice(), tensor.dtype));
    }
    return encode(applyRecipe(this.recipe, values), this.type, this.rowLength);
  }
}

/** f32 values, whole rows, as a GGUF type's bytes. */
function encode(values: Float32Array, type: GGMLType, rowLength: number): Uint8Array {
  if (type === GGMLType.F32) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return quantizeRows(TYPE_NAME.get(type)!, values, rowLength);
}

/**
 * The GGUF file: the header, then each tensor's data at its offset, zero padding between. A read
 * may span tensors; the last tensor made whole is kept until a read moves past it.
 */
function convertedSource(header: Uint8Array, offsets: number[], sizes: number[], size: number, tensors: TensorMaker[]): ByteSource {
  const dataStart = header.byteLength;
  let kept: TensorMaker | undefined;
  return {
    size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new LanternError('TRUNCATED_FILE', `Asked for bytes ${offset}..${offset + length} of a converted model of ${size} bytes.`, { offset, length, size });
      }
      const out = new Uint8Array(length); // zero: the padding between tensors
      const end = offset + length;
      if (offset < dataStart) out.set(header.subarray(offset, Math.min(end, dataStart)), 0);
      for (let i = 0; i < tensors.length; i++) {
        const start = dataStart + offsets[i];
        const stop = start + sizes[i];
        if (stop <= offset) continue;
        if (start >= end) break;
        const from = Math.max(offset, start);
        const to = Math.min(end, stop);
        if (kept !== tensors[i]) {
          kept?.release();
          kept = tensors[i];
        }
        out.set(await tensors[i].range(from - start, to - start), from - offset);
      }
      return out;
    },
  };
}

export interface CheckpointLoadOptions extends ConvertOptions {
  /** The hub that hub URLs point at (default https://huggingface.co). */
  hubEndpoint?: string;
}

/**
 * A Hugging Face model input (a hub URL, a folder URL, or picked files with a config.json: see
 * isFileSetInput) as a made GGUF for openModel. Its cache id is the files' id and the quantize
 * choice, so a later visit with the same choice reads the converted form and fetches nothing.
 */
export function checkpointModel(input: string | URL | readonly File[], options: CheckpointLoadOptions = {}): MadeFile {
  const files = openFileSet(input, { hubEndpoint: options.hubEndpoint });
  const quantize = options.quantize ?? 'auto';
  return { id: `${files.id}#quantize=${quantize}`, open: async () => (await convertCheckpoint(files, { quantize })).source };
}
