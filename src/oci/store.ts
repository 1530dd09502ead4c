import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';
import { HashingStream, digestHex, isDigest, type Digest } from './digest.js';
import type { RemoteOrigin } from './image.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** A blob whose bytes did not hash to its name. It has been removed from the store. */
export class CorruptBlobError extends UserError {
  constructor(readonly digest: Digest, path: string, actual: string) {
    super(`cache blob ${digest} at ${path} is corrupt (its content hashes to ${actual}); it was removed, run the command again`);
  }
}

/**
 * Where the cache lives: --cache-dir, else $UVIMAGE_CACHE_DIR, else $XDG_CACHE_HOME/uvimage,
 * else ~/.cache/uvimage (the XDG base directory rules).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.UVIMAGE_CACHE_DIR) return env.UVIMAGE_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME;
  // XDG says a relative XDG_CACHE_HOME is invalid and must be ignored.
  if (xdg && xdg.startsWith('/')) return join(xdg, 'uvimage');
  return join(homedir(), '.cache', 'uvimage');
}

/**
 * The content-addressed store every blob passes through: layers we write, blobs we pull,
 * configs and manifests. Blobs live at blobs/sha256/<hex>. Every write goes to a private temp
 * file that is renamed into place only after its digest is known (and matches, when one was
 * expected), so concurrent builds sharing a store never see a half-written blob, and two
 * writers of the same blob both succeed (rename is atomic and the content is identical).
 * Reads verify the digest as the bytes stream past, so a truncated or flipped blob is noticed,
 * removed and never used.
 *
 * Beside blobs, the store keeps small JSON records (metadata keyed by name, e.g. a tag's
 * resolved digest or what a layer's inputs produced), written atomically the same way.
 */
export interface CachedOptions<T> {
  /** The blobs a value names; a record is used only when each is intact in the store. */
  blobs?: (value: T) => unknown[];
  /** Whether a record read back has the shape of a value (records of an older format do not). */
  valid?: (record: unknown) => boolean;
  /** false: always produce (and record) anew, e.g. to measure or to rebuild on purpose. */
  reuse?: boolean;
  /** Called with a record that is used, e.g. to say so. */
  hit?: (value: T) => void;
}

/** A record another machine made, as a SharedRecords tier found it. */
export interface SharedRecord {
  /** The key text it was made for (the tier has checked it is the one asked for). */
  key: string;
  value: unknown;
  /** The blobs it holds (the layers the value names), where `SharedRecords.originOf` says. */
  blobs: BlobInfo[];
}

/**
 * A second tier of records, shared between machines: the layer cache in a registry
 * (src/registry/layer-cache.ts, `--cache-repo`). Only kinds whose blobs are layers are shared,
 * so a value found there can be used without its bytes: a sink that needs them fetches them
 * through the BlobSource (`originOf`), and a push to the same registry mounts them. A tier that
 * fails says so once and answers "miss" from then on; it never fails a build.
 */
export interface SharedRecords {
  shares(kind: string): boolean;
  /** The record of exactly this key text, or undefined. */
  lookup(kind: string, key: string): Promise<SharedRecord | undefined>;
  /** The record whose key text hashes to `name` (BlobStore.recordName), or undefined. */
  lookupByName(kind: string, name: string): Promise<SharedRecord | undefined>;
  /** Shares a record (its blobs intact in the store), in the background (`flush` waits). */
  publish(kind: string, key: string, value: unknown, blobs: Digest[]): void;
  /** Where a blob of a record found in the tier is, for a store that lacks it. */
  originOf(digest: Digest): RemoteOrigin | undefined;
  /** Waits for the publishing under way; failures were warnings. */
  flush(): Promise<void>;
}

export class BlobStore {
  /** Blobs this process has hashed in full and found intact, so they are not rehashed. */
  private readonly verified = new Set<Digest>();
  /** The shared tier `cached` consults for the kinds it shares (--cache-repo), if any. */
  shared?: SharedRecords;

  private constructor(readonly root: string) {}

  static async open(root: string = defaultCacheDir()): Promise<BlobStore> {
    try {
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
      await mkdir(join(root, 'tmp'), { recursive: true });
      await mkdir(join(root, 'records'), { recursive: true });
    } catch (error) {
      throw new UserError(`cache directory ${root} cannot be created: ${(error as Error).message}`);
    }
    const store = new BlobStore(root);
    await store.sweepAbandonedTemps();
    return store;
  }

  /**
   * Removes temp files left by writers that died (killed mid-write): their names carry the
   * writer's pid, and a temp file whose pid no longer runs can never be committed. Temp files of
   * live processes (a concurrent build) are left alone.
   */
  private async sweepAbandonedTemps(): Promise<void> {
    const dir = join(this.root, 'tmp');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const pid = Number(/^[a-z]+-(\d+)-/.exec(name)?.[1]);
      if (!pid || isRunning(pid)) continue;
      await rm(join(dir, name), { force: true, recursive: true });
    }
  }

  blobPath(digest: Digest): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  /** Whether a blob is present. Cheap; its content is verified when it is read. */
  async has(digest: Digest): Promise<boolean> {
    try {
      return (await stat(this.blobPath(digest))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Whether a blob is present and intact, hashing it in full. A corrupt one is removed. A blob
   * hashed before, whose file has not been touched since (same inode, size, mtime and ctime — any
   * write or truncation changes ctime), is not hashed again: a rebuild that reuses hundreds of
   * megabytes of cached layers should not rehash them all. Reads still verify every byte.
   */
  async hasIntact(digest: Digest): Promise<boolean> {
    if (this.verified.has(digest)) return true;
    try {
      return await this.checkIntact(digest);
    } catch (error) {
      if (error instanceof CorruptBlobError) return false;
      throw error;
    }
  }

  /**
   * As hasIntact, judged from the file alone — the memo of blobs this process wrote or read is not
   * trusted, as the file may have changed since — and a corrupt blob (removed) is a
   * CorruptBlobError saying so rather than false. For a caller that hands the file itself on.
   */
  async checkIntact(digest: Digest): Promise<boolean> {
    const stats = await stat(this.blobPath(digest)).catch(() => undefined);
    if (!stats?.isFile()) return false;
    const signature = fileSignature(stats);
    const known = await this.readRecord<string>('intact', digest);
    if (known === signature) {
      this.verified.add(digest);
      return true;
    }
    await pipeline(this.openRead(digest), new Sink());
    await this.writeRecord('intact', digest, signature);
    return true;
  }

  /**
   * Records again the file signature of a blob checkIntact has just passed, after a hard link to
   * it changed its ctime (not its bytes), so the next check does not rehash it.
   */
  async linkedAfterCheck(digest: Digest): Promise<void> {
    const stats = await stat(this.blobPath(digest)).catch(() => undefined);
    if (stats?.isFile()) await this.writeRecord('intact', digest, fileSignature(stats));
  }

  async size(digest: Digest): Promise<number> {
    return (await stat(this.blobPath(digest))).size;
  }

  /** A new temp file path inside the store (same filesystem as blobs, so rename is atomic). */
  tempPath(label = 'blob'): string {
    return join(this.root, 'tmp', `${label}-${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Starts writing a blob. Write its bytes to `stream`, then `commit()` to hash-check and rename
   * it into place, or `abort()` to discard it. Nothing is visible in the store before commit.
   */
  createWriter(): BlobWriter {
    return new BlobWriter(this, this.tempPath());
  }

  /** Streams a source into the store. With `expected`, a digest mismatch is an error and nothing is stored. */
  async writeStream(source: Readable | AsyncIterable<Uint8Array>, expected?: Digest, what?: string): Promise<BlobInfo> {
    const writer = this.createWriter();
    try {
      await pipeline(source, writer.stream);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer.commit(expected, what);
  }

  async putBytes(bytes: Uint8Array, expected?: Digest, what?: string): Promise<BlobInfo> {
    return this.writeStream(Readable.from([bytes]), expected, what);
  }

  /** Reads a whole (small) blob, verified. For configs and manifests; layers are streamed. */
  async readBytes(digest: Digest): Promise<Buffer> {
    const path = this.blobPath(digest);
    const bytes = await readFile(path);
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== digest) {
      await rm(path, { force: true });
      throw new CorruptBlobError(digest, path, actual);
    }
    this.verified.add(digest);
    return bytes;
  }

  /**
   * Streams a blob. The stream errors with CorruptBlobError at its end (after removing the blob)
   * when the bytes do not match the digest, so a consumer writing to a temp name never renames
   * corrupt content into place.
   */
  openRead(digest: Digest): Readable {
    const path = this.blobPath(digest);
    const hash = createHash('sha256');
    const store = this;
    const check = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        hash.update(chunk);
        callback(null, chunk);
      },
      flush(callback: TransformCallback) {
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual === digest) {
          store.verified.add(digest);
          callback();
          return;
        }
        rm(path, { force: true }).then(
          () => callback(new CorruptBlobError(digest, path, actual)),
          () => callback(new CorruptBlobError(digest, path, actual)),
        );
      },
    });
    const file = createReadStream(path);
    file.on('error', (error) => check.destroy(error));
    return file.pipe(check);
  }

  /**
   * A cache of small values kept as records: what `produce` made for `key` before, when the record
   * reads back, has the expected shape and every blob it names is intact; else `produce` runs and
   * its value is recorded. A record is only a shortcut, never trusted for more than it can prove,
   * so a missing, corrupt or outdated record is a miss, not an error.
   */
  async cached<T>(kind: string, key: string, produce: () => Promise<T>, options: CachedOptions<T> = {}): Promise<T> {
    const shared = this.shared?.shares(kind) ? this.shared : undefined;
    const blobsOf = (value: T): unknown[] => options.blobs?.(value) ?? [];
    if (options.reuse !== false) {
      const record = await this.readRecord<unknown>(kind, key);
      if (record !== undefined && record !== null && (options.valid?.(record) ?? true)) {
        const value = record as T;
        const digests = blobsOf(value);
        if (await this.allIntact(digests)) {
          options.hit?.(value);
          // Made here before the tier was configured, or by a build whose publishing failed.
          shared?.publish(kind, key, value, digests as Digest[]);
          return value;
        }
      }
      const found = await shared?.lookup(kind, key);
      if (found && found.value !== null && found.value !== undefined && (options.valid?.(found.value) ?? true)) {
        const value = found.value as T;
        // Every blob it names is one the shared record holds, so the registry keeps it.
        const held = new Set(found.blobs.map((blob) => blob.digest));
        const digests = blobsOf(value);
        if (digests.every((digest) => typeof digest === 'string' && isDigest(digest) && held.has(digest))) {
          await this.writeRecord(kind, key, value);
          options.hit?.(value);
          return value;
        }
      }
    }
    const value = await produce();
    await this.writeRecord(kind, key, value);
    shared?.publish(kind, key, value, blobsOf(value) as Digest[]);
    return value;
  }

  /**
   * Whether `cached(kind, key)` would find a value without producing it, known by the record's
   * name alone (a plan's layer keys): a record here with its blobs intact, or one the shared tier
   * has. For work that only a miss needs (the .debs of a Debian layer), so it is not fetched for
   * nothing.
   */
  async available(kind: string, name: string, blobs: (value: unknown) => unknown[]): Promise<boolean> {
    const record = await this.readRecordNamed<unknown>(kind, name);
    if (record !== undefined && record !== null && (await this.allIntact(blobs(record)))) return true;
    if (!this.shared?.shares(kind)) return false;
    const found = await this.shared.lookupByName(kind, name);
    if (!found || found.value === null || found.value === undefined) return false;
    const held = new Set(found.blobs.map((blob) => blob.digest));
    return blobs(found.value).every((digest) => typeof digest === 'string' && held.has(digest as Digest));
  }

  private async allIntact(digests: unknown[]): Promise<boolean> {
    for (const digest of digests) {
      if (typeof digest !== 'string' || !isDigest(digest) || !(await this.hasIntact(digest))) return false;
    }
    return true;
  }

  async readRecord<T>(kind: string, key: string): Promise<T | undefined> {
    return this.readRecordNamed<T>(kind, BlobStore.recordName(key));
  }

  private async readRecordNamed<T>(kind: string, name: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(join(this.root, 'records', kind, `${name}.json`), 'utf8')) as T;
    } catch {
      // A missing or unreadable record is a cache miss, never an error.
      return undefined;
    }
  }

  /** Keeps a record made outside `cached`, as a by-product of other work: written here, and published where records of its kind are shared. */
  async keepRecord(kind: string, key: string, value: unknown, blobs: Digest[] = []): Promise<void> {
    await this.writeRecord(kind, key, value);
    if (this.shared?.shares(kind)) this.shared.publish(kind, key, value, blobs);
  }

  async writeRecord(kind: string, key: string, value: unknown): Promise<void> {
    const path = this.recordPath(kind, key);
    await mkdir(join(this.root, 'records', kind), { recursive: true });
    const temp = this.tempPath('record');
    await writeFile(temp, JSON.stringify(value));
    await rename(temp, path);
  }

  /** The name a record of `key` has (its file is records/<kind>/<name>.json): the sha256 of the key text. */
  static recordName(key: string): string {
    // Keys are arbitrary strings (refs, cache keys); hashing makes them safe file names.
    return createHash('sha256').update(key).digest('hex');
  }

  private recordPath(kind: string, key: string): string {
    return join(this.root, 'records', kind, `${BlobStore.recordName(key)}.json`);
  }

  /** @internal used by BlobWriter */
  markVerified(digest: Digest): void {
    this.verified.add(digest);
  }
}

export class BlobWriter {
  private readonly hashing = new HashingStream();
  private readonly file: Writable;
  /** Settles when the bytes are on disk (or the write failed); it never rejects unobserved. */
  private readonly written: Promise<Error | undefined>;
  readonly stream: Writable;
  private done = false;

  constructor(private readonly store: BlobStore, private readonly tempPath: string) {
    this.file = createWriteStream(tempPath);
    // pipeline() owns the error handling of both streams, so a failing source or disk never
    // surfaces as an unhandled 'error' event; the failure is reported by commit().
    this.written = pipeline(this.hashing, this.file).then(
      () => undefined,
      (error: Error) => error,
    );
    this.stream = this.hashing;
  }

  /** Waits for the bytes to reach disk, checks the digest, and renames the blob into place. */
  async commit(expected?: Digest, what = 'blob'): Promise<BlobInfo> {
    if (!this.hashing.writableEnded) this.hashing.end();
    const failure = await this.written;
    if (failure) {
      await this.abort();
      throw failure;
    }
    const digest = this.hashing.digest;
    if (expected && digest !== expected) {
      await this.abort();
      throw new UserError(`${what}: digest mismatch: expected ${expected}, got ${digest}`);
    }
    this.done = true;
    await rename(this.tempPath, this.store.blobPath(digest));
    this.store.markVerified(digest);
    return { digest, size: this.hashing.size };
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.hashing.destroy();
    // Wait until the file is closed (its open may still be pending) before removing it, so no
    // temp file can appear after the removal.
    await this.written;
    if (!this.file.closed) await new Promise((resolve) => this.file.once('close', resolve));
    await rm(this.tempPath, { force: true });
  }
}

function fileSignature(stats: import('node:fs').Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Discards bytes; used to drain a verifying read. */
class Sink extends Writable {
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    callback();
  }
}
