/**
 * A GET streamed into the BlobStore against the digest its source gives (a lock, a signed
 * index, a pinned table): the bytes are hashed as they arrive and the blob is renamed into place
 * only when they match, so a mismatch, a cut connection or a timeout leaves nothing behind. A
 * try that fails transiently mid-body starts over (src/net/request.ts); the progress it had
 * reported is taken back first.
 */
import type { Digest } from '../oci/digest.js';
import type { BlobInfo, BlobStore } from '../oci/store.js';
import { requestWith, statusError, type HttpRequest } from './request.js';

export interface DownloadTarget {
  store: BlobStore;
  /** The digest the bytes must have; without it the blob is stored under whatever they hash to. */
  digest?: Digest;
  /** What is downloaded, for the store's mismatch message. */
  what: string;
  /** Bytes received (negative: a failed try's bytes taken back). */
  onBytes?: (bytes: number) => void;
  /** A hint appended to a status error (e.g. where credentials come from). */
  statusHint?: (status: number) => string;
}

/**
 * Downloads a URL into the store. Fails with HttpStatusError for any status but 200, NetworkError
 * when no answer got through, and the store's UserError when the bytes do not match.
 */
export function downloadToStore(spec: HttpRequest, target: DownloadTarget): Promise<BlobInfo> {
  return requestWith({ ...spec, method: 'GET' }, async (response) => {
    if (response.status !== 200) throw await statusError(response, 'GET', target.statusHint?.(response.status) ?? '');
    let received = 0;
    if (target.onBytes) {
      const onBytes = target.onBytes;
      response.body.on('data', (chunk: Buffer) => {
        received += chunk.length;
        onBytes(chunk.length);
      });
    }
    try {
      return await target.store.writeStream(response.body, target.digest, target.what);
    } catch (error) {
      if (received > 0) target.onBytes?.(-received);
      throw error;
    }
  });
}
