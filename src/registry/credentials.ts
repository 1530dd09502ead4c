/**
 * Registry credentials, found the way `docker` and `podman` find them: explicit credentials
 * (flags or UVIMAGE_REGISTRY_USERNAME/PASSWORD) first, then the Docker config file, then the
 * containers auth files, each consulted through its credential helpers and stored `auths`.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError, describeError } from '../errors.js';
import { isDockerHub } from './reference.js';

export type Credential =
  | { kind: 'basic'; username: string; password: string }
  /** An OAuth refresh token (`identitytoken` in config.json), exchanged at the token endpoint. */
  | { kind: 'identity-token'; username?: string; token: string };

export interface CredentialOptions {
  /** The environment to read DOCKER_CONFIG, HOME, PATH etc. from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Explicit credentials from flags/env for the target registry; they win over everything. */
  explicit?: { username: string; password: string };
  /**
   * The repository being accessed, for containers-auth.json entries scoped to a namespace
   * (`quay.io/org`); without it only registry-wide entries are used.
   */
  repository?: string;
  /** How long a credential helper may run; default 30 s (helpers may prompt to unlock a keychain). */
  helperTimeoutMs?: number;
}

/** The key Docker stores Docker Hub credentials under, and passes to credential helpers. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

const DEFAULT_HELPER_TIMEOUT_MS = 30_000;
/** The `Username` a credential helper returns when `Secret` is an identity token. */
const TOKEN_USERNAME = '<token>';

/** Explicit credentials from UVIMAGE_REGISTRY_USERNAME and UVIMAGE_REGISTRY_PASSWORD, if both are set. */
export function explicitCredentialsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): { username: string; password: string } | undefined {
  const username = env.UVIMAGE_REGISTRY_USERNAME;
  const password = env.UVIMAGE_REGISTRY_PASSWORD;
  if (!username && !password) return undefined;
  if (!username) throw new UserError('UVIMAGE_REGISTRY_PASSWORD is set but UVIMAGE_REGISTRY_USERNAME is not; set both or neither');
  if (!password) throw new UserError('UVIMAGE_REGISTRY_USERNAME is set but UVIMAGE_REGISTRY_PASSWORD is not; set both or neither');
  return { username, password };
}

/**
 * The credential for a registry (host[:port] as in ImageReference.registry), or undefined for
 * anonymous access. Order: `explicit`; then each auth file that exists, first
 * `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), then `$REGISTRY_AUTH_FILE`,
 * then `$XDG_RUNTIME_DIR/containers/auth.json`. In each file: `credHelpers[registry]`, else a
 * matching `auths` entry that holds credentials, else the `credsStore` helper. The first
 * credential found wins. Throws a UserError naming the file for a malformed auth file and naming
 * the helper for a helper that is missing, times out or fails other than "credentials not found".
 */
export async function resolveCredential(registry: string, options: CredentialOptions = {}): Promise<Credential | undefined> {
  if (options.explicit) return { kind: 'basic', username: options.explicit.username, password: options.explicit.password };
  const env = options.env ?? process.env;
  const seen = new Set<string>();
  for (const file of authFiles(env)) {
    if (seen.has(file)) continue;
    seen.add(file);
    const config = await readAuthFile(file);
    if (config === undefined) continue;
    const credential = await credentialFromFile(file, config, registry, options, env);
    if (credential) return credential;
  }
  return undefined;
}

function authFiles(env: NodeJS.ProcessEnv): string[] {
  const files: string[] = [];
  const dockerConfigDir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  files.push(join(dockerConfigDir, 'config.json'));
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  return files;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths: Record<string, AuthEntry>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

/** Reads and checks an auth file; undefined when it does not exist. */
async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UserError(`cannot read registry auth file ${file}: ${describeError(error)}`, { cause: error });
  }
  if (text.trim() === '') return { auths: {}, credHelpers: {} };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UserError(`registry auth file ${file} is not valid JSON: ${describeError(error)}`, { cause: error });
  }
  const bad = (why: string) => new UserError(`registry auth file ${file} is malformed: ${why}`);
  if (!isObject(data)) throw bad('the top level is not a JSON object');

  const auths: Record<string, AuthEntry> = {};
  if (data.auths !== undefined && data.auths !== null) {
    if (!isObject(data.auths)) throw bad('"auths" is not an object');
    for (const [key, value] of Object.entries(data.auths)) {
      if (!isObject(value)) throw bad(`"auths" entry ${JSON.stringify(key)} is not an object`);
      const entry: AuthEntry = {};
      for (const field of ['auth', 'username', 'password', 'identitytoken'] as const) {
        const fieldValue = value[field];
        if (fieldValue === undefined || fieldValue === null) continue;
        if (typeof fieldValue !== 'string') throw bad(`"auths" entry ${JSON.stringify(key)} has a non-string "${field}"`);
        entry[field] = fieldValue;
      }
      auths[key] = entry;
    }
  }

  const credHelpers: Record<string, string> = {};
  if (data.credHelpers !== undefined && data.credHelpers !== null) {
    if (!isObject(data.credHelpers)) throw bad('"credHelpers" is not an object');
    for (const [key, value] of Object.entries(data.credHelpers)) {
      if (typeof value !== 'string') throw bad(`"credHelpers" entry ${JSON.stringify(key)} is not a string`);
      credHelpers[key] = value;
    }
  }

  let credsStore: string | undefined;
  if (data.credsStore !== undefined && data.credsStore !== null) {
    if (typeof data.credsStore !== 'string') throw bad('"credsStore" is not a string');
    credsStore = data.credsStore || undefined;
  }
  return { auths, credHelpers, credsStore };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function credentialFromFile(
  file: string,
  config: AuthFile,
  registry: string,
  options: CredentialOptions,
  env: NodeJS.ProcessEnv,
): Promise<Credential | undefined> {
  const serverUrl = isDockerHub(registry) ? DOCKER_HUB_AUTH_KEY : registry;

  const helperKey = bestKey(Object.keys(config.credHelpers), registry, undefined);
  if (helperKey !== undefined) {
    const helper = config.credHelpers[helperKey] as string;
    if (helper !== '') return runHelper(helper, [serverUrl], file, env, options.helperTimeoutMs);
  }

  const entryKeys = matchingKeys(Object.keys(config.auths), registry, options.repository);
  for (const key of entryKeys) {
    const credential = entryCredential(config.auths[key] as AuthEntry, key, file);
    if (credential) return credential;
  }

  if (config.credsStore !== undefined) {
    // `docker login` with a credsStore leaves an empty marker in auths under the exact server
    // address it stored the secret under; ask the store for that address first.
    const urls = [...entryKeys.filter((key) => key !== serverUrl), serverUrl];
    return runHelper(config.credsStore, urls, file, env, options.helperTimeoutMs);
  }
  return undefined;
}

/**
 * How an auth key relates to a registry: Docker keys are a host, `https://host`,
 * `http://host/v2/`, `https://index.docker.io/v1/` and the like (the path is ignored, as Docker's
 * ConvertToHostname does); a key without a scheme but with a path (`quay.io/org`) is a
 * containers-auth.json namespace entry that applies only to repositories under that path.
 */
interface ParsedKey {
  host: string;
  namespace?: string;
}

function parseKey(key: string): ParsedKey {
  const trimmed = key.trim();
  const schemeMatch = /^[a-z][a-z0-9+.-]*:\/\//i.exec(trimmed);
  const withoutScheme = schemeMatch ? trimmed.slice(schemeMatch[0].length) : trimmed;
  const slash = withoutScheme.indexOf('/');
  const host = normaliseHost(slash === -1 ? withoutScheme : withoutScheme.slice(0, slash));
  if (schemeMatch || slash === -1) return { host };
  const namespace = withoutScheme.slice(slash + 1).replace(/\/+$/, '');
  return namespace === '' ? { host } : { host, namespace };
}

/** Lowercase, with every Docker Hub name folded to one. */
function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  return isDockerHub(lower) ? 'docker.io' : lower;
}

/** The keys that apply to the registry (and repository), most specific first. */
function matchingKeys(keys: string[], registry: string, repository: string | undefined): string[] {
  const host = normaliseHost(registry);
  const scored: { key: string; score: number }[] = [];
  for (const key of keys) {
    const parsed = parseKey(key);
    if (parsed.host !== host) continue;
    let score: number;
    if (parsed.namespace !== undefined) {
      if (repository === undefined) continue;
      if (repository !== parsed.namespace && !repository.startsWith(parsed.namespace + '/')) continue;
      score = 10 + parsed.namespace.length;
    } else {
      score = key === registry ? 2 : 1;
    }
    scored.push({ key, score });
  }
  return scored.sort((a, b) => b.score - a.score).map((entry) => entry.key);
}

function bestKey(keys: string[], registry: string, repository: string | undefined): string | undefined {
  return matchingKeys(keys, registry, repository)[0];
}

function entryCredential(entry: AuthEntry, key: string, file: string): Credential | undefined {
  let username: string | undefined;
  let password: string | undefined;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) {
      throw new UserError(`registry auth file ${file} is malformed: "auth" for ${JSON.stringify(key)} is not base64 of "username:password"`);
    }
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (entry.username) username = entry.username;
  if (entry.password) password = entry.password;

  if (entry.identitytoken) {
    return username ? { kind: 'identity-token', username, token: entry.identitytoken } : { kind: 'identity-token', token: entry.identitytoken };
  }
  if (username && password) return { kind: 'basic', username, password };
  // An empty entry is the marker `docker login` leaves when the secret is in a credsStore.
  return undefined;
}

/**
 * Runs `docker-credential-<name> get` for each server URL in turn until one has credentials.
 * "credentials not found" from the helper means anonymous; any other failure is a UserError.
 */
async function runHelper(
  name: string,
  serverUrls: string[],
  file: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = DEFAULT_HELPER_TIMEOUT_MS,
): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UserError(`registry auth file ${file} names credential helper ${JSON.stringify(name)}, which is not a valid helper name`);
  }
  for (const serverUrl of serverUrls) {
    const result = await execHelper(program, serverUrl, env, timeoutMs);
    const where = `credential helper ${program} (configured in ${file})`;
    if (result.error) {
      const output = `${result.stdout}\n${result.stderr}`;
      if (/credentials not found/i.test(output)) continue;
      const error = result.error as Error & { code?: string | number; killed?: boolean };
      if (error.code === 'ENOENT') throw new UserError(`${where} was not found on PATH`, { cause: error });
      if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') throw new UserError(`${where} printed too much output for ${serverUrl}`, { cause: error });
      if (error.killed) {
        throw new UserError(`${where} did not answer within ${Math.round(timeoutMs / 1000)} s for ${serverUrl}`, { cause: error });
      }
      const message = oneLine(result.stdout) || oneLine(result.stderr) || describeError(error);
      throw new UserError(`${where} failed for ${serverUrl}: ${message}`, { cause: error });
    }
    let data: unknown;
    try {
      data = JSON.parse(result.stdout);
    } catch {
      throw new UserError(`${where} printed something other than JSON for ${serverUrl}: ${oneLine(result.stdout).slice(0, 200)}`);
    }
    if (!isObject(data) || typeof data.Secret !== 'string' || (data.Username !== undefined && typeof data.Username !== 'string')) {
      throw new UserError(`${where} printed JSON without a string "Secret" for ${serverUrl}`);
    }
    const username = typeof data.Username === 'string' ? data.Username : '';
    const secret = data.Secret;
    if (secret === '') continue;
    if (username === TOKEN_USERNAME) return { kind: 'identity-token', token: secret };
    return { kind: 'basic', username, password: secret };
  }
  return undefined;
}

function oneLine(text: string): string {
  return text.trim().split(/\r?\n/).map((line) => line.trim()).filter(Boolean).join('; ');
}

interface HelperResult {
  stdout: string;
  stderr: string;
  error?: Error;
}

function execHelper(program: string, serverUrl: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<HelperResult> {
  return new Promise((resolve) => {
    const child = execFile(
      program,
      ['get'],
      { env, timeout: timeoutMs, maxBuffer: 1024 * 1024, windowsHide: true, encoding: 'utf8' },
      (error, stdout, stderr) => {
        resolve(error ? { stdout, stderr, error } : { stdout, stderr });
      },
    );
    // A helper that exits without reading stdin must not crash us with EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(serverUrl);
  });
}
