/**
 * `diff` on two small images written by the real layer writer into an OCI layout: components
 * changed in version, added and removed; layers paired by position (same, changed, added); files
 * changed by content with the same size, by link target, added and removed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { silentProgress } from '../../src/progress.js';
import { assembleImage, extendConfig, type Artifact, type Layer } from '../../src/oci/image.js';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { OciLayoutSink } from '../../src/oci/sinks/oci-layout.js';
import { BlobStore } from '../../src/oci/store.js';
import { RegistryClient } from '../../src/registry/client.js';
import { diffImages, formatDiff, formatDiffMarkdown } from '../../src/report/diff.js';
import { openSourceImage } from '../../src/report/image-source.js';
import { analyzeImage } from '../../src/report/inspect.js';
import { storeBlobSource } from '../harness/images.js';

let work: string;
let store: BlobStore;
const platform = { os: 'linux', architecture: 'amd64' };
const site = 'usr/lib/python3/site-packages';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-report-diff-'));
  store = await BlobStore.open(join(work, 'store'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const file = (path: string, content: string): LayerEntry => {
  const bytes = Buffer.from(content);
  return { type: 'file', path, size: bytes.length, open: () => bytes };
};

function debian(name: string, version: string, files: Record<string, string>): LayerEntry[] {
  return [
    file(`var/lib/dpkg/status.d/${name}`, `Package: ${name}\nVersion: ${version}\nArchitecture: amd64\n`),
    file(`var/lib/dpkg/status.d/${name}.md5sums`, Object.keys(files).map((path) => `0123456789abcdef0123456789abcdef  ${path}\n`).join('')),
    ...Object.entries(files).map(([path, content]) => file(path, content)),
  ];
}

function dist(name: string, version: string, module: string): LayerEntry[] {
  const info = `${site}/${name}-${version}.dist-info`;
  return [
    file(`${info}/METADATA`, `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`),
    file(`${info}/RECORD`, `${name}.py,,\n${name}-${version}.dist-info/METADATA,,\n${name}-${version}.dist-info/RECORD,,\n`),
    file(`${site}/${name}.py`, module),
  ];
}

/** An image of these layers in a layout of its own; its name for openSourceImage. */
async function layoutImage(name: string, layers: LayerEntry[][]): Promise<string> {
  const written: Layer[] = [];
  for (const entries of layers) {
    const layer = await writeLayer(store, entries);
    written.push({ descriptor: layer.descriptor, diffId: layer.diffId });
  }
  const config = extendConfig({ platform, added: written.map((layer, index) => ({ layer, history: { created_by: `step ${index + 1}` } })), changes: {}, created: '1970-01-01T00:00:00Z' });
  const artifact: Artifact = { kind: 'image', image: assembleImage({ platform, config, layers: written }) };
  const dir = join(work, name);
  await new OciLayoutSink(dir).write(artifact, { blobs: storeBlobSource(store), progress: silentProgress, tags: ['app:1'] });
  return `oci:${dir}:1`;
}

async function analysis(name: string) {
  return analyzeImage(await openSourceImage(name, { store: async () => store, client: () => new RegistryClient() }), { hash: true });
}

test('diff: versions, layers by position, and files by content, link target, presence', async () => {
  const before = await layoutImage('before', [
    [...debian('libfoo', '1.0-1', { 'usr/lib/libfoo.so': 'AAAA' }), file('etc/conf', 'x = 1\n'), { type: 'symlink', path: 'usr/bin/tool', target: 'tool-a' }],
    [...dist('six', '1.16.0', 'six = 16\n'), ...dist('gone', '1.0', 'gone = True\n')],
  ]);
  const afterName = await layoutImage('after', [
    [...debian('libfoo', '1.0-2', { 'usr/lib/libfoo.so': 'BBBB' }), file('etc/conf', 'x = 1\n'), { type: 'symlink', path: 'usr/bin/tool', target: 'tool-b' }],
    [...dist('six', '1.17.0', 'six = 17\n'), ...dist('new-one', '2.0', 'new = True\n')],
    [file('app/data.bin', 'x'.repeat(1000))],
  ]);
  const report = diffImages(await analysis(before), await analysis(afterName));

  assert.deepEqual(report.components, [
    { kind: 'debian', name: 'libfoo', change: 'changed', before: '1.0-1', after: '1.0-2' },
    { kind: 'python', name: 'gone', change: 'removed', before: '1.0' },
    { kind: 'python', name: 'new-one', change: 'added', after: '2.0' },
    { kind: 'python', name: 'six', change: 'changed', before: '1.16.0', after: '1.17.0' },
  ]);
  assert.deepEqual(report.layers.map((layer) => [layer.number, layer.same, layer.before !== undefined, layer.after !== undefined]), [
    [1, false, true, true],
    [2, false, true, true],
    [3, false, false, true],
  ]);
  assert.equal(report.layers[2]!.compressedDelta, report.layers[2]!.after!.compressedSize);

  const byPath = Object.fromEntries(report.files.changes.map((change) => [change.path, change.change]));
  assert.equal(byPath['/usr/lib/libfoo.so'], 'changed', 'same size, other content');
  assert.equal(byPath['/usr/bin/tool'], 'changed', 'another link target');
  assert.equal(byPath['/usr/lib/python3/site-packages/gone.py'], 'removed');
  assert.equal(byPath['/app/data.bin'], 'added');
  assert.equal(byPath['/etc/conf'], undefined, 'an unchanged file is not listed');
  assert.equal(report.files.changes[0]!.path, '/app/data.bin', 'the largest change first');
  assert.equal(report.files.delta, report.files.changes.reduce((sum, change) => sum + change.delta, 0));

  const owners = Object.fromEntries(report.owners.map((owner) => [`${owner.kind} ${owner.name}`, owner]));
  assert.equal(owners['python gone']!.after, 0);
  assert.equal(owners['python new-one']!.before, 0);
  assert.equal(owners['debian libfoo']!.beforeVersion, '1.0-1');
  assert.equal(owners['debian libfoo']!.afterVersion, '1.0-2');
  assert.equal(owners['unowned ']!.delta, 1000, 'the new layer\'s file belongs to nobody');

  const text = formatDiff(report, 3);
  assert.match(text, /~ debian +libfoo 1\.0-1 → 1\.0-2/);
  assert.match(text, / 3  added, /);
  assert.match(text, /… \d+ more/);
  const markdown = formatDiffMarkdown(report, 20);
  assert.match(markdown, /\| removed \| python \| gone \| 1\.0 \|  \|/);
  assert.match(markdown, /\| 3 \| added \| /);
});

test('diff of an image with itself finds nothing', async () => {
  const name = await layoutImage('same', [[...dist('six', '1.17.0', 'six\n')]]);
  const report = diffImages(await analysis(name), await analysis(name));
  assert.deepEqual(report.components, []);
  assert.deepEqual(report.owners, []);
  assert.deepEqual(report.files.changes, []);
  assert.ok(report.layers.every((layer) => layer.same && layer.compressedDelta === 0));
  assert.match(formatDiff(report, 5), /components: no change/);
});
