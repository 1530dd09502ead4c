/**
 * The layer-files record two ways (src/oci/layer-files.ts): collected by the layer writer as it
 * writes a layer, and read back from the layer's blob by the closure check. They must be the
 * same record, for layers of real ELF files (trixie's libc6 and libstdc++6, unpacked) and for
 * every kind of member the record distinguishes.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { directoryEntries } from '../../src/oci/directory-entries.js';
import { layerFilesKey, type LayerFiles } from '../../src/oci/layer-files.js';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { BlobStore } from '../../src/oci/store.js';
import { layerFiles } from '../../src/pipeline/closure.js';
import { unpackDebianPackages } from '../harness/debian-packages.js';
import { storeBlobSource } from '../harness/images.js';

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-layer-files-'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** The record the writer kept, and the one read back from the same blob in a store that has no record. */
async function bothWays(name: string, entries: LayerEntry[]): Promise<{ written: LayerFiles; readBack: LayerFiles }> {
  const store = await BlobStore.open(join(work, `${name}-store`));
  const layer = await writeLayer(store, entries, { mtime: 0 });
  const written = await store.readRecord<LayerFiles>('layer-files', layerFilesKey(layer.diffId));
  assert.ok(written, 'the writer kept a layer-files record');
  const other = await BlobStore.open(join(work, `${name}-other`));
  await other.writeStream(store.openRead(layer.descriptor.digest), layer.descriptor.digest);
  const readBack = await layerFiles(layer, storeBlobSource(other), other);
  return { written, readBack };
}

test('real ELF libraries (libc6, libstdc++6 of trixie/amd64): the writer records what reading the layer back finds', async () => {
  const root = join(work, 'debs');
  await mkdir(root);
  await unpackDebianPackages(root, 'trixie', 'amd64', ['libc6', 'libstdc++6']);
  const { written, readBack } = await bothWays('debs', await directoryEntries(root));
  assert.deepEqual(written, readBack);
  const libstdcxx = Object.entries(written.elf).find(([path]) => path.endsWith('libstdc++.so.6.0.33'))?.[1];
  assert.ok(libstdcxx, 'libstdc++ is recorded as ELF');
  assert.equal(libstdcxx.soname, 'libstdc++.so.6');
  assert.deepEqual(libstdcxx.imports, ['iconv_open'], 'the glibc-loading symbols it imports');
  assert.ok(Object.keys(written.elf).length > 50, 'the gconv modules and libc are ELF too');
});

test('texts, links, directories, small and non-ELF files, whiteouts: the same record both ways', async () => {
  const text = (path: string, content: string): LayerEntry => ({ type: 'file', path, mode: 0o644, size: Buffer.byteLength(content), open: () => Buffer.from(content) });
  const { written, readBack } = await bothWays('kinds', [
    { type: 'directory', path: 'etc', mode: 0o755 },
    text('etc/ld.so.conf', 'include /etc/ld.so.conf.d/*.conf\n'),
    text('etc/ld.so.conf.d/app.conf', '/opt/app/lib\n'),
    text('etc/ld.so.cache', 'not really a cache, but binary to the record'),
    text('var/lib/dpkg/status.d/libc6.md5sums', 'd41d8cd98f00b204e9800998ecf8427e  usr/lib/x86_64-linux-gnu/libc.so.6\n'),
    text('app/.venv/lib/python3.12/site-packages/demo-1.0.dist-info/RECORD', 'demo/__init__.py,,\n'),
    text('app/data.bin', 'x'.repeat(4096)),
    text('app/tiny', 'small'),
    { type: 'symlink', path: 'app/link', target: 'data.bin' },
    text('app/.wh.gone', ''),
    text('app/old/.wh..wh..opq', ''),
  ]);
  assert.deepEqual(written, readBack);
  assert.deepEqual(Object.keys(written.texts).sort(), [
    'app/.venv/lib/python3.12/site-packages/demo-1.0.dist-info/RECORD',
    'etc/ld.so.cache',
    'etc/ld.so.conf',
    'etc/ld.so.conf.d/app.conf',
    'var/lib/dpkg/status.d/libc6.md5sums',
  ]);
  assert.equal(written.texts['etc/ld.so.cache'], '');
  assert.deepEqual(written.whiteouts, ['app/gone']);
  assert.deepEqual(written.opaque, ['app/old']);
  assert.deepEqual(written.elf, {});
});
