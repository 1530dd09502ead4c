/**
 * planBuild on plain inputs (issue 10): the request and the locked project from fixture
 * directories, and every metadata read (Debian packages, a pulled base, the python-build-standalone
 * table, the bytecode interpreter) answered with plain data — no Docker, no network. Shows what the
 * plan decides for a workspace member, a virtual project, a pulled base, two platforms and
 * Debian's runtime, that it is plain JSON, and that local mistakes fail before any read.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveBuildRequest, type BuildFlags } from '../../src/config/request.js';
import type { PlannedDeb, ResolvedBasePackages } from '../../src/base/build.js';
import { flavourPackages } from '../../src/base/flavours.js';
import { flavourOf } from '../../src/base/build.js';
import type { Digest } from '../../src/oci/digest.js';
import { planBuild, type BuildPlan, type PlanSources, type PulledBase } from '../../src/pipeline/plan.js';
import { loadLockedProject } from '../../src/python/locked-project.js';
import type { StandaloneDownload } from '../../src/runtime/standalone.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

function deb(name: string, version = '1.0-1', arch = 'amd64'): PlannedDeb {
  return { name, version, arch, sha256: sha(`${name}_${version}_${arch}`), size: 1000, archiveUrl: 'http://deb.example/debian', filename: `pool/main/${name}_${version}_${arch}.deb` };
}

function standalone(version: string, arch: 'x86_64' | 'aarch64'): StandaloneDownload {
  return { version, arch, release: '20260814', asset: `cpython-${version}+20260814-${arch}-unknown-linux-gnu-install_only_stripped.tar.gz`, sha256: sha(`${version} ${arch}`) };
}

const pulledBase: PulledBase = {
  manifestDigest: `sha256:${sha('base manifest')}` as Digest,
  platform: { os: 'linux', architecture: 'amd64' },
  config: {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'LANG=C.UTF-8'], User: 'nobody', Labels: { 'org.example.base': 'yes' } },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha('diff 1')}` as Digest] },
  },
  layers: [{ descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha('layer 1')}` as Digest, size: 123 }, diffId: `sha256:${sha('diff 1')}` as Digest, origin: { registry: 'registry.example', repository: 'base' } }],
};

/** Plain-data sources that record what was asked of them. */
function plainSources(calls: string[] = []): PlanSources {
  return {
    standaloneDownloads: async () => ({
      downloads: [standalone('3.12.9', 'x86_64'), standalone('3.12.9', 'aarch64'), standalone('3.13.2', 'x86_64'), standalone('3.13.2', 'aarch64')],
      source: 'a plain table',
    }),
    standaloneUrl: (download) => `https://mirror.example/${download.release}/${download.asset}`,
    bytecodeInterpreter: async (minor) => ({ interpreter: `/opt/python${minor}/bin/python${minor}`, version: `${minor}.1`, cacheTag: `cpython-${minor.replace('.', '')}` }),
    debianBasePackages: async (request) => {
      calls.push(`debian ${request.base} ${request.suite} ${request.arch}`);
      const resolved: ResolvedBasePackages = { base: flavourPackages(flavourOf(request.base), request.suite).map((name) => deb(name, '1.0-1', request.arch)), runtime: [], extra: [] };
      if (request.base === 'python3') resolved.runtime = [deb('python3.13', '3.13.5-2', request.arch), deb('libpython3.13-stdlib', '3.13.5-2', request.arch), deb('libexpat1', '2.7.1-2', request.arch)];
      return resolved;
    },
    pulledBase: async (reference) => {
      calls.push(`pull ${reference}`);
      return pulledBase;
    },
    pulledBaseGlibc: async () => {
      calls.push('glibc');
      return [2, 36];
    },
    debianPackage: async (suite, arch, name) => {
      calls.push(`debian package ${name} ${suite} ${arch}`);
      return deb(name, '1.36.1-9', arch);
    },
    checkLock: async (_locked, options) => {
      calls.push(`lock ${options.frozen ? 'frozen' : 'checked'} with ${options.python}`);
    },
  };
}

async function plan(dir: string, flags: BuildFlags = {}, sources = plainSources(), env: NodeJS.ProcessEnv = {}): Promise<BuildPlan> {
  const request = await resolveBuildRequest(dir, { frozen: true, ...flags }, env);
  const locked = await loadLockedProject(request.dir);
  return planBuild(request, locked, sources);
}

test('a workspace member: its own packages and the members it needs, built into the project layer', async () => {
  const built = await plan(join(fixtures, 'workspace', 'packages', 'app'));
  assert.equal(built.project.name, 'app');
  assert.equal(built.project.workspaceRoot, join(fixtures, 'workspace'));
  const platform = built.platforms[0]!;
  assert.equal(platform.platform, 'linux/amd64');
  // uv reads .python-version from the project up to the workspace root: here, the root's.
  assert.deepEqual(platform.target.python, { version: '3.12.9', from: '.python-version' });
  assert.deepEqual(platform.target.glibc, { version: '2.41', from: 'Debian trixie' });
  assert.deepEqual(platform.layers.map((layer) => layer.label), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  const project = platform.venvLayers.find((layer) => layer.role === 'project')!;
  assert.deepEqual(project.packages.map((pkg) => pkg.name).sort(), ['app', 'lib']);
  assert.equal(project.key, null, 'the project layer is keyed once its wheels are built');
  const dependencies = platform.venvLayers.find((layer) => layer.role === 'dependencies')!;
  assert.deepEqual(dependencies.packages.map((pkg) => pkg.wheel), ['idna-3.20-py3-none-any.whl']);
  assert.match(dependencies.key!, /^[0-9a-f]{64}$/);
  assert.deepEqual(platform.command, { words: ['/app/.venv/bin/app'], from: "the project's console script app" });
  assert.deepEqual(platform.config.Entrypoint, ['/app/.venv/bin/app']);
  assert.equal(platform.config.User, '65532');
  assert.equal(platform.runtime.kind === 'standalone' && platform.runtime.url, 'https://mirror.example/20260814/cpython-3.12.9+20260814-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz');
});

test('the minimal flavour: cc\'s packages as candidates, marked (if needed) beyond the static content and libc6; its base layers have no key before execution', async () => {
  const built = await plan(join(fixtures, 'workspace', 'packages', 'app'), { flavour: 'minimal' });
  const platform = built.platforms[0]!;
  assert.equal(platform.base.name, 'uvimage minimal (Debian trixie)');
  const base = platform.layers.filter((layer) => layer.role === 'base');
  assert.deepEqual(base.map((layer) => [layer.label, layer.key]), [['base: libc', null], ['base: base', null]]);
  const inputs = base.flatMap((layer) => layer.inputs);
  assert.ok(inputs.includes('libc6=1.0-1') && inputs.includes('tzdata=1.0-1'), inputs.join());
  assert.ok(inputs.includes('libstdc++6=1.0-1 (if needed)') && inputs.includes('libssl3t64=1.0-1 (if needed)'), inputs.join());
  assert.ok(platform.layers.find((layer) => layer.role === 'runtime')!.key, 'the layers above keep their keys');
});

test('a virtual project: nothing of the project is built; it runs python -m its module', async () => {
  const built = await plan(join(fixtures, 'virtual-app'));
  const platform = built.platforms[0]!;
  assert.equal(platform.install.project.virtual, true);
  assert.deepEqual(platform.target.python, { version: '3.12.9', from: '.python-version' });
  assert.deepEqual(platform.venvLayers.find((layer) => layer.role === 'project')!.packages, []);
  assert.deepEqual(platform.venvLayers.find((layer) => layer.role === 'dependencies')!.packages.map((pkg) => pkg.name), ['six']);
  assert.deepEqual(platform.command, { words: ['/app/.venv/bin/python', '-m', 'virtual_app'], from: 'virtual_app/__main__.py (no console script)' });
});

test('a pulled base: its glibc caps the wheels, its config is the start of ours, its layers are its blobs', async () => {
  const calls: string[] = [];
  const built = await plan(join(fixtures, 'cext'), { base: 'registry.example/base:1' }, plainSources(calls));
  const platform = built.platforms[0]!;
  assert.deepEqual(calls, ['lock frozen with /opt/python3.12/bin/python3.12', 'pull registry.example/base:1', 'glibc']);
  assert.equal(platform.base.kind, 'pulled');
  assert.deepEqual(platform.target.glibc, { version: '2.36', from: "the base's dpkg database" });
  assert.deepEqual(platform.layers[0], { role: 'base', label: 'base', inputs: [`registry.example/base:1 ${pulledBase.layers[0]!.descriptor.digest}`], key: { blob: pulledBase.layers[0]!.descriptor.digest } });
  for (const pkg of platform.install.packages) {
    if (pkg.kind !== 'wheel') continue;
    for (const minor of pkg.wheel.filename.matchAll(/manylinux_2_(\d+)_/g)) assert.ok(Number(minor[1]) <= 36, pkg.wheel.filename);
  }
  assert.deepEqual(platform.config.Env, ['LANG=C.UTF-8', 'PATH=/app/.venv/bin:/usr/local/bin:/usr/bin:/bin', 'VIRTUAL_ENV=/app/.venv', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt']);
  assert.equal(platform.config.Labels?.['org.example.base'], 'yes');
  assert.equal(platform.annotations['org.opencontainers.image.base.digest'], pulledBase.manifestDigest);

  // Given base-glibc, the base's layers are not read for it.
  const given: string[] = [];
  const pinned = await plan(join(fixtures, 'cext'), { base: 'registry.example/base:1', baseGlibc: '2.28' }, plainSources(given));
  assert.deepEqual(given, ['lock frozen with /opt/python3.12/bin/python3.12', 'pull registry.example/base:1']);
  assert.deepEqual(pinned.platforms[0]!.target.glibc, { version: '2.28', from: '--base-glibc' });
});

test('two platforms: one plan each, with the wheels and the runtime of its architecture', async () => {
  const built = await plan(join(fixtures, 'cext'), { platform: 'linux/amd64,linux/arm64' });
  assert.deepEqual(built.platforms.map((platform) => platform.platform), ['linux/amd64', 'linux/arm64']);
  const [amd, arm] = built.platforms;
  const core = (platform: typeof amd) => {
    const pkg = platform!.install.packages.find((candidate) => candidate.name === 'pydantic-core')!;
    return pkg.kind === 'wheel' ? pkg.wheel.filename : '';
  };
  assert.match(core(amd), /x86_64/);
  assert.match(core(arm), /aarch64/);
  assert.notEqual(amd!.runtime.kind === 'standalone' && amd!.runtime.sha256, arm!.runtime.kind === 'standalone' && arm!.runtime.sha256);
  assert.notDeepEqual(amd!.layers.map((layer) => layer.key), arm!.layers.map((layer) => layer.key));
});

test("Debian's runtime: the interpreter's packages, its version from them, the venv on /usr/bin/python3.13", async () => {
  const calls: string[] = [];
  const built = await plan(join(fixtures, 'cext'), { runtime: 'debian', python: '3.13' }, plainSources(calls));
  assert.deepEqual(calls, ['lock frozen with /opt/python3.13/bin/python3.13', 'debian python3 trixie amd64']);
  const platform = built.platforms[0]!;
  assert.equal(platform.runtime.kind, 'debian');
  assert.deepEqual(platform.target.python, { version: '3.13.5', from: 'Debian trixie' });
  assert.equal(platform.bytecode?.version, '3.13.1');
  assert.deepEqual(platform.layers.map((layer) => layer.label), ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  assert.deepEqual(platform.layers[2]!.inputs, ['python3.13=3.13.5-2', 'libpython3.13-stdlib=3.13.5-2', 'libexpat1=2.7.1-2']);
  assert.equal(platform.install.target.pythonVersion, '3.13.5');
});

test('a plan is plain JSON, and the same inputs give the same plan', async () => {
  const first = await plan(join(fixtures, 'cext'), { platform: 'linux/amd64,linux/arm64' });
  const second = await plan(join(fixtures, 'cext'), { platform: 'linux/amd64,linux/arm64' });
  // Plain data: no functions or class instances (structuredClone refuses functions), and its JSON reads back to the same JSON.
  assert.deepEqual(structuredClone(first), first);
  assert.equal(JSON.stringify(JSON.parse(JSON.stringify(first))), JSON.stringify(first));
  assert.equal(JSON.stringify(second), JSON.stringify(first));
  const dated = await plan(join(fixtures, 'cext'), { platform: 'linux/amd64,linux/arm64' }, plainSources(), { SOURCE_DATE_EPOCH: '1700000000' });
  assert.equal(dated.created.iso, '2023-11-14T22:13:20Z');
  assert.notDeepEqual(dated.platforms[0]!.layers.map((layer) => layer.key), first.platforms[0]!.layers.map((layer) => layer.key), 'the timestamp is in every key');
});

test('what is wrong locally fails before any metadata is read', async () => {
  const calls: string[] = [];
  await assert.rejects(plan(join(fixtures, 'cext'), { python: '3.99' }, plainSources(calls)), /no python-build-standalone release of Python 3\.99 for x86_64 Linux in a plain table \(known: 3\.12, 3\.13\)/);
  await assert.rejects(plan(join(fixtures, 'cext'), { extra: ['nope'] }, plainSources(calls)), /the project has no extra "nope"/);
  await assert.rejects(plan(join(fixtures, 'cext'), { runtime: 'debian' }, plainSources(calls)), /Python 3\.12 was asked for \(\.python-version\), but Debian trixie's CPython is 3\.13/);
  // The lock is checked (by uv, offline) before the extras are; nothing remote was read.
  assert.deepEqual(calls, ['lock frozen with /opt/python3.12/bin/python3.12']);
});
