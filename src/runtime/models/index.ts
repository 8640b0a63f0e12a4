import { LanternError } from '../../errors.ts';
import { Hyperparameters, type ModelConfig } from '../../model/config.ts';
import type { GGUFFile } from '../../model/gguf.ts';
import type { Family } from './family.ts';
import { gemma2 } from './gemma2.ts';
import { gemma3 } from './gemma3.ts';
import { gpt2 } from './gpt2.ts';
import { gptneo } from './gptneo.ts';
import { gptneox } from './gptneox.ts';
import { llama } from './llama.ts';
import { olmo2 } from './olmo2.ts';
import { phi3 } from './phi3.ts';
import { qwen2 } from './qwen2.ts';
import { qwen3 } from './qwen3.ts';
import { smollm3 } from './smollm3.ts';

/** Every family this build runs; adding one is a file in this folder and a line here. */
export const FAMILIES: readonly Family[] = [llama, qwen2, qwen3, smollm3, phi3, gemma2, gemma3, olmo2, gpt2, gptneo, gptneox];

const BY_ARCHITECTURE = new Map<string, Family>(FAMILIES.flatMap((f) => f.architectures.map((a) => [a, f] as const)));

/** The general.architecture values this build runs, for messages and the README. */
export const SUPPORTED_ARCHITECTURES: readonly string[] = [...BY_ARCHITECTURE.keys()];

/** The file's family and its hyperparameters, each checked; UNSUPPORTED_ARCH for an architecture this build does not run. */
export function modelConfig(file: GGUFFile): { family: Family; config: ModelConfig } {
  const hp = new Hyperparameters(file);
  const family = BY_ARCHITECTURE.get(hp.architecture);
  if (!family) {
    throw new LanternError(
      'UNSUPPORTED_ARCH',
      `This model's architecture is "${hp.architecture}"; Lantern runs ${SUPPORTED_ARCHITECTURES.join(', ')}. Choose a model of one of those families.`,
      { architecture: hp.architecture, supported: SUPPORTED_ARCHITECTURES },
    );
  }
  return { family, config: family.config(hp) };
}
