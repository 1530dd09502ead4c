/**
 * SBOMs end to end, through the CLI: the recipe's example (python-build-standalone stand-in) built
 * with `--sbom DIR --push --oci DIR`, then
 *   - the documents checked by independent readers: the CycloneDX 1.6 JSON schema, the SPDX
 *     project's validator, and syft, which converts each to the other format and back;
 *   - the component counts held to the image as tar lists it (not as uvimage reads it): the
 *     status.d records, the dist-info directories, the runtime (the stand-in's release is in no
 *     table, so it has no libraries and the SBOM says so);
 *   - the pushed referrers found by their tag-schema index in the test registry (distribution
 *     2.8 has no referrers API) and fetched back by digest, byte for byte the files written;
 *   - the layout's index.json listing them beside the image;
 *   - the same build again: the same bytes, and a push that uploads and puts nothing new
 *     (counted by a fault proxy in front of the registry that forwards everything).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { RegistryClient } from '../../src/registry/client.js';
import { BlobStore } from '../../src/oci/store.js';
import { requireDocker } from '../harness/docker.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { buildOk, fastapiHello, sharedCliCache, standaloneEnv, type BuildJson } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { cycloneDxProblems, spdxProblems, syft } from '../harness/sbom-tools.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';

const run = promisify(execFile);

let registry: TestRegistry;
let proxy: FaultProxy;
let mirror: StandaloneMirror;
let work: string;
let built: BuildJson & { sboms?: string[] };
let layout: string;
let sbomDir: string;
let pushed: string;

function buildArgs(dir: string, oci: string): string[] {
  return ['build', fastapiHello, '--platform', 'linux/amd64', '-t', pushed, '--push', '--oci', oci, '--sbom', dir, '--cache-dir', sharedCliCache()];
}

before(async () => {
  requireDocker();
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.host);
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-sbom-e2e-'));
  layout = join(work, 'layout');
  sbomDir = join(work, 'sbom');
  pushed = `${proxy.host}/e2e/sbom-hello:1`;
  built = await buildOk(buildArgs(sbomDir, layout), standaloneEnv(mirror));
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** What the image's layers hold, as tar lists them from the layout's blobs. */
async function imagePaths(): Promise<string[]> {
  const paths: string[] = [];
  for (const layer of built.images[0]!.layers) {
    const { stdout } = await run('tar', ['-tzf', join(layout, 'blobs', 'sha256', layer.digest.slice(7))], { maxBuffer: 256 * 1024 * 1024 });
    paths.push(...stdout.split('\n').filter(Boolean).map((path) => path.replace(/^\.?\//, '').replace(/\/$/, '')));
  }
  return paths;
}

interface SyftJson {
  artifacts: { name: string; version: string; type: string; purl?: string }[];
  distro?: { id?: string; versionID?: string };
}

const countBy = (artifacts: SyftJson['artifacts'], prefix: string) => artifacts.filter((artifact) => artifact.purl?.startsWith(prefix)).length;

test('--sbom writes a CycloneDX and an SPDX document per platform; each is valid by an independent check', async () => {
  assert.deepEqual((await readdir(sbomDir)).sort(), ['linux-amd64.cdx.json', 'linux-amd64.spdx.json']);
  assert.deepEqual(built.sboms, [join(sbomDir, 'linux-amd64.cdx.json'), join(sbomDir, 'linux-amd64.spdx.json')]);
  const cdx = JSON.parse(await readFile(join(sbomDir, 'linux-amd64.cdx.json'), 'utf8')) as { metadata: { component: { version: string } } };
  assert.equal(await cycloneDxProblems(cdx), undefined);
  assert.equal(cdx.metadata.component.version, built.digest, 'the SBOM is about the image built');
  assert.equal(await spdxProblems(join(sbomDir, 'linux-amd64.spdx.json')), undefined);
});

test('syft reads both documents, converts each to the other format and back, and counts what the image holds', async () => {
  const paths = await imagePaths();
  const statusRecords = new Set(paths.filter((path) => /^var\/lib\/dpkg\/status\.d\/[^/]+$/.test(path) && !path.endsWith('.md5sums')));
  const distInfos = new Set(paths.filter((path) => /\.dist-info$/.test(path)));
  assert.ok(statusRecords.size >= 10 && distInfos.size >= 50, `${statusRecords.size} status.d records, ${distInfos.size} dist-info directories`);

  for (const [from, other] of [['cdx', 'spdx-json'], ['spdx', 'cyclonedx-json']] as const) {
    const source = join(sbomDir, `linux-amd64.${from}.json`);
    const converted = join(work, `from-${from}.${other}.json`);
    const direct = JSON.parse(await syft(['convert', source, '-o', 'syft-json'])) as SyftJson;
    await syft(['convert', source, '-o', `${other}=${converted}`]);
    const back = JSON.parse(await syft(['convert', converted, '-o', 'syft-json'])) as SyftJson;
    for (const [what, read] of [[`${from}`, direct], [`${from} → ${other} → syft`, back]] as const) {
      assert.equal(countBy(read.artifacts, 'pkg:deb/'), statusRecords.size, `${what}: Debian packages`);
      assert.equal(countBy(read.artifacts, 'pkg:pypi/'), distInfos.size, `${what}: Python distributions`);
      const runtime = read.artifacts.filter((artifact) => artifact.purl?.startsWith('pkg:generic/'));
      // The stand-in's release (20000101) is in no table: the runtime alone, no libraries.
      assert.deepEqual(runtime.map((artifact) => artifact.purl), [`pkg:generic/python@${mirror.version}`], what);
      assert.equal(read.distro?.id, 'debian', `${what}: the OS`);
    }
  }
  const cdx = JSON.parse(await readFile(join(sbomDir, 'linux-amd64.cdx.json'), 'utf8')) as { metadata: { properties: { name: string; value: string }[] } };
  assert.match(cdx.metadata.properties.find((property) => property.name === 'uvimage:runtime:libraries')!.value, /20000101 is not in uvimage's table/);
});

test('pushed: the referrers tag-schema index lists both SBOMs, and each fetches back by digest as the file written', async () => {
  const client = new RegistryClient();
  const repo = { registry: proxy.host, repository: 'e2e/sbom-hello' };
  const tag = built.digest.replace('sha256:', 'sha256-');
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${proxy.host}/e2e/sbom-hello:${tag}`]);
  const index = JSON.parse(stdout) as { manifests: { digest: `sha256:${string}`; artifactType: string }[] };
  assert.deepEqual(index.manifests.map((entry) => entry.artifactType).sort(), ['application/spdx+json', 'application/vnd.cyclonedx+json']);
  const store = await BlobStore.open(join(work, 'fetched-store'));
  for (const entry of index.manifests) {
    const manifest = await client.getManifest(repo, entry.digest);
    const document = manifest.document as { subject: { digest: string }; artifactType: string; layers: { digest: `sha256:${string}`; annotations: Record<string, string> }[] };
    assert.equal(document.subject.digest, built.digest);
    const layer = document.layers[0]!;
    await client.fetchBlob(repo, layer.digest, store);
    const file = join(sbomDir, layer.annotations['org.opencontainers.image.title']!);
    assert.deepEqual(await store.readBytes(layer.digest), await readFile(file), `${file} as pushed`);
  }
});

test('--oci: the layout lists the SBOM referrers in index.json, their blobs the files written', async () => {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; artifactType?: string }[] };
  const referrers = index.manifests.filter((entry) => entry.artifactType);
  assert.deepEqual(referrers.map((entry) => entry.artifactType).sort(), ['application/spdx+json', 'application/vnd.cyclonedx+json']);
  for (const entry of referrers) {
    const manifest = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', entry.digest.slice(7)), 'utf8')) as { subject: { digest: string }; layers: { digest: string; annotations: Record<string, string> }[] };
    assert.equal(manifest.subject.digest, built.digest);
    const layer = manifest.layers[0]!;
    assert.deepEqual(await readFile(join(layout, 'blobs', 'sha256', layer.digest.slice(7))), await readFile(join(sbomDir, layer.annotations['org.opencontainers.image.title']!)));
  }
  // The image is still read by its tag beside the untagged referrers.
  const { stdout } = await run('skopeo', ['inspect', `oci:${layout}:1`]);
  assert.equal((JSON.parse(stdout) as { Digest: string }).Digest, built.digest);
});

test('the same build again: the same SBOM bytes, and the push uploads no blob and puts no referrer or index', async () => {
  const again = join(work, 'sbom-again');
  proxy.resetStats();
  proxy.log.length = 0;
  const second = await buildOk(buildArgs(again, join(work, 'layout-again')), standaloneEnv(mirror));
  assert.equal(second.digest, built.digest);
  for (const name of ['linux-amd64.cdx.json', 'linux-amd64.spdx.json']) assert.deepEqual(await readFile(join(again, name)), await readFile(join(sbomDir, name)), name);
  const push = second.outputs.find((output) => output.sink === 'push')!;
  assert.equal(push.details?.uploadedBlobs, 0);
  assert.equal(push.details?.referrersPut, 0);
  assert.equal(push.details?.referrerIndexesPut, 0);
  const writes = proxy.log.filter((entry) => entry.method === 'PATCH' || (entry.method === 'POST' && /\/blobs\/uploads\//.test(entry.path)) || (entry.method === 'PUT' && !/\/manifests\/1$/.test(entry.path)));
  assert.deepEqual(writes.map((entry) => `${entry.method} ${entry.path}`), []);
});
