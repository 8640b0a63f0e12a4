import { open } from 'node:fs/promises';
import { LanternError } from '../errors.ts';
import type { ByteSource } from '../storage/source.ts';

/** A model file on disk, read by byte range like any other ByteSource. Node only. */
export interface FileSource extends ByteSource {
  close(): Promise<void>;
}

export async function openFileSource(path: string): Promise<FileSource> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'there is no such file' : (e as Error).message;
    throw new LanternError('BAD_ARGUMENT', `Cannot open the model file ${path}: ${reason}; check the path.`, { path });
  }
  const stats = await handle.stat();
  if (!stats.isFile()) {
    await handle.close();
    throw new LanternError('BAD_ARGUMENT', `${path} is not a file; pass the path of a .gguf file.`, { path });
  }
  const size = stats.size;
  return {
    size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new LanternError(
          'TRUNCATED_FILE',
          `The model file ends at byte ${size} but ${offset + length} bytes were needed; the file is truncated, download it again.`,
          { offset, length, size },
        );
      }
      const bytes = new Uint8Array(length);
      // One read() may return fewer bytes than asked for; loop until the range is filled.
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handle.read(bytes, done, length - done, offset + done);
        if (bytesRead === 0) {
          throw new LanternError('TRUNCATED_FILE', `${path} shrank while it was being read; make sure nothing else writes to it.`, { path });
        }
        done += bytesRead;
      }
      return bytes;
    },
    close: () => handle.close(),
  };
}
