import assert from 'node:assert/strict';
import { test } from 'node:test';
import { archiveKeys, checkRelease, debianSourceFrom, isSnapshotMirror, parseRelease } from '../../src/debian/archive/index.js';
import { debianArchiveKeys } from '../../src/debian/keys.js';

test('the source: flags over env over [tool.uvimage] over defaults', () => {
  assert.deepEqual(debianSourceFrom({ env: {} }), {
    mirror: 'https://deb.debian.org/debian',
    securityMirror: 'https://security.debian.org/debian-security',
    suite: 'trixie',
    arch: 'amd64',
  });
  const env = { UVIMAGE_DEBIAN_MIRROR: 'http://env.example/debian/', UVIMAGE_DEBIAN_SECURITY_MIRROR: 'http://env.example/security' };
  const config = { mirror: 'http://config.example/debian', suite: 'bookworm', arch: 'aarch64' };
  assert.deepEqual(debianSourceFrom({ env, config }), {
    mirror: 'http://env.example/debian',
    securityMirror: 'http://env.example/security',
    suite: 'bookworm',
    arch: 'arm64',
  });
  assert.equal(debianSourceFrom({ env: {}, config }).mirror, 'http://config.example/debian');
  assert.equal(debianSourceFrom({ env, config, mirror: 'https://flag.example/debian', suite: 'trixie' }).mirror, 'https://flag.example/debian');
  assert.equal(debianSourceFrom({ env: {}, arch: 'linux/arm64' }).arch, 'arm64');
  assert.throws(() => debianSourceFrom({ env: {}, suite: 'sid' }), /Debian suite "sid" is not supported \(use one of: trixie, bookworm\)/);
  assert.throws(() => debianSourceFrom({ env: {}, arch: 'riscv64' }), /Debian architecture "riscv64" is not supported/);
  assert.throws(() => debianSourceFrom({ env: {}, mirror: 'ftp://x/debian' }), /must be an http/);
});

test('a timestamped snapshot mirror is a pinned snapshot, with the matching security snapshot', () => {
  const source = debianSourceFrom({ env: {}, mirror: 'https://snapshot.debian.org/archive/debian/20251101T000000Z/' });
  assert.deepEqual(source, {
    mirror: 'https://snapshot.debian.org/archive/debian/20251101T000000Z',
    securityMirror: 'https://snapshot.debian.org/archive/debian-security/20251101T000000Z',
    suite: 'trixie',
    arch: 'amd64',
    snapshot: true,
  });
  assert.ok(isSnapshotMirror('http://127.0.0.1:8080/archive/debian/20240101T120000Z'));
  assert.ok(!isSnapshotMirror('https://snapshot.debian.org/archive/debian/'));
  assert.ok(!isSnapshotMirror('https://deb.debian.org/debian'));
  assert.equal(debianSourceFrom({ env: {}, mirror: 'https://snapshot.debian.org/archive/debian/20251101T000000Z', securityMirror: 'https://x/sec' }).securityMirror, 'https://x/sec');
});

const releaseText = `Origin: Debian
Label: Debian-Security
Suite: stable-security
Codename: trixie-security
Date: Wed, 25 Nov 2026 02:22:31 UTC
Valid-Until: Wed, 02 Dec 2026 02:22:31 UTC
Acquire-By-Hash: yes
Architectures: amd64 arm64 armel
Components: updates/main
SHA256:
 20b34d09354d12eaeb00008eaf884ddf8da1508f0812ef5e8c5d9426910ee53f   310176 main/binary-amd64/Packages.xz
 ce508eba475bf2599ce132f3e7224005ba94981741e3d6ea6f22526095336f93  2254523 main/binary-amd64/Packages
`;

test('Valid-Until is enforced, except on a pinned snapshot', () => {
  const release = parseRelease(releaseText);
  assert.equal(release.sha256.get('main/binary-amd64/Packages.xz')?.size, 310176);
  assert.ok(release.acquireByHash);
  const before = Date.parse('2026-11-30T00:00:00Z');
  const after = Date.parse('2026-12-03T00:00:00Z');
  const expected = { dist: 'trixie-security', arch: 'amd64', url: 'https://security.example/dists/trixie-security/InRelease' };
  checkRelease(release, { ...expected, now: before, snapshot: false });
  assert.throws(
    () => checkRelease(release, { ...expected, now: after, snapshot: false }),
    /the InRelease of suite trixie-security expired on 2026-12-02T02:22:31.000Z \(Valid-Until\)/,
  );
  checkRelease(release, { ...expected, now: after, snapshot: true });
});

test('the InRelease must be for the suite and architecture asked for', () => {
  const release = parseRelease(releaseText);
  const now = Date.parse('2026-11-30T00:00:00Z');
  const url = 'https://x/InRelease';
  assert.throws(() => checkRelease(release, { dist: 'bookworm-security', arch: 'amd64', now, snapshot: false, url }), /InRelease is for suite stable-security \(codename trixie-security\), not bookworm-security/);
  assert.throws(() => checkRelease(release, { dist: 'trixie-security', arch: 'riscv64', now, snapshot: true, url }), /has no riscv64 packages/);
  // Suite (not only Codename) may match, as apt accepts.
  checkRelease(release, { dist: 'stable-security', arch: 'arm64', now, snapshot: false, url });
});

test('the embedded archive keys load and match their pinned fingerprints', async () => {
  const keys = await archiveKeys();
  assert.equal(keys.length, debianArchiveKeys.length);
  assert.deepEqual(
    keys.map((key) => key.getFingerprint().toUpperCase()),
    debianArchiveKeys.map((key) => key.fingerprint),
  );
  assert.ok(debianArchiveKeys.some((key) => key.name === 'trixie-automatic' && key.fingerprint === '04B54C3CDCA79751B16BC6B5225629DF75B188BD'));
});
