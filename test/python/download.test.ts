/**
 * Wheel downloads against servers on 127.0.0.1: hash-checked, cached by hash, parallel, with
 * credentials found as uv finds them (UV_INDEX_<NAME>_USERNAME/_PASSWORD, netrc) and never sent
 * to another host after a redirect.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../src/errors.js';
import type { Digest } from '../../src/oci/digest.js';
import { BlobStore } from '../../src/oci/store.js';
import { credentialsFor, downloadWheel, downloadWheels, indexEnvName } from '../../src/python/download.js';

const body = (name: string): Buffer => Buffer.from(`wheel bytes of ${name}\n`.repeat(1000));
const sha = (bytes: Buffer): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function listen(handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void): Promise<{ server: Server; origin: string }> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

describe('wheel downloads', () => {
  let dir: string;
  let store: BlobStore;
  let main: { server: Server; origin: string };
  let other: { server: Server; origin: string };
  const requests: string[] = [];
  const otherAuth: (string | undefined)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uvimage-download-'));
    store = await BlobStore.open(join(dir, 'store'));
    other = await listen((req, res) => {
      otherAuth.push(req.headers.authorization);
      res.end(body('redirected'));
    });
    main = await listen((req, res) => {
      requests.push(req.url ?? '');
      const url = req.url ?? '';
      if (url.startsWith('/private/')) {
        if (req.headers.authorization !== `Basic ${Buffer.from('alice:s3cret').toString('base64')}`) {
          res.statusCode = 401;
          res.end('unauthorized');
          return;
        }
        res.end(body(url));
        return;
      }
      if (url === '/redirect/x.whl') {
        res.statusCode = 302;
        res.setHeader('location', `${other.origin}/x.whl`);
        res.end();
        return;
      }
      res.end(body(url));
    });
  });
  after(async () => {
    main.server.close();
    other.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a verified download is stored, and a second one downloads nothing', async () => {
    const url = `${main.origin}/files/a-1.0-py3-none-any.whl`;
    const hash = sha(body('/files/a-1.0-py3-none-any.whl'));
    const first = await downloadWheel({ name: 'a', url, filename: 'a-1.0-py3-none-any.whl', hash }, { store, env: {} });
    assert.equal(first.digest, hash);
    assert.equal(first.downloaded, true);
    const count = requests.length;
    const second = await downloadWheel({ name: 'a', url, filename: 'a-1.0-py3-none-any.whl', hash }, { store, env: {} });
    assert.equal(second.downloaded, false);
    assert.equal(requests.length, count, 'no request the second time');
  });

  test('a wheel whose hash differs from the lock is refused and not stored', async () => {
    const url = `${main.origin}/files/b-1.0-py3-none-any.whl`;
    const wrong = sha(Buffer.from('something else'));
    await assert.rejects(downloadWheel({ name: 'b', url, filename: 'b-1.0-py3-none-any.whl', hash: wrong }, { store, env: {} }), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.equal(error.message, `wheel b-1.0-py3-none-any.whl of b: digest mismatch: expected ${wrong}, got ${sha(body('/files/b-1.0-py3-none-any.whl'))}`);
      return true;
    });
    assert.equal(await store.has(sha(body('/files/b-1.0-py3-none-any.whl'))), false);
    assert.deepEqual(await readdir(join(store.root, 'tmp')), []);
  });

  test('many wheels download in parallel, results in order', async () => {
    const sources = Array.from({ length: 12 }, (_, i) => {
      const path = `/files/p${i}-1.0-py3-none-any.whl`;
      return { name: `p${i}`, url: `${main.origin}${path}`, filename: `p${i}-1.0-py3-none-any.whl`, hash: sha(body(path)) };
    });
    const results = await downloadWheels(sources, { store, env: {}, concurrency: 4 });
    assert.deepEqual(results.map((result) => result.digest), sources.map((source) => source.hash));
  });

  test('a private index: UV_INDEX_<NAME>_USERNAME/_PASSWORD, else a clear 401', async () => {
    const path = '/private/packages/c-1.0-py3-none-any.whl';
    const source = { name: 'c', url: `${main.origin}${path}`, filename: 'c-1.0-py3-none-any.whl', hash: sha(body(path)) };
    const indexes = [{ name: 'corp-private', url: `${main.origin}/private/simple` }];
    await assert.rejects(downloadWheel(source, { store, env: {}, indexes }), /wheel c-1\.0-py3-none-any\.whl of c: download from http:\/\/127\.0\.0\.1:\d+\/private\/packages\/c-1\.0-py3-none-any\.whl failed: HTTP 401 \(credentials: /);
    const result = await downloadWheel(source, { store, indexes, env: { UV_INDEX_CORP_PRIVATE_USERNAME: 'alice', UV_INDEX_CORP_PRIVATE_PASSWORD: 's3cret' } });
    assert.equal(result.digest, source.hash);
  });

  test('netrc credentials', async () => {
    const netrc = join(dir, 'netrc');
    await writeFile(netrc, 'machine 127.0.0.1\n  login alice\n  password s3cret\n');
    const path = '/private/packages/d-1.0-py3-none-any.whl';
    const result = await downloadWheel({ name: 'd', url: `${main.origin}${path}`, filename: 'd-1.0-py3-none-any.whl', hash: sha(body(path)) }, { store, env: { NETRC: netrc } });
    assert.equal(result.digest, sha(body(path)));
  });

  test('credentials are not sent to another host after a redirect', async () => {
    const result = await downloadWheel(
      { name: 'x', url: `${main.origin}/redirect/x.whl`, filename: 'x.whl', hash: sha(body('redirected')) },
      { store, indexes: [{ name: 'main', url: `${main.origin}/simple` }], env: { UV_INDEX_MAIN_USERNAME: 'alice', UV_INDEX_MAIN_PASSWORD: 's3cret' } },
    );
    assert.equal(result.digest, sha(body('redirected')));
    assert.deepEqual(otherAuth, [undefined]);
  });

  test('index names as environment variables, and which index a URL belongs to', async () => {
    assert.equal(indexEnvName('my-index.corp'), 'MY_INDEX_CORP');
    const auth = await credentialsFor(new URL('https://pkgs.example.com/files/e.whl'), [{ name: 'pypi', url: 'https://pypi.org/simple' }, { name: 'corp', url: 'https://pkgs.example.com/simple' }], {
      UV_INDEX_CORP_USERNAME: 'u',
      UV_INDEX_CORP_PASSWORD: 'p',
      UV_INDEX_PYPI_USERNAME: 'wrong',
      NETRC: '/nonexistent',
    });
    assert.equal(auth, `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.equal(await credentialsFor(new URL('https://files.pythonhosted.org/x.whl'), [{ name: 'corp', url: 'https://pkgs.example.com/simple' }], { NETRC: '/nonexistent' }), undefined);
  });
});
