/**
 * The SBOM builders on plain inputs: licenses from DEP-5 copyright files and METADATA, the
 * components (purls, CPEs, hashes from the .debs and uv.lock, python-build-standalone's libraries
 * from uvimage's table, tkinter's libraries only where tkinter is kept), CycloneDX 1.6 checked by
 * its JSON schema and SPDX 2.3 by the SPDX project's validator, the same inputs giving the same
 * bytes; and what the image itself says (status.d, a doc directory that is a symlink, dist-info,
 * the runtime tree, os-release) read from real layers through src/report.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { resolveBuildRequest } from '../../src/config/request.js';
import type { Digest } from '../../src/oci/digest.js';
import { createBlobSource } from '../../src/oci/blobs.js';
import { writeLayer } from '../../src/oci/layer-writer.js';
import type { LayerEntry } from '../../src/oci/layer-entry.js';
import type { PlannedPackage } from '../../src/python/install-set.js';
import { openBuiltImage } from '../../src/report/image-source.js';
import { analyzeImage } from '../../src/report/inspect.js';
import { collectSbom, isSbomMetadata, nameBasedUuid, sbomContentsOf, standaloneLibraries, type SbomBuild, type SbomContents } from '../../src/report/sbom.js';
import { renderCycloneDx } from '../../src/report/sbom-cyclonedx.js';
import { debianCopyrightLicenses, debianLicense, pythonMetadataLicenses } from '../../src/report/sbom-licenses.js';
import { renderSpdx } from '../../src/report/sbom-spdx.js';
import { cycloneDxProblems, spdxProblems } from '../harness/sbom-tools.js';
import { copyExample } from '../harness/project-build.js';
import { makeImage, tempDir, tempStore, type TempStore } from '../registry/helpers.js';

const digest = (char: string) => `sha256:${char.repeat(64)}` as Digest;

const dep5 = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example

Files: *
Copyright: 2020 Someone
License: LGPL-2.1+

Files: debian/*
Copyright: 2021 Debian
License: GPL-2+ or Expat

Files: lib/odd.c
License: Some-Local-License
 text of the license
`;

test('DEP-5 copyright files: each Files paragraph\'s License, DEP-5 short names as SPDX; a free-form file says nothing', () => {
  assert.deepEqual(debianCopyrightLicenses(dep5), [{ expression: 'LGPL-2.1-or-later' }, { expression: 'GPL-2.0-or-later OR MIT' }, { name: 'Some-Local-License' }]);
  assert.equal(debianCopyrightLicenses('This is the Debian prepackaged version of GCC.\nCopyright (C) FSF\n'), undefined);
  assert.deepEqual(debianLicense('GPL-3'), { expression: 'GPL-3.0-only' });
  assert.deepEqual(debianLicense('GPL-2+ with Classpath exception'), { expression: 'GPL-2.0-or-later WITH Classpath-exception-2.0' });
  assert.deepEqual(debianLicense('BSD-3-clause and public-domain'), { expression: 'BSD-3-Clause AND LicenseRef-public-domain' });
  assert.deepEqual(debianLicense('Carnegie and LGPL-2.1+'), { name: 'Carnegie and LGPL-2.1+' });
});

test('METADATA: License-Expression first, then a short License, then the License classifiers', () => {
  assert.deepEqual(pythonMetadataLicenses('Metadata-Version: 2.4\nName: a\nLicense-Expression: MIT OR Apache-2.0\nLicense: ignored\n\nbody'), [{ expression: 'MIT OR Apache-2.0' }]);
  assert.deepEqual(pythonMetadataLicenses('Metadata-Version: 2.1\nName: a\nLicense: BSD-3-Clause\n\n'), [{ expression: 'BSD-3-Clause' }]);
  assert.deepEqual(pythonMetadataLicenses('Metadata-Version: 2.1\nName: a\nLicense: Copyright (c) someone\n        all rights\nClassifier: License :: OSI Approved :: MIT License\nClassifier: License :: OSI Approved :: BSD License\n\n'), [{ expression: 'MIT' }, { name: 'BSD License' }]);
  assert.deepEqual(pythonMetadataLicenses('Metadata-Version: 2.1\nName: a\n\nLicense-Expression: MIT\n'), [], 'the body is not the header');
});

const layers = [0, 1, 2, 3, 4].map((index) => ({ index, digest: digest(String(index)), diffId: digest('abcde'[index]!), role: ['base: libc', 'base: base', 'runtime', 'dependencies', 'project'][index] }));

function contents(tkinter = false): SbomContents {
  return {
    layers,
    debian: [
      { name: 'libc6', version: '2.41-12', architecture: 'amd64', source: 'glibc', layer: 0, copyright: dep5 },
      { name: 'zlib1g', version: '1:1.3.dfsg+really1.3.1-1', architecture: 'amd64', source: 'zlib', layer: 1, copyright: 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: Zlib\n' },
      { name: 'gcc-14-base', version: '14.2.0-19', architecture: 'amd64', source: 'gcc-14', layer: 0, copyright: 'free-form text\n' },
    ],
    python: [
      { name: 'anyio', version: '4.9.0', distInfo: 'app/.venv/lib/python3.12/site-packages/anyio-4.9.0.dist-info', layer: 3, project: false, metadata: 'Metadata-Version: 2.4\nName: anyio\nVersion: 4.9.0\nLicense-Expression: MIT\n\n' },
      { name: 'hello', version: '0.1.0', distInfo: 'app/.venv/lib/python3.12/site-packages/hello-0.1.0.dist-info', layer: 4, project: true, metadata: 'Metadata-Version: 2.4\nName: hello\nVersion: 0.1.0\n\n' },
    ],
    runtime: { kind: 'python-build-standalone', version: '3.12.14', interpreter: 'python/bin/python3.12', layer: 2, tkinter },
    os: { id: 'debian', versionId: '13' },
  };
}

const packages: PlannedPackage[] = [
  { kind: 'wheel', name: 'anyio', version: '4.9.0', wheel: { filename: 'anyio-4.9.0-py3-none-any.whl', hash: `sha256:${'7'.repeat(64)}`, url: 'https://files.pythonhosted.org/packages/anyio-4.9.0-py3-none-any.whl' }, source: { registry: 'https://pypi.org/simple' }, member: false },
  { kind: 'build', name: 'hello', version: '0.1.0', source: { editable: '.' }, member: true, reason: 'local' },
];

function build(release = '20260814'): SbomBuild {
  return {
    created: '2024-05-06T07:08:09Z',
    toolVersion: '0.1.0',
    project: { name: 'hello', members: [] },
    arch: 'x86_64',
    runtime: { kind: 'standalone', version: '3.12.14', release, asset: `cpython-3.12.14+${release}-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz`, url: 'https://example.invalid/python.tar.gz', sha256: '9'.repeat(64) },
    debs: [
      { name: 'libc6', version: '2.41-12', digest: digest('e') },
      { name: 'zlib1g', version: '1:1.3.dfsg+really1.3.1-1', digest: digest('f') },
    ],
    packages,
    debianVersion: '13',
  };
}

const image = { name: 'registry.example/me/hello', repository: 'registry.example/me/hello', platform: { os: 'linux', architecture: 'amd64' }, manifest: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digest('d'), size: 1234 } };

test('components: Debian packages with their purl, source and .deb sha256; the runtime and its libraries; distributions with the wheel from uv.lock', () => {
  const model = collectSbom(image, build(), contents());
  const byRef = new Map(model.components.map((component) => [component.ref, component]));
  const libc = byRef.get('deb:libc6@2.41-12:amd64')!;
  assert.equal(libc.purl, 'pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=debian-13&upstream=glibc');
  assert.equal(libc.sha256, 'e'.repeat(64));
  assert.deepEqual(libc.layer, layers[0]);
  assert.equal(byRef.get('deb:zlib1g@1:1.3.dfsg+really1.3.1-1:amd64')!.purl, 'pkg:deb/debian/zlib1g@1:1.3.dfsg+really1.3.1-1?arch=amd64&distro=debian-13&upstream=zlib');
  const gcc = byRef.get('deb:gcc-14-base@14.2.0-19:amd64')!;
  assert.equal(gcc.sha256, undefined, 'no .deb of it in the build');
  assert.deepEqual(gcc.licenses, []);

  const python = byRef.get('runtime:python@3.12.14')!;
  assert.equal(python.purl, 'pkg:generic/python@3.12.14');
  assert.equal(python.cpe, 'cpe:2.3:a:python:python:3.12.14:*:*:*:*:*:*:*');
  assert.equal(python.sha256, '9'.repeat(64));
  assert.deepEqual(python.layer, layers[2]);
  const libraries = model.components.filter((component) => component.kind === 'runtime-library');
  const openssl = libraries.find((library) => library.name === 'openssl')!;
  assert.equal(openssl.version, '3.5.7');
  assert.equal(openssl.purl, 'pkg:generic/openssl@3.5.7');
  assert.equal(openssl.cpe, 'cpe:2.3:a:openssl:openssl:3.5.7:*:*:*:*:*:*:*');
  assert.equal(openssl.linkedInto, python.ref);
  assert.equal(libraries.find((library) => library.name === 'sqlite')!.version, '3.53.1');
  // tkinter was trimmed: Tcl/Tk and the X11 libraries only it links are not in the image.
  assert.deepEqual(libraries.map((library) => library.name), ['bdb', 'bzip2', 'expat', 'libedit', 'libffi', 'mpdecimal', 'ncurses', 'openssl', 'sqlite', 'uuid', 'xz', 'zlib', 'zstd']);
  const kept = collectSbom(image, build(), contents(true)).components.filter((component) => component.kind === 'runtime-library');
  assert.deepEqual(kept.map((library) => library.name).filter((name) => /^(tcl|tk|libX11|libXau|libxcb)$/.test(name)), ['libX11', 'libXau', 'libxcb', 'tcl', 'tk']);
  assert.equal(kept.length, standaloneLibraries('20260814', 'x86_64')!.length);

  const anyio = byRef.get('pypi:anyio@4.9.0')!;
  assert.equal(anyio.purl, 'pkg:pypi/anyio@4.9.0');
  assert.equal(anyio.sha256, '7'.repeat(64));
  assert.deepEqual(anyio.licenses, [{ expression: 'MIT' }]);
  assert.ok(anyio.properties.some(([name, value]) => name === 'uvimage:python:wheel' && value === 'anyio-4.9.0-py3-none-any.whl'));
  const project = byRef.get('project:hello@0.1.0')!;
  assert.equal(project.kind, 'project');
  assert.equal(project.sha256, undefined);
  assert.deepEqual(model.properties, []);
});

test('a python-build-standalone release not in the table: the runtime without libraries, and the SBOM says so', () => {
  const model = collectSbom(image, build('20000101'), contents());
  assert.equal(model.components.filter((component) => component.kind === 'runtime-library').length, 0);
  assert.ok(model.components.some((component) => component.kind === 'runtime'));
  assert.match(model.properties.find(([name]) => name === 'uvimage:runtime:libraries')![1], /20000101 is not in uvimage's table/);
  const cdx = renderCycloneDx(model) as { metadata: { properties: { name: string; value: string }[] } };
  assert.ok(cdx.metadata.properties.some((property) => property.name === 'uvimage:runtime:libraries'));
});

let work: { dir: string; cleanup(): Promise<void> };
before(async () => {
  work = await tempDir();
});
after(async () => work?.cleanup());

test('CycloneDX 1.6: valid by its JSON schema, deterministic, its serial number derived from the manifest digest', async () => {
  const model = collectSbom(image, build(), contents());
  const document = renderCycloneDx(model) as Record<string, unknown> & { serialNumber: string; metadata: { timestamp: string }; components: { purl?: string }[]; dependencies: { ref: string; dependsOn: string[] }[] };
  assert.equal(await cycloneDxProblems(document), undefined);
  assert.equal(document.serialNumber, `urn:uuid:${nameBasedUuid(`uvimage:cyclonedx:${digest('d')}`)}`);
  assert.match(document.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(document.metadata.timestamp, '2024-05-06T07:08:09Z');
  assert.equal(JSON.stringify(renderCycloneDx(collectSbom(image, build(), contents()))), JSON.stringify(document));
  const other = renderCycloneDx(collectSbom({ ...image, manifest: { ...image.manifest, digest: digest('c') } }, build(), contents())) as { serialNumber: string };
  assert.notEqual(other.serialNumber, document.serialNumber);
  // The image holds every component; the runtime links its libraries.
  const runtimeDeps = document.dependencies.find((entry) => entry.ref === 'runtime:python@3.12.14')!;
  assert.ok(runtimeDeps.dependsOn.includes('runtime-library:openssl@3.5.7'));
  assert.equal(document.dependencies[0]!.dependsOn.length, model.components.filter((component) => !component.linkedInto).length);
  // A document with a broken field is refused by the same check (it is no rubber stamp).
  assert.notEqual(await cycloneDxProblems({ ...document, specVersion: 1.6 }), undefined);
});

test('SPDX 2.3: valid by the SPDX project\'s validator, every LicenseRef declared, layers and static links as relationships', async () => {
  const model = collectSbom(image, build(), contents());
  const document = renderSpdx(model) as { documentNamespace: string; packages: { SPDXID: string; name: string; licenseDeclared?: string }[]; relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[]; hasExtractedLicensingInfos: { licenseId: string }[] };
  const file = join(work.dir, 'doc.spdx.json');
  await writeFile(file, JSON.stringify(document));
  assert.equal(await spdxProblems(file), undefined);
  assert.match(document.documentNamespace, new RegExp(`${nameBasedUuid(`uvimage:spdx:${digest('d')}`)}$`));
  const declared = new Set(document.hasExtractedLicensingInfos.map((info) => info.licenseId));
  for (const pkg of document.packages) for (const ref of pkg.licenseDeclared?.match(/LicenseRef-[A-Za-z0-9.-]+/g) ?? []) assert.ok(declared.has(ref), ref);
  const idOf = (name: string) => document.packages.find((pkg) => pkg.name === name)!.SPDXID;
  const has = (from: string, type: string, to: string) => document.relationships.some((r) => r.spdxElementId === from && r.relationshipType === type && r.relatedSpdxElement === to);
  assert.ok(has('SPDXRef-DOCUMENT', 'DESCRIBES', 'SPDXRef-Image'));
  assert.ok(has('SPDXRef-Image', 'CONTAINS', idOf('libc6')));
  assert.ok(has('SPDXRef-Layer-0', 'CONTAINS', idOf('libc6')));
  assert.ok(has('SPDXRef-Layer-3', 'CONTAINS', idOf('anyio')));
  assert.ok(has(idOf('python'), 'STATIC_LINK', idOf('openssl')));
  // A document with an undeclared LicenseRef is refused by the same validator.
  const broken = { ...document, hasExtractedLicensingInfos: [] };
  await writeFile(file, JSON.stringify(broken));
  assert.match((await spdxProblems(file)) ?? '', /LicenseRef/);
});

let local: TempStore;
before(async () => {
  local = await tempStore();
});
after(async () => local?.cleanup());

test('what the image says, read from real layers: status.d with the source package, a copyright behind a symlinked doc directory, dist-info METADATA, the runtime, os-release', async () => {
  const file = (path: string, text: string): LayerEntry => ({ type: 'file', path, mode: 0o644, size: Buffer.byteLength(text), open: () => Buffer.from(text) });
  const base = await writeLayer(local.store, [
    file('etc/os-release', 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n'),
    file('var/lib/dpkg/status.d/gcc-14-base', 'Package: gcc-14-base\nVersion: 14.2.0-19\nArchitecture: amd64\nSource: gcc-14\n'),
    file('var/lib/dpkg/status.d/libgcc-s1', 'Package: libgcc-s1\nVersion: 14.2.0-19\nArchitecture: amd64\nSource: gcc-14 (14.2.0-19)\n'),
    file('usr/share/doc/gcc-14-base/copyright', 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n'),
    { type: 'symlink', path: 'usr/share/doc/libgcc-s1', target: 'gcc-14-base' },
  ], { mtime: 0 });
  const runtime = await writeLayer(local.store, [file('python/bin/python3.12', 'ELF'), { type: 'directory', path: 'python/lib/python3.12' }, file('python/lib/python3.12/os.py', '')], { mtime: 0 });
  const site = 'app/.venv/lib/python3.12/site-packages';
  const deps = await writeLayer(local.store, [
    file(`${site}/six-1.17.0.dist-info/METADATA`, 'Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\nLicense: MIT\n\n'),
    file(`${site}/six-1.17.0.dist-info/RECORD`, 'six.py,,\nsix-1.17.0.dist-info/METADATA,,\n'),
    file(`${site}/six.py`, ''),
  ], { mtime: 0 });
  const built = makeImage({ layers: [base, runtime, deps].map((layer) => ({ descriptor: layer.descriptor, diffId: layer.diffId })) });
  const analysis = await analyzeImage(await openBuiltImage('test', built, createBlobSource(local.store)), { collect: isSbomMetadata });
  const read = sbomContentsOf(analysis, ['base', 'runtime', 'dependencies']);
  assert.deepEqual(read.os, { id: 'debian', versionId: '13' });
  assert.deepEqual(read.debian.map((pkg) => [pkg.name, pkg.source, pkg.layer, pkg.copyright !== undefined]), [['gcc-14-base', 'gcc-14', 0, true], ['libgcc-s1', 'gcc-14', 0, true]]);
  assert.deepEqual(read.python.map((dist) => [dist.name, dist.version, dist.layer, dist.metadata?.includes('License: MIT')]), [['six', '1.17.0', 2, true]]);
  assert.deepEqual(read.runtime, { kind: 'python-build-standalone', version: '3.12', interpreter: 'python/bin/python3.12', layer: 1, tkinter: false });
  assert.deepEqual(read.layers.map((layer) => [layer.digest, layer.role]), built.layers.map((layer, index) => [layer.descriptor.digest, ['base', 'runtime', 'dependencies'][index]]));
  const model = collectSbom(image, { ...build(), debs: [] }, read);
  assert.deepEqual(model.components.find((component) => component.name === 'libgcc-s1')!.licenses, [{ expression: 'GPL-3.0-or-later' }]);
});

test('sbom = true attaches the SBOMs without a directory; --sbom DIR writes and attaches them; --no-sbom makes none', async () => {
  const project = await copyExample(join(work.dir, 'project'));
  const outputsOf = async (flags: Record<string, unknown>) => (await resolveBuildRequest(project, { oci: join(work.dir, 'out'), ...flags }, {})).outputs.sbom;
  assert.equal(await outputsOf({}), undefined);
  assert.deepEqual(await outputsOf({ sbom: join(work.dir, 'sbom') }), { dir: join(work.dir, 'sbom'), attach: true });
  await writeFile(join(project, 'pyproject.toml'), `${await readFile(join(project, 'pyproject.toml'), 'utf8')}sbom = true\n`);
  assert.deepEqual(await outputsOf({}), { attach: true });
  assert.equal(await outputsOf({ sbom: false }), undefined);
  await writeFile(join(project, 'pyproject.toml'), (await readFile(join(project, 'pyproject.toml'), 'utf8')).replace('sbom = true', 'sbom = "yes"'));
  await assert.rejects(outputsOf({}), /tool\.uvimage\.sbom/);
});
