/**
 * The flavours against distroless' published definitions. Source: GoogleContainerTools/distroless
 * at commit cd080764af3103b2f49fb5eb23297c72c945e77a (2026-08-21):
 *   static/config.bzl STATIC_PACKAGES, base/config.bzl BASE_NOSSL_PACKAGES and BASE_PACKAGES,
 *   cc/config.bzl CC_PACKAGES (each image is built on the one before: static <- base-nossl
 *   <- base <- cc, see base/base.bzl and cc/cc.bzl), common/BUILD.bazel (cacerts from
 *   ca-certificates, passwd, group, home, tmp), common/variables.bzl (OS_RELEASE, NONROOT 65532,
 *   NOBODY 65534), static/nsswitch.conf, static/static.bzl (env PATH and SSL_CERT_FILE).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  baseLayerGroup,
  distrolessEnv,
  distrolessFiles,
  flavourPackages,
  groupFile,
  keepPackageFile,
  mergedUsrLinks,
  nsswitchFile,
  osReleaseFile,
  passwdFile,
  sortCertificatePaths,
  statusStanza,
} from '../../src/base/flavours.js';

// Written out from the files named above (not derived from our own module).
const distroless = {
  STATIC_PACKAGES: {
    debian12: ['base-files', 'netbase', 'tzdata', 'media-types'],
    debian13: ['base-files', 'netbase', 'tzdata', 'tzdata-legacy', 'media-types'],
  },
  BASE_NOSSL_PACKAGES: { debian12: ['libc6'], debian13: ['libc6'] },
  BASE_PACKAGES: { debian12: ['libc6', 'libssl3'], debian13: ['libc6', 'libssl3t64', 'libzstd1', 'zlib1g'] },
  CC_PACKAGES: { debian12: ['libgomp1', 'libstdc++6', 'libgcc-s1', 'gcc-12-base'], debian13: ['libgomp1', 'libstdc++6', 'libgcc-s1', 'gcc-14-base'] },
};

const sorted = (list: string[]) => [...new Set(list)].sort();

for (const [suite, distro] of [['bookworm', 'debian12'], ['trixie', 'debian13']] as const) {
  test(`${suite}: every flavour has exactly distroless' ${distro} packages (+ ca-certificates from common:cacerts)`, () => {
    const staticSet = [...distroless.STATIC_PACKAGES[distro], 'ca-certificates'];
    const nossl = [...staticSet, ...distroless.BASE_NOSSL_PACKAGES[distro]];
    const base = [...staticSet, ...distroless.BASE_PACKAGES[distro]];
    const cc = [...base, ...distroless.CC_PACKAGES[distro]];
    assert.deepEqual(sorted(flavourPackages('static', suite)), sorted(staticSet));
    assert.deepEqual(sorted(flavourPackages('base-nossl', suite)), sorted(nossl));
    assert.deepEqual(sorted(flavourPackages('base', suite)), sorted(base));
    assert.deepEqual(sorted(flavourPackages('cc', suite)), sorted(cc));
    for (const flavour of ['static', 'base-nossl', 'base', 'cc'] as const) {
      const list = flavourPackages(flavour, suite);
      assert.equal(new Set(list).size, list.length, `${flavour} lists a package twice`);
    }
  });
}

test('layers group glibc and the compiler runtime apart from the rest of the base', () => {
  for (const name of ['libc6', 'libgcc-s1', 'gcc-14-base', 'gcc-12-base', 'libstdc++6', 'libgomp1']) assert.equal(baseLayerGroup(name), 'libc', name);
  for (const name of ['base-files', 'tzdata', 'ca-certificates', 'libssl3t64', 'zlib1g', 'libzstd1']) assert.equal(baseLayerGroup(name), 'base', name);
});

test('users, groups, nsswitch and os-release are distroless\'', () => {
  assert.deepEqual(
    passwdFile.trim().split('\n').map((line) => line.split(':').slice(0, 4).join(':')),
    ['root:x:0:0', 'nobody:x:65534:65534', 'nonroot:x:65532:65532'],
  );
  assert.match(passwdFile, /^nonroot:x:65532:65532:nonroot:\/home\/nonroot:\/sbin\/nologin$/m);
  assert.deepEqual(groupFile.trim().split('\n').map((line) => line.split(':')[0]), ['root', 'nobody', 'tty', 'staff', 'nonroot']);
  assert.match(nsswitchFile, /^hosts:\s+files dns$/m);
  assert.match(osReleaseFile('trixie'), /^VERSION="Debian GNU\/Linux 13 \(trixie\)"$/m); // static/testdata/debian13.yaml
  assert.match(osReleaseFile('bookworm'), /^VERSION_ID="12"$/m);
  assert.match(osReleaseFile('bookworm'), /^ID="debian"$/m);
  assert.deepEqual(distrolessEnv, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt']);
});

test('the added files: owners and modes', () => {
  const files = new Map(distrolessFiles('trixie', Buffer.from('CERTS')).map((entry) => [entry.path, entry]));
  assert.deepEqual({ ...files.get('tmp') }, { type: 'directory', path: 'tmp', mode: 0o1777 });
  assert.deepEqual({ ...files.get('home/nonroot') }, { type: 'directory', path: 'home/nonroot', mode: 0o700, uid: 65532, gid: 65532 });
  assert.equal(files.get('root')!.mode, 0o700);
  const bundle = files.get('etc/ssl/certs/ca-certificates.crt')!;
  assert.equal(bundle.type === 'file' && bundle.size, 5);
  for (const path of ['etc/passwd', 'etc/group', 'etc/nsswitch.conf', 'usr/lib/os-release']) assert.equal(files.get(path)?.mode, 0o644, path);
  assert.deepEqual(mergedUsrLinks('amd64').map((link) => link.path), ['bin', 'sbin', 'lib', 'lib64']);
  assert.deepEqual(mergedUsrLinks('arm64').map((link) => link.path), ['bin', 'sbin', 'lib']);
});

test('documentation is dropped except copyright files', () => {
  const kept = [
    'usr/share/doc',
    'usr/share/doc/libc6',
    'usr/share/doc/libc6/copyright',
    'usr/share/doc/libgcc-s1', // a symlink to gcc-14-base's directory in trixie
    'usr/share/zoneinfo/Europe/Paris',
    'usr/lib/x86_64-linux-gnu/libc.so.6',
    'etc/ssl/openssl.cnf',
  ];
  const dropped = [
    'usr/share/doc/libc6/changelog.Debian.gz',
    'usr/share/doc/base-files/README',
    'usr/share/doc/libc6/examples/x.c',
    'usr/share/man',
    'usr/share/man/man1/python3.13.1.gz',
    'usr/share/info/dir',
    'usr/share/lintian/overrides/libc6',
    'usr/share/locale/de/LC_MESSAGES/libc.mo',
  ];
  for (const path of kept) assert.equal(keepPackageFile(path), true, path);
  for (const path of dropped) assert.equal(keepPackageFile(path), false, path);
});

test('the CA bundle order is cacerts.sh\'s: directory by directory, names in byte order', () => {
  assert.deepEqual(
    sortCertificatePaths(['u/mozilla/b.crt', 'u/mozilla/A.crt', 'u/extra/z.crt', 'u/mozilla-x/a.crt', 'u/mozilla/a.crt']),
    ['u/extra/z.crt', 'u/mozilla/A.crt', 'u/mozilla/a.crt', 'u/mozilla/b.crt', 'u/mozilla-x/a.crt'],
  );
});

test('status.d stanza: the control file with Status after Package', () => {
  const stanza = statusStanza('Package: libc6\nSource: glibc\nVersion: 2.41-12\nArchitecture: amd64\nDescription: GNU C Library\n shared libraries\n\n');
  assert.equal(stanza, 'Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.41-12\nArchitecture: amd64\nDescription: GNU C Library\n shared libraries\n');
});
