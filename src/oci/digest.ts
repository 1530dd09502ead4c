import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** An OCI content digest. uvimage only produces and accepts sha256. */
export type Digest = `sha256:${string}`;

const digestPattern = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return digestPattern.test(value);
}

/** Parses a digest from untrusted input (a manifest, a registry header, a file name). */
export function parseDigest(value: string, where: string): Digest {
  if (!isDigest(value)) throw new Error(`${where}: not a sha256 digest: ${JSON.stringify(value)}`);
  return value;
}

export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/**
 * A pass-through stream that hashes and counts the bytes flowing through it, so a digest is
 * computed in the same pass that writes or uploads the bytes.
 */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private byteCount = 0;
  private finalDigest: Digest | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.byteCount += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.finalDigest = `sha256:${this.hash.digest('hex')}`;
    callback();
  }

  /** The digest of everything that passed through; only valid once the stream has ended. */
  get digest(): Digest {
    if (!this.finalDigest) throw new Error('HashingStream: digest read before the stream ended');
    return this.finalDigest;
  }

  get size(): number {
    return this.byteCount;
  }
}
