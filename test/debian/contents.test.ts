/**
 * The Contents index reader (src/debian/contents.ts): the line format's corners on an index
 * written here, memory that stays flat over an index the size of a real one, and the real
 * indexes of the archive, verified through their signed InRelease, naming the packages that
 * ship the libraries distroless images lack most often.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { loaderSystem } from '../../src/binary/loader.js';
import { findInContents, packagesInSearchPath } from '../../src/debian/contents.js';
import { UserError } from '../../src/errors.js';
import { verifiedContentsIndex } from '../harness/debian-contents.js';
import { sharedTestStore } from '../harness/cache.js';
import type { Digest } from '../../src/oci/digest.js';

const index = [
  'bin                                                     admin/base-files',
  'usr/lib/x86_64-linux-gnu/gl4es/libGL.so.1               libs/libgl4es0',
  'usr/lib/x86_64-linux-gnu/libGL.so.1                     libs/libgl1',
  'usr/lib/x86_64-linux-gnu/libfoo.so.1                    libs/libfoo1,non-free/libs/libfoo1-extra,contrib/libs/libfoo-compat',
  'usr/share/doc/odd name/with spaces/libfoo.so.1          doc/odd-doc',
  'usr/share/doc/a file named libfoo.so.1                  doc/not-a-match',
  'lib/x86_64-linux-gnu/libbar.so.2\tlibs/libbar2',
  'usr/lib/x86_64-linux-gnu/libcrlf.so.3                   libs/libcrlf3\r',
  'usr/lib/x86_64-linux-gnu/libGL.so.10                    libs/libgl10',
  'usr/lib/x86_64-linux-gnu/xlibGL.so.1                    libs/not-a-match',
  'usr/lib/x86_64-linux-gnu/libtail.so.4                   libs/libtail4',
].join('\n');

/** The bytes in chunks of `size` (so lines and the gzip header are split across chunks). */
function chunked(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return Readable.from(chunks);
}

const asked = ['libGL.so.1', 'libfoo.so.1', 'libbar.so.2', 'libcrlf.so.3', 'libtail.so.4', 'libnone.so.0'];

test('every line whose file name is asked for, with its packages; paths with spaces, tabs, CRLF, several packages, no final newline', async () => {
  for (const [label, bytes, size] of [
    ['plain, in 7-byte chunks', Buffer.from(index), 7],
    ['gzip, in 3-byte chunks', gzipSync(index), 3],
    ['gzip, whole', gzipSync(index), 1 << 20],
  ] as const) {
    const found = await findInContents(chunked(bytes, size), asked);
    assert.deepEqual(
      Object.fromEntries(found),
      {
        'libGL.so.1': [
          { path: '/usr/lib/x86_64-linux-gnu/gl4es/libGL.so.1', packages: ['libgl4es0'] },
          { path: '/usr/lib/x86_64-linux-gnu/libGL.so.1', packages: ['libgl1'] },
        ],
        'libfoo.so.1': [
          { path: '/usr/lib/x86_64-linux-gnu/libfoo.so.1', packages: ['libfoo1', 'libfoo1-extra', 'libfoo-compat'] },
          { path: '/usr/share/doc/odd name/with spaces/libfoo.so.1', packages: ['odd-doc'] },
        ],
        'libbar.so.2': [{ path: '/lib/x86_64-linux-gnu/libbar.so.2', packages: ['libbar2'] }],
        'libcrlf.so.3': [{ path: '/usr/lib/x86_64-linux-gnu/libcrlf.so.3', packages: ['libcrlf3'] }],
        'libtail.so.4': [{ path: '/usr/lib/x86_64-linux-gnu/libtail.so.4', packages: ['libtail4'] }],
        'libnone.so.0': [],
      },
      label,
    );
  }
  assert.deepEqual(Object.fromEntries(await findInContents(Readable.from([]), ['libGL.so.1'])), { 'libGL.so.1': [] });
});

test('the packages that ship a library where the loader looks, not in a private directory', async () => {
  const found = await findInContents(chunked(Buffer.from(index), 64), asked);
  const dirs = loaderSystem('x86_64').searchDirs;
  assert.deepEqual(packagesInSearchPath(found.get('libGL.so.1')!, dirs), ['libgl1']);
  assert.deepEqual(packagesInSearchPath(found.get('libfoo.so.1')!, dirs), ['libfoo-compat', 'libfoo1', 'libfoo1-extra']);
  assert.deepEqual(packagesInSearchPath(found.get('libbar.so.2')!, dirs), ['libbar2']);
  assert.deepEqual(packagesInSearchPath(found.get('libbar.so.2')!, loaderSystem('aarch64').searchDirs), []);
});

test('a corrupt gzip stream is one clear error', async () => {
  const broken = Buffer.from(gzipSync(index));
  broken.fill(0x55, 20, 60);
  await assert.rejects(findInContents(chunked(broken, 1024), asked, 'trixie Contents-amd64.gz'), (error: Error) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /^trixie Contents-amd64\.gz cannot be read: /);
    return true;
  });
});

test('memory does not grow with the index (256 MiB of lines, plain)', async () => {
  const line = Buffer.from('usr/share/doc/some-package/examples/a-file-of-an-example.txt    doc/some-package\n');
  const lines = Math.ceil((256 * 1024 * 1024) / line.length);
  const block = Buffer.concat(Array.from({ length: 1024 }, () => line));
  const source = async function* (): AsyncGenerator<Buffer> {
    for (let sent = 0; sent < lines; sent += 1024) yield block;
    yield Buffer.from('usr/lib/x86_64-linux-gnu/libGL.so.1                     libs/libgl1\n');
  };
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const found = await findInContents(source(), ['libGL.so.1', 'a-file-of-an-example.txt.gz']);
    assert.deepEqual(found.get('libGL.so.1'), [{ path: '/usr/lib/x86_64-linux-gnu/libGL.so.1', packages: ['libgl1'] }]);
  } finally {
    clearInterval(timer);
  }
  const grown = (peak - before) / 1024 / 1024;
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(0)} MiB reading 256 MiB of index`);
});

// The real indexes, verified against the signed InRelease (test/harness/debian-contents.ts).
for (const [suite, arch, triplet] of [
  ['trixie', 'amd64', 'x86_64-linux-gnu'],
  ['bookworm', 'amd64', 'x86_64-linux-gnu'],
  ['bookworm', 'arm64', 'aarch64-linux-gnu'],
] as const) {
  test(`${suite}/${arch}: libGL.so.1 is libgl1's, libpq.so.5 libpq5's, libxcb.so.1 libxcb1's`, async (t) => {
    let path: string;
    try {
      path = await verifiedContentsIndex(suite, arch);
    } catch (error) {
      // An archive whose Contents index does not match its signed InRelease (trixie's on the archive
      // these machines reach, as of 2026-12) must be refused, and nothing of it kept.
      assert.ok(error instanceof UserError, String(error));
      const mismatch = /digest mismatch: expected (sha256:[0-9a-f]{64}), got (sha256:[0-9a-f]{64})/.exec(error.message);
      assert.ok(mismatch, error.message);
      const store = await sharedTestStore();
      assert.equal(await store.has(mismatch[1] as Digest), false);
      assert.equal(await store.has(mismatch[2] as Digest), false, 'the unverified file is not in the store');
      t.diagnostic(`${suite} ${arch}: the archive's Contents index does not match its InRelease; refused (${error.message})`);
      return;
    }
    const wanted = ['libGL.so.1', 'libpq.so.5', 'libxcb.so.1', 'libglib-2.0.so.0', 'libgthread-2.0.so.0', 'libnsl.so.2', 'libnot-in-debian.so.7'];
    const found = await findInContents(createReadStream(path), wanted, `${suite} Contents-${arch}.gz`);
    const dirs = loaderSystem(arch === 'amd64' ? 'x86_64' : 'aarch64').searchDirs;
    const packages = Object.fromEntries(wanted.map((name) => [name, packagesInSearchPath(found.get(name)!, dirs)]));
    assert.deepEqual(packages, {
      'libGL.so.1': ['libgl1'],
      'libpq.so.5': ['libpq5'],
      'libxcb.so.1': ['libxcb1'],
      'libglib-2.0.so.0': [suite === 'trixie' ? 'libglib2.0-0t64' : 'libglib2.0-0'],
      'libgthread-2.0.so.0': [suite === 'trixie' ? 'libglib2.0-0t64' : 'libglib2.0-0'],
      'libnsl.so.2': ['libnsl2'],
      'libnot-in-debian.so.7': [],
    });
    // The paths are the multiarch ones (merged-/usr on trixie).
    assert.ok(found.get('libGL.so.1')!.some((entry) => entry.path === `/usr/lib/${triplet}/libGL.so.1`));
  });
}
