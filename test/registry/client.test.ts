/** Registry client pieces that need no registry: challenges, scopes, the scheme rule (Retry-After: test/net). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeScopes, parseScopes, parseWwwAuthenticate, scopeString } from '../../src/registry/auth.js';
import { RegistryClient } from '../../src/registry/client.js';

test('WWW-Authenticate: Bearer with quoted params, Basic, several challenges', () => {
  assert.deepEqual(
    parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"'),
    [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/python:pull' } }],
  );
  assert.deepEqual(parseWwwAuthenticate('Basic realm="uvimage-test"'), [{ scheme: 'basic', params: { realm: 'uvimage-test' } }]);
  assert.deepEqual(
    parseWwwAuthenticate('Basic realm="a, b", Bearer realm="https://x/t", service=reg, error="insufficient_scope"'),
    [
      { scheme: 'basic', params: { realm: 'a, b' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', service: 'reg', error: 'insufficient_scope' } },
    ],
  );
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="with \\"quote\\""'), [{ scheme: 'bearer', params: { realm: 'with "quote"' } }]);
});

test('scopes: parsed from a challenge, merged per repository, written sorted', () => {
  assert.deepEqual(parseScopes('repository:me/app:pull,push repository:other:pull registry:catalog:*'), [
    { repository: 'me/app', actions: ['pull', 'push'] },
    { repository: 'other', actions: ['pull'] },
  ]);
  assert.deepEqual(
    mergeScopes([{ repository: 'b', actions: ['pull'] }], [{ repository: 'a', actions: ['push'] }, { repository: 'b', actions: ['push', 'pull'] }]),
    [
      { repository: 'a', actions: ['push'] },
      { repository: 'b', actions: ['pull', 'push'] },
    ],
  );
  assert.equal(scopeString({ repository: 'me/app', actions: ['push', 'pull'] }), 'repository:me/app:pull,push');
});

test('plain http only for loopback registries and the ones named insecure', () => {
  const client = new RegistryClient();
  assert.equal(client.baseUrl('registry.example.com').href, 'https://registry.example.com/v2/');
  assert.equal(client.baseUrl('10.0.0.5:5000').protocol, 'https:');
  assert.equal(client.baseUrl('registry-1.docker.io').protocol, 'https:');
  assert.equal(client.baseUrl('127.0.0.1:5000').href, 'http://127.0.0.1:5000/v2/');
  assert.equal(client.baseUrl('localhost:5000').protocol, 'http:');
  assert.equal(client.baseUrl('[::1]:5000').href, 'http://[::1]:5000/v2/');
  const insecure = new RegistryClient({ insecureRegistries: ['10.0.0.5:5000'] });
  assert.equal(insecure.baseUrl('10.0.0.5:5000').protocol, 'http:');
  assert.equal(insecure.baseUrl('10.0.0.5:6000').protocol, 'https:');
});
