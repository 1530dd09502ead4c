/**
 * A suite's InRelease: clearsigned by a pinned Debian archive key (keys.ts), for the suite asked
 * for (its Suite or Codename), not expired (Valid-Until, except on a pinned snapshot), and the
 * SHA256 of every index file it lists, which is what the rest of the archive is checked against.
 */
import type * as OpenPGP from 'openpgp';
import { UserError, describeError } from '../../errors.js';
import { parseStanza } from '../control.js';
import { debianArchiveKeys } from '../keys.js';

/** The fields of a verified InRelease uvimage uses. */
export interface ReleaseInfo {
  suite?: string;
  codename?: string;
  date?: Date;
  validUntil?: Date;
  architectures: string[];
  acquireByHash: boolean;
  /** path (relative to dists/<dist>/) -> SHA256 and size. */
  sha256: Map<string, { sha256: string; size: number }>;
}

export function parseRelease(text: string): ReleaseInfo {
  const fields = parseStanza(text);
  const sha256 = new Map<string, { sha256: string; size: number }>();
  for (const line of (fields.SHA256 ?? '').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3 || !/^[a-f0-9]{64}$/.test(parts[0]!)) continue;
    sha256.set(parts[2]!, { sha256: parts[0]!, size: Number(parts[1]) });
  }
  const date = (value: string | undefined) => {
    if (!value) return undefined;
    const parsed = new Date(value);
    return Number.isNaN(parsed.getTime()) ? undefined : parsed;
  };
  const info: ReleaseInfo = {
    architectures: (fields.Architectures ?? '').split(/\s+/).filter(Boolean),
    acquireByHash: (fields['Acquire-By-Hash'] ?? '').toLowerCase() === 'yes',
    sha256,
  };
  if (fields.Suite) info.suite = fields.Suite;
  if (fields.Codename) info.codename = fields.Codename;
  const when = date(fields.Date);
  if (when) info.date = when;
  const validUntil = date(fields['Valid-Until']);
  if (validUntil) info.validUntil = validUntil;
  return info;
}

/**
 * Checks a verified InRelease against what was asked: its Suite or Codename is `dist`, it lists
 * the architecture, and it has not expired (Valid-Until), unless the mirror is a pinned snapshot,
 * where an old Valid-Until is expected and the point in time is the user's choice.
 */
export function checkRelease(release: ReleaseInfo, expected: { dist: string; arch: string; now: number; snapshot: boolean; url: string }): void {
  if (release.suite !== expected.dist && release.codename !== expected.dist) {
    throw new UserError(
      `${expected.url}: InRelease is for suite ${release.suite ?? '?'} (codename ${release.codename ?? '?'}), not ${expected.dist}`,
    );
  }
  if (release.architectures.length > 0 && !release.architectures.includes(expected.arch)) {
    throw new UserError(`${expected.url}: suite ${expected.dist} has no ${expected.arch} packages (it has ${release.architectures.join(', ')})`);
  }
  if (!expected.snapshot && release.validUntil && release.validUntil.getTime() < expected.now) {
    throw new UserError(
      `${expected.url}: the InRelease of suite ${expected.dist} expired on ${release.validUntil.toISOString()} (Valid-Until); the mirror is out of date or something replays old metadata`,
    );
  }
}

let trustedKeys: Promise<OpenPGP.PublicKey[]> | undefined;

/**
 * openpgp, loaded on first use: only a build that (re)validates an InRelease needs it, and a
 * rebuild within the index's TTL or from a lock should not pay for loading it.
 */
function loadOpenpgp(): Promise<typeof OpenPGP> {
  return import('openpgp');
}

/** The pinned archive keys, each checked against its pinned fingerprint. */
export function archiveKeys(): Promise<OpenPGP.PublicKey[]> {
  trustedKeys ??= Promise.all(
    debianArchiveKeys.map(async (entry) => {
      const openpgp = await loadOpenpgp();
      const key = await openpgp.readKey({ armoredKey: entry.armored });
      const fingerprint = key.getFingerprint().toUpperCase();
      if (fingerprint !== entry.fingerprint) {
        throw new Error(`embedded Debian archive key ${entry.name} has fingerprint ${fingerprint}, pinned ${entry.fingerprint}`);
      }
      return key;
    }),
  );
  return trustedKeys;
}

/**
 * Verifies a clearsigned InRelease and returns its signed text. At least one signature must be
 * good and made by a pinned Debian archive key; signatures by other keys are ignored (apt does
 * the same: an archive is often signed by an old release's key too).
 */
export async function verifyInRelease(bytes: Uint8Array | string, url: string): Promise<string> {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  const openpgp = await loadOpenpgp();
  let message;
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: text });
  } catch (error) {
    throw new UserError(`${url}: not a clearsigned InRelease (${describeError(error)})`);
  }
  const keys = await archiveKeys();
  const result = await openpgp.verify({ message, verificationKeys: keys, expectSigned: false });
  const seen: string[] = [];
  const failures: string[] = [];
  for (const signature of result.signatures) {
    const keyId = signature.keyID.toHex().toUpperCase();
    seen.push(keyId);
    try {
      await signature.verified;
      return result.data;
    } catch (error) {
      failures.push(`${keyId}: ${describeError(error)}`);
    }
  }
  const known = failures.filter((failure) => !/Could not find signing key/i.test(failure));
  const why = known.length > 0 ? `bad signature (${known.join('; ')})` : seen.length > 0 ? `signed only by keys uvimage does not trust (${seen.join(', ')})` : 'no signature';
  throw new UserError(`${url}: InRelease signature verification failed: ${why}`);
}
