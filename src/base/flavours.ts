/**
 * The base flavours, with distroless' content (GoogleContainerTools/distroless at cd080764,
 * 2026-08-21): the package lists of static/config.bzl, base/config.bzl and cc/config.bzl, and the
 * files common/BUILD.bazel and static/ add (passwd, group, home directories, /tmp, nsswitch.conf,
 * os-release, the CA bundle built by rules_distroless' cacerts.sh). Pure data and small pure
 * functions; reading packages and writing layers is src/base/image.ts.
 */
import type { Architecture } from '../facts/architectures.js';
import { debianSuites, type DebianSuite } from '../facts/debian-suites.js';
import type { LayerEntry } from '../oci/layer-entry.js';

export const flavourNames = ['static', 'base-nossl', 'base', 'cc'] as const;
export type FlavourName = (typeof flavourNames)[number];

/**
 * The flavours a build's base can be: distroless' four, and minimal — cc's packages, of which
 * the image keeps only what its ELF files need (src/base/minimal.ts).
 */
export const imageFlavourNames = [...flavourNames, 'minimal'] as const;

/** Packages each flavour adds to the one below it, per suite (distroless' *_PACKAGES). */
const added: Record<FlavourName, Record<DebianSuite, string[]>> = {
  // static/config.bzl STATIC_PACKAGES, plus ca-certificates (common:cacerts_<distro>_<arch>:
  // only the generated bundle, its copyright and its status.d entry).
  static: {
    bookworm: ['base-files', 'netbase', 'tzdata', 'media-types', 'ca-certificates'],
    trixie: ['base-files', 'netbase', 'tzdata', 'tzdata-legacy', 'media-types', 'ca-certificates'],
  },
  // base/config.bzl BASE_NOSSL_PACKAGES
  'base-nossl': { bookworm: ['libc6'], trixie: ['libc6'] },
  // base/config.bzl BASE_PACKAGES minus libc6
  base: { bookworm: ['libssl3'], trixie: ['libssl3t64', 'libzstd1', 'zlib1g'] },
  // cc/config.bzl CC_PACKAGES
  cc: { bookworm: ['libgomp1', 'libstdc++6', 'libgcc-s1', 'gcc-12-base'], trixie: ['libgomp1', 'libstdc++6', 'libgcc-s1', 'gcc-14-base'] },
};

/**
 * Every package of a flavour, in distroless' order. Like distroless (resolve_transitive = False)
 * these are exactly the packages listed, not their dependency closure: libc6's dependency on
 * libgcc-s1 is met only in cc, which is what distroless ships.
 */
export function flavourPackages(flavour: FlavourName, suite: DebianSuite): string[] {
  const upTo = flavourNames.indexOf(flavour);
  return flavourNames.slice(0, upTo + 1).flatMap((name) => added[name][suite]);
}


/**
 * The layer a package goes in, by how often it changes: glibc and the compiler runtime (rarely),
 * the rest of the base (tzdata, CA certificates, OpenSSL: more often), then the runtime.
 */
export type LayerGroup = 'libc' | 'base' | 'runtime';
const libcPackages = /^(libc6|libgcc-s1|gcc-\d+-base|libstdc\+\+6|libgomp1)$/;
export function baseLayerGroup(packageName: string): LayerGroup {
  return libcPackages.test(packageName) ? 'libc' : 'base';
}

/** The image config distroless sets (static/static.bzl). */
export const distrolessEnv = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'];
export const caBundlePath = 'etc/ssl/certs/ca-certificates.crt';

export const ROOT = 0;
export const NONROOT = 65532;
export const NOBODY = 65534;

/**
 * What of a package's files goes into an image: no documentation but the copyright, no man or
 * info pages, no translations, no lintian overrides (nothing in an image reads them; a scanner
 * needs only the status.d entry and the copyright).
 */
export function keepPackageFile(path: string): boolean {
  const segments = path.split('/');
  if (segments[0] === 'usr' && segments[1] === 'share') {
    const area = segments[2];
    if (area === 'doc') return docPathKept(segments);
    if (area === 'man' || area === 'info' || area === 'lintian' || area === 'locale' || area === 'doc-base' || area === 'bug' || area === 'bash-completion') return false;
  }
  return true;
}

/** usr/share/doc, usr/share/doc/<pkg> (directory or link), usr/share/doc/<pkg>/copyright. */
function docPathKept(segments: string[]): boolean {
  if (segments.length <= 4) return true;
  return segments.length === 5 && segments[4] === 'copyright';
}

/** A file entry with fixed content. */
export function fileEntry(path: string, content: string | Buffer, mode = 0o644, owner = { uid: 0, gid: 0 }): LayerEntry {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  return { type: 'file', path, mode, ...owner, size: bytes.length, open: () => bytes };
}

// common/BUILD.bazel: passwd() and group() entries, in that order.
export const passwdFile =
  'root:x:0:0:root:/root:/sbin/nologin\n' +
  'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' +
  'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n';
export const groupFile = 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n';

// static/nsswitch.conf, verbatim.
export const nsswitchFile = `# /etc/nsswitch.conf
#
# Example configuration of GNU Name Service Switch functionality.
# If you have the \`glibc-doc-reference' and \`info' packages installed, try:
# \`info libc "Name Service Switch"' for information about this file.

passwd:         compat
group:          compat
shadow:         compat
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
`;

/** common/variables.bzl OS_RELEASE, formatted by rules_distroless' os_release (quoted values). */
export function osReleaseFile(suite: DebianSuite): string {
  const version = debianSuites[suite].version;
  const fields: [string, string][] = [
    ['PRETTY_NAME', 'Distroless'],
    ['NAME', 'Debian GNU/Linux'],
    ['ID', 'debian'],
    ['VERSION_ID', version],
    ['VERSION', `Debian GNU/Linux ${version} (${suite})`],
    ['VERSION_CODENAME', suite],
    ['HOME_URL', 'https://github.com/GoogleContainerTools/distroless'],
    ['SUPPORT_URL', 'https://github.com/GoogleContainerTools/distroless/blob/master/README.md'],
    ['BUG_REPORT_URL', 'https://github.com/GoogleContainerTools/distroless/issues/new'],
  ];
  return fields.map(([key, value]) => `${key}="${value}"\n`).join('');
}

/**
 * The files distroless adds beside packages (common/BUILD.bazel and static/BUILD): these override
 * anything a package ships at the same path (base-files' os-release).
 */
export function distrolessFiles(suite: DebianSuite, caBundle: Buffer): LayerEntry[] {
  return [
    fileEntry('etc/passwd', passwdFile),
    fileEntry('etc/group', groupFile),
    fileEntry('etc/nsswitch.conf', nsswitchFile),
    fileEntry('usr/lib/os-release', osReleaseFile(suite)),
    fileEntry(caBundlePath, caBundle),
    { type: 'directory', path: 'etc/ssl', mode: 0o755 },
    { type: 'directory', path: 'etc/ssl/certs', mode: 0o755 },
    { type: 'directory', path: 'root', mode: 0o700 },
    { type: 'directory', path: 'home', mode: 0o755 },
    { type: 'directory', path: 'home/nonroot', mode: 0o700, uid: NONROOT, gid: NONROOT },
    { type: 'directory', path: 'tmp', mode: 0o1777 },
  ];
}

/** The merged-/usr aliases (trixie): what usrmerge makes on a Debian system. */
export function mergedUsrLinks(arch: Architecture): LayerEntry[] {
  const links: LayerEntry[] = [
    { type: 'symlink', path: 'bin', target: 'usr/bin' },
    { type: 'symlink', path: 'sbin', target: 'usr/sbin' },
    { type: 'symlink', path: 'lib', target: 'usr/lib' },
  ];
  if (arch === 'amd64') links.push({ type: 'symlink', path: 'lib64', target: 'usr/lib64' });
  return links;
}

/**
 * The CA bundle as rules_distroless' cacerts.sh makes it: every file under
 * usr/share/ca-certificates, directories walked in sorted order, concatenated (no
 * update-ca-certificates, no /etc/ca-certificates.conf selection: all of Mozilla's roots).
 */
export function sortCertificatePaths(paths: string[]): string[] {
  const compare = (a: string, b: string): number => {
    const left = a.split('/');
    const right = b.split('/');
    for (let index = 0; index < Math.min(left.length, right.length); index++) {
      const x = Buffer.from(left[index]!);
      const y = Buffer.from(right[index]!);
      const order = Buffer.compare(x, y);
      if (order !== 0) return order;
    }
    return left.length - right.length;
  };
  return [...paths].sort(compare);
}

/** The dpkg status entry for a package: its control stanza with the Status dpkg would add. */
export function statusStanza(controlText: string): string {
  const lines = controlText.replace(/\n+$/, '').split('\n');
  const withoutStatus = lines.filter((line) => !line.startsWith('Status:'));
  const at = withoutStatus.findIndex((line) => line.startsWith('Package:'));
  withoutStatus.splice(at + 1, 0, 'Status: install ok installed');
  return `${withoutStatus.join('\n')}\n`;
}
