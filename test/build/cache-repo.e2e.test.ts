/**
 * The layer cache in a registry as a CI fleet uses it (issue 15, parts 3 and 4): the example is
 * built on "runner A" (its own cache directory) with --cache-repo, then a one-line change on
 * "runner B" — a fresh, empty cache directory — with --push. Runner B downloads no .deb, no
 * Packages index, no wheel and no runtime archive (every request to the Debian archive, PyPI's
 * files and the runtime mirror is counted by the caching mirror in front of them), takes the
 * unchanged layers from the cache repository (mounted into the target repository, not uploaded),
 * and pushes the digest a local build of the same change gives. Against Debian's docker-registry
 * with htpasswd auth, credentials as for --push (UVIMAGE_REGISTRY_*).
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertOneLineError, uvimage } from '../harness/cli.js';
import { check } from '../harness/docker.js';
import { buildOk, fastapiHello, standaloneEnv, type BuildJson } from '../harness/project-build.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { uvBinary } from '../harness/uv.js';
import { startCachingMirror, type CachingMirror } from '../cli/caching-mirror.js';

let registry: TestRegistry;
/** Where runner C pushes: another registry than the cache repo's, without auth. */
let other: TestRegistry;
let mirror: CachingMirror;
let standalone: StandaloneMirror;
let work: string;
let projectA: string;
let projectB: string;

interface CacheJson {
  layerCache?: { repository: string; hits: number; misses: number; published: number; present: number };
}

before(async () => {
  registry = await startRegistry({ auth: 'htpasswd' });
  other = await startRegistry();
  standalone = await standaloneMirror('3.12.1');
  mirror = await startCachingMirror({ files: { '/python/': standalone.dir } });
  work = await mkdtemp(join(tmpdir(), 'uvimage-cache-repo-'));
  // The example with its wheels from the mirror, so every wheel download is seen.
  projectA = join(work, 'a', 'fastapi-hello');
  await cp(fastapiHello, projectA, { recursive: true });
  const lock = join(projectA, 'uv.lock');
  await writeFile(lock, (await readFile(lock, 'utf8')).replaceAll('https://files.pythonhosted.org/', `${mirror.url}/pythonhosted/`));
  // The one-line change, on another checkout.
  projectB = join(work, 'b', 'fastapi-hello');
  await cp(projectA, projectB, { recursive: true });
  const module = join(projectB, 'src', 'fastapi_hello', '__init__.py');
  const source = await readFile(module, 'utf8');
  assert.match(source, /"Hello world"/);
  await writeFile(module, source.replace('"Hello world"', '"Hello from runner B"'));
});

after(async () => {
  await mirror?.close();
  await registry?.stop();
  await other?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const cacheRepo = () => `${registry.host}/ci/cache`;

/** A CI runner's environment: the mirrors, the stand-in runtime over http, the registry's credentials. */
function runnerEnv(): NodeJS.ProcessEnv {
  return {
    UV: uvBinary(),
    UVIMAGE_DEBIAN_MIRROR: `${mirror.url}/debian`,
    UVIMAGE_DEBIAN_SECURITY_MIRROR: `${mirror.url}/debian-security`,
    ...standaloneEnv(standalone, `${mirror.url}/python`),
    UVIMAGE_REGISTRY_USERNAME: 'uvimage',
    UVIMAGE_REGISTRY_PASSWORD: registry.users.uvimage!,
  };
}

function pushDetails(build: BuildJson): { uploadedBlobs: number; skippedBlobs: number; mountedBlobs: number } {
  const push = build.outputs.find((output) => output.sink === 'push');
  assert.ok(push, 'a push output');
  return push.details as unknown as { uploadedBlobs: number; skippedBlobs: number; mountedBlobs: number };
}

let runnerA: (BuildJson & CacheJson) | undefined;
let runnerB: (BuildJson & CacheJson & { seconds: number }) | undefined;

test('runner A builds with the cache repo and publishes its layers', async () => {
  const build = await buildOk(
    ['build', projectA, '--frozen', '--platform', 'linux/amd64', '-t', `${registry.host}/ci/app:a`, '--push', '--cache-repo', cacheRepo(), '--cache-dir', join(work, 'runner-a')],
    runnerEnv(),
  );
  runnerA = build as typeof runnerA;
  const roles = build.platforms[0]!.layers.map((layer) => layer.role);
  assert.deepEqual(roles, ['base: libc', 'base: base', 'runtime', 'dependencies', 'project']);
  const cache = runnerA!.layerCache!;
  assert.equal(cache.repository, cacheRepo());
  // Every layer (5), what the closure check read of each (5), the Debian package list (1).
  assert.equal(cache.published, 11, JSON.stringify(cache));
  assert.equal(cache.hits, 0);
  assert.ok(mirror.requests.some((path) => /\/pool\/.*\.deb$/.test(path)), 'runner A fetched .debs');
  assert.ok(mirror.requests.some((path) => path.startsWith('/pythonhosted/')), 'runner A fetched wheels');
  assert.ok(mirror.requests.some((path) => path.startsWith('/python/')), 'runner A fetched the runtime archive');
});

test('runner B, with an empty cache dir, downloads no .deb, index, wheel or runtime and pushes the digest of a local build', async () => {
  assert.ok(runnerA, 'runner A built');
  mirror.requests.length = 0;
  const build = await buildOk(
    ['build', projectB, '--frozen', '--platform', 'linux/amd64', '-t', `${registry.host}/ci/app-b:b`, '--push', '--cache-repo', cacheRepo(), '--cache-dir', join(work, 'runner-b')],
    runnerEnv(),
  );
  runnerB = build as typeof runnerB;

  // What runner B asked the archive, PyPI's files and the runtime mirror for: the two InRelease files, nothing else.
  const requests = [...mirror.requests];
  assert.deepEqual(requests.filter((path) => /\.deb$/.test(path)), [], 'no .deb');
  assert.deepEqual(requests.filter((path) => /Packages/.test(path)), [], 'no Packages index');
  assert.deepEqual(requests.filter((path) => path.startsWith('/pythonhosted/')), [], 'no wheel');
  assert.deepEqual(requests.filter((path) => path.startsWith('/python/')), [], 'no runtime archive');
  assert.deepEqual(requests.filter((path) => !/\/InRelease$/.test(path)), [], `only InRelease files: ${requests.join(', ')}`);

  // The layers: all but the project's are runner A's, taken from the cache repo.
  const a = runnerA!.platforms[0]!.layers;
  const b = build.platforms[0]!.layers;
  assert.deepEqual(b.map((layer) => layer.role), a.map((layer) => layer.role));
  for (const [index, layer] of b.entries()) {
    if (layer.role === 'project') assert.notEqual(layer.digest, a[index]!.digest, 'the project layer is rebuilt');
    else assert.equal(layer.digest, a[index]!.digest, `the ${layer.role} layer is runner A's`);
  }
  const cache = runnerB!.layerCache!;
  // Hits: the Debian package list, the four unchanged layers and what the closure check read of them.
  assert.equal(cache.hits, 9, JSON.stringify(cache));
  // Published: the new project layer and its closure record.
  assert.equal(cache.published, 2, JSON.stringify(cache));

  // The push: the four layers mounted from the cache repo, the project layer and config uploaded.
  assert.deepEqual(pushDetails(build), { ...pushDetails(build), mountedBlobs: 4, uploadedBlobs: 2, skippedBlobs: 0 });

  // A local build of the same change, without the cache repo, gives the same digest.
  const local = await buildOk(['build', projectB, '--frozen', '--platform', 'linux/amd64', '--oci', join(work, 'local-oci'), '--cache-dir', join(work, 'runner-a')], {
    ...runnerEnv(),
  });
  assert.equal(build.digest, local.digest, 'runner B pushed what a local build makes');
  assert.equal((local as CacheJson).layerCache, undefined);

  // What runner B pushed is whole: skopeo copies it out, every blob checked against its digest.
  await check('skopeo', [
    'copy', '--quiet', '--src-tls-verify=false', '--src-creds', `uvimage:${registry.users.uvimage}`,
    `docker://${registry.host}/ci/app-b:b`, `oci:${join(work, 'pulled-b')}:b`,
  ]);
  const pulled = JSON.parse(await check('skopeo', ['inspect', `oci:${join(work, 'pulled-b')}:b`])) as { Layers: string[]; Digest: string };
  assert.deepEqual(pulled.Layers, b.map((layer) => layer.digest));
  console.log(`runner B: ${build.seconds.toFixed(2)} s, ${requests.length} mirror requests (${requests.join(', ')})`);
});

test('runner C pushes to another registry than the cache repo: the cached layers are streamed from it, nothing else is downloaded', async () => {
  assert.ok(runnerB, 'runner B built');
  mirror.requests.length = 0;
  const build = await buildOk(
    ['build', projectB, '--frozen', '--platform', 'linux/amd64', '-t', `${other.host}/elsewhere/app:c`, '--push', '--cache-repo', cacheRepo(), '--cache-dir', join(work, 'runner-c')],
    runnerEnv(),
  );
  assert.deepEqual(mirror.requests.filter((path) => !/\/InRelease$/.test(path)), [], 'only InRelease files');
  assert.equal(build.digest, runnerB!.digest);
  // Nothing to mount from on that registry: every blob uploaded, the cached layers read from the cache repo.
  assert.deepEqual(pushDetails(build), { ...pushDetails(build), mountedBlobs: 0, uploadedBlobs: 6, skippedBlobs: 0 });
  const cache = (build as CacheJson).layerCache!;
  assert.equal(cache.hits, 11, `runner B's project layer and its closure record too: ${JSON.stringify(cache)}`);
  assert.equal(cache.published, 0);
  await check('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${other.host}/elsewhere/app:c`, `oci:${join(work, 'pulled-c')}:c`]);
});

test('a cache repo that cannot be reached is one warning, and the build is the local one', async () => {
  assert.ok(runnerB, 'runner B built');
  const layout = join(work, 'unreachable-oci');
  // Not --json, which is as quiet as --quiet: the warning is for people.
  const result = await uvimage(
    ['build', projectB, '--frozen', '--platform', 'linux/amd64', '--oci', layout, '--cache-dir', join(work, 'runner-a')],
    { ...runnerEnv(), UVIMAGE_CACHE_REPO: '127.0.0.1:9/nowhere' },
  );
  assert.equal(result.code, 0, result.stderr);
  const warnings = result.stderr.split('\n').filter((line) => /layer cache/.test(line));
  assert.equal(warnings.length, 1, result.stderr);
  assert.match(warnings[0]!, /^warning: the layer cache 127\.0\.0\.1:9\/nowhere cannot be (read|reached) \(.*\); building without it$/);
  const built = JSON.parse(await check('skopeo', ['inspect', `oci:${layout}:latest`])) as { Digest: string };
  assert.equal(built.Digest, runnerB!.digest);
});

test('a cache repo with a tag is one line, exit 1, before any work', async () => {
  const result = await uvimage(['build', projectB, '--frozen', '--oci', join(work, 'never'), '--cache-repo', `${registry.host}/ci/cache:v1`, '--cache-dir', join(work, 'never-cache')], runnerEnv());
  assertOneLineError(result, /--cache-repo: .*ci\/cache:v1 names a tag; give the repository only/);
});
