import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { sha256Digest } from '../../src/oci/digest.js';
import { BlobStore, CorruptBlobError, defaultCacheDir } from '../../src/oci/store.js';

async function newStore(): Promise<BlobStore> {
  return BlobStore.open(await mkdtemp(join(tmpdir(), 'uvimage-store-')));
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(chunks);
}

test('cache dir follows flag/env/XDG rules', () => {
  assert.equal(defaultCacheDir({ UVIMAGE_CACHE_DIR: '/x/y', XDG_CACHE_HOME: '/c' }), '/x/y');
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/c' }), '/c/uvimage');
  assert.match(defaultCacheDir({ XDG_CACHE_HOME: 'relative', HOME: '/home/u' }), /\.cache\/uvimage$/);
});

test('a blob is stored under its digest and read back verified', async () => {
  const store = await newStore();
  const bytes = Buffer.from('hello layer');
  const info = await store.putBytes(bytes);
  assert.equal(info.digest, sha256Digest(bytes));
  assert.equal(info.size, bytes.length);
  assert.deepEqual(await store.readBytes(info.digest), bytes);
  assert.deepEqual(await drain(store.openRead(info.digest)), bytes);
  assert.equal(await store.hasIntact(info.digest), true);
  assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
});

test('an expected digest that does not match stores nothing', async () => {
  const store = await newStore();
  const expected = sha256Digest('something else');
  await assert.rejects(store.putBytes(Buffer.from('actual'), expected, 'layer x'), /layer x: digest mismatch/);
  assert.equal(await store.has(expected), false);
  assert.equal(await store.has(sha256Digest('actual')), false);
  assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
});

test('a flipped byte is detected on read, the blob removed and never used', async () => {
  const store = await newStore();
  const bytes = Buffer.alloc(300_000, 7);
  const { digest } = await store.putBytes(bytes);
  const path = store.blobPath(digest);
  const corrupt = Buffer.from(await readFile(path));
  corrupt[150_000] = corrupt[150_000]! ^ 0xff;
  await writeFile(path, corrupt);

  const fresh = await BlobStore.open(store.root); // a new process would not trust an earlier check
  await assert.rejects(drain(fresh.openRead(digest)), CorruptBlobError);
  assert.equal(await fresh.has(digest), false, 'corrupt blob must be removed');
});

test('a truncated blob is detected by hasIntact and readBytes', async () => {
  const store = await newStore();
  const { digest } = await store.putBytes(Buffer.from('0123456789'));
  await writeFile(store.blobPath(digest), '01234');
  const fresh = await BlobStore.open(store.root);
  assert.equal(await fresh.hasIntact(digest), false);
  assert.equal(await fresh.has(digest), false);

  const again = await fresh.putBytes(Buffer.from('0123456789'));
  await writeFile(fresh.blobPath(again.digest), '0123456789x');
  await assert.rejects((await BlobStore.open(store.root)).readBytes(again.digest), CorruptBlobError);
});

test('many concurrent writers of the same and different blobs all succeed', async () => {
  const store = await newStore();
  const payloads = Array.from({ length: 40 }, (_, index) => Buffer.alloc(64 * 1024 + index, index % 3));
  const results = await Promise.all(payloads.map((payload) => store.writeStream(Readable.from([payload]))));
  for (const [index, result] of results.entries()) {
    assert.equal(result.digest, sha256Digest(payloads[index]!));
    assert.deepEqual(await store.readBytes(result.digest), payloads[index]);
  }
  assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
});

test('two processes writing into one store at once both succeed', async () => {
  const store = await newStore();
  const script = `
    import { BlobStore } from ${JSON.stringify(new URL('../../src/oci/store.ts', import.meta.url).pathname)};
    import { Readable } from 'node:stream';
    const store = await BlobStore.open(process.argv[1]);
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.alloc(16384, i % 251));
    const results = [];
    for (let n = 0; n < 10; n++) results.push(await store.writeStream(Readable.from(chunks)));
    console.log(JSON.stringify(results.map((r) => r.digest)));
  `;
  const run = () =>
    new Promise<string[]>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, store.root], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`writer exited ${code}`))));
    });
  const [first, second] = await Promise.all([run(), run()]);
  assert.deepEqual(first, second);
  const digest = first![0] as `sha256:${string}`;
  assert.equal(await store.hasIntact(digest), true);
});

test('a writer killed halfway leaves no blob, and its temp file is swept later', async () => {
  const store = await newStore();
  const script = `
    import { BlobStore } from ${JSON.stringify(new URL('../../src/oci/store.ts', import.meta.url).pathname)};
    const store = await BlobStore.open(process.argv[1]);
    const writer = store.createWriter();
    writer.stream.write(Buffer.alloc(1 << 20, 1), () => { console.log('halfway'); });
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, store.root], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const tempsWhileRunning = await readdir(join(store.root, 'tmp'));
  assert.equal(tempsWhileRunning.length, 1, 'the writer works in a temp file');
  await BlobStore.open(store.root);
  assert.equal((await readdir(join(store.root, 'tmp'))).length, 1, "a live writer's temp file is left alone");
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.deepEqual(await readdir(join(store.root, 'blobs', 'sha256')), [], 'nothing was committed');
  await BlobStore.open(store.root);
  assert.deepEqual(await readdir(join(store.root, 'tmp')), [], 'the dead writer\'s temp file is swept');
});

test('records are written atomically and read back', async () => {
  const store = await newStore();
  assert.equal(await store.readRecord('tags', 'x:1'), undefined);
  await store.writeRecord('tags', 'x:1', { digest: 'sha256:ab', at: 5 });
  assert.deepEqual(await store.readRecord('tags', 'x:1'), { digest: 'sha256:ab', at: 5 });
});

test('a source that fails mid-stream is reported, not a crash, and leaves nothing behind', async () => {
  const store = await newStore();
  async function* failing() {
    yield Buffer.alloc(100_000, 1);
    throw new Error('source broke');
  }
  await assert.rejects(store.writeStream(failing()), /source broke/);
  assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
  assert.deepEqual(await readdir(join(store.root, 'blobs', 'sha256')), []);
  const writer = store.createWriter();
  writer.stream.write(Buffer.alloc(10));
  await writer.abort();
  assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
});

test('a blob checked once is not rehashed, but any later write to it is still caught', async () => {
  const store = await newStore();
  const { digest } = await store.putBytes(Buffer.alloc(4096, 3));
  assert.equal(await (await BlobStore.open(store.root)).hasIntact(digest), true);
  assert.ok(await store.readRecord('intact', digest), 'the check is remembered');
  const flipped = Buffer.alloc(4096, 3);
  flipped[10] = 4;
  await writeFile(store.blobPath(digest), flipped);
  assert.equal(await (await BlobStore.open(store.root)).hasIntact(digest), false);
  assert.equal(await store.has(digest), false, 'the corrupt blob is removed');
});
