/**
 * Every HTTP client of uvimage goes through src/net, so each honours the proxy its environment
 * names: a push to and a pull from a real registry (with Basic credentials), a wheel download,
 * a python-build-standalone archive from a mirror, and a Debian index from a mirror of the real
 * archive — each addressed by a name that only the forward proxy resolves.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { debianSourceFrom, loadPackageIndex } from '../../src/debian/archive/index.js';
import type { Digest } from '../../src/oci/digest.js';
import { downloadWheel } from '../../src/python/download.js';
import { chooseStandaloneDownload, fetchStandalone, loadStandaloneDownloads } from '../../src/runtime/standalone.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pullBaseImage } from '../../src/registry/pull.js';
import { RegistrySink } from '../../src/registry/push.js';
import { sharedTestStore } from '../harness/cache.js';
import { startDebianMirror, type DebianMirror } from '../harness/debian-mirror.js';
import { startForwardProxy, type ForwardProxy } from '../harness/forward-proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { serveDirectory, standaloneMirror, type StaticServer } from '../harness/standalone-python.js';
import { amd64, countingBlobSource, fastRetry, makeImage, makeLayer, sinkContext, tempStore, type TempStore } from '../registry/helpers.js';

let proxy: ForwardProxy;
let registry: TestRegistry;
let local: TempStore;

before(async () => {
  proxy = await startForwardProxy({ names: { 'registry.test': '127.0.0.1', 'pypi.test': '127.0.0.1', 'pbs.test': '127.0.0.1', 'mirror.test': '127.0.0.1' } });
  registry = await startRegistry({ auth: 'htpasswd' });
  local = await tempStore();
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await local?.cleanup();
});

/** The requests the proxy forwarded to `host`, as `METHOD path`. */
function through(host: string): string[] {
  return proxy.log.filter((entry) => new URL(entry.target).hostname === host).map((entry) => `${entry.method} ${new URL(entry.target).pathname}`);
}

test('the registry client: push and pull through HTTP_PROXY, credentials included', async () => {
  const host = `registry.test:${registry.port}`;
  const env = { HTTP_PROXY: proxy.url };
  const credentials = { [host]: { username: 'uvimage', password: registry.users.uvimage! } };
  const client = new RegistryClient({ env, insecureRegistries: [host], credentials, retry: fastRetry });
  const image = makeImage({ layers: [await makeLayer(local.store, { 'proxied.txt': 'through the proxy' })] });
  await new RegistrySink([`${host}/proxied/app:1`], { client }).write({ kind: 'image', image }, sinkContext(countingBlobSource(local.store)));
  const pulled = await tempStore();
  try {
    const base = await pullBaseImage(`${host}/proxied/app:1`, amd64, pulled.store, { client });
    assert.equal(base.manifestDigest, image.manifest.descriptor.digest);
  } finally {
    await pulled.cleanup();
  }
  const paths = through('registry.test');
  assert.ok(paths.includes('GET /v2/'), paths.join(' '));
  assert.ok(paths.some((path) => /^PUT \/v2\/proxied\/app\/manifests\/1$/.test(path)), paths.join(' '));
  assert.ok(paths.includes(`GET /v2/proxied/app/manifests/${image.manifest.descriptor.digest}`), paths.join(' '));
  assert.ok(proxy.log.some((entry) => entry.target.includes('/manifests/1') && entry.authorization), 'the credentials went along');
});

test('a wheel download through HTTP_PROXY', async () => {
  const wheel = Buffer.from('a wheel, as far as this test is concerned\n'.repeat(500));
  const index: Server = createServer((_req, res) => res.end(wheel));
  await new Promise<void>((resolve) => index.listen(0, '127.0.0.1', resolve));
  try {
    const port = (index.address() as AddressInfo).port;
    const hash: Digest = `sha256:${createHash('sha256').update(wheel).digest('hex')}`;
    const url = `http://pypi.test:${port}/files/proxied-1.0-py3-none-any.whl`;
    const result = await downloadWheel({ name: 'proxied', url, filename: 'proxied-1.0-py3-none-any.whl', hash }, { store: local.store, env: { http_proxy: proxy.url } });
    assert.equal(result.digest, hash);
    assert.deepEqual(through('pypi.test'), ['GET /files/proxied-1.0-py3-none-any.whl']);
  } finally {
    index.closeAllConnections();
    await new Promise((resolve) => index.close(resolve));
  }
});

test('a python-build-standalone archive from a mirror, through ALL_PROXY', async () => {
  const mirror = await standaloneMirror('3.12.1');
  let server: StaticServer | undefined;
  const fresh = await tempStore();
  try {
    server = await serveDirectory(mirror.dir);
    const port = new URL(server.url).port;
    const env = { UVIMAGE_PYTHON_MIRROR: `http://pbs.test:${port}`, UVIMAGE_PYTHON_DOWNLOADS_JSON: mirror.metadataPath, ALL_PROXY: proxy.url };
    const { downloads } = await loadStandaloneDownloads(env);
    const download = chooseStandaloneDownload(downloads, 'x86_64', { version: '3.12' });
    assert.equal(await fetchStandalone(download, fresh.store, { env }), `sha256:${download.sha256}`);
    assert.deepEqual(through('pbs.test'), [`GET /${download.release}/${encodeURIComponent(download.asset)}`]);
  } finally {
    await server?.stop();
    await fresh.cleanup();
  }
});

test('the Debian archive through HTTP_PROXY: the InRelease of a mirror, verified (its Packages already cached by digest)', async () => {
  let mirror: DebianMirror | undefined;
  try {
    mirror = await startDebianMirror();
    const port = new URL(mirror.url).port;
    const source = debianSourceFrom({ suite: 'trixie', arch: 'amd64', mirror: `http://mirror.test:${port}/debian`, securityMirror: `http://mirror.test:${port}/debian-security`, env: {} });
    const index = await loadPackageIndex(source, await sharedTestStore(), { env: { HTTP_PROXY: proxy.url }, ttlSeconds: 0 });
    assert.ok(index.get('libc6'), 'the index has libc6');
    const paths = through('mirror.test');
    assert.ok(paths.includes('GET /debian/dists/trixie/InRelease'), paths.join(' '));
    assert.ok(paths.includes('GET /debian-security/dists/trixie-security/InRelease'), paths.join(' '));
    assert.deepEqual(mirror.requests.sort(), paths.map((path) => path.slice(4)).sort(), 'the mirror got what went through the proxy');
  } finally {
    await mirror?.close();
  }
});
