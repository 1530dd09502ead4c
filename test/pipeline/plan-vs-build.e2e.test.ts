/**
 * `uvimage plan --json` prints what `uvimage build` executes (issue 10): for a plain project, a
 * workspace member, a pulled base, two platforms and the Debian runtime, the plan printed first
 * is compared with what the build then did — the layers it wrote and their order, the record each
 * planned key names (holding the very layer the build produced), the wheels it installed, the
 * .debs of the base, and the runtime settings of the image config read back from the OCI layout.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BuildPlan, PlatformPlan } from '../../src/pipeline/plan.js';
import type { PlatformReport } from '../../src/pipeline/execute.js';
import type { Digest } from '../../src/oci/digest.js';
import { uvimage } from '../harness/cli.js';
import { debianStandaloneMirror } from '../harness/debian-standalone-python.js';
import { buildOk, fastapiHello, sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));
let work: string;
let registry: TestRegistry;
let mirror: StandaloneMirror;
let mirror313: StandaloneMirror;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-plan-vs-build-'));
  registry = await startRegistry();
  mirror = await standaloneMirror('3.12.1');
  mirror313 = await debianStandaloneMirror();
});

after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Plans, then builds to an OCI layout with the same flags; compares the two. */
async function planThenBuild(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ plan: BuildPlan; built: PlatformReport[] }> {
  const cache = sharedCliCache();
  const planned = await uvimage(['plan', ...args, '--json', '--cache-dir', cache], env);
  assert.equal(planned.code, 0, planned.stderr);
  const plan = JSON.parse(planned.stdout) as BuildPlan;
  const layout = join(work, name);
  const built = await buildOk(['build', ...args, '--oci', layout, '-t', `plan-vs-build/${name}:1`, '--cache-dir', cache], env);
  assert.equal(built.platforms.length, plan.platforms.length);
  for (const [index, platform] of plan.platforms.entries()) await compare(platform, built.platforms[index]!, layout, cache);
  return { plan, built: built.platforms };
}

async function compare(plan: PlatformPlan, built: PlatformReport, layout: string, cache: string): Promise<void> {
  assert.equal(built.platform, plan.platform);
  assert.equal(built.python, plan.runtime.version);

  // The layers, in order, and what each planned key names in the store: the layer built.
  assert.deepEqual(built.layers.map((layer) => layer.role), plan.layers.map((layer) => layer.label));
  for (const [index, layer] of plan.layers.entries()) {
    if (layer.key === null) continue;
    if ('blob' in layer.key) {
      assert.equal(built.layers[index]!.digest, layer.key.blob);
      continue;
    }
    const record = JSON.parse(await readFile(join(cache, 'records', layer.key.record, `${layer.key.name}.json`), 'utf8')) as Record<string, { descriptor?: { digest: Digest } }> & { descriptor?: { digest: Digest } };
    const digest = record.descriptor?.digest ?? record.written?.descriptor?.digest ?? record.layer?.descriptor?.digest;
    assert.equal(digest, built.layers[index]!.digest, `${layer.label}: the record ${layer.key.record}/${layer.key.name} holds the layer built`);
  }

  // The wheels: every locked wheel the plan names is the one installed; built ones are there too.
  const installed = new Map(built.wheels.map((wheel) => [wheel.name, wheel.filename]));
  const planned = plan.venvLayers.flatMap((layer) => layer.packages);
  assert.deepEqual([...installed.keys()].sort(), planned.map((pkg) => pkg.name).sort());
  for (const pkg of planned) if (pkg.wheel) assert.equal(installed.get(pkg.name), pkg.wheel, pkg.name);

  // The base's .debs.
  if (plan.base.kind === 'debian') {
    const debs = [...plan.base.plan.packages.base, ...plan.base.plan.packages.runtime];
    assert.deepEqual(built.debs.map((deb) => `${deb.name}=${deb.version} ${deb.digest}`), debs.map((deb) => `${deb.name}=${deb.version} sha256:${deb.sha256}`));
  } else {
    assert.deepEqual(built.debs, []);
  }

  // The image config as written into the layout.
  const manifest = await manifestFor(layout, built.platform);
  const config = JSON.parse(await readFile(blobPath(layout, manifest.config.digest), 'utf8')) as { config: unknown };
  assert.deepEqual(config.config, plan.config);
  assert.deepEqual(built.config, plan.config);
}

function blobPath(layout: string, digest: string): string {
  return join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** The manifest of one platform in an OCI layout (directly in index.json, or in the index it names). */
async function manifestFor(layout: string, platform: string): Promise<{ config: { digest: string } }> {
  const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; mediaType: string }[] };
  let document = JSON.parse(await readFile(blobPath(layout, top.manifests[0]!.digest), 'utf8')) as {
    manifests?: { digest: string; platform: { os: string; architecture: string; variant?: string } }[];
    config: { digest: string };
  };
  if (document.manifests) {
    const entry = document.manifests.find((candidate) => [candidate.platform.os, candidate.platform.architecture, candidate.platform.variant].filter(Boolean).join('/') === platform)!;
    document = JSON.parse(await readFile(blobPath(layout, entry.digest), 'utf8')) as typeof document;
  }
  return document;
}

test('a plain project: the plan is what the build does', async () => {
  const { plan } = await planThenBuild('plain', [fastapiHello], standaloneEnv(mirror));
  assert.equal(plan.platforms[0]!.base.kind, 'debian');
  assert.deepEqual(plan.platforms[0]!.layers.map((layer) => layer.label), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
});

test('a workspace member: the plan is what the build does', async () => {
  const { plan, built } = await planThenBuild('workspace', [join(fixtures, 'workspace', 'packages', 'app')], standaloneEnv(mirror));
  assert.equal(plan.project.name, 'app');
  assert.equal(plan.project.workspaceRoot, join(fixtures, 'workspace'));
  assert.deepEqual(plan.platforms[0]!.command, { words: ['/app/.venv/bin/app'], from: "the project's console script app" });
  assert.deepEqual(built[0]!.wheels.filter((wheel) => wheel.layer === 'project').map((wheel) => wheel.name).sort(), ['app', 'lib']);
});

test('a pulled base: the plan is what the build does', async () => {
  const base = `${registry.host}/bases/cc:trixie`;
  const pushed = await uvimage(['base', 'cc', '--platform', 'linux/amd64', '-t', base, '--push', '--cache-dir', sharedCliCache()]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const { plan } = await planThenBuild('pulled', [fastapiHello, '--base', base], standaloneEnv(mirror));
  const platform = plan.platforms[0]!;
  assert.equal(platform.base.kind, 'pulled');
  assert.deepEqual(platform.target.glibc, { version: '2.41', from: "the base's dpkg database" });
  assert.equal(platform.annotations['org.opencontainers.image.base.name'], base);
});

test('two platforms: the plan is what the build does', async () => {
  const { plan } = await planThenBuild('two-platforms', [fastapiHello, '--platform', 'linux/amd64,linux/arm64', '--python', '3.13'], standaloneEnv(mirror313));
  assert.deepEqual(plan.platforms.map((platform) => platform.platform), ['linux/amd64', 'linux/arm64']);
  assert.notEqual(plan.platforms[0]!.runtime.kind === 'standalone' && plan.platforms[0]!.runtime.sha256, plan.platforms[1]!.runtime.kind === 'standalone' && plan.platforms[1]!.runtime.sha256);
});

test("Debian's runtime: the plan is what the build does", async () => {
  const { plan } = await planThenBuild('debian-runtime', [fastapiHello, '--runtime', 'debian', '--python', '3.13'], {});
  const platform = plan.platforms[0]!;
  assert.equal(platform.runtime.kind, 'debian');
  assert.deepEqual(platform.layers.map((layer) => layer.label), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  assert.ok(platform.runtime.kind === 'debian' && platform.runtime.packages.some((pkg) => pkg.name === 'python3.13'));
});
