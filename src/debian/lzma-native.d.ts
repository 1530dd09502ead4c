// The part of lzma-native (v8, no bundled types) that the .deb reader uses.
declare module 'lzma-native' {
  import type { Transform } from 'node:stream';
  export function createDecompressor(options?: { synchronous?: boolean; memlimit?: number }): Transform;
  const lzma: { createDecompressor: typeof createDecompressor };
  export default lzma;
}
