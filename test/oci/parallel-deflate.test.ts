/**
 * Deflate in blocks on several cores: the stream inflates to its input, and its bytes depend on
 * the input alone — not on how the input is chunked, nor on how many blocks are in flight.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { BLOCK_SIZE, ParallelDeflate } from '../../src/oci/parallel-deflate.js';
import { GZIP_HEADER } from '../../src/oci/layer-writer.js';

async function deflate(input: Buffer, chunkSizes: number[], parallelism?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let offset = 0, i = 0; offset < input.length; i++) {
    const size = chunkSizes[i % chunkSizes.length]!;
    chunks.push(input.subarray(offset, offset + size));
    offset += size;
  }
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks, { objectMode: false }),
    new ParallelDeflate({ level: 6, parallelism }),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

/** Compressible but not trivial: text-like lines with random words. */
function sample(size: number): Buffer {
  const words = Array.from({ length: 500 }, () => randomBytes(4).toString('hex'));
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const line = `${i} ${words[(i * 7) % words.length]} ${words[(i * 13) % words.length]} import os, sys\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

test('the stream inflates to its input at every size around the block boundaries', async () => {
  for (const size of [0, 1, 100, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17]) {
    const input = sample(size);
    const output = await deflate(input, [65536]);
    assert.ok(inflateRawSync(output).equals(input), `size ${size}`);
    assert.ok(output.subarray(-2).equals(Buffer.from([0x03, 0x00])), 'ends with the empty final block');
  }
});

test('the bytes do not depend on the input chunking or on the blocks in flight', async () => {
  const input = sample(5 * BLOCK_SIZE + 12345);
  const reference = await deflate(input, [65536], 4);
  for (const [chunks, parallelism] of [[[1 << 20], 1], [[7, 4096, 100000], 2], [[BLOCK_SIZE], 8], [[333], 3]] as const) {
    assert.ok((await deflate(input, [...chunks], parallelism)).equals(reference), `chunks ${chunks.join('/')}, ${parallelism} in flight`);
  }
  // Priming each block with the one before keeps the ratio of one stream.
  const single = (await import('node:zlib')).deflateRawSync(input, { level: 6 });
  assert.ok(reference.length < single.length * 1.01, `${reference.length} bytes in blocks vs ${single.length} in one stream`);
});

test('gzip -t accepts it in the gzip frame the layer writer puts around it', async () => {
  const input = sample(3 * BLOCK_SIZE + 5);
  const body = await deflate(input, [65536]);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE((await import('node:zlib')).crc32(input) >>> 0, 0);
  trailer.writeUInt32LE(input.length, 4);
  const gz = Buffer.concat([GZIP_HEADER, body, trailer]);
  const result = spawnSync('gzip', ['-dc'], { input: gz });
  assert.equal(result.status, 0, String(result.stderr));
  assert.ok(result.stdout.equals(input));
});
