/**
 * `uvimage inspect` and `uvimage diff` end to end, through the CLI:
 *
 * - the recipe's example built by uvimage (python-build-standalone stand-in), inspected from its
 *   OCI layout and from the test registry it was pushed to; sizes, file counts and components
 *   checked against what gzip, tar and skopeo say of the same blobs;
 * - the HTML report in headless Chromium: a screenshot whose treemap has many colours, and the
 *   DOM after the page's script ran, whose layer sizes add up to the image's size;
 * - an image we did not write: a build-from-dir image loaded into Docker and `docker save`d;
 * - diff of the example before and after adding a dependency (six, locked by uv).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PNG } from 'pngjs';
import type { DiffReport } from '../../src/report/diff.js';
import type { InspectReport } from '../../src/report/inspect.js';
import { uvimage } from '../harness/cli.js';
import { check, dockerRemoveImages, requireDocker } from '../harness/docker.js';
import { BUSYBOX } from '../harness/images.js';
import { buildOk, copyExample, fastapiHello, sharedCliCache, standaloneEnv, type BuildJson } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { runUv } from '../harness/uv.js';

let registry: TestRegistry;
let mirror: StandaloneMirror;
let work: string;
let built: BuildJson;
let layout: string;
let report: InspectReport;
const savedImage = 'uvimage-inspect-e2e/from-dir:1';

const chromiumFlags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

before(async () => {
  requireDocker();
  registry = await startRegistry();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-inspect-e2e-'));
  layout = join(work, 'layout');
  built = await buildOk(
    ['build', fastapiHello, '--platform', 'linux/amd64', '-t', `${registry.host}/inspect/fastapi-hello:1`, '--push', '--oci', layout, '--cache-dir', sharedCliCache()],
    standaloneEnv(mirror),
  );
});

after(async () => {
  await dockerRemoveImages([savedImage]);
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function inspectJson(args: string[]): Promise<InspectReport> {
  const result = await uvimage(['inspect', ...args, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as InspectReport;
}

/** A layer blob of the layout as gzip and tar see it. */
async function blobFacts(digest: string): Promise<{ uncompressed: number; files: { path: string; size: number }[] }> {
  const blob = join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const uncompressed = Number((await check('sh', ['-c', `gzip -dc '${blob}' | wc -c`])).trim());
  const listing = await check('tar', ['--numeric-owner', '-tvzf', blob]);
  const files = listing
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('d'))
    .map((line) => {
      const fields = line.split(/\s+/);
      // mode owner size date time path [-> target]
      return { path: fields.slice(5).join(' ').replace(/ -> .*$/, '').replace(/ link to .*$/, ''), size: Number(fields[2]) };
    });
  return { uncompressed, files };
}

test('inspect of the example: per-layer sizes, files and components agree with gzip, tar and skopeo; the registry copy gives the same report', async () => {
  report = await inspectJson([`oci:${layout}:1`]);
  const manifest = JSON.parse(await check('skopeo', ['inspect', '--raw', `oci:${layout}:1`])) as { layers: { digest: string; size: number }[] };
  assert.equal(report.layers.length, manifest.layers.length);
  assert.equal(report.image.manifestDigest, built.digest);
  const facts = await Promise.all(manifest.layers.map((layer) => blobFacts(layer.digest)));
  for (const [index, layer] of report.layers.entries()) {
    assert.equal(layer.digest, manifest.layers[index]!.digest);
    assert.equal(layer.compressedSize, manifest.layers[index]!.size, `layer ${index + 1} compressed`);
    assert.equal(layer.uncompressedSize, facts[index]!.uncompressed, `layer ${index + 1} uncompressed, as gzip -dc counts it`);
    assert.equal(layer.files, facts[index]!.files.length, `layer ${index + 1} files, as tar lists them`);
    assert.equal(layer.bytes, facts[index]!.files.reduce((sum, file) => sum + file.size, 0));
  }
  assert.equal(report.image.compressedSize, manifest.layers.reduce((sum, layer) => sum + layer.size, 0));
  const all = facts.flatMap((fact) => fact.files).sort((a, b) => b.size - a.size);
  assert.equal(report.largest[0]!.size, all[0]!.size);
  assert.equal(report.largest[0]!.path, `/${all[0]!.path}`);

  // Components: what the layers' own package records say.
  const statusFiles = all.filter((file) => /^var\/lib\/dpkg\/status\.d\/[^/]+$/.test(file.path) && !file.path.endsWith('.md5sums'));
  assert.equal(report.components.debian.length, statusFiles.length);
  assert.ok(report.components.debian.some((pkg) => pkg.name === 'libc6' && pkg.source === 'glibc'));
  const distInfos = new Set(all.map((file) => /^app\/\.venv\/lib\/python3\.12\/site-packages\/([^/]+\.dist-info)\//.exec(file.path)?.[1]).filter(Boolean));
  assert.equal(report.components.python.length, distInfos.size);
  assert.ok(report.components.python.some((dist) => dist.name === 'fastapi'));
  assert.deepEqual(report.components.runtime, { kind: 'python-build-standalone', version: '3.12.1', release: '20000101', root: 'python' });
  assert.deepEqual(report.components.project, { name: 'fastapi-hello', version: '0.1.0' });

  // Owners per layer: the runtime layer is the runtime's, the project layer the project's.
  const roles = built.platforms[0]!.layers.map((layer) => layer.role);
  const runtimeLayer = report.layers[roles.indexOf('runtime')]!;
  assert.deepEqual(runtimeLayer.owners.map((owner) => `${owner.kind} ${owner.name}`), ['runtime python-build-standalone']);
  assert.equal(runtimeLayer.owners[0]!.bytes, facts[roles.indexOf('runtime')]!.files.filter((file) => file.path.startsWith('python/')).reduce((sum, file) => sum + file.size, 0));
  assert.deepEqual(report.layers[roles.indexOf('project')]!.owners.map((owner) => `${owner.kind} ${owner.name}`), ['project fastapi-hello']);
  const dependencies = report.layers[roles.indexOf('dependencies')]!;
  assert.equal(dependencies.owners.filter((owner) => owner.kind === 'python').length, distInfos.size - 1, 'every distribution but the project');
  const unownedDependencies = dependencies.owners.find((owner) => owner.kind === 'unowned');
  assert.ok(!unownedDependencies || unownedDependencies.bytes < 1024, `the venv skeleton is all the dependencies layer has unowned: ${JSON.stringify(unownedDependencies)}`);
  for (const layer of report.layers.filter((_layer, index) => roles[index]!.startsWith('base'))) {
    const debian = layer.owners.filter((owner) => owner.kind === 'debian').reduce((sum, owner) => sum + owner.bytes, 0);
    assert.ok(debian / layer.bytes > 0.9, `a base layer is mostly Debian packages (${debian} of ${layer.bytes})`);
  }

  // The same image from the registry.
  const fromRegistry = await inspectJson([`${registry.host}/inspect/fastapi-hello:1`, '--cache-dir', join(work, 'cache')]);
  assert.equal(fromRegistry.image.transport, 'registry');
  assert.deepEqual(fromRegistry.layers, report.layers);
  assert.deepEqual(fromRegistry.owners, report.owners);
  assert.deepEqual(fromRegistry.components, report.components);
  assert.equal(fromRegistry.image.manifestDigest, report.image.manifestDigest);

  // People get the same facts.
  const text = await uvimage(['inspect', `oci:${layout}:1`, '--top', '3']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /5 layers, [\d.]+ MiB compressed/);
  assert.match(text.stdout, /runtime python-build-standalone 3\.12\.1 \(20000101\), 14 Debian packages/);
  assert.match(text.stdout, new RegExp(`largest files:\\n +[\\d.]+ MiB  ${report.largest[0]!.path.replace(/[.]/g, '\\.')}`));
});

test('the HTML report in headless Chromium: a treemap of many colours, and sizes in the page that add up to the image', async () => {
  const html = join(work, 'report.html');
  const result = await uvimage(['inspect', `oci:${layout}:1`, '--html', html]);
  assert.equal(result.code, 0, result.stderr);
  const page = await readFile(html, 'utf8');
  assert.doesNotMatch(page, /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/, 'nothing is loaded from elsewhere');

  const screenshot = join(work, 'report.png');
  await check('chromium', [...chromiumFlags, `--user-data-dir=${join(work, 'chromium-shot')}`, '--window-size=1400,1000', `--screenshot=${screenshot}`, `file://${html}`]);
  const png = PNG.sync.read(await readFile(screenshot));
  const colours = new Set<number>();
  // The treemap: below the title and summary, 560 px high.
  for (let y = 120; y < 640; y += 4) {
    for (let x = 30; x < png.width - 30; x += 4) {
      const at = (y * png.width + x) * 4;
      colours.add((png.data[at]! << 16) | (png.data[at + 1]! << 8) | png.data[at + 2]!);
    }
  }
  assert.ok(colours.size > 50, `the treemap is drawn: ${colours.size} colours in its region`);
  const hues = new Set([...colours].map((rgb) => dominantChannel(rgb)));
  assert.ok(hues.has('red') && hues.has('green') && hues.has('blue'), `Debian (red), runtime (green) and Python (blue) are all drawn: ${[...hues].join(', ')}`);

  const dom = await check('chromium', [...chromiumFlags, `--user-data-dir=${join(work, 'chromium-dom')}`, '--window-size=1400,1000', '--dump-dom', `file://${html}`]);
  const rows = [...dom.matchAll(/<tr data-layer="(\d+)" data-compressed="(\d+)" data-uncompressed="(\d+)">/g)].map((match) => ({ compressed: Number(match[2]), uncompressed: Number(match[3]) }));
  assert.equal(rows.length, report.layers.length, 'one row per layer, rendered by the script');
  const manifest = JSON.parse(await check('skopeo', ['inspect', '--raw', `oci:${layout}:1`])) as { layers: { size: number }[] };
  const compressed = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
  const uncompressed = report.layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0);
  assert.equal(rows.reduce((sum, row) => sum + row.compressed, 0), compressed, 'the layer rows add up to the compressed size skopeo reads');
  assert.equal(rows.reduce((sum, row) => sum + row.uncompressed, 0), uncompressed);
  assert.equal(Number(/id="total-uncompressed"[^>]*data-bytes="(\d+)"/.exec(dom)?.[1]), uncompressed);
  assert.equal(Number(/id="total-compressed"[^>]*data-bytes="(\d+)"/.exec(dom)?.[1]), compressed);
  const layerRects = [...dom.matchAll(/<div class="tm group"[^>]*data-bytes="(\d+)" data-depth="1"/g)].map((match) => Number(match[1]));
  assert.equal(layerRects.length, report.layers.length, 'one treemap rectangle per layer');
  assert.equal(layerRects.reduce((sum, bytes) => sum + bytes, 0), uncompressed, "the treemap's layers add up to the image's uncompressed size");

  // Zoomed into the runtime layer (the fragment names the node in view): its owners add up to it.
  const runtimeNumber = built.platforms[0]!.layers.findIndex((layer) => layer.role === 'runtime') + 1;
  const zoomed = await check('chromium', [...chromiumFlags, `--user-data-dir=${join(work, 'chromium-zoom')}`, '--window-size=1400,1000', '--dump-dom', `file://${html}#layer%20${runtimeNumber}`]);
  assert.match(zoomed, new RegExp(`<strong data-id="\\d+">layer ${runtimeNumber} \\(`), 'the breadcrumb ends at the layer');
  const children = [...zoomed.matchAll(/<tr data-id="\d+" data-bytes="(\d+)">/g)].map((match) => Number(match[1]));
  const runtimeLayer = report.layers[runtimeNumber - 1]!;
  assert.equal(children.reduce((sum, bytes) => sum + bytes, 0), runtimeLayer.uncompressedSize, "the layer's contents add up to its uncompressed size");
  assert.ok(children.includes(runtimeLayer.owners[0]!.bytes), 'the runtime is one of them, with its bytes');
  assert.equal(children.length, runtimeLayer.owners.length + 1, 'its owners, and the tar headers and padding');
});

function dominantChannel(rgb: number): string {
  const [r, g, b] = [(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255];
  if (Math.max(r, g, b) - Math.min(r, g, b) < 24) return 'grey';
  return r >= g && r >= b ? 'red' : g >= b ? 'green' : 'blue';
}

test('inspect of an image we did not write: a build-from-dir image loaded into Docker and docker save-d', async () => {
  const rootfs = join(work, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  await writeFile(join(rootfs, 'hello.txt'), 'hello from inspect\n');
  const fromDir = await buildOk(['build-from-dir', rootfs, '-t', savedImage, '--entrypoint', '["/bin/busybox"]', '--load', '--oci', join(work, 'from-dir'), '--cache-dir', join(work, 'cache')]);
  const saved = join(work, 'saved.tar');
  await check('docker', ['save', '-o', saved, savedImage]);
  const fromDocker = await inspectJson([`docker-archive:${saved}`]);
  const ours = await inspectJson([`oci:${join(work, 'from-dir')}:1`]);
  assert.equal(fromDocker.image.transport, 'docker-archive');
  assert.equal(fromDocker.layers.length, 1);
  const config = JSON.parse(await check('skopeo', ['inspect', '--config', `oci:${join(work, 'from-dir')}:1`])) as { rootfs: { diff_ids: string[] } };
  assert.deepEqual(fromDocker.layers.map((layer) => layer.diffId), config.rootfs.diff_ids);
  assert.notEqual(fromDocker.image.configDigest, undefined);
  assert.equal(fromDir.images.length, 1);
  assert.equal(fromDocker.layers[0]!.compression, 'none', 'docker save writes layers uncompressed');
  assert.equal(fromDocker.layers[0]!.compressedSize, fromDocker.layers[0]!.uncompressedSize);
  assert.equal(fromDocker.layers[0]!.uncompressedSize, ours.layers[0]!.uncompressedSize);
  assert.deepEqual(fromDocker.owners, ours.owners);
  assert.deepEqual(fromDocker.largest, ours.largest);
  assert.equal(fromDocker.image.files, ours.image.files);
  assert.ok(fromDocker.largest.some((row) => row.path === '/bin/busybox'));
});

test('diff of the example before and after adding six: the package added, the dependencies layer grown, the base and runtime layers the same', async () => {
  const withSix = await copyExample(join(work, 'with-six'));
  const pyproject = join(withSix, 'pyproject.toml');
  const text = await readFile(pyproject, 'utf8');
  const changed = text.replace('dependencies = ["fastapi[standard]>=0.115"]', 'dependencies = ["fastapi[standard]>=0.115", "six"]');
  assert.notEqual(changed, text, 'the example names its dependencies on one line');
  await writeFile(pyproject, changed);
  await runUv(['lock', '--quiet'], { cwd: withSix });
  const sixVersion = /name = "six"\nversion = "([^"]+)"/.exec(await readFile(join(withSix, 'uv.lock'), 'utf8'))?.[1];
  assert.ok(sixVersion, 'uv locked six');
  const afterLayout = join(work, 'layout-six');
  const six = await buildOk(['build', withSix, '--platform', 'linux/amd64', '-t', 'fastapi-hello:1', '--oci', afterLayout, '--cache-dir', sharedCliCache()], standaloneEnv(mirror));

  const result = await uvimage(['diff', `oci:${layout}:1`, `oci:${afterLayout}:1`, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const diff = JSON.parse(result.stdout) as DiffReport;
  assert.deepEqual(diff.components, [{ kind: 'python', name: 'six', change: 'added', after: sixVersion }]);
  const roles = six.platforms[0]!.layers.map((layer) => layer.role);
  for (const layer of diff.layers) {
    const role = roles[layer.number - 1]!;
    if (role.startsWith('base') || role === 'runtime') assert.ok(layer.same, `${role} is the same layer`);
  }
  const dependencies = diff.layers[roles.indexOf('dependencies')]!;
  assert.equal(dependencies.same, false);
  assert.ok(dependencies.uncompressedDelta > 0 && dependencies.compressedDelta > 0, `the dependencies layer grew: ${JSON.stringify(dependencies)}`);
  assert.equal(dependencies.compressedDelta, six.images[0]!.layers[roles.indexOf('dependencies')]!.size - built.images[0]!.layers[roles.indexOf('dependencies')]!.size, 'the growth of the blobs the builds wrote');
  const sixOwner = diff.owners.find((owner) => owner.kind === 'python' && owner.name === 'six');
  assert.ok(sixOwner && sixOwner.before === 0 && sixOwner.after > 0, JSON.stringify(sixOwner));
  assert.ok(diff.files.changes.some((change) => change.change === 'added' && change.path === '/app/.venv/lib/python3.12/site-packages/six.py'));
  assert.equal(diff.files.removed, 0);

  const markdown = await uvimage(['diff', `oci:${layout}:1`, `oci:${afterLayout}:1`, '--markdown']);
  assert.equal(markdown.code, 0, markdown.stderr);
  assert.match(markdown.stdout, new RegExp(`\\| added \\| python \\| six \\|  \\| ${sixVersion!.replace(/\./g, '\\.')} \\|`));
  assert.match(markdown.stdout, new RegExp(`\\| ${roles.indexOf('dependencies') + 1} \\| changed \\| [\\d.]+ MiB \\| \\+[\\d.]+ KiB \\| uvimage: dependencies \\|`));
  const people = await uvimage(['diff', `oci:${layout}:1`, `oci:${afterLayout}:1`]);
  assert.match(people.stdout, new RegExp(`\\+ python +six ${sixVersion!.replace(/\./g, '\\.')}`));

  const mixed = await uvimage(['diff', `oci:${layout}:1`, `oci:${afterLayout}:1`, '--json', '--markdown']);
  assert.equal(mixed.code, 1);
  assert.match(mixed.stderr, /--json and --markdown exclude each other/);
});
