import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';

let lzma: { createDecompressor(): Transform } | undefined;

/**
 * A streaming xz decoder (lzma-native, a native addon; Node has no xz). Loaded on first use: a
 * build whose index and layers are cached decompresses nothing and should not load it.
 */
export function createXzDecompressor(): Transform {
  lzma ??= createRequire(import.meta.url)('lzma-native') as { createDecompressor(): Transform };
  return lzma.createDecompressor();
}
