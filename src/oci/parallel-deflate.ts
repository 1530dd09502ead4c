/**
 * Raw deflate on several cores, as pigz does it. One zlib stream is one thread, and a layer
 * spends most of its time there; so the input is cut into blocks of BLOCK_SIZE bytes, each block
 * is compressed on its own in libuv's thread pool with the last 32 KiB of the block before it as
 * its dictionary (what a single stream would have in its window, so the ratio stays within a
 * fraction of a percent of one stream's), and each ends with a sync flush: an empty stored block,
 * byte-aligned and not final. The blocks' outputs, in order, are one valid deflate stream, closed
 * by an empty final block (03 00).
 *
 * The bytes depend on the input, the block size and the zlib parameters only — not on how the
 * input arrives in chunks nor on how many blocks are compressed at once — so a layer has the same
 * digest on every machine with the same zlib. Memory is bounded by the blocks in flight.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, deflateRaw, type ZlibOptions } from 'node:zlib';

/** The block size (pigz's default). Part of the output: changing it changes every layer digest. */
export const BLOCK_SIZE = 128 * 1024;
/** How much of the previous block primes the next one: deflate's whole window. */
const DICTIONARY_SIZE = 32 * 1024;
/** The empty final block (BFINAL 1, fixed Huffman, end of block) that ends the stream. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

export interface ParallelDeflateOptions {
  /** zlib level 0-9. */
  level: number;
  /** Blocks compressed at once; default 4 (libuv's default thread pool). Does not change the output. */
  parallelism?: number;
}

export class ParallelDeflate extends Transform {
  private readonly zlibOptions: ZlibOptions;
  private readonly parallelism: number;
  private pending: Buffer[] = [];
  private pendingSize = 0;
  private dictionary: Buffer | undefined;
  /** Compressions started and not yet pushed, in input order. */
  private readonly inFlight: Promise<Buffer>[] = [];

  constructor(options: ParallelDeflateOptions) {
    super();
    // Every parameter that shapes the deflate stream is pinned, so a change of Node's defaults
    // cannot change layer digests.
    this.zlibOptions = {
      level: options.level,
      windowBits: 15,
      memLevel: 8,
      strategy: zlibConstants.Z_DEFAULT_STRATEGY,
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
    };
    this.parallelism = Math.max(1, Math.floor(options.parallelism ?? 4));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingSize += chunk.length;
    while (this.pendingSize >= BLOCK_SIZE) {
      const joined = Buffer.concat(this.pending, this.pendingSize);
      this.start(joined.subarray(0, BLOCK_SIZE));
      const rest = joined.subarray(BLOCK_SIZE);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingSize = rest.length;
    }
    this.drain(this.parallelism - 1).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.pendingSize > 0) this.start(Buffer.concat(this.pending, this.pendingSize));
    this.pending = [];
    this.pendingSize = 0;
    this.drain(0).then(() => {
      this.push(FINAL_BLOCK);
      callback();
    }, callback);
  }

  private start(block: Buffer): void {
    const dictionary = this.dictionary;
    // A copy: the block's buffer may be shared with the rest of the input, which is not kept.
    this.dictionary = Buffer.from(block.subarray(Math.max(0, block.length - DICTIONARY_SIZE)));
    const options = dictionary ? { ...this.zlibOptions, dictionary } : this.zlibOptions;
    const compressed = new Promise<Buffer>((resolve, reject) => deflateRaw(block, options, (error, result) => (error ? reject(error) : resolve(result))));
    compressed.catch(() => {}); // observed in drain(); an earlier failure must not leave it unhandled
    this.inFlight.push(compressed);
  }

  /** Pushes finished blocks in order until at most `keep` are in flight. */
  private async drain(keep: number): Promise<void> {
    while (this.inFlight.length > keep) this.push(await this.inFlight.shift()!);
  }
}
