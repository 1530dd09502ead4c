/**
 * A self-signed TLS certificate for test servers on 127.0.0.1, made by openssl (a dependency of
 * Debian's ca-certificates, so present wherever https works). Clients trust it through
 * SSL_CERT_FILE, as a network whose proxy re-signs TLS would have them do.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificate {
  key: string;
  cert: string;
  /** A file holding `cert`, for SSL_CERT_FILE. */
  certFile: string;
  cleanup(): Promise<void>;
}

/** A P-256 certificate valid for one day for the given DNS names. */
export async function selfSignedCertificate(names: string[]): Promise<TestCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'uvimage-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((name) => `DNS:${name}`).join(',')}`,
    '-keyout', keyFile, '-out', certFile,
  ]);
  return {
    key: await readFile(keyFile, 'utf8'),
    cert: await readFile(certFile, 'utf8'),
    certFile,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
