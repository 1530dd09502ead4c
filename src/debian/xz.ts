import { Transform, type TransformCallback } from 'node:stream';
import xzDecompress from 'xz-decompress';

/**
 * A streaming xz decoder: xz-decompress, xz-embedded compiled to WebAssembly (Node has no xz),
 * so the package has no native addon and no install script. docs/benchmarks.md compares it with
 * liblzma (through lzma-native and `xz -dc`; bench/xz.ts). Memory is the decoder's dictionary (at
 * most 64 MiB, what `xz -9` uses) and a buffer each way, whatever the size of the file.
 */
export function createXzDecompressor(): Transform {
  return new XzDecompressor();
}

/**
 * xz-embedded's return codes (xz.h, `enum xz_ret`), which xz-decompress reports only as
 * "get_next_output failed with error code N".
 */
const xzProblems: Record<number, string> = {
  2: 'it uses an integrity check the decoder does not support',
  3: 'the decoder ran out of memory',
  4: 'its dictionary is larger than the 64 MiB the decoder allows',
  5: 'it is not xz data',
  // xz-embedded checks CRC32 and CRC64 (what dpkg and Debian's archive use); SHA-256 lands here.
  6: 'it uses an integrity check (such as SHA-256) or a filter the decoder does not support',
  7: 'the compressed data is corrupt',
  8: 'it is truncated (the input ended inside the xz stream)',
};

/**
 * xz-decompress's web ReadableStream as a node Transform. Input is handed to the decoder one
 * chunk at a time: a chunk is accepted (the write callback runs) once the decoder asks for more
 * input, and everything it decoded from that chunk has been pushed, so backpressure from the
 * reader reaches the writer and neither side buffers more than a chunk.
 *
 * xz-decompress decodes one stream at a time per process (a later decoder waits for the earlier
 * one to end), so a decoder that is abandoned must be destroyed: _destroy cancels it.
 */
class XzDecompressor extends Transform {
  private feed!: ReadableStreamDefaultController<Uint8Array>;
  private readonly decoded: ReadableStreamDefaultReader<Uint8Array>;
  /** The decoder's read that has not resolved yet (it waits for input when `starved`). */
  private pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]> | undefined;
  /** The decoder is waiting for input: everything from the last chunk has been decoded. */
  private starved = false;
  private wake: (() => void) | undefined;
  private ended = false;
  private compressedBytes = 0;

  constructor() {
    super();
    const compressed = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.feed = controller;
        },
        // With no queue (high-water mark 0), pull runs exactly when the decoder reads and we have nothing.
        pull: () => {
          this.starved = true;
          this.wake?.();
        },
      },
      { highWaterMark: 0 },
    );
    this.decoded = new xzDecompress.XzReadableStream(compressed).getReader();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.ended) return callback(); // after the last stream: nothing more to decode
    this.compressedBytes += chunk.length;
    this.starved = false;
    this.feed.enqueue(chunk);
    this.decode(false).then(() => callback(), (error: unknown) => callback(this.describe(error)));
  }

  override _flush(callback: TransformCallback): void {
    if (this.ended) return callback();
    this.feed.close();
    this.decode(true).then(() => callback(), (error: unknown) => callback(this.describe(error)));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.ended) {
      this.ended = true;
      this.decoded.cancel(error ?? undefined).catch(() => {});
    }
    callback(error);
  }

  /** Pushes what the decoder gives until it wants input (or, at the end, until it is done). */
  private async decode(toTheEnd: boolean): Promise<void> {
    for (;;) {
      if (!this.pending) {
        this.pending = this.decoded.read();
        this.pending.catch(() => {}); // awaited below; a decoder destroyed meanwhile must not leave it unhandled
      }
      const starved = toTheEnd
        ? undefined
        : new Promise<'starved'>((resolve) => {
            this.wake = () => resolve('starved');
            if (this.starved) resolve('starved');
          });
      const result = await (starved ? Promise.race([this.pending, starved]) : this.pending);
      this.wake = undefined;
      if (result === 'starved') return;
      this.pending = undefined;
      if (result.done) {
        this.ended = true;
        return;
      }
      this.push(result.value);
    }
  }

  private describe(error: unknown): Error {
    this.ended = true;
    const message = error instanceof Error ? error.message : String(error);
    const code = /error code (\d+)$/.exec(message)?.[1];
    // Empty input makes xz-decompress fail on a null buffer rather than report a code.
    const problem = code !== undefined ? xzProblems[Number(code)] : this.compressedBytes === 0 ? 'it is empty' : undefined;
    return problem ? new Error(`xz: ${problem}`, { cause: error }) : error instanceof Error ? error : new Error(message);
  }
}
