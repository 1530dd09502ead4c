/**
 * The distroless flavours end to end: `uvimage base` builds them from the real Debian archive
 * (through the persistent test cache, so a rerun downloads nothing), the Docker engine loads and
 * runs them, and their content is checked against distroless' (package lists from
 * GoogleContainerTools/distroless @ cd080764, see flavours.test.ts) and sizes (distroless'
 * debian12 images: static 2 MB, base-nossl 14.8 MB, base 20.7 MB, cc 23.4 MB, as `docker images`
 * shows them).
 *
 * Needs: a Docker engine (scripts/start-dockerd), gcc/g++, and for arm64 the qemu-aarch64 binfmt
 * entry with flag F (scripts/enable-binfmt).
 */
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildDebianBase } from '../../src/base/build.js';
import { flavourPackages, passwdFile, type FlavourName } from '../../src/base/flavours.js';
import type { Digest } from '../../src/oci/digest.js';
import type { BlobStore } from '../../src/oci/store.js';
import { sharedTestStore } from '../harness/cache.js';
import { uvimage } from '../harness/cli.js';
import { check, dockerRemoveImages, requireDocker, run } from '../harness/docker.js';
import { readImage, statusPackages, type ImageContents } from './image-files.js';

const flavours: FlavourName[] = ['static', 'base-nossl', 'base', 'cc'];



const programs = {
  // static: a statically linked program reading what the static base provides.
  'static.c': `#include <stdio.h>
#include <sys/stat.h>
int main(void) {
  struct stat st; char line[256]; FILE *f = fopen("/etc/passwd", "r");
  if (!f) return 1;
  while (fgets(line, sizeof line, f)) fputs(line, stdout);
  fclose(f);
  if (stat("/tmp", &st) == 0) printf("/tmp %o\\n", st.st_mode & 07777);
  if (stat("/etc/ssl/certs/ca-certificates.crt", &st) == 0 && st.st_size > 100000) printf("bundle ok\\n");
  if (stat("/usr/share/zoneinfo/Europe/Paris", &st) == 0) printf("zoneinfo ok\\n");
  return 0;
}
`,
  // base-nossl: dynamically linked against glibc only; users through nsswitch, time zones.
  'nossl.c': `#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(void) {
  struct passwd *me = getpwuid(getuid());
  setenv("TZ", "Europe/Paris", 1); tzset();
  time_t t = 1700000000; struct tm tm; localtime_r(&t, &tm);
  char when[64]; strftime(when, sizeof when, "%Y-%m-%d %H:%M %Z", &tm);
  printf("user=%s home=%s when=%s\\n", me ? me->pw_name : "?", me ? me->pw_dir : "?", when);
  return me ? 0 : 1;
}
`,
  // base: a TLS client context with the CA bundle, through the image's libssl.so.3 (dlopen, so
  // the build machine needs no OpenSSL headers and bookworm-vs-trixie sonames do not matter).
  'tls.c': `#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  void *ssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_GLOBAL);
  if (!ssl) { fprintf(stderr, "dlopen: %s\\n", dlerror()); return 1; }
  const void *(*client_method)(void) = (const void *(*)(void))dlsym(ssl, "TLS_client_method");
  void *(*ctx_new)(const void *) = (void *(*)(const void *))dlsym(ssl, "SSL_CTX_new");
  int (*default_paths)(void *) = (int (*)(void *))dlsym(ssl, "SSL_CTX_set_default_verify_paths");
  void *(*cert_store)(const void *) = (void *(*)(const void *))dlsym(ssl, "SSL_CTX_get_cert_store");
  void *(*objects)(void *) = (void *(*)(void *))dlsym(ssl, "X509_STORE_get0_objects");
  int (*sk_num)(const void *) = (int (*)(const void *))dlsym(ssl, "OPENSSL_sk_num");
  if (!client_method || !ctx_new || !default_paths || !cert_store || !objects || !sk_num) { fprintf(stderr, "dlsym failed\\n"); return 1; }
  void *ctx = ctx_new(client_method());
  if (!ctx || default_paths(ctx) != 1) { fprintf(stderr, "no TLS context\\n"); return 1; }
  int certs = sk_num(objects(cert_store(ctx)));
  printf("tls context with %d certificates from %s\\n", certs, getenv("SSL_CERT_FILE"));
  return certs > 100 ? 0 : 2;
}
`,
  // cc: C++ with libstdc++ and libgcc_s (exceptions).
  'hello.cpp': `#include <iostream>
#include <numeric>
#include <stdexcept>
#include <vector>
#include <unistd.h>
int main() {
  std::vector<int> v(10); std::iota(v.begin(), v.end(), 1);
  try { throw std::runtime_error("caught"); } catch (const std::exception &e) { std::cout << e.what() << " "; }
  std::cout << "sum=" << std::accumulate(v.begin(), v.end(), 0) << " uid=" << getuid() << std::endl;
}
`,
};

/** Which program runs on which flavour, and what it must print. */
const runs: Record<FlavourName, { program: string; expect: RegExp }> = {
  static: { program: 'static', expect: /nonroot:x:65532:65532[\s\S]*\/tmp 1777\nbundle ok\nzoneinfo ok/ },
  'base-nossl': { program: 'nossl', expect: /^user=nonroot home=\/home\/nonroot when=2023-11-14 23:13 CET$/m },
  base: { program: 'tls', expect: /^tls context with \d{3} certificates from \/etc\/ssl\/certs\/ca-certificates\.crt$/m },
  cc: { program: 'hello', expect: /^caught sum=55 uid=65532$/m },
};

let work: string;
let store: BlobStore;
const tags = flavours.map((flavour) => `uvimage-test/${flavour}:trixie`);

before(async () => {
  requireDocker();
  store = await sharedTestStore();
  work = await mkdtemp(join(tmpdir(), 'uvimage-bases-'));
  for (const [name, source] of Object.entries(programs)) await writeFile(join(work, name), source);
  await check('gcc', ['-static', '-O2', '-o', join(work, 'static'), join(work, 'static.c')]);
  await check('gcc', ['-O2', '-o', join(work, 'nossl'), join(work, 'nossl.c')]);
  await check('gcc', ['-O2', '-o', join(work, 'tls'), join(work, 'tls.c'), '-ldl']);
  await check('g++', ['-O2', '-o', join(work, 'hello'), join(work, 'hello.cpp')]);
});

after(async () => {
  await dockerRemoveImages([...tags, 'uvimage-test/cc:trixie-arm64']);
  if (work) await rm(work, { recursive: true, force: true });
});

/** What every flavour must hold, whatever the suite and architecture. */
function checkDistrolessContent(image: ImageContents, flavour: FlavourName, suite: 'trixie' | 'bookworm'): void {
  const { files, config } = image;
  const expected = flavourPackages(flavour, suite);
  assert.deepEqual(statusPackages(files), [...expected].sort(), `${flavour}: status.d names exactly the flavour's packages`);
  for (const name of expected) {
    assert.ok(files.has(`var/lib/dpkg/status.d/${name}.md5sums`), `${name}.md5sums`);
    const stanza = files.get(`var/lib/dpkg/status.d/${name}`)!.content!.toString();
    assert.match(stanza, new RegExp(`^Package: ${name.replace(/[+.]/g, '\\$&')}\\nStatus: install ok installed\\n`));
    const doc = files.get(`usr/share/doc/${name}`);
    assert.ok(doc, `usr/share/doc/${name}`);
    if (doc.type === 'directory') assert.ok(files.has(`usr/share/doc/${name}/copyright`), `${name}'s copyright is kept`);
  }
  assert.equal(files.get('etc/passwd')!.content!.toString(), passwdFile);
  assert.match(files.get('etc/group')!.content!.toString(), /^nonroot:x:65532:$/m);
  assert.match(files.get('etc/nsswitch.conf')!.content!.toString(), /^hosts:\s+files dns$/m);
  assert.match(files.get('usr/lib/os-release')!.content!.toString(), new RegExp(`^VERSION_ID="${suite === 'trixie' ? 13 : 12}"$`, 'm'));
  assert.equal(files.get('tmp')!.mode, 0o1777);
  assert.deepEqual([files.get('home/nonroot')!.mode, files.get('home/nonroot')!.uid, files.get('home/nonroot')!.gid], [0o700, 65532, 65532]);
  const bundle = files.get('etc/ssl/certs/ca-certificates.crt')!;
  assert.ok(bundle.size > 100_000 && bundle.content!.toString().startsWith('-----BEGIN CERTIFICATE-----'));
  assert.ok((bundle.content!.toString().match(/BEGIN CERTIFICATE/g) ?? []).length > 100);
  assert.ok(config.config?.Env?.includes('SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'));
  // No documentation but copyright files, no man pages, no shell.
  for (const path of files.keys()) {
    assert.doesNotMatch(path, /^usr\/share\/(man|info|lintian|locale)(\/|$)/, path);
    assert.doesNotMatch(path, /^usr\/share\/doc\/[^/]+\/(?!copyright$)/, path);
    assert.doesNotMatch(path, /^(usr\/)?s?bin\/(sh|bash|dash)$/, path);
  }
  if (suite === 'trixie') {
    for (const link of ['bin', 'sbin', 'lib']) assert.deepEqual([files.get(link)?.type, files.get(link)?.linkname], ['symlink', `usr/${link}`], link);
    for (const path of files.keys()) assert.doesNotMatch(path, /^(bin|sbin|lib|lib64)\//, `merged-/usr: ${path}`);
  }
}

for (const flavour of flavours) {
  test(`${flavour} (trixie/amd64): built by \`uvimage base\`, distroless' content, loaded and run as 65532 with a read-only root`, async () => {
    const tag = `uvimage-test/${flavour}:trixie`;
    const result = await uvimage(['base', flavour, '--suite', 'trixie', '--platform', 'linux/amd64', '--load', '-t', tag, '--cache-dir', store.root, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const built = JSON.parse(result.stdout) as { digest: Digest };
    const image = await readImage(store, built.digest);
    checkDistrolessContent(image, flavour, 'trixie');
    // Layers by how often they change: glibc and friends, then the rest.
    assert.equal(image.manifest.layers.length, flavour === 'static' ? 1 : 2);
    if (flavour !== 'static') assert.equal(image.files.get('var/lib/dpkg/status.d/libc6')!.layer, 0);
    assert.equal(image.files.get('var/lib/dpkg/status.d/tzdata')!.layer, image.manifest.layers.length - 1);
    assert.equal(image.files.get('usr/lib/x86_64-linux-gnu/libc.so.6')?.elfMachine, flavour === 'static' ? undefined : 62);

    const { program, expect } = runs[flavour];
    const output = await check('docker', ['run', '--rm', '--network', 'host', '--read-only', '-u', '65532', '-v', `${join(work, program)}:/${program}:ro`, '--entrypoint', `/${program}`, tag]);
    assert.match(output, expect);
  });
}

test('reproducible: the same packages give the same digests on every build; an unchanged layer is reused', async () => {
  const first = await buildDebianBase({ base: 'cc', suite: 'trixie', arch: 'amd64', store, env: {}, layerCache: false });
  const second = await buildDebianBase({ base: 'cc', suite: 'trixie', arch: 'amd64', store, env: {}, layerCache: false });
  assert.equal(second.image.manifest.descriptor.digest, first.image.manifest.descriptor.digest);
  // With the layer cache (the default), a rebuild takes the layers from the store: same digest, far less time.
  await buildDebianBase({ base: 'cc', suite: 'trixie', arch: 'amd64', store, env: {} });
  const started = performance.now();
  const cached = await buildDebianBase({ base: 'cc', suite: 'trixie', arch: 'amd64', store, env: {} });
  const cachedMs = performance.now() - started;
  assert.equal(cached.image.manifest.descriptor.digest, first.image.manifest.descriptor.digest);
  assert.equal(cached.contentSize, first.contentSize);
  assert.ok(cachedMs < 5000, `a cached rebuild took ${cachedMs.toFixed(0)} ms`);
  const dated = await buildDebianBase({ base: 'cc', suite: 'trixie', arch: 'amd64', store, env: { SOURCE_DATE_EPOCH: '1700000000' } });
  assert.notEqual(dated.image.manifest.descriptor.digest, first.image.manifest.descriptor.digest, 'SOURCE_DATE_EPOCH is the one timestamp');
});

test('bookworm/amd64: distroless\' debian12 packages, no larger than distroless\' debian12 images', async () => {
  const distrolessMB: Record<FlavourName, number> = { static: 2, 'base-nossl': 14.8, base: 20.7, cc: 23.4 };
  for (const flavour of flavours) {
    const built = await buildDebianBase({ base: flavour, suite: 'bookworm', arch: 'amd64', store, env: {} });
    checkDistrolessContent(await readImage(store, built.image.manifest.descriptor.digest), flavour, 'bookworm');
    const mb = built.contentSize / 1e6;
    assert.ok(mb <= distrolessMB[flavour], `${flavour}: ${mb.toFixed(2)} MB unpacked, distroless has ${distrolessMB[flavour]} MB`);
  }
});

test('arm64 on this amd64 host: every ELF file is aarch64, and the image runs under qemu in docker', async () => {
  const binfmt = await readFile('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8').catch(() => '');
  assert.match(binfmt, /^flags: .*F/m, 'the qemu-aarch64 binfmt entry with flag F is needed: run scripts/enable-binfmt');
  const layout = join(work, 'cc-multi');
  const result = await uvimage([
    'base', 'cc', '--suite', 'trixie', '--platform', 'linux/amd64,linux/arm64',
    '--oci', layout, '--load', '--load-platform', 'linux/arm64', '-t', 'uvimage-test/cc:trixie-arm64',
    '--cache-dir', store.root, '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const built = JSON.parse(result.stdout) as { mediaType: string; images: { platform: string; digest: Digest }[] };
  assert.equal(built.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(built.images.map((image) => image.platform), ['linux/amd64', 'linux/arm64/v8']);
  const raw = JSON.parse(await check('skopeo', ['inspect', '--raw', `oci:${layout}:trixie-arm64`])) as { manifests: { platform: { architecture: string } }[] };
  assert.deepEqual(raw.manifests.map((entry) => entry.platform.architecture), ['amd64', 'arm64']);

  const arm = await readImage(store, built.images[1]!.digest);
  checkDistrolessContent(arm, 'cc', 'trixie');
  const elves = [...arm.files.entries()].filter(([, file]) => file.elfMachine !== undefined);
  assert.ok(elves.length > 50, `${elves.length} ELF files`);
  for (const [path, file] of elves) assert.equal(file.elfMachine, 183, `${path} is not aarch64 (e_machine ${file.elfMachine})`);
  assert.ok(arm.files.has('lib') && arm.files.has('usr/lib/aarch64-linux-gnu/libstdc++.so.6'));
  assert.equal(arm.config.architecture, 'arm64');

  // The arm64 dynamic loader and glibc of the image run under emulation.
  const output = await run('docker', ['run', '--rm', '--network', 'host', '--platform', 'linux/arm64', '--entrypoint', '/lib/ld-linux-aarch64.so.1', 'uvimage-test/cc:trixie-arm64', '--version']);
  assert.equal(output.code, 0, output.stderr);
  assert.match(output.stdout, /GLIBC 2\.\d+/);

  // bookworm arm64 too (not merged-/usr there): aarch64 only.
  const bookworm = await buildDebianBase({ base: 'base', suite: 'bookworm', arch: 'arm64', store, env: {} });
  const files = (await readImage(store, bookworm.image.manifest.descriptor.digest)).files;
  checkDistrolessContent({ ...(await readImage(store, bookworm.image.manifest.descriptor.digest)) }, 'base', 'bookworm');
  for (const [path, file] of files) if (file.elfMachine !== undefined) assert.equal(file.elfMachine, 183, path);
});

test('--layer-per-package gives one layer per package; --nonroot runs as 65532 in /home/nonroot', async () => {
  const perPackage = await buildDebianBase({ base: 'base-nossl', suite: 'trixie', arch: 'amd64', store, layering: 'per-package', nonroot: true, env: {}, layerCache: false });
  assert.deepEqual(perPackage.layers.map((layer) => layer.group), flavourPackages('base-nossl', 'trixie'));
  const image = await readImage(store, perPackage.image.manifest.descriptor.digest);
  assert.deepEqual([image.config.config?.User, image.config.config?.WorkingDir], ['65532', '/home/nonroot']);
  checkDistrolessContent(image, 'base-nossl', 'trixie');
  // The same files as the grouped build (later layers win: base-files' os-release is replaced by
  // distroless' in a later layer rather than in the same one), in more layers.
  const grouped = await buildDebianBase({ base: 'base-nossl', suite: 'trixie', arch: 'amd64', store, env: {}, layerCache: false });
  const groupedFiles = (await readImage(store, grouped.image.manifest.descriptor.digest)).files;
  const describe = (files: typeof groupedFiles) => [...files.entries()].map(([path, file]) => `${path} ${file.type} ${file.size} ${file.mode.toString(8)}`).sort();
  assert.deepEqual(describe(image.files), describe(groupedFiles));
});
