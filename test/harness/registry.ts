/**
 * Real registries for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with
 * filesystem storage in a temp dir, optionally behind htpasswd (bcrypt, made with
 * `htpasswd -Bbn`) or token auth (a token server from token-server.ts beside it).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTokenServer, type TokenServer } from './token-server.js';

const run = promisify(execFile);

export const registryBinary = '/usr/bin/docker-registry';

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  /** Username → password for htpasswd or token auth; default { uvimage: 'secret-pass' }. */
  users?: Record<string, string>;
  /** Token auth: identity (refresh) token → username. */
  identityTokens?: Record<string, string>;
  /** Token auth: token lifetime in seconds. */
  tokenLifetimeSeconds?: number;
  /** Token auth: users whose tokens grant `pull` only. */
  readOnlyUsers?: string[];
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, as used in references. */
  host: string;
  port: number;
  /** Temp dir holding config, storage and auth files. */
  dir: string;
  users: Record<string, string>;
  tokenServer?: TokenServer;
  stop(): Promise<void>;
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-registry-'));
  const users = options.users ?? { uvimage: 'secret-pass' };
  let tokenServer: TokenServer | undefined;
  let authSection = '';
  if (options.auth === 'htpasswd') {
    const lines: string[] = [];
    for (const [user, password] of Object.entries(users)) {
      const { stdout } = await run('htpasswd', ['-Bbn', user, password]);
      lines.push(stdout.trim());
    }
    const path = join(dir, 'htpasswd');
    await writeFile(path, lines.join('\n') + '\n');
    authSection = `auth:\n  htpasswd:\n    realm: uvimage-test\n    path: ${path}\n`;
  } else if (options.auth === 'token') {
    tokenServer = await startTokenServer({
      dir,
      users,
      identityTokens: options.identityTokens,
      service: 'uvimage-test-registry',
      issuer: 'uvimage-test-issuer',
      lifetimeSeconds: options.tokenLifetimeSeconds,
      readOnlyUsers: options.readOnlyUsers,
    });
    authSection =
      `auth:\n  token:\n    realm: ${tokenServer.realm}\n    service: ${tokenServer.service}\n` +
      `    issuer: ${tokenServer.issuer}\n    rootcertbundle: ${tokenServer.certPath}\n`;
  }

  // The port is chosen, released and handed to the registry; retry on the rare race.
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(dir, 'data')}`,
        '  delete:',
        '    enabled: true',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '  secret: uvimage-test-secret',
        'health:',
        '  storagedriver:',
        '    enabled: false',
        authSection,
      ].join('\n'),
    );
    const child = spawn(registryBinary, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    try {
      await waitForServer('docker-registry', { port, path: '/v2/', ready: [200, 401] }, child, () => stderr);
    } catch (error) {
      await killChild(child);
      if (tries < 2 && /address already in use/.test(stderr)) continue;
      await tokenServer?.stop();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    let stopped = false;
    return {
      host: `127.0.0.1:${port}`,
      port,
      dir,
      users,
      ...(tokenServer ? { tokenServer } : {}),
      async stop() {
        if (stopped) return;
        stopped = true;
        await killChild(child);
        await tokenServer?.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * Waits until a server the harness started answers GET `path` on 127.0.0.1:`port` with one of
 * `ready` (e.g. 401 for one that wants credentials); fails early if the process exits.
 */
export async function waitForServer(
  what: string,
  target: { port: number; path: string; ready: number[] },
  child: ChildProcess,
  output: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what} exited at start: ${output().trim()}`);
    const status = await new Promise<number | undefined>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: target.port, path: target.path, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(undefined));
      req.setTimeout(1000, () => req.destroy());
    });
    if (status !== undefined && target.ready.includes(status)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} did not answer on 127.0.0.1:${target.port} within ${timeoutMs / 1000} s: ${output().trim()}`);
}

/** Stops a server the harness started: SIGTERM, SIGKILL after 5 s. */
export async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
