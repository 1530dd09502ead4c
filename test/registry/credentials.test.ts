import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { explicitCredentialsFromEnv, resolveCredential } from '../../src/registry/credentials.js';

let root: string;
let bin: string;
let helperLog: string;
let counter = 0;

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** A fresh directory holding config.json with the given content (an object, or raw text). */
async function configDir(content: unknown): Promise<string> {
  const dir = join(root, `config-${++counter}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

function envFor(dockerConfig: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { DOCKER_CONFIG: dockerConfig, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...extra };
}

async function helperCalls(): Promise<string[]> {
  try {
    return (await readFile(helperLog, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

async function clearHelperLog(): Promise<void> {
  await rm(helperLog, { force: true });
}

async function writeHelper(name: string, body: string): Promise<void> {
  const file = join(bin, `docker-credential-${name}`);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'uvimage-credentials-'));
  bin = join(root, 'bin');
  helperLog = join(root, 'helper.log');
  await mkdir(bin);
  // A credential helper speaking the docker-credential-helpers protocol: `get` reads the server
  // URL on stdin and prints {ServerURL, Username, Secret}, or fails with "credentials not found".
  await writeHelper(
    'fake',
    `[ "$1" = get ] || { echo "unsupported action $1" >&2; exit 2; }
read -r server
echo "fake $server" >> '${join(root, 'helper.log')}'
case "$server" in
  ghcr.io) printf '{"ServerURL":"ghcr.io","Username":"helper-user","Secret":"helper-pass"}\\n' ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"hub-refresh-token"}' "$server" ;;
  https://marked.example) printf '{"Username":"marked-user","Secret":"marked-pass"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac`,
  );
  await writeHelper('broken', `read -r server\necho "keychain is locked" >&2\nexit 3`);
  await writeHelper('garbage', `read -r server\necho "this is not json"`);
  await writeHelper('slow', `sleep 5`);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveCredential: auths', () => {
  it('decodes base64 auth under a URL-shaped key', async () => {
    const dir = await configDir({ auths: { 'https://myreg.example:5000': { auth: b64('alice:s3cr:et') } } });
    assert.deepEqual(await resolveCredential('myreg.example:5000', { env: envFor(dir) }), {
      kind: 'basic',
      username: 'alice',
      password: 's3cr:et',
    });
    // A different port is a different registry.
    assert.equal(await resolveCredential('myreg.example:5001', { env: envFor(dir) }), undefined);
    assert.equal(await resolveCredential('myreg.example', { env: envFor(dir) }), undefined);
  });

  it('normalises keys with a scheme and path, case-insensitively, preferring an exact key', async () => {
    const dir = await configDir({
      auths: {
        'http://Reg.Example/v2/': { auth: b64('normalised:pw1') },
        'other.example': { username: 'bob', password: 'pw2' },
        'https://exact.example/v1/': { username: 'fromurl', password: 'x' },
        'exact.example': { username: 'exact', password: 'y' },
      },
    });
    const env = envFor(dir);
    assert.deepEqual(await resolveCredential('reg.example', { env }), { kind: 'basic', username: 'normalised', password: 'pw1' });
    assert.deepEqual(await resolveCredential('other.example', { env }), { kind: 'basic', username: 'bob', password: 'pw2' });
    assert.deepEqual(await resolveCredential('exact.example', { env }), { kind: 'basic', username: 'exact', password: 'y' });
    assert.equal(await resolveCredential('example', { env }), undefined);
  });

  it('returns an identity token, with the username from auth when present', async () => {
    const dir = await configDir({
      auths: {
        'acr.example.io': { auth: b64('00000000-0000-0000-0000-000000000000:'), identitytoken: 'refresh-1' },
        'bare.example.io': { identitytoken: 'refresh-2' },
      },
    });
    const env = envFor(dir);
    assert.deepEqual(await resolveCredential('acr.example.io', { env }), {
      kind: 'identity-token',
      username: '00000000-0000-0000-0000-000000000000',
      token: 'refresh-1',
    });
    assert.deepEqual(await resolveCredential('bare.example.io', { env }), { kind: 'identity-token', token: 'refresh-2' });
  });

  it('matches Docker Hub\'s https://index.docker.io/v1/ key for every Docker Hub name', async () => {
    const dir = await configDir({
      auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') }, 'ghcr.io': { auth: b64('gh:pw') } },
    });
    const env = envFor(dir);
    const hub = { kind: 'basic', username: 'hubuser', password: 'hubpass' };
    assert.deepEqual(await resolveCredential('registry-1.docker.io', { env }), hub);
    assert.deepEqual(await resolveCredential('docker.io', { env }), hub);
    assert.deepEqual(await resolveCredential('index.docker.io', { env }), hub);
    assert.equal(await resolveCredential('quay.io', { env }), undefined);
    assert.equal(await resolveCredential('docker.example', { env }), undefined);
  });

  it('matches a bare docker.io key for Docker Hub too', async () => {
    const dir = await configDir({ auths: { 'docker.io': { username: 'u', password: 'p' } } });
    assert.deepEqual(await resolveCredential('registry-1.docker.io', { env: envFor(dir) }), { kind: 'basic', username: 'u', password: 'p' });
  });

  it('treats an empty entry as no credential', async () => {
    const dir = await configDir({ auths: { 'ghcr.io': {} } });
    assert.equal(await resolveCredential('ghcr.io', { env: envFor(dir) }), undefined);
  });
});

describe('resolveCredential: credential helpers', () => {
  it('runs credHelpers[registry] with the registry on stdin', async () => {
    await clearHelperLog();
    const dir = await configDir({ credHelpers: { 'ghcr.io': 'fake' }, auths: { 'ghcr.io': { auth: b64('stale:stale') } } });
    assert.deepEqual(await resolveCredential('ghcr.io', { env: envFor(dir) }), {
      kind: 'basic',
      username: 'helper-user',
      password: 'helper-pass',
    });
    assert.deepEqual(await helperCalls(), ['fake ghcr.io']);
  });

  it('passes Docker Hub\'s v1 URL and maps Username <token> to an identity token', async () => {
    await clearHelperLog();
    const dir = await configDir({ credHelpers: { 'https://index.docker.io/v1/': 'fake' } });
    assert.deepEqual(await resolveCredential('registry-1.docker.io', { env: envFor(dir) }), {
      kind: 'identity-token',
      token: 'hub-refresh-token',
    });
    assert.deepEqual(await helperCalls(), ['fake https://index.docker.io/v1/']);
  });

  it('returns undefined when the helper has no credentials for the host', async () => {
    await clearHelperLog();
    const dir = await configDir({ credHelpers: { 'quay.io': 'fake' } });
    assert.equal(await resolveCredential('quay.io', { env: envFor(dir) }), undefined);
    assert.deepEqual(await helperCalls(), ['fake quay.io']);
  });

  it('uses credsStore when nothing more specific matches', async () => {
    await clearHelperLog();
    const dir = await configDir({ credsStore: 'fake', auths: { 'ghcr.io': {} } });
    const env = envFor(dir);
    assert.deepEqual(await resolveCredential('ghcr.io', { env }), { kind: 'basic', username: 'helper-user', password: 'helper-pass' });
    assert.equal(await resolveCredential('unknown.example', { env }), undefined);
    assert.deepEqual(await helperCalls(), ['fake ghcr.io', 'fake unknown.example']);
  });

  it('asks credsStore for the exact address docker login recorded, then the bare host', async () => {
    await clearHelperLog();
    const dir = await configDir({ credsStore: 'fake', auths: { 'https://marked.example': {} } });
    assert.deepEqual(await resolveCredential('marked.example', { env: envFor(dir) }), {
      kind: 'basic',
      username: 'marked-user',
      password: 'marked-pass',
    });
    assert.deepEqual(await helperCalls(), ['fake https://marked.example']);
  });

  it('prefers stored auths over credsStore', async () => {
    await clearHelperLog();
    const dir = await configDir({ credsStore: 'fake', auths: { 'ghcr.io': { username: 'file', password: 'pw' } } });
    assert.deepEqual(await resolveCredential('ghcr.io', { env: envFor(dir) }), { kind: 'basic', username: 'file', password: 'pw' });
    assert.deepEqual(await helperCalls(), []);
  });

  it('reports a missing helper by name', async () => {
    const dir = await configDir({ credHelpers: { 'ghcr.io': 'notinstalled' } });
    await assert.rejects(resolveCredential('ghcr.io', { env: envFor(dir) }), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /docker-credential-notinstalled/);
      assert.match(error.message, /not found on PATH/);
      assert.ok(error.message.includes(join(dir, 'config.json')));
      return true;
    });
  });

  it('reports a failing helper with its output', async () => {
    const dir = await configDir({ credsStore: 'broken' });
    await assert.rejects(resolveCredential('ghcr.io', { env: envFor(dir) }), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /docker-credential-broken .*failed for ghcr.io: keychain is locked/);
      return true;
    });
  });

  it('reports a helper that prints something other than JSON', async () => {
    const dir = await configDir({ credHelpers: { 'ghcr.io': 'garbage' } });
    await assert.rejects(resolveCredential('ghcr.io', { env: envFor(dir) }), /docker-credential-garbage .*other than JSON/);
  });

  it('times a hung helper out', async () => {
    const dir = await configDir({ credHelpers: { 'ghcr.io': 'slow' } });
    const started = Date.now();
    await assert.rejects(
      resolveCredential('ghcr.io', { env: envFor(dir), helperTimeoutMs: 300 }),
      /docker-credential-slow .*did not answer within/,
    );
    assert.ok(Date.now() - started < 4000);
  });

  it('refuses helper names that are paths', async () => {
    const dir = await configDir({ credHelpers: { 'ghcr.io': '../../bin/sh' } });
    await assert.rejects(resolveCredential('ghcr.io', { env: envFor(dir) }), /not a valid helper name/);
  });
});

describe('resolveCredential: files and precedence', () => {
  it('gives explicit credentials first', async () => {
    const dir = await configDir({ auths: { 'ghcr.io': { auth: b64('file:pw') } } });
    assert.deepEqual(await resolveCredential('ghcr.io', { env: envFor(dir), explicit: { username: 'flag', password: 'fpw' } }), {
      kind: 'basic',
      username: 'flag',
      password: 'fpw',
    });
  });

  it('rejects malformed JSON naming the file', async () => {
    const dir = await configDir('{"auths": {"ghcr.io": ');
    await assert.rejects(resolveCredential('ghcr.io', { env: envFor(dir) }), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.ok(error.message.includes(join(dir, 'config.json')), error.message);
      assert.match(error.message, /not valid JSON/);
      return true;
    });
  });

  it('rejects a config of the wrong shape naming the file', async () => {
    for (const content of ['[]', '{"auths": []}', '{"auths": {"x": "y"}}', '{"credHelpers": {"x": 1}}', '{"credsStore": 5}']) {
      const dir = await configDir(content);
      await assert.rejects(resolveCredential('x', { env: envFor(dir) }), (error: unknown) => {
        assert.ok(error instanceof UserError, content);
        assert.match(error.message, /malformed/);
        assert.ok(error.message.includes(join(dir, 'config.json')));
        return true;
      });
    }
  });

  it('rejects an auth that is not base64 of user:password', async () => {
    const dir = await configDir({ auths: { 'ghcr.io': { auth: b64('no-colon-here') } } });
    await assert.rejects(resolveCredential('ghcr.io', { env: envFor(dir) }), /"auth" for "ghcr.io" is not base64/);
  });

  it('returns undefined without any config file', async () => {
    const missing = join(root, 'does-not-exist');
    assert.equal(await resolveCredential('ghcr.io', { env: envFor(missing) }), undefined);
  });

  it('defaults to ~/.docker/config.json', async () => {
    const home = join(root, `home-${++counter}`);
    await mkdir(join(home, '.docker'), { recursive: true });
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: b64('home:pw') } } }));
    const env = { HOME: home, PATH: process.env.PATH };
    assert.deepEqual(await resolveCredential('ghcr.io', { env }), { kind: 'basic', username: 'home', password: 'pw' });
  });

  it('falls back to $REGISTRY_AUTH_FILE and then $XDG_RUNTIME_DIR/containers/auth.json', async () => {
    const dockerDir = await configDir({ auths: { 'ghcr.io': { auth: b64('docker:pw') } } });
    const authFile = join(root, `auth-${++counter}.json`);
    await writeFile(authFile, JSON.stringify({ auths: { 'ghcr.io': { auth: b64('regauth:pw') }, 'quay.io': { auth: b64('regauth:pw') } } }));
    const runtime = join(root, `runtime-${++counter}`);
    await mkdir(join(runtime, 'containers'), { recursive: true });
    await writeFile(
      join(runtime, 'containers', 'auth.json'),
      JSON.stringify({ auths: { 'quay.io': { auth: b64('podman:pw') }, 'registry.example': { auth: b64('podman:pw') } } }),
    );
    const env = envFor(dockerDir, { REGISTRY_AUTH_FILE: authFile, XDG_RUNTIME_DIR: runtime });
    assert.deepEqual(await resolveCredential('ghcr.io', { env }), { kind: 'basic', username: 'docker', password: 'pw' });
    assert.deepEqual(await resolveCredential('quay.io', { env }), { kind: 'basic', username: 'regauth', password: 'pw' });
    assert.deepEqual(await resolveCredential('registry.example', { env }), { kind: 'basic', username: 'podman', password: 'pw' });
    assert.equal(await resolveCredential('other.example', { env }), undefined);
  });

  it('uses namespace-scoped containers-auth.json keys only for repositories under them', async () => {
    const dir = await configDir({
      auths: {
        'quay.io/org': { auth: b64('org:pw') },
        'quay.io/org/team': { auth: b64('team:pw') },
        'quay.io': { auth: b64('registry-wide:pw') },
      },
    });
    const env = envFor(dir);
    const who = async (repository?: string) => {
      const credential = await resolveCredential('quay.io', repository === undefined ? { env } : { env, repository });
      return credential?.kind === 'basic' ? credential.username : undefined;
    };
    assert.equal(await who(), 'registry-wide');
    assert.equal(await who('org/app'), 'org');
    assert.equal(await who('org/team/app'), 'team');
    assert.equal(await who('organisation/app'), 'registry-wide');
    assert.equal(await who('other/app'), 'registry-wide');
  });
});

describe('explicitCredentialsFromEnv', () => {
  it('needs both variables', () => {
    assert.equal(explicitCredentialsFromEnv({}), undefined);
    assert.deepEqual(explicitCredentialsFromEnv({ UVIMAGE_REGISTRY_USERNAME: 'u', UVIMAGE_REGISTRY_PASSWORD: 'p' }), {
      username: 'u',
      password: 'p',
    });
    assert.throws(() => explicitCredentialsFromEnv({ UVIMAGE_REGISTRY_USERNAME: 'u' }), UserError);
    assert.throws(() => explicitCredentialsFromEnv({ UVIMAGE_REGISTRY_PASSWORD: 'p' }), /UVIMAGE_REGISTRY_USERNAME is not/);
  });
});
