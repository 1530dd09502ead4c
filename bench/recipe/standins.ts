/**
 * Local stand-ins for what the recipe's Dockerfile pulls, for machines that cannot reach ghcr.io,
 * gcr.io or GitHub:
 *
 * - `ghcr.io/astral-sh/uv:<suite>-slim`: a Debian minbase root filesystem (debootstrap) plus the
 *   real uv binaries from PyPI's uv wheel, imported into the engine under that exact name. The
 *   image is saved once to ~/.cache/uvimage-test/bench/ so reruns only `docker load` it.
 * - `gcr.io/distroless/cc:latest`: `uvimage base cc --suite <suite> --load`.
 * - python-build-standalone: the archive scripts/make-standalone-python makes from pyenv's CPython,
 *   served from 127.0.0.1 as a release mirror (the same tree uvimage's tests use).
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCacheDir } from '../../test/harness/cache.js';
import { check, run } from '../../test/harness/docker.js';

export const uvVersion = '0.13.9';

export function benchCacheDir(): string {
  return join(testCacheDir(), 'bench');
}

/**
 * The docker client to build with. BuildKit (the recipe needs RUN --mount) comes from buildx
 * with a current client; without buildx, Debian's docker.io client (20.10) still drives the
 * engine's built-in BuildKit itself.
 */
export async function chooseDockerClient(): Promise<{ docker: string; note: string }> {
  if ((await run('docker', ['buildx', 'version'])).code === 0) return { docker: 'docker', note: '`docker` with buildx' };
  for (const candidate of ['/usr/bin/docker', '/bin/docker']) {
    if (!existsSync(candidate)) continue;
    const version = (await run(candidate, ['version', '--format', '{{.Client.Version}}'])).stdout.trim();
    const major = Number(version.split('.')[0]);
    if (major > 0 && major < 23) {
      return { docker: candidate, note: `\`${candidate}\` (client ${version}: BuildKit built in; the newer client on PATH has no buildx)` };
    }
  }
  throw new Error('no docker client that can build with BuildKit: install buildx, or Debian\'s docker.io client');
}

/** uv and uvx of `uvVersion`, unzipped from PyPI's wheel (cached). Returns the directory holding them. */
export async function ensureUvBinaries(log: (line: string) => void): Promise<string> {
  const dir = join(benchCacheDir(), `uv-${uvVersion}`);
  if (existsSync(join(dir, 'uv')) && existsSync(join(dir, 'uvx'))) return dir;
  log(`downloading uv ${uvVersion} from PyPI`);
  const work = await mkdtemp(join(tmpdir(), 'uvimage-bench-uv-'));
  try {
    await check('pip', ['download', `uv==${uvVersion}`, '--no-deps', '--only-binary=:all:', '--quiet', '-d', work], { env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
    const wheel = (await readdir(work)).find((name) => name.endsWith('.whl'));
    if (!wheel) throw new Error(`pip download uv==${uvVersion} gave no wheel`);
    const scripts = `uv-${uvVersion}.data/scripts`;
    await check('unzip', ['-q', '-o', join(work, wheel), `${scripts}/uv`, `${scripts}/uvx`, '-d', work]);
    await mkdir(dir, { recursive: true });
    for (const name of ['uv', 'uvx']) {
      await copyFile(join(work, scripts, name), join(dir, `${name}.tmp`));
      await chmod(join(dir, `${name}.tmp`), 0o755);
      await rename(join(dir, `${name}.tmp`), join(dir, name));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return dir;
}

/**
 * `ghcr.io/astral-sh/uv:<suite>-slim` in the engine. Its root is a debootstrap minbase root
 * filesystem with uv and uvx in /usr/local/bin (as in the real image), kept as
 * `uvimage-bench/uv-minbase:<suite>-uv<version>` and saved to the bench cache so reruns only load
 * it. On top goes this machine's CA bundle (SSL_CERT_FILE), because these machines reach PyPI
 * through a TLS-intercepting egress proxy whose CA uv's built-in roots do not know.
 */
export async function ensureBuilderImage(
  docker: string,
  suite: string,
  uvDir: string,
  log: (line: string) => void,
): Promise<{ ref: string; caBundle?: string }> {
  const ref = `ghcr.io/astral-sh/uv:${suite}-slim`;
  const pristine = `uvimage-bench/uv-minbase:${suite}-uv${uvVersion}`;
  const tarball = join(benchCacheDir(), `uv-${uvVersion}-${suite}-minbase.tar`);
  if ((await run(docker, ['image', 'inspect', pristine])).code !== 0) {
    if (existsSync(tarball)) {
      log(`loading ${pristine} from ${tarball}`);
      await check(docker, ['load', '-i', tarball]);
    } else {
      await makePristineBuilder(docker, suite, uvDir, pristine, tarball, log);
    }
  }
  const caBundle = [process.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt'].find((path) => path && existsSync(path));
  if (!caBundle) {
    await check(docker, ['tag', pristine, ref]);
    return { ref };
  }
  const context = await mkdtemp(join(tmpdir(), 'uvimage-bench-ca-'));
  try {
    await copyFile(caBundle, join(context, 'ca-certificates.crt'));
    await writeFile(
      join(context, 'Dockerfile'),
      `FROM ${pristine}\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\nENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\n`,
    );
    await check(docker, ['build', '-q', '-t', ref, context], { env: { ...process.env, DOCKER_BUILDKIT: '1' } });
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  return { ref, caBundle };
}

async function makePristineBuilder(docker: string, suite: string, uvDir: string, pristine: string, tarball: string, log: (line: string) => void): Promise<void> {
  const rootfs = join(tmpdir(), `uvimage-bench-rootfs-${suite}`);
  if (!existsSync(join(rootfs, 'usr', 'bin', 'apt-get'))) {
    if ((await run('sh', ['-c', 'command -v debootstrap'])).code !== 0) {
      log('installing debootstrap');
      await check('apt-get', ['install', '-y', '-qq', 'debootstrap'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    }
    log(`debootstrap --variant=minbase ${suite} (a few minutes)`);
    await rm(rootfs, { recursive: true, force: true });
    await check('debootstrap', ['--variant=minbase', suite, rootfs, 'http://deb.debian.org/debian']);
  }
  for (const name of ['uv', 'uvx']) {
    await copyFile(join(uvDir, name), join(rootfs, 'usr', 'local', 'bin', name));
    await chmod(join(rootfs, 'usr', 'local', 'bin', name), 0o755);
  }
  log(`importing the root filesystem as ${pristine}`);
  await check('bash', [
    '-c',
    `set -o pipefail; tar --numeric-owner -C "$1" -c . | "$2" import ` +
      `--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' ` +
      `--change 'ENV UV_TOOL_BIN_DIR=/usr/local/bin' --change 'CMD ["/bin/bash"]' - "$3"`,
    'import',
    rootfs,
    docker,
    pristine,
  ]);
  await mkdir(benchCacheDir(), { recursive: true });
  await check(docker, ['save', '-o', `${tarball}.tmp`, pristine]);
  await rename(`${tarball}.tmp`, tarball);
  await rm(rootfs, { recursive: true, force: true });
}

/** `gcr.io/distroless/cc:latest` in the engine, made by `uvimage base cc --suite <suite> --load`. */
export async function ensureDistrolessCc(docker: string, suite: string, uvimage: string[], env: NodeJS.ProcessEnv): Promise<{ ref: string; digest: string }> {
  const ref = 'gcr.io/distroless/cc:latest';
  const out = await check(uvimage[0]!, [...uvimage.slice(1), 'base', 'cc', '--suite', suite, '-t', ref, '--load', '--json'], { env });
  const digest = (JSON.parse(out) as { digest: string }).digest;
  await check(docker, ['image', 'inspect', ref]);
  return { ref, digest };
}
