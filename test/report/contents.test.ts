/**
 * The content model of `inspect` and `diff`: layers written by the real layer writer, read back
 * as streams; whiteouts (explicit and opaque) applied as the OCI image spec says; owners from
 * distroless' status.d, a classic dpkg database, RECORD, python-build-standalone's tree, Debian's
 * CPython, uvimage's project layer; the trimmed-runtime annotation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { after, before, test } from 'node:test';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import { BlobStore } from '../../src/oci/store.js';
import { mergeLayers, readLayerContents, type LayerContents } from '../../src/report/contents.js';
import { describeOwner, readTrimmedAnnotation } from '../../src/report/inspect.js';
import { Annotation } from '../../src/oci/image.js';
import { assignOwners, isOwnerMetadata } from '../../src/report/owners.js';

let work: string;
let store: BlobStore;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-report-contents-'));
  store = await BlobStore.open(join(work, 'store'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const file = (path: string, content = '', mode = 0o644): LayerEntry => {
  const bytes = Buffer.from(content);
  return { type: 'file', path, size: bytes.length, mode, open: () => bytes };
};
const symlink = (path: string, target: string): LayerEntry => ({ type: 'symlink', path, target });

/** A layer through the real writer, read back from the store as a gunzipped stream. */
async function layer(entries: LayerEntry[], hash = false): Promise<LayerContents> {
  const written = await writeLayer(store, entries);
  const contents = await readLayerContents(store.openRead(written.descriptor.digest).pipe(createGunzip()), { what: 'test layer', collect: isOwnerMetadata, hash });
  assert.equal(contents.tarSize, written.uncompressedSize, 'every byte of the tar is counted');
  return contents;
}

function fateOf(layers: LayerContents[], merged: ReturnType<typeof mergeLayers>, index: number, path: string): string {
  const position = layers[index]!.entries.findIndex((entry) => entry.path === path);
  assert.ok(position >= 0, `${path} in layer ${index + 1}`);
  const fate = merged.fates[index]![position]!;
  return fate.state === 'visible' ? 'visible' : `${fate.state} by ${fate.by + 1}`;
}

test('whiteouts delete from lower layers only; an opaque directory hides what lower layers put in it; a file over a directory takes its children', async () => {
  const lower = await layer([
    file('a/b/c/bar', 'bar'),
    file('a/keep', 'keep'),
    file('etc/my-app-config', 'old config'),
    file('bin/tool', 'tool v1', 0o755),
    file('x/1', 'one'),
    file('x/2', 'two'),
    symlink('lib', 'usr/lib'),
  ]);
  const upper = await layer([
    // The layer writer sorts paths, so the opaque marker comes after a/b/: it must still apply first.
    file('a/.wh..wh..opq'),
    file('a/b/c/foo', 'foo'),
    file('etc/.wh.my-app-config'),
    file('bin/tool', 'tool v2, longer', 0o755),
    file('x', 'x is a file now'),
    file('new/.wh.same-layer'),
    file('new/same-layer', 'a whiteout never hides its own layer'),
    symlink('lib', 'usr/lib'),
  ]);
  assert.deepEqual(upper.opaque, ['a']);
  assert.deepEqual(upper.whiteouts.sort(), ['etc/my-app-config', 'new/same-layer']);
  assert.ok(!upper.entries.some((entry) => entry.path.includes('.wh.')), 'whiteout markers are not entries');

  const layers = [lower, upper];
  const merged = mergeLayers(layers);
  assert.equal(fateOf(layers, merged, 0, 'a/b/c/bar'), 'deleted by 2');
  assert.equal(fateOf(layers, merged, 0, 'a/keep'), 'deleted by 2');
  assert.equal(fateOf(layers, merged, 0, 'a'), 'replaced by 2', 'the opaque directory itself stays, with the upper attributes');
  assert.equal(fateOf(layers, merged, 0, 'etc/my-app-config'), 'deleted by 2');
  assert.equal(fateOf(layers, merged, 0, 'bin/tool'), 'replaced by 2');
  assert.equal(fateOf(layers, merged, 0, 'x/1'), 'replaced by 2');
  assert.equal(fateOf(layers, merged, 0, 'x/2'), 'replaced by 2');
  assert.equal(fateOf(layers, merged, 0, 'lib'), 'replaced by 2');
  assert.equal(fateOf(layers, merged, 1, 'a/b/c/foo'), 'visible');
  assert.equal(fateOf(layers, merged, 1, 'new/same-layer'), 'visible');
  const files = [...merged.visible.keys()].filter((path) => layers[merged.visible.get(path)!.layer]!.entries[merged.visible.get(path)!.entry]!.type !== 'directory').sort();
  assert.deepEqual(files, ['a/b/c/foo', 'bin/tool', 'lib', 'new/same-layer', 'x']);
  const tool = merged.visible.get('bin/tool')!;
  assert.equal(tool.layer, 1);
  assert.equal(upper.entries[tool.entry]!.size, 'tool v2, longer'.length);
  assert.equal(upper.entries.find((entry) => entry.path === 'lib')!.linkTarget, 'usr/lib');
});

test('a later whiteout deletes a file an earlier layer replaced: the fate names the layer that did it', async () => {
  const layers = [await layer([file('f', '1')]), await layer([file('f', '22')]), await layer([file('.wh.f')])];
  const merged = mergeLayers(layers);
  assert.equal(fateOf(layers, merged, 0, 'f'), 'replaced by 2');
  assert.equal(fateOf(layers, merged, 1, 'f'), 'deleted by 3');
  assert.equal(merged.visible.has('f'), false);
});

test('file digests are taken as the layer streams, when asked', async () => {
  const [hashed] = [await layer([file('a.txt', 'hello')], true)];
  assert.equal(hashed.entries.find((entry) => entry.path === 'a.txt')!.sha256, 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  const plain = await layer([file('a.txt', 'hello')]);
  assert.equal(plain.entries.find((entry) => entry.path === 'a.txt')!.sha256, undefined);
});

const libc6Stanza = 'Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.41-12\nArchitecture: amd64\n';
const site = 'app/.venv/lib/python3.12/site-packages';

test('owners: status.d with md5sums, a classic dpkg status with .list, RECORD with scripts and compiled files, the standalone runtime, the project layer, the rest unowned', async () => {
  const base = await layer([
    file('var/lib/dpkg/status.d/libc6', libc6Stanza),
    // A bookworm-era md5sums names lib/…; merged-/usr images have the file at usr/lib/….
    file('var/lib/dpkg/status.d/libc6.md5sums', '0123456789abcdef0123456789abcdef  lib/x86_64-linux-gnu/libc.so.6\n0123456789abcdef0123456789abcdef  usr/share/doc/libc6/copyright\n'),
    file('usr/lib/x86_64-linux-gnu/libc.so.6', 'ELF libc'),
    file('usr/share/doc/libc6/copyright', 'GPL'),
    file('var/lib/dpkg/status', 'Package: tzdata\nStatus: install ok installed\nVersion: 2025b-1\nArchitecture: all\n\nPackage: removed-one\nStatus: deinstall ok config-files\nVersion: 1.0\n'),
    file('var/lib/dpkg/info/tzdata.list', '/.\n/usr\n/usr/share/zoneinfo/UTC\n'),
    file('usr/share/zoneinfo/UTC', 'TZif'),
    file('etc/passwd', 'root:x:0:0::/root:/sbin/nologin\n'),
  ]);
  const runtime = await layer([
    file('python/bin/python3.12', 'ELF python', 0o755),
    symlink('python/bin/python3', 'python3.12'),
    file('python/lib/python3.12/os.py', 'import abc\n'),
    file('python/lib/python3.12/__pycache__/os.cpython-312.pyc', 'pyc'),
  ]);
  const dependencies = await layer([
    file(`${site}/six.py`, '"""six"""\n'),
    file(`${site}/__pycache__/six.cpython-312.pyc`, 'pyc of six'),
    file(`${site}/six-1.17.0.dist-info/METADATA`, 'Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n\nlong description\nName: not-a-header\n'),
    file(`${site}/six-1.17.0.dist-info/RECORD`, 'six.py,sha256=x,10\nsix-1.17.0.dist-info/METADATA,,\nsix-1.17.0.dist-info/RECORD,,\n../../../bin/six-tool,,\n"odd,name.py",,\n'),
    file('app/.venv/bin/six-tool', '#!/app/.venv/bin/python\n', 0o755),
    file(`${site}/odd,name.py`, 'x = 1\n'),
    file('app/.venv/pyvenv.cfg', 'home = /python/bin\n'),
  ]);
  const project = await layer([
    file(`${site}/hello_app-0.1.0.dist-info/METADATA`, 'Metadata-Version: 2.4\nName: hello-app\nVersion: 0.1.0\n'),
    file(`${site}/hello_app-0.1.0.dist-info/RECORD`, 'hello_app/__init__.py,,\nhello_app-0.1.0.dist-info/RECORD,,\n'),
    file(`${site}/hello_app/__init__.py`, 'print("hi")\n'),
    file(`${site}/hello_app/__pycache__/__init__.cpython-312.pyc`, 'pyc'),
    file('app/.venv/bin/hello', '#!/app/.venv/bin/python\n', 0o755),
  ]);
  const layers = [base, runtime, dependencies, project];
  const merged = mergeLayers(layers);
  const ownership = assignOwners(layers, merged, [
    'uvimage base cc (trixie/amd64): libc6=2.41-12',
    'uvimage: python-build-standalone cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz',
    'uvimage: dependencies',
    'uvimage: project hello-app',
  ]);
  const ownerOf = (path: string) => {
    const found = merged.visible.get(path)!;
    assert.ok(found, `${path} is in the image`);
    return describeOwner(ownership.owners[found.layer]![found.entry]!);
  };
  assert.equal(ownerOf('usr/lib/x86_64-linux-gnu/libc.so.6'), 'debian libc6 2.41-12');
  assert.equal(ownerOf('usr/share/doc/libc6/copyright'), 'debian libc6 2.41-12');
  assert.equal(ownerOf('var/lib/dpkg/status.d/libc6.md5sums'), 'debian libc6 2.41-12');
  assert.equal(ownerOf('usr/share/zoneinfo/UTC'), 'debian tzdata 2025b-1');
  assert.equal(ownerOf('etc/passwd'), 'unowned');
  assert.equal(ownerOf('python/bin/python3.12'), 'runtime python-build-standalone 3.12.7');
  assert.equal(ownerOf('python/lib/python3.12/__pycache__/os.cpython-312.pyc'), 'runtime python-build-standalone 3.12.7');
  assert.equal(ownerOf(`${site}/six.py`), 'python six 1.17.0');
  assert.equal(ownerOf(`${site}/__pycache__/six.cpython-312.pyc`), 'python six 1.17.0', 'a compiled file belongs to its source');
  assert.equal(ownerOf('app/.venv/bin/six-tool'), 'python six 1.17.0', 'RECORD paths are relative to site-packages');
  assert.equal(ownerOf(`${site}/odd,name.py`), 'python six 1.17.0', 'RECORD is CSV');
  assert.equal(ownerOf('app/.venv/pyvenv.cfg'), 'unowned');
  assert.equal(ownerOf(`${site}/hello_app/__init__.py`), 'project hello-app 0.1.0');
  assert.equal(ownerOf('app/.venv/bin/hello'), 'project hello-app 0.1.0', 'what the project layer holds is the project');

  assert.deepEqual(ownership.debian.map((pkg) => [pkg.name, pkg.version, pkg.architecture ?? '', pkg.source ?? '']), [
    ['libc6', '2.41-12', 'amd64', 'glibc'],
    ['tzdata', '2025b-1', 'all', ''],
  ], 'packages not installed are not components');
  assert.deepEqual(ownership.python.map((dist) => [dist.name, dist.version, dist.project]), [['hello-app', '0.1.0', true], ['six', '1.17.0', false]]);
  assert.deepEqual(ownership.runtime, { kind: 'python-build-standalone', version: '3.12.7', release: '20241016', root: 'python' });
  assert.deepEqual(ownership.project, { name: 'hello-app', version: '0.1.0' });
});

test('owners: metadata a later layer deleted claims nothing; Debian\'s CPython is the runtime', async () => {
  const base = await layer([
    file('var/lib/dpkg/status.d/python3.13-minimal', 'Package: python3.13-minimal\nVersion: 3.13.5-2\nArchitecture: amd64\nSource: python3.13\n'),
    file('var/lib/dpkg/status.d/python3.13-minimal.md5sums', '0123456789abcdef0123456789abcdef  usr/bin/python3.13\n'),
    file('var/lib/dpkg/status.d/libpython3.13-stdlib', 'Package: libpython3.13-stdlib\nVersion: 3.13.5-2\nArchitecture: amd64\n'),
    file('var/lib/dpkg/status.d/libpython3.13-stdlib.md5sums', '0123456789abcdef0123456789abcdef  usr/lib/python3.13/os.py\n'),
    file('var/lib/dpkg/status.d/python3.13', 'Package: python3.13\nVersion: 3.13.5-2\nArchitecture: amd64\n'),
    file('var/lib/dpkg/status.d/gone', 'Package: gone\nVersion: 1\n'),
    file('var/lib/dpkg/status.d/gone.md5sums', '0123456789abcdef0123456789abcdef  usr/bin/gone\n'),
    file('usr/bin/gone', 'x'),
    file('usr/bin/python3.13', 'ELF'),
    file('usr/lib/python3.13/os.py', 'import abc\n'),
    file('usr/lib/python3.13/__pycache__/os.cpython-313.pyc', 'pyc'),
  ]);
  const removal = await layer([file('var/lib/dpkg/status.d/.wh.gone'), file('var/lib/dpkg/status.d/.wh.gone.md5sums')]);
  const layers = [base, removal];
  const merged = mergeLayers(layers);
  const ownership = assignOwners(layers, merged, []);
  const ownerOf = (path: string) => {
    const found = merged.visible.get(path)!;
    return describeOwner(ownership.owners[found.layer]![found.entry]!);
  };
  assert.equal(ownerOf('usr/bin/gone'), 'unowned');
  assert.equal(ownerOf('usr/bin/python3.13'), 'runtime debian-python 3.13.5');
  assert.equal(ownerOf('usr/lib/python3.13/__pycache__/os.cpython-313.pyc'), 'runtime debian-python 3.13.5');
  assert.deepEqual(ownership.runtime, { kind: 'debian', version: '3.13.5', root: 'python3.13', packages: ['libpython3.13-stdlib', 'python3.13', 'python3.13-minimal'] });
  assert.deepEqual(ownership.debian.map((pkg) => pkg.name), ['libpython3.13-stdlib', 'python3.13', 'python3.13-minimal']);
});

test('the trimmed-runtime annotation: read when well-formed, a warning otherwise', () => {
  const groups = [
    { rule: 'test suite (lib/python3.12/test)', files: 1234, bytes: 23_456_789 },
    { rule: 'tkinter, idlelib, turtledemo', files: 321, bytes: 4_567_890 },
  ];
  const manifest = { schemaVersion: 2, annotations: { [Annotation.runtimeTrimmed]: JSON.stringify(groups), 'org.opencontainers.image.created': '1970-01-01T00:00:00Z' } };
  const parsed = JSON.parse(JSON.stringify(manifest)) as { annotations: Record<string, string> };
  assert.deepEqual(readTrimmedAnnotation(parsed.annotations), { trimmed: groups });
  assert.deepEqual(readTrimmedAnnotation({}), {});
  assert.match(readTrimmedAnnotation({ [Annotation.runtimeTrimmed]: '[{"rule":' }).warning!, /dev\.uvimage\.runtime\.trimmed is not JSON/);
  assert.match(readTrimmedAnnotation({ [Annotation.runtimeTrimmed]: '[{"rule":"x","files":-1,"bytes":3}]' }).warning!, /not an array of \{rule, files, bytes\}/);
  assert.match(readTrimmedAnnotation({ [Annotation.runtimeTrimmed]: '{"rule":"x","files":1,"bytes":3}' }).warning!, /not an array/);
});
