/**
 * A small Docker token service for tests (the "Bearer" half of registry auth), on 127.0.0.1.
 * It checks Basic credentials (GET, as `docker` does with a password) or an identity token
 * (POST refresh_token grant), and issues RS256 JWTs that distribution 2.8's token access
 * controller accepts: `iss` = its configured issuer, `aud` = its service, `nbf`/`exp` around now,
 * `access` = the requested repository scopes, and a header `x5c` holding the signing key's
 * self-signed certificate, which the registry trusts as its `rootcertbundle`
 * (registry/auth/token/token.go: VerifySigningKey tries x5c first, verifying the chain against
 * the root bundle). The key and certificate are made with openssl at test time.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServerOptions {
  /** Directory for the key and certificate. */
  dir: string;
  /** Username → password. */
  users: Record<string, string>;
  /** Identity (refresh) token → username, for the OAuth POST flow. */
  identityTokens?: Record<string, string>;
  service: string;
  issuer: string;
  /** Token lifetime in seconds; default 300. */
  lifetimeSeconds?: number;
  /** Users granted `pull` only, whatever they ask for (a read-only token). */
  readOnlyUsers?: string[];
}

export interface TokenRequestLog {
  method: string;
  user?: string;
  scopes: string[];
  status: number;
}

export interface TokenServer {
  /** The realm URL to put in the registry's config. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate path: the registry's rootcertbundle. */
  certPath: string;
  /** Every token request, in order. */
  log: TokenRequestLog[];
  stop(): Promise<void>;
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const keyPath = join(options.dir, 'token-key.pem');
  const certPath = join(options.dir, 'token-cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', keyPath, '-out', certPath, '-subj', '/CN=uvimage-test-token-issuer',
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const certPem = await readFile(certPath, 'utf8');
  const certDer = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const log: TokenRequestLog[] = [];
  const lifetime = options.lifetimeSeconds ?? 300;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: String(error) }));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token');
    const body = await readAll(req);
    let user: string | undefined;
    let denied = false;
    let scopes: string[] = [];
    if (req.method === 'GET') {
      scopes = url.searchParams.getAll('scope').flatMap((scope) => scope.split(' ')).filter(Boolean);
      const basic = parseBasic(req.headers.authorization);
      if (basic) {
        if (options.users[basic.user] === basic.password) user = basic.user;
        else denied = true;
      }
    } else if (req.method === 'POST') {
      const form = new URLSearchParams(body.toString('utf8'));
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      if (form.get('grant_type') === 'refresh_token') {
        const owner = options.identityTokens?.[form.get('refresh_token') ?? ''];
        if (owner) user = owner;
        else denied = true;
      } else if (form.get('grant_type') === 'password') {
        const name = form.get('username') ?? '';
        if (options.users[name] === form.get('password')) user = name;
        else denied = true;
      } else {
        denied = true;
      }
    } else {
      res.writeHead(405).end();
      return;
    }
    if (denied) {
      log.push({ method: req.method, scopes, status: 401 });
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    // Anonymous callers get a token with no access (as a private registry would).
    const readOnly = user !== undefined && (options.readOnlyUsers ?? []).includes(user);
    const access = user
      ? scopes
          .map(parseScope)
          .filter((scope) => scope !== undefined)
          .map((scope) => (readOnly ? { ...scope, actions: scope.actions.filter((action) => action === 'pull') } : scope))
      : [];
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(key, certDer, {
      iss: options.issuer,
      sub: user ?? '',
      aud: options.service,
      exp: now + lifetime,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    });
    log.push({ method: req.method!, ...(user ? { user } : {}), scopes, status: 200 });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: lifetime, issued_at: new Date(now * 1000).toISOString() }));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service: options.service,
    issuer: options.issuer,
    certPath,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const match = /^(repository):(.+):([a-z*,]+)$/.exec(scope);
  if (!match) return undefined;
  return { type: match[1]!, name: match[2]!, actions: match[3]!.split(',') };
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function signJwt(key: KeyObject, certDer: string, claims: Record<string, unknown>): string {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer] };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput), key);
  return `${signingInput}.${base64url(signature)}`;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
