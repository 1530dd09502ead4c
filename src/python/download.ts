/**
 * Wheel downloads: in parallel, each streamed into the store and checked against the sha256 the
 * lock gives (a mismatch stores nothing and fails the build), cached by that hash, so a second
 * build downloads nothing. Credentials for private indexes are found the way uv finds them:
 * user:password in the URL, `UV_INDEX_<NAME>_USERNAME` / `UV_INDEX_<NAME>_PASSWORD` for a named
 * index whose URL shares the wheel's realm (scheme, host, port), then netrc ($NETRC or ~/.netrc).
 * The transfer (retries, redirects that drop credentials off their origin, proxies) is src/net's.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { UserError, describeError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { BlobStore } from '../oci/store.js';
import { downloadToStore } from '../net/download.js';
import { HttpStatusError, NetworkError } from '../net/request.js';
import type { StageTask } from '../progress.js';

export interface WheelSource {
  /** Package name, for messages. */
  name: string;
  url?: string;
  /** A local wheel (relative to baseDir). */
  path?: string;
  filename: string;
  /** 'sha256:<hex>' from the lock. */
  hash?: string;
  size?: number;
  /** The index the package was locked from (for credentials). */
  indexUrl?: string;
}

export interface PackageIndex {
  /** `[[tool.uv.index]] name`, which names the UV_INDEX_<NAME>_* variables. */
  name?: string;
  url: string;
}

export interface DownloadOptions {
  store: BlobStore;
  /** Directory that relative `path` wheels are relative to (the lock's directory). */
  baseDir?: string;
  indexes?: PackageIndex[];
  env?: NodeJS.ProcessEnv;
  /** Downloads at once; default 8. */
  concurrency?: number;
  /** Where the bytes downloaded are counted (a task of the stage that downloads them). */
  task?: Pick<StageTask, 'advance'>;
}

export interface DownloadedWheel {
  digest: Digest;
  /** The blob's path in the store (read-only). */
  path: string;
  size: number;
  /** Whether it was downloaded now (false: already in the store). */
  downloaded: boolean;
}

/** Fetches every wheel into the store (or finds it there); results in the order given. */
export async function downloadWheels(sources: WheelSource[], options: DownloadOptions): Promise<DownloadedWheel[]> {
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const results: DownloadedWheel[] = new Array(sources.length);
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < sources.length) {
      const index = next++;
      try {
        results[index] = await downloadWheel(sources[index]!, options);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sources.length) }, worker));
  if (failure !== undefined) throw failure;
  return results;
}

/** The wheel, if the store has it already (known by the lock's sha256): nothing to download. */
export async function wheelInStore(source: WheelSource, store: BlobStore): Promise<DownloadedWheel | undefined> {
  const expected = expectedDigest(source);
  if (expected && (await store.hasIntact(expected))) return { digest: expected, path: store.blobPath(expected), size: await store.size(expected), downloaded: false };
  return undefined;
}

function expectedDigest(source: WheelSource): Digest | undefined {
  if (source.hash === undefined) return undefined;
  if (!isDigest(source.hash)) throw new UserError(`wheel ${source.filename} of ${source.name}: the lock gives a hash uvimage cannot check (${source.hash}); only sha256 is supported`);
  return source.hash;
}

export async function downloadWheel(source: WheelSource, options: DownloadOptions): Promise<DownloadedWheel> {
  const { store } = options;
  const what = `wheel ${source.filename} of ${source.name}`;
  const expected = expectedDigest(source);
  const found = await wheelInStore(source, store);
  if (found) return found;

  if (source.path !== undefined && source.url === undefined) {
    const file = isAbsolute(source.path) ? source.path : resolve(options.baseDir ?? '.', source.path);
    const blob = await store.writeStream(createReadStream(file), expected, what).catch((error: unknown) => {
      throw error instanceof UserError ? error : new UserError(`${what}: ${file} cannot be read: ${describeError(error)}`);
    });
    return { digest: blob.digest, path: store.blobPath(blob.digest), size: blob.size, downloaded: true };
  }
  if (source.url === undefined) throw new UserError(`${what}: the lock gives neither a url nor a path`);

  const env = options.env ?? process.env;
  try {
    const blob = await downloadToStore(
      // Credentials go only to the index's origin: a redirect to another host drops them (src/net/request.ts).
      { url: source.url, authorization: await credentialsFor(new URL(source.url), options.indexes ?? [], env), env },
      { store, digest: expected, what, onBytes: (bytes) => options.task?.advance(bytes), statusHint: credentialsHint },
    );
    return { digest: blob.digest, path: store.blobPath(blob.digest), size: blob.size, downloaded: true };
  } catch (error) {
    if (error instanceof HttpStatusError || error instanceof NetworkError) throw new UserError(`${what}: download from ${error.url} failed: ${error.detail}`, { cause: error });
    throw error;
  }
}

function credentialsHint(status: number): string {
  return status === 401 || status === 403 ? ' (credentials: UV_INDEX_<NAME>_USERNAME/_PASSWORD for the named index, or netrc)' : '';
}

/** The Authorization header for a URL, or undefined: URL userinfo, then a named index's env variables, then netrc. */
export async function credentialsFor(url: URL, indexes: PackageIndex[], env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  if (url.username || url.password) return basic(decodeURIComponent(url.username), decodeURIComponent(url.password));
  // The index whose URL is the longest prefix of this one, else one on the same realm.
  const candidates = indexes
    .filter((index) => index.name)
    .map((index) => ({ index, parsed: safeUrl(index.url) }))
    .filter((candidate): candidate is { index: PackageIndex; parsed: URL } => candidate.parsed?.origin === url.origin)
    .sort((a, b) => Number(url.href.startsWith(b.parsed.href)) - Number(url.href.startsWith(a.parsed.href)) || b.parsed.href.length - a.parsed.href.length);
  for (const { index, parsed } of candidates) {
    const variable = indexEnvName(index.name!);
    const user = env[`UV_INDEX_${variable}_USERNAME`];
    const password = env[`UV_INDEX_${variable}_PASSWORD`];
    if (user !== undefined || password !== undefined) return basic(user ?? '', password ?? '');
    if (parsed.username || parsed.password) return basic(decodeURIComponent(parsed.username), decodeURIComponent(parsed.password));
  }
  const netrc = await readNetrc(env);
  const entry = netrc.get(url.hostname) ?? netrc.get('');
  if (entry) return basic(entry.login, entry.password);
  return undefined;
}

/** An index name as its environment variables spell it: upper case, every non-alphanumeric as '_'. */
export function indexEnvName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** machine -> login/password from $NETRC or ~/.netrc ('' is `default`). */
async function readNetrc(env: NodeJS.ProcessEnv): Promise<Map<string, { login: string; password: string }>> {
  const path = env.NETRC ?? join(env.HOME ?? homedir(), '.netrc');
  const entries = new Map<string, { login: string; password: string }>();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return entries;
  }
  const tokens = text.split(/\s+/).filter(Boolean);
  let machine: string | undefined;
  let login = '';
  let password = '';
  const flush = (): void => {
    if (machine !== undefined && !entries.has(machine)) entries.set(machine, { login, password });
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token === 'machine' || token === 'default') {
      flush();
      machine = token === 'default' ? '' : (tokens[++i] ?? '');
      login = '';
      password = '';
    } else if (token === 'login') login = tokens[++i] ?? '';
    else if (token === 'password') password = tokens[++i] ?? '';
    else if (token === 'account') i++;
    else if (token === 'macdef') break;
  }
  flush();
  return entries;
}
