/**
 * The xz decoder (xz-decompress in WebAssembly) against files the real `xz` wrote: the same bytes
 * out, one sentence for each kind of bad input, streaming with bounded buffers under a slow
 * reader, and decoders that run side by side or are abandoned without blocking the next.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { createXzDecompressor } from '../../src/debian/xz.js';

const xz = (input: Buffer, ...args: string[]): Buffer => execFileSync('xz', ['-c', ...args], { input, maxBuffer: 512 * 1024 * 1024 });

async function decode(compressed: Buffer | Readable, options: { chunk?: number } = {}): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const source = Buffer.isBuffer(compressed) ? Readable.from(chunks(compressed, options.chunk ?? 65536)) : compressed;
  await pipeline(source, createXzDecompressor(), async (out: AsyncIterable<Buffer>) => {
    for await (const chunk of out) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  });
  return { sha256: hash.digest('hex'), bytes };
}

function* chunks(buffer: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < buffer.length; offset += size) yield buffer.subarray(offset, offset + size);
}

const sha256 = (buffer: Buffer): string => createHash('sha256').update(buffer).digest('hex');
const text = Buffer.from(Array.from({ length: 12000 }, (_, i) => `Package: p${i}\nVersion: ${i}.0\nDescription: line ${i % 97}\n\n`).join(''));

test('decodes what xz wrote, at every preset and any chunking, several streams in a row too', async () => {
  const binary = randomBytes(300_000);
  for (const [name, input, args] of [
    ['text -0', text, ['-0']],
    ['text -6', text, ['-6']],
    ['text -9e', text, ['-9e']],
    ['random -6 crc32', binary, ['-6', '--check=crc32']],
    ['random -3 crc64 (dpkg\'s)', binary, ['-3', '--check=crc64']],
    ['random -2 no check', binary, ['-2', '--check=none']],
    ['empty input', Buffer.alloc(0), ['-6']],
  ] as const) {
    const compressed = xz(input, ...args);
    for (const chunk of [1, 7, 4096, 1 << 20]) {
      // Byte-at-a-time over a big stream proves nothing 7-byte chunks do not, at a hundred times the cost.
      if (chunk === 1 && compressed.length > 20_000) continue;
      assert.deepEqual(await decode(compressed, { chunk }), { sha256: sha256(input), bytes: input.length }, `${name}, ${chunk}-byte chunks`);
    }
  }
  const twoStreams = Buffer.concat([xz(text, '-1'), xz(Buffer.from('tail\n'), '-1')]);
  assert.deepEqual(await decode(twoStreams), { sha256: sha256(Buffer.concat([text, Buffer.from('tail\n')])), bytes: text.length + 5 });
});

test('bad input fails with one sentence saying what is wrong', async () => {
  const good = xz(text, '-6');
  const corrupt = Buffer.from(good);
  corrupt.fill(0x55, 2000, 2040);
  for (const [input, message] of [
    [good.subarray(0, good.length - 100), /^xz: it is truncated \(the input ended inside the xz stream\)$/],
    [corrupt, /^xz: the compressed data is corrupt$/],
    [Buffer.from('this is not xz at all, just text that goes on\n'), /^xz: it is not xz data$/],
    [Buffer.alloc(0), /^xz: it is empty$/],
    [xz(text, '--check=sha256'), /^xz: it uses an integrity check \(such as SHA-256\) or a filter the decoder does not support$/],
    [xz(Buffer.from('x'), '--lzma2=dict=128MiB'), /^xz: its dictionary is larger than the 64 MiB the decoder allows$/],
  ] as const) {
    await assert.rejects(decode(input), (error: Error) => {
      assert.match(error.message, message);
      return true;
    });
  }
});

test('streams: a slow reader holds the buffers at a few chunks, however much comes out', async () => {
  // 256 MiB of output from ~40 KiB of input: anything that decoded ahead of the reader would show.
  const compressed = xz(Buffer.alloc(256 * 1024 * 1024), '-0');
  const decoder = createXzDecompressor();
  Readable.from(chunks(compressed, 4096)).pipe(decoder);
  let bytes = 0;
  let largestBuffered = 0;
  for await (const chunk of decoder) {
    bytes += (chunk as Buffer).length;
    largestBuffered = Math.max(largestBuffered, decoder.readableLength + decoder.writableLength);
    if (bytes % (16 * 1024 * 1024) < (chunk as Buffer).length) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(bytes, 256 * 1024 * 1024);
  assert.ok(largestBuffered <= 1024 * 1024, `buffered at most ${largestBuffered} bytes`);
});

test('decoders side by side both finish, and an abandoned one does not block the next', async () => {
  const a = xz(text, '-6');
  const b = xz(randomBytes(100_000), '-2');
  const [first, second] = await Promise.all([decode(a, { chunk: 1000 }), decode(b, { chunk: 1000 })]);
  assert.equal(first.bytes, text.length);
  assert.equal(second.bytes, 100_000);

  // A reader that stops after the first chunk and destroys the decoder (as for-await's break does).
  const abandoned = createXzDecompressor();
  Readable.from(chunks(a, 1000)).pipe(abandoned);
  for await (const _ of abandoned) break;
  assert.ok(abandoned.destroyed);
  const after = await Promise.race([decode(b), new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 10_000))]);
  assert.notEqual(after, 'blocked', 'the decoder after an abandoned one runs');
});
