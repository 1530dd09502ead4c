/**
 * Authentication against real registries: htpasswd (Basic) and token (Bearer, with a token
 * server whose JWTs distribution verifies), right and wrong credentials, token reuse, identity
 * tokens, refresh after a 401, and blob redirects that must not carry credentials.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UserError } from '../../src/errors.js';
import { AuthState } from '../../src/registry/auth.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pullBaseImage } from '../../src/registry/pull.js';
import { RegistrySink } from '../../src/registry/push.js';
import { startFaultProxy, type FaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { amd64, countingBlobSource, fastRetry, makeImage, makeLayer, sinkContext, tempDir, tempStore, type TempStore } from './helpers.js';

let local: TempStore;
let emptyHome: { dir: string; cleanup(): Promise<void> };
/** An environment with no Docker or containers auth files, so only explicit credentials count. */
let noAuthEnv: NodeJS.ProcessEnv;

before(async () => {
  local = await tempStore();
  emptyHome = await tempDir();
  noAuthEnv = { HOME: emptyHome.dir, PATH: process.env.PATH };
});

after(async () => {
  await local?.cleanup();
  await emptyHome?.cleanup();
});

describe('htpasswd (Basic) registry', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  const user = 'uvimage';
  const password = 'secret-pass';

  before(async () => {
    registry = await startRegistry({ auth: 'htpasswd', users: { [user]: password } });
    proxy = await startFaultProxy(registry.host, [], {
      storageAuthorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
    });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  test('push and pull with the right credentials', async () => {
    const { store } = local;
    const layer = await makeLayer(store, { 'basic.txt': 'basic auth' });
    const image = makeImage({ layers: [layer] });
    const ref = `${registry.host}/me/app:1`;
    const options = { retry: fastRetry, env: noAuthEnv, credentials: { [registry.host]: { username: user, password } } };
    const result = await new RegistrySink([ref], options).write({ kind: 'image', image }, sinkContext(countingBlobSource(store)));
    assert.equal(result.details!.uploadedBlobs, 2);

    const pulled = await tempStore();
    try {
      const base = await pullBaseImage(ref, amd64, pulled.store, options);
      assert.equal(base.manifestDigest, image.manifest.descriptor.digest);
    } finally {
      await pulled.cleanup();
    }
  });

  test('credentials from a Docker config.json are used', async () => {
    const config = await tempDir();
    try {
      await writeFile(
        join(config.dir, 'config.json'),
        JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }),
      );
      const client = new RegistryClient({ retry: fastRetry, env: { DOCKER_CONFIG: config.dir, HOME: emptyHome.dir } });
      const pulled = await tempStore();
      try {
        const base = await pullBaseImage(`${registry.host}/me/app:1`, amd64, pulled.store, { client });
        assert.equal(base.layers.length, 1);
      } finally {
        await pulled.cleanup();
      }
    } finally {
      await config.cleanup();
    }
  });

  test('wrong credentials: UserError naming the registry, repository and 401', async () => {
    const { store } = local;
    const image = makeImage({ layers: [await makeLayer(store, { 'wrong.txt': 'x' })] });
    await assert.rejects(
      new RegistrySink([`${registry.host}/me/app:2`], {
        retry: fastRetry,
        env: noAuthEnv,
        credentials: { [registry.host]: { username: user, password: 'wrong' } },
      }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store))),
      (error: unknown) => {
        assert.ok(error instanceof UserError);
        assert.match(error.message, new RegExp(`^registry ${registry.host} refused the credentials for me/app \\(401\\)`));
        assert.ok(!error.message.includes('\n'));
        return true;
      },
    );
  });

  test('no credentials: UserError saying none were found', async () => {
    const pulled = await tempStore();
    try {
      await assert.rejects(pullBaseImage(`${registry.host}/me/app:1`, amd64, pulled.store, { retry: fastRetry, env: noAuthEnv }), (error: unknown) => {
        assert.ok(error instanceof UserError);
        assert.match(error.message, new RegExp(`^registry ${registry.host} requires authentication for me/app \\(401\\) and no credentials were found`));
        return true;
      });
    } finally {
      await pulled.cleanup();
    }
  });

  test('a blob download redirected to storage is followed without the Authorization header', async () => {
    proxy.setRules([{ method: 'GET', path: /\/blobs\/sha256:/, action: { kind: 'redirect-to-storage' } }]);
    proxy.resetStats();
    const pulled = await tempStore();
    try {
      const client = new RegistryClient({ retry: fastRetry, env: noAuthEnv, credentials: { [proxy.host]: { username: user, password } } });
      const base = await pullBaseImage(`${proxy.host}/me/app:1`, amd64, pulled.store, { client });
      await countingBlobSource(pulled.store, client).ensureLayer(base.layers[0]!);
      assert.ok(await pulled.store.hasIntact(base.layers[0]!.descriptor.digest));
      const redirected = proxy.log.filter((entry) => entry.fault === 'redirect-to-storage');
      assert.equal(redirected.length, 2); // the config and the layer
      assert.ok(redirected.every((entry) => entry.authorization), 'the registry got the credentials');
      assert.equal(proxy.storageLog.length, 2);
      assert.ok(proxy.storageLog.every((entry) => !entry.authorization), 'the storage server did not');
    } finally {
      proxy.setRules([]);
      await pulled.cleanup();
    }
  });
});

describe('token (Bearer) registry', () => {
  let registry: TestRegistry;
  const user = 'tokenuser';
  const password = 'token-pass';

  before(async () => {
    registry = await startRegistry({ auth: 'token', users: { [user]: password }, identityTokens: { 'identity-token-1': user } });
  });
  after(async () => {
    await registry?.stop();
  });

  test('push and pull with tokens; tokens are reused across requests and clients', async () => {
    const { store } = local;
    const log = registry.tokenServer!.log;
    const layers = [await makeLayer(store, { 'a.txt': 'token a' }), await makeLayer(store, { 'b.txt': 'token b' })];
    const image = makeImage({ layers });
    const ref = `${registry.host}/tok/app:1`;
    const authState = new AuthState();
    const options = { retry: fastRetry, env: noAuthEnv, credentials: { [registry.host]: { username: user, password } }, authState };
    const client = new RegistryClient(options);
    const result = await new RegistrySink([ref], { client }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store)));
    assert.equal(result.details!.uploadedBlobs, 3);
    // Three HEADs, three uploads, a manifest PUT, all on one token.
    assert.equal(log.length, 1);
    assert.deepEqual(log[0], { method: 'GET', user, scopes: ['repository:tok/app:pull,push'], status: 200 });
    assert.equal(client.tokenRequests, 1);

    const again = await new RegistrySink([ref], { client }).write({ kind: 'image', image }, sinkContext(countingBlobSource(store)));
    assert.equal(again.bytes, 0);
    // A pull needs less than the push token grants: no new token, even from another client sharing the state.
    const pulled = await tempStore();
    try {
      const base = await pullBaseImage(ref, amd64, pulled.store, { ...options });
      await countingBlobSource(pulled.store, options).ensureLayer(base.layers[1]!);
      assert.ok(await pulled.store.hasIntact(layers[1]!.descriptor.digest));
    } finally {
      await pulled.cleanup();
    }
    assert.equal(log.length, 1);
  });

  test('a mount asks for pull access to the source repository in the same token', async () => {
    const { store } = local;
    const log = registry.tokenServer!.log;
    const baseLayer = await makeLayer(store, { 'tokbase.txt': 'base' });
    const options = { retry: fastRetry, env: noAuthEnv, credentials: { [registry.host]: { username: user, password } }, authState: new AuthState() };
    await new RegistrySink([`${registry.host}/tok/base:1`], options).write(
      { kind: 'image', image: makeImage({ layers: [baseLayer] }) },
      sinkContext(countingBlobSource(store)),
    );
    const pulled = await tempStore();
    try {
      const base = await pullBaseImage(`${registry.host}/tok/base:1`, amd64, pulled.store, options);
      const image = makeImage({ layers: [await makeLayer(pulled.store, { 'tokapp.txt': 'app' })], base });
      const source = countingBlobSource(pulled.store, options);
      const result = await new RegistrySink([`${registry.host}/tok/derived:1`], options).write({ kind: 'image', image }, sinkContext(source));
      assert.equal(result.details!.mountedBlobs, 1);
      assert.deepEqual(source.fetched, []);
      assert.ok(log.some((entry) => entry.scopes.includes('repository:tok/base:pull') && entry.scopes.includes('repository:tok/derived:pull,push')));
    } finally {
      await pulled.cleanup();
    }
  });

  test('an identity token is exchanged by a refresh_token POST', async () => {
    const log = registry.tokenServer!.log;
    const before = log.length;
    const pulled = await tempStore();
    try {
      const base = await pullBaseImage(`${registry.host}/tok/app:1`, amd64, pulled.store, {
        retry: fastRetry,
        authState: new AuthState(),
        resolveCredential: async () => ({ kind: 'identity-token', token: 'identity-token-1' }),
      });
      assert.equal(base.layers.length, 2);
      const added = log.slice(before);
      assert.equal(added.length, 1);
      assert.deepEqual(added[0], { method: 'POST', user, scopes: ['repository:tok/app:pull'], status: 200 });
    } finally {
      await pulled.cleanup();
    }
  });

  test('wrong password: the token service refuses, UserError naming 401', async () => {
    const pulled = await tempStore();
    try {
      await assert.rejects(
        pullBaseImage(`${registry.host}/tok/app:1`, amd64, pulled.store, {
          retry: fastRetry,
          env: noAuthEnv,
          authState: new AuthState(),
          credentials: { [registry.host]: { username: user, password: 'nope' } },
        }),
        (error: unknown) => {
          assert.ok(error instanceof UserError);
          assert.match(error.message, new RegExp(`^registry ${registry.host} refused the credentials for tok/app \\(401\\)`));
          return true;
        },
      );
      // Anonymous: the token grants nothing, the registry says 401 twice.
      await assert.rejects(
        pullBaseImage(`${registry.host}/tok/app:1`, amd64, pulled.store, { retry: fastRetry, env: noAuthEnv, authState: new AuthState() }),
        new RegExp(`registry ${registry.host} requires authentication for tok/app \\(401\\)`),
      );
    } finally {
      await pulled.cleanup();
    }
  });

  test('a token the registry rejects is replaced once, then the request goes through', async () => {
    const proxy = await startFaultProxy(registry.host);
    try {
      const log = registry.tokenServer!.log;
      const options = {
        retry: fastRetry,
        env: noAuthEnv,
        authState: new AuthState(),
        credentials: { [proxy.host]: { username: user, password } },
        tagTtlSeconds: 0,
      };
      const pulled = await tempStore();
      try {
        const client = new RegistryClient(options);
        await pullBaseImage(`${proxy.host}/tok/app:1`, amd64, pulled.store, { ...options, client });
        const tokensBefore = log.length;
        // The registry now rejects the (cached) token once, as it would an expired or revoked one.
        proxy.setRules([
          {
            method: 'HEAD',
            path: /\/manifests\//,
            times: 1,
            action: {
              kind: 'status',
              status: 401,
              headers: {
                'www-authenticate': `Bearer realm="${registry.tokenServer!.realm}",service="${registry.tokenServer!.service}",scope="repository:tok/app:pull",error="invalid_token"`,
              },
            },
          },
        ]);
        await pullBaseImage(`${proxy.host}/tok/app:1`, amd64, pulled.store, { ...options, client });
        assert.equal(log.length, tokensBefore + 1);
        assert.equal(proxy.log.filter((entry) => entry.fault === 'status').length, 1);
      } finally {
        await pulled.cleanup();
      }
    } finally {
      await proxy.stop();
    }
  });
});
