/**
 * Registry authentication as Docker does it: a registry answers 401 with a WWW-Authenticate
 * challenge; `Basic` means send the credentials with every request, `Bearer` means get a token
 * from the realm it names (GET with Basic credentials, or POST an OAuth refresh_token grant with
 * an identity token) for the scopes a request needs, and send that. Tokens are cached per
 * registry, credential and scope set, reused for any request whose scopes they cover, and
 * dropped when the registry rejects them (the client then asks once more).
 */
import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';
import type { Credential } from './credentials.js';
import { readBody, type TransportRequest, type TransportResponse } from '../net/transport.js';

export interface Challenge {
  /** Lowercase scheme: `basic`, `bearer`, or something uvimage does not speak. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header: one or more challenges, each a scheme followed by
 * comma-separated auth-params whose values may be quoted strings with backslash escapes.
 */
export function parseWwwAuthenticate(value: string): Challenge[] {
  const challenges: Challenge[] = [];
  let position = 0;
  const text = value;
  const skipSpaces = () => {
    while (position < text.length && /[\s,]/.test(text[position]!)) position++;
  };
  const readToken = () => {
    const start = position;
    while (position < text.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z/]/.test(text[position]!)) position++;
    return text.slice(start, position);
  };
  let current: Challenge | undefined;
  while (position < text.length) {
    skipSpaces();
    if (position >= text.length) break;
    const token = readToken();
    if (token === '') {
      position++;
      continue;
    }
    // A token followed by "=" is a parameter of the current challenge; otherwise a new scheme.
    let look = position;
    while (look < text.length && text[look] === ' ') look++;
    if (text[look] === '=' && current) {
      position = look + 1;
      while (position < text.length && text[position] === ' ') position++;
      let paramValue = '';
      if (text[position] === '"') {
        position++;
        while (position < text.length && text[position] !== '"') {
          if (text[position] === '\\' && position + 1 < text.length) position++;
          paramValue += text[position];
          position++;
        }
        position++;
      } else {
        const start = position;
        while (position < text.length && text[position] !== ',') position++;
        paramValue = text.slice(start, position).trim();
      }
      current.params[token.toLowerCase()] = paramValue;
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/** Access to one repository: `repository:<name>:<actions>` in token-scope terms. */
export interface Scope {
  repository: string;
  actions: string[];
}

export function scopeString(scope: Scope): string {
  return `repository:${scope.repository}:${[...scope.actions].sort().join(',')}`;
}

/** Parses the `scope` parameter of a challenge (space-separated repository scopes). */
export function parseScopes(text: string | undefined): Scope[] {
  if (!text) return [];
  const scopes: Scope[] = [];
  for (const part of text.split(' ')) {
    const match = /^repository(?:\([^)]*\))?:(.+):([a-z*,]+)$/.exec(part);
    if (match) scopes.push({ repository: match[1]!, actions: match[2]!.split(',').filter(Boolean) });
  }
  return scopes;
}

/** Merges scopes so each repository appears once with the union of its actions. */
export function mergeScopes(...lists: Scope[][]): Scope[] {
  const byRepository = new Map<string, Set<string>>();
  for (const list of lists) {
    for (const scope of list) {
      const actions = byRepository.get(scope.repository) ?? new Set<string>();
      for (const action of scope.actions) actions.add(action);
      byRepository.set(scope.repository, actions);
    }
  }
  return [...byRepository.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([repository, actions]) => ({ repository, actions: [...actions].sort() }));
}

function covers(granted: Scope[], wanted: Scope[]): boolean {
  return wanted.every((scope) => {
    const have = granted.find((entry) => entry.repository === scope.repository);
    return have !== undefined && scope.actions.every((action) => have.actions.includes(action) || have.actions.includes('*'));
  });
}

interface CachedToken {
  token: string;
  scopes: Scope[];
  /** Milliseconds since the epoch after which the token is not used any more. */
  expiresAt: number;
}

export interface AuthDependencies {
  /** Sends a request without authentication, with the client's retries. */
  send(request: TransportRequest, what: { registry: string; repository: string; action: string }): Promise<TransportResponse>;
  /** The credential for a registry and repository (memoised by the caller). */
  credential(registry: string, repository: string): Promise<Credential | undefined>;
  /** Whether a plain-http URL on this host may carry credentials. */
  plainHttpAllowed(host: string): boolean;
  userAgent: string;
}

/** Thrown when a registry or its token service rejects the credentials (or their absence). */
export class AuthenticationError extends UserError {
  constructor(registry: string, repository: string, status: number, hadCredentials: boolean, detail?: string) {
    super(
      hadCredentials
        ? `registry ${registry} refused the credentials for ${repository} (${status})${detail ? `: ${detail}` : ''}`
        : `registry ${registry} requires authentication for ${repository} (${status}) and no credentials were found for it` +
            `${detail ? `: ${detail}` : ''}; log in with docker login or set UVIMAGE_REGISTRY_USERNAME/UVIMAGE_REGISTRY_PASSWORD`,
    );
  }
}

/** Seconds a token is trusted for when the token service does not say (the spec's default). */
const defaultTokenLifetimeSeconds = 60;
/** Tokens are renewed this long before they expire, so one never lapses mid-request. */
const tokenExpiryMarginMs = 10_000;

/**
 * What is learnt about registries' authentication: each registry's challenge, and tokens keyed
 * by registry and credential (a fingerprint, never the secret) and covering a set of scopes.
 * One state is shared by every client in the process by default, so separate pulls, layer
 * fetches and pushes reuse tokens instead of asking the token service again.
 */
export class AuthState {
  readonly challenges = new Map<string, Challenge | null>();
  readonly tokens = new Map<string, CachedToken[]>();
  readonly inFlight = new Map<string, Promise<CachedToken>>();

  clear(): void {
    this.challenges.clear();
    this.tokens.clear();
    this.inFlight.clear();
  }
}

export const sharedAuthState = new AuthState();

/** Per-registry authentication: challenges, credentials in use, and cached tokens. */
export class RegistryAuth {
  private readonly challenges: Map<string, Challenge | null>;
  private readonly tokens: Map<string, CachedToken[]>;
  private readonly inFlight: Map<string, Promise<CachedToken>>;
  /** How many token requests this client sent (tests assert tokens are reused). */
  tokenRequests = 0;

  constructor(private readonly deps: AuthDependencies, state: AuthState = sharedAuthState) {
    this.challenges = state.challenges;
    this.tokens = state.tokens;
    this.inFlight = state.inFlight;
  }

  /** Whether the registry's auth scheme is known (from a /v2/ ping or an earlier 401). */
  knows(registry: string): boolean {
    return this.challenges.has(registry);
  }

  /** Records what a 401 (or the /v2/ ping) said; `undefined` means no auth needed. */
  recordChallenge(registry: string, wwwAuthenticate: string | undefined): void {
    if (!wwwAuthenticate) {
      this.challenges.set(registry, null);
      return;
    }
    const challenges = parseWwwAuthenticate(wwwAuthenticate);
    const chosen =
      challenges.find((challenge) => challenge.scheme === 'bearer') ??
      challenges.find((challenge) => challenge.scheme === 'basic') ??
      challenges[0] ??
      null;
    this.challenges.set(registry, chosen);
  }

  /** The scopes a challenge asks for beyond the ones given (Bearer `scope` parameter). */
  challengeScopes(wwwAuthenticate: string | undefined): Scope[] {
    if (!wwwAuthenticate) return [];
    const bearer = parseWwwAuthenticate(wwwAuthenticate).find((challenge) => challenge.scheme === 'bearer');
    return parseScopes(bearer?.params.scope);
  }

  /** Forgets cached tokens that cover these scopes (the registry just rejected one). */
  async invalidate(registry: string, repository: string, scopes: Scope[]): Promise<void> {
    const key = `${registry}|${credentialFingerprint(await this.deps.credential(registry, repository))}`;
    const list = this.tokens.get(key);
    if (!list) return;
    this.tokens.set(
      key,
      list.filter((entry) => !covers(entry.scopes, scopes)),
    );
  }

  /** Whether a credential is configured for the registry and repository (for error messages). */
  async hasCredential(registry: string, repository: string): Promise<boolean> {
    return (await this.deps.credential(registry, repository)) !== undefined;
  }

  /**
   * The Authorization header value for a request needing `scopes` on `repository`, or undefined
   * when the registry needs none (or has not asked yet).
   */
  async authorization(registry: string, repository: string, scopes: Scope[]): Promise<string | undefined> {
    const challenge = this.challenges.get(registry);
    if (!challenge) return undefined;
    const credential = await this.deps.credential(registry, repository);
    if (challenge.scheme === 'basic') {
      if (!credential) return undefined;
      const user = credential.kind === 'basic' ? credential.username : credential.username ?? '<token>';
      const secret = credential.kind === 'basic' ? credential.password : credential.token;
      return `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
    }
    if (challenge.scheme !== 'bearer') {
      throw new UserError(`registry ${registry} asks for "${challenge.scheme}" authentication, which uvimage does not support`);
    }
    const token = await this.bearerToken(registry, repository, challenge, credential, scopes);
    return `Bearer ${token.token}`;
  }

  private async bearerToken(
    registry: string,
    repository: string,
    challenge: Challenge,
    credential: Credential | undefined,
    scopes: Scope[],
  ): Promise<CachedToken> {
    const now = Date.now();
    const credentialKey = credentialFingerprint(credential);
    const cacheKey = `${registry}|${credentialKey}`;
    const cached = (this.tokens.get(cacheKey) ?? []).find((entry) => entry.expiresAt > now && covers(entry.scopes, scopes));
    if (cached) return cached;
    const wanted = mergeScopes(scopes);
    const flightKey = `${cacheKey}|${wanted.map(scopeString).join(' ')}`;
    let pending = this.inFlight.get(flightKey);
    if (!pending) {
      pending = this.requestToken(registry, repository, challenge, credential, wanted).then(
        (token) => {
          this.tokens.set(cacheKey, [...(this.tokens.get(cacheKey) ?? []).filter((entry) => entry.expiresAt > Date.now()), token]);
          return token;
        },
      );
      pending.finally(() => this.inFlight.delete(flightKey)).catch(() => {});
      this.inFlight.set(flightKey, pending);
    }
    return pending;
  }

  private async requestToken(
    registry: string,
    repository: string,
    challenge: Challenge,
    credential: Credential | undefined,
    scopes: Scope[],
  ): Promise<CachedToken> {
    const realmText = challenge.params.realm;
    if (!realmText) throw new UserError(`registry ${registry} asks for a bearer token but names no token service (realm)`);
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw new UserError(`registry ${registry} names a token service that is not a URL: ${JSON.stringify(realmText)}`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new UserError(`registry ${registry} names a token service with an unsupported scheme: ${realm.protocol}`);
    }
    if (realm.protocol === 'http:' && credential && !this.deps.plainHttpAllowed(realm.host)) {
      throw new UserError(
        `registry ${registry} sends credentials to ${realm.origin} over plain http; refusing (add it to the insecure registries to allow this)`,
      );
    }
    const what = { registry, repository, action: `get a token from ${realm.origin}${realm.pathname}` };
    const service = challenge.params.service;
    const scopeStrings = scopes.map(scopeString);
    const headers: Record<string, string> = { 'user-agent': this.deps.userAgent, accept: 'application/json' };

    let response: TransportResponse;
    this.tokenRequests++;
    if (credential?.kind === 'identity-token') {
      // Docker's OAuth2 flow: a refresh_token grant by POST, with a fallback to GET for
      // token services that answer the POST with 404 (Docker's auth/token.go does the same).
      const form = new URLSearchParams();
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', credential.token);
      form.set('client_id', 'uvimage');
      if (service) form.set('service', service);
      if (scopeStrings.length > 0) form.set('scope', scopeStrings.join(' '));
      response = await this.deps.send(
        {
          method: 'POST',
          url: realm,
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
          body: Buffer.from(form.toString()),
        },
        what,
      );
      if (response.status === 404 || response.status === 405) {
        await readBody(response, 1 << 20).catch(() => undefined);
        response = await this.deps.send({ method: 'GET', url: tokenUrl(realm, service, scopeStrings), headers: withBasic(headers, credential) }, what);
      }
    } else {
      response = await this.deps.send({ method: 'GET', url: tokenUrl(realm, service, scopeStrings), headers: withBasic(headers, credential) }, what);
    }

    let body: Buffer;
    try {
      body = await readBody(response, 1 << 20);
    } catch (error) {
      throw new UserError(`token service of registry ${registry} failed: ${(error as Error).message}`);
    }
    if (response.status === 401 || response.status === 403) {
      throw new AuthenticationError(registry, repository, response.status, credential !== undefined, tokenErrorDetail(body));
    }
    if (response.status !== 200) {
      throw new UserError(
        `token service ${realm.origin} of registry ${registry} answered ${response.status}${tokenErrorDetail(body) ? `: ${tokenErrorDetail(body)}` : ''}`,
      );
    }
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new UserError(`token service ${realm.origin} of registry ${registry} answered something other than JSON`);
    }
    const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new UserError(`token service ${realm.origin} of registry ${registry} answered without a token`);
    }
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : defaultTokenLifetimeSeconds;
    const issued = typeof parsed.issued_at === 'string' ? Date.parse(parsed.issued_at) : NaN;
    // A token service's clock may differ from ours; count from now unless issued_at is sane.
    const start = Number.isFinite(issued) && Math.abs(issued - Date.now()) < 60_000 ? issued : Date.now();
    return { token, scopes, expiresAt: start + lifetime * 1000 - tokenExpiryMarginMs };
  }
}

function tokenUrl(realm: URL, service: string | undefined, scopes: string[]): URL {
  const url = new URL(realm.href);
  if (service) url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  return url;
}

function withBasic(headers: Record<string, string>, credential: Credential | undefined): Record<string, string> {
  if (!credential) return headers;
  const user = credential.kind === 'basic' ? credential.username : credential.username ?? '<token>';
  const secret = credential.kind === 'basic' ? credential.password : credential.token;
  return { ...headers, authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}` };
}

function tokenErrorDetail(body: Buffer): string | undefined {
  const text = body.toString('utf8').trim();
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { details?: unknown; error?: unknown; message?: unknown; errors?: { message?: unknown }[] };
    const message = parsed.errors?.[0]?.message ?? parsed.details ?? parsed.message ?? parsed.error;
    if (typeof message === 'string') return oneLine(message);
  } catch {
    // not JSON: use the text
  }
  return oneLine(text).slice(0, 200);
}

export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** A stable, non-secret key for a credential, so tokens got with one are never used with another. */
function credentialFingerprint(credential: Credential | undefined): string {
  if (!credential) return 'anonymous';
  return createHash('sha256').update(JSON.stringify(credential)).digest('hex').slice(0, 16);
}

