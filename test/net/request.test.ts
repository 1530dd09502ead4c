/**
 * The request loop against real HTTP servers on 127.0.0.1 (and the fault proxy in front of one):
 * what is retried and how long it waits, timeouts, redirects and the credentials they carry.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { downloadToStore } from '../../src/net/download.js';
import { HttpStatusError, NetworkError, request, requestWith } from '../../src/net/request.js';
import { backoffMs, defaultRetryPolicy, isTransientStatus, parseRetryAfter, retryPolicy } from '../../src/net/retry.js';
import { readBody } from '../../src/net/transport.js';
import type { Digest } from '../../src/oci/digest.js';
import { BlobStore } from '../../src/oci/store.js';
import { startFaultProxy } from '../harness/fault-proxy.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

interface Origin {
  server: Server;
  port: number;
  received: Received[];
  /** http://127.0.0.1:PORT */
  url: string;
}

async function startOrigin(handler: (req: IncomingMessage, res: ServerResponse, count: number) => void): Promise<Origin> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res, received.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, port, received, url: `http://127.0.0.1:${port}` };
}

function stop(origin: Origin): Promise<void> {
  return new Promise((resolve) => {
    origin.server.closeAllConnections();
    origin.server.close(() => resolve());
  });
}

const fast = { baseDelayMs: 10, maxDelayMs: 40 };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const sha = (bytes: Buffer): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

test('the policy: which statuses are transient, Retry-After in seconds or as a date, backoff within its bounds', () => {
  for (const status of [408, 429, 500, 502, 503, 504, 599]) assert.equal(isTransientStatus(status), true, String(status));
  for (const status of [200, 301, 400, 401, 403, 404, 409, 416, 501]) assert.equal(isTransientStatus(status), false, String(status));
  assert.equal(parseRetryAfter('2', 60_000), 2000);
  assert.equal(parseRetryAfter('3600', 60_000), 60_000);
  const inFive = parseRetryAfter(new Date(Date.now() + 5000).toUTCString(), 60_000)!;
  assert.ok(inFive > 3000 && inFive <= 5000, String(inFive));
  assert.equal(parseRetryAfter(new Date(Date.now() - 5000).toUTCString(), 60_000), 0);
  assert.equal(parseRetryAfter('soon', 60_000), undefined);
  assert.equal(parseRetryAfter(undefined, 60_000), undefined);
  const policy = retryPolicy({ baseDelayMs: 100, maxDelayMs: 1000 });
  for (let attempt = 1; attempt <= 12; attempt++) {
    const ceiling = Math.min(1000, 100 * 2 ** (attempt - 1));
    for (let i = 0; i < 50; i++) {
      const delay = backoffMs(policy, attempt);
      assert.ok(delay >= ceiling / 2 && delay <= ceiling, `attempt ${attempt}: ${delay} outside [${ceiling / 2}, ${ceiling}]`);
    }
  }
  assert.equal(retryPolicy(false).attempts, 1);
  assert.equal(retryPolicy(undefined).attempts, defaultRetryPolicy.attempts);
});

describe('retries', () => {
  test('Retry-After in seconds is waited for', async () => {
    const origin = await startOrigin((_req, res, count) => {
      if (count === 1) res.writeHead(503, { 'retry-after': '1' }).end('busy');
      else res.end('ok');
    });
    try {
      const started = Date.now();
      const response = await request({ url: `${origin.url}/busy`, retry: fast });
      const elapsed = Date.now() - started;
      assert.equal(response.status, 200);
      assert.equal((await readBody(response, 100)).toString(), 'ok');
      assert.equal(response.attempts, 2);
      assert.equal(origin.received.length, 2);
      assert.ok(elapsed >= 950, `waited ${elapsed} ms, less than Retry-After`);
    } finally {
      await stop(origin);
    }
  });

  test('Retry-After as an HTTP date is waited for, and a long one is cut to maxRetryAfterMs', async () => {
    const origin = await startOrigin((req, res, count) => {
      if (count === 1) res.writeHead(429, { 'retry-after': new Date(Date.now() + 2000).toUTCString() }).end();
      else if (req.url === '/long' && count === 3) res.writeHead(503, { 'retry-after': '3600' }).end();
      else res.end('ok');
    });
    try {
      let started = Date.now();
      assert.equal((await request({ url: `${origin.url}/date`, retry: fast })).status, 200);
      // An HTTP date has whole seconds: the wait is between one and two seconds.
      assert.ok(Date.now() - started >= 950, `waited ${Date.now() - started} ms`);
      started = Date.now();
      assert.equal((await request({ url: `${origin.url}/long`, retry: { ...fast, maxRetryAfterMs: 200 } })).status, 200);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 190 && elapsed < 2000, `waited ${elapsed} ms for a Retry-After of an hour cut to 200 ms`);
    } finally {
      await stop(origin);
    }
  });

  test('backoff is bounded: a server that keeps failing gets `attempts` tries, then its answer is handed back', async () => {
    const origin = await startOrigin((_req, res) => res.writeHead(502).end('bad gateway'));
    try {
      const started = Date.now();
      const response = await request({ url: `${origin.url}/down`, retry: { attempts: 5, baseDelayMs: 40, maxDelayMs: 80 } });
      const elapsed = Date.now() - started;
      assert.equal(response.status, 502);
      assert.equal(response.attempts, 5);
      assert.equal(origin.received.length, 5);
      // Waits: [20,40] + [40,80] + 2 × [40,80]: at least 140 ms, at most 280 ms (plus the requests).
      assert.ok(elapsed >= 140, `${elapsed} ms`);
      assert.ok(elapsed < 1500, `${elapsed} ms`);
      assert.ok(response.retryDelayMs !== undefined && response.retryDelayMs <= 80);
    } finally {
      await stop(origin);
    }
  });

  test('statuses that are not transient are not tried again', async () => {
    const statuses = [400, 401, 403, 404, 410, 501];
    const origin = await startOrigin((req, res) => res.writeHead(Number(req.url!.slice(1))).end());
    try {
      for (const status of statuses) {
        const response = await request({ url: `${origin.url}/${status}`, retry: fast });
        assert.equal(response.status, status);
        assert.equal(response.attempts, 1);
      }
      assert.deepEqual(origin.received.map((entry) => entry.url), statuses.map((status) => `/${status}`));
    } finally {
      await stop(origin);
    }
  });

  test('a dropped connection is tried again (fault proxy); retry: false hands the failure over at once', async () => {
    const origin = await startOrigin((_req, res) => res.end('through'));
    const proxy = await startFaultProxy(`127.0.0.1:${origin.port}`, [{ path: /^\/flaky$/, times: 2, action: { kind: 'drop' } }]);
    try {
      const response = await request({ url: `http://${proxy.host}/flaky`, retry: fast });
      assert.equal((await readBody(response, 100)).toString(), 'through');
      assert.equal(response.attempts, 3);
      assert.equal(proxy.stats.faults, 2);

      proxy.setRules([{ path: /^\/once$/, action: { kind: 'drop' } }]);
      await assert.rejects(request({ url: `http://${proxy.host}/once`, retry: false }), (error: unknown) => {
        assert.ok(error instanceof NetworkError);
        assert.equal(error.transient, true);
        assert.match(error.message, new RegExp(`^GET http://${proxy.host}/once: .*(ECONNRESET|socket hang up)`));
        return true;
      });
    } finally {
      await proxy.stop();
      await stop(origin);
    }
  });

  test('nothing listening: a few tries, then one line naming the URL', async () => {
    const origin = await startOrigin(() => undefined);
    const url = `${origin.url}/nothing`;
    await stop(origin);
    const started = Date.now();
    await assert.rejects(request({ url, retry: { ...fast, connectionRefusedAttempts: 2 } }), (error: unknown) => {
      assert.ok(error instanceof NetworkError);
      assert.equal(error.code, 'ECONNREFUSED');
      assert.equal(error.message.split('\n').length, 1);
      assert.ok(error.message.startsWith(`GET ${url}: `), error.message);
      return true;
    });
    assert.ok(Date.now() - started < 2000);
  });

  test('a body cut midway: the download starts over, and the progress of the failed try is taken back', async () => {
    const payload = Buffer.alloc(256 * 1024, 7);
    const origin = await startOrigin((_req, res, count) => {
      res.writeHead(200, { 'content-length': payload.length });
      if (count === 1) {
        res.write(payload.subarray(0, 100_000));
        setTimeout(() => res.socket?.destroy(), 20);
      } else res.end(payload);
    });
    const dir = await mkdtemp(join(tmpdir(), 'uvimage-net-'));
    try {
      const store = await BlobStore.open(dir);
      let reported = 0;
      const blob = await downloadToStore({ url: `${origin.url}/blob`, retry: fast }, { store, digest: sha(payload), what: 'the blob', onBytes: (n) => (reported += n) });
      assert.equal(blob.digest, sha(payload));
      assert.equal(origin.received.length, 2);
      assert.equal(reported, payload.length);
      assert.deepEqual(await readdir(join(dir, 'tmp')), []);
    } finally {
      await stop(origin);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a download whose bytes do not match is refused once, not tried again, and stores nothing', async () => {
    const origin = await startOrigin((_req, res) => res.end('not what the lock says'));
    const dir = await mkdtemp(join(tmpdir(), 'uvimage-net-'));
    try {
      const store = await BlobStore.open(dir);
      const expected = sha(Buffer.from('what the lock says'));
      await assert.rejects(downloadToStore({ url: `${origin.url}/x`, retry: fast }, { store, digest: expected, what: 'x' }), /x: digest mismatch: expected/);
      assert.equal(origin.received.length, 1);
      assert.equal(await store.has(expected), false);
    } finally {
      await stop(origin);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('timeouts', () => {
  test('an idle connection fails with ETIMEDOUT after idleTimeoutMs, each try', async () => {
    const origin = await startOrigin(() => undefined); // never answers
    try {
      const started = Date.now();
      await assert.rejects(request({ url: `${origin.url}/silent`, idleTimeoutMs: 150, retry: { ...fast, attempts: 2 } }), (error: unknown) => {
        assert.ok(error instanceof NetworkError);
        assert.equal(error.code, 'ETIMEDOUT');
        assert.match(error.message, /: no data for \d+ s/);
        return true;
      });
      const elapsed = Date.now() - started;
      assert.equal(origin.received.length, 2);
      assert.ok(elapsed >= 290 && elapsed < 3000, `${elapsed} ms`);
    } finally {
      await stop(origin);
    }
  });

  test('a trickle that is never idle still ends at timeoutMs, the body read included', async () => {
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write('.'), 20);
      res.on('close', () => clearInterval(timer));
    });
    try {
      const started = Date.now();
      await assert.rejects(
        requestWith({ url: `${origin.url}/trickle`, timeoutMs: 300, idleTimeoutMs: 5000, retry: { ...fast, attempts: 2 } }, (response) => readBody(response, 1 << 20)),
        (error: unknown) => {
          assert.ok(error instanceof NetworkError);
          assert.equal(error.code, 'ETIMEDOUT');
          assert.match(error.message, /not done within/);
          return true;
        },
      );
      const elapsed = Date.now() - started;
      assert.equal(origin.received.length, 2);
      assert.ok(elapsed >= 590 && elapsed < 3000, `${elapsed} ms`);
    } finally {
      await stop(origin);
    }
  });
});

describe('redirects and credentials', () => {
  let first: Origin;
  let second: Origin;

  before(async () => {
    second = await startOrigin((_req, res) => res.end('second'));
    first = await startOrigin((req, res) => {
      const path = req.url ?? '';
      if (path.startsWith('/elsewhere')) res.writeHead(302, { location: `http://localhost:${second.port}/landed` }).end();
      else if (path.startsWith('/other-port')) res.writeHead(307, { location: `http://127.0.0.1:${second.port}/landed` }).end();
      else if (path.startsWith('/here')) res.writeHead(301, { location: '/landed-here' }).end();
      else if (path.startsWith('/with-own-credentials')) res.writeHead(302, { location: `http://bob:hunter2@localhost:${second.port}/landed` }).end();
      else if (path.startsWith('/post')) {
        req.resume();
        req.on('end', () => res.writeHead(303, { location: '/after-post' }).end());
      } else if (path.startsWith('/loop')) res.writeHead(302, { location: '/loop' }).end();
      else res.end('first');
    });
  });
  after(async () => {
    await stop(first);
    await stop(second);
  });

  const last = (origin: Origin) => origin.received[origin.received.length - 1]!;

  test('a redirect to another host drops Authorization, URL credentials and cookies', async () => {
    first.received.length = 0;
    second.received.length = 0;
    const url = new URL(`${first.url}/elsewhere/x.whl`);
    url.username = 'alice';
    url.password = 's3cret';
    const response = await request({ url, headers: { cookie: 'session=1' } });
    assert.equal((await readBody(response, 100)).toString(), 'second');
    // The first server got the credentials as a header, not in the request line.
    assert.equal(first.received[0]!.headers.authorization, basic('alice', 's3cret'));
    assert.equal(first.received[0]!.url, '/elsewhere/x.whl');
    assert.equal(first.received[0]!.headers.cookie, 'session=1');
    // The second one got none of them.
    assert.equal(second.received.length, 1);
    assert.equal(second.received[0]!.headers.authorization, undefined);
    assert.equal(second.received[0]!.headers.cookie, undefined);
    assert.equal(second.received[0]!.headers.host, `localhost:${second.port}`);
  });

  test('the same host on another port is another origin: the explicit Authorization stays behind', async () => {
    second.received.length = 0;
    await request({ url: `${first.url}/other-port`, authorization: 'Bearer token-for-first' });
    assert.equal(last(first).headers.authorization, 'Bearer token-for-first');
    assert.equal(second.received.length, 1);
    assert.equal(second.received[0]!.headers.authorization, undefined);
  });

  test('a redirect on the same origin keeps the credentials', async () => {
    first.received.length = 0;
    const response = await request({ url: `${first.url}/here`, headers: { Authorization: 'Bearer same-origin' } });
    assert.equal((await readBody(response, 100)).toString(), 'first');
    assert.deepEqual(first.received.map((entry) => [entry.url, entry.headers.authorization]), [
      ['/here', 'Bearer same-origin'],
      ['/landed-here', 'Bearer same-origin'],
    ]);
  });

  test('credentials in a Location are that location\'s own', async () => {
    second.received.length = 0;
    await request({ url: `${first.url}/with-own-credentials`, authorization: 'Bearer for-first' });
    assert.equal(second.received[0]!.headers.authorization, basic('bob', 'hunter2'));
    assert.equal(second.received[0]!.url, '/landed');
  });

  test('a 303 after a POST is a GET without the body; too many redirects are one clear line', async () => {
    first.received.length = 0;
    const response = await request({ method: 'POST', url: `${first.url}/post`, body: Buffer.from('payload'), followRedirects: true, headers: { 'content-type': 'text/plain' } });
    assert.equal(response.status, 200);
    assert.deepEqual(first.received.map((entry) => [entry.method, entry.url, entry.headers['content-type']]), [
      ['POST', '/post', 'text/plain'],
      ['GET', '/after-post', undefined],
    ]);
    const url = new URL(`${first.url}/loop`);
    url.password = 'never-printed';
    url.username = 'someone';
    await assert.rejects(request({ url }), (error: unknown) => {
      assert.ok(error instanceof NetworkError);
      assert.equal(error.message, `GET http://127.0.0.1:${first.port}/loop: more than 10 redirects`);
      return true;
    });
  });

  test('a status error names the URL without its credentials', async () => {
    const origin = await startOrigin((_req, res) => res.writeHead(404).end());
    try {
      await assert.rejects(
        downloadToStore({ url: `http://user:pa55@127.0.0.1:${origin.port}/gone.whl` }, { store: await BlobStore.open(await mkdtemp(join(tmpdir(), 'uvimage-net-'))), what: 'gone' }),
        (error: unknown) => {
          assert.ok(error instanceof HttpStatusError);
          assert.equal(error.status, 404);
          assert.equal(error.message, `GET http://127.0.0.1:${origin.port}/gone.whl: HTTP 404`);
          assert.doesNotMatch(error.message, /pa55|user/);
          return true;
        },
      );
    } finally {
      await stop(origin);
    }
  });
});
