/**
 * Native libraries distroless lacks (issue 12), end to end: our project depending on
 * opencv-python (not headless) and psycopg2 (built from its sdist) is built on uvimage's Debian
 * base. The first build fails with a line per missing soname naming who needs it and the Debian
 * package that ships it (from bookworm's Contents index, verified through the signed InRelease),
 * writes nothing, and ends with the debian-packages line to add; with that line added, the image
 * builds and `import cv2, psycopg2` works in it as 65532 on a read-only root.
 *
 * Bookworm, because trixie's Contents index on the archive these machines reach does not match
 * its signed InRelease (the build says so and names no package; the corpus builds this project on
 * trixie with the packages given).
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { uvimage } from '../harness/cli.js';
import { check, dockerRemoveImages, requireDocker } from '../harness/docker.js';
import { exists, sharedCliCache, standaloneEnv, type BuildJson } from '../harness/project-build.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { uvBinary } from '../harness/uv.js';

const fixture = fileURLToPath(new URL('../fixtures/projects/native-libs', import.meta.url));
const tag = 'uvimage-test/native-libs:bookworm';
let work: string;
let project: string;
let mirror: StandaloneMirror;

before(async () => {
  requireDocker();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-native-libs-'));
  project = join(work, 'native-libs');
  await cp(fixture, project, { recursive: true });
  // The project as a user has it before the check: no [tool.uvimage] naming packages.
  const pyproject = join(project, 'pyproject.toml');
  await writeFile(pyproject, (await readFile(pyproject, 'utf8')).split('[tool.uvimage]')[0]!);
});

after(async () => {
  await dockerRemoveImages([tag]);
  if (work) await rm(work, { recursive: true, force: true });
});

const env = () => ({ ...standaloneEnv(mirror), UV: uvBinary() });
const build = (args: string[]) => uvimage(['build', project, '--debian-suite', 'bookworm', '--cache-dir', sharedCliCache(), ...args], env());

let suggestion: string;

test('the first build names every missing library, who needs it and the package, and writes nothing', async () => {
  const layout = join(work, 'layout');
  const result = await build(['--oci', layout, '-t', 'native-libs:1']);
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.split('\n');
  assert.match(lines.find((line) => line.startsWith('uvimage: error: '))!, /the image lacks \d+ shared libraries its ELF files need; nothing was written/);
  const about = (soname: string) => lines.find((line) => line.includes(` needs ${soname}`)) ?? '';
  assert.match(about('libGL.so.1'), /^ {2}linux\/amd64: opencv-python: cv2\/.* needs libGL\.so\.1.* — Debian bookworm: libgl1$/);
  assert.match(about('libxcb.so.1'), /opencv-python: .* needs libxcb\.so\.1.* — Debian bookworm: libxcb1$/);
  assert.match(about('libglib-2.0.so.0'), /opencv_python\.libs\/libQt5Core-[^ ]+ needs libglib-2\.0\.so\.0.* — Debian bookworm: libglib2\.0-0$/);
  assert.match(about('libpq.so.5'), /^ {2}linux\/amd64: psycopg2: psycopg2\/_psycopg\.cpython-312-x86_64-linux-gnu\.so needs libpq\.so\.5 — Debian bookworm: libpq5$/);
  suggestion = lines.find((line) => line.includes('debian-packages = ['))!.replace(/^ {2}add to \[tool\.uvimage\]: /, '');
  assert.match(suggestion, /^debian-packages = \[("[a-z0-9.+-]+", )*"[a-z0-9.+-]+"\]$/);
  for (const name of ['libgl1', 'libpq5', 'libxcb1']) assert.ok(suggestion.includes(`"${name}"`), suggestion);
  assert.equal(await exists(layout), false, 'no output written');
});

test('allow-missing accepts a soname, and only that one', async () => {
  const result = await build(['--oci', join(work, 'allowed'), '-t', 'native-libs:1', '--allow-missing', 'libpq.so.5']);
  assert.equal(result.code, 1);
  assert.doesNotMatch(result.stderr, /needs libpq\.so\.5/);
  assert.match(result.stderr, /needs libGL\.so\.1/);
});

test('with the suggested debian-packages, the image builds and its modules import as 65532 on a read-only root', async () => {
  const pyproject = join(project, 'pyproject.toml');
  await writeFile(pyproject, `${await readFile(pyproject, 'utf8')}\n[tool.uvimage]\n${suggestion}\n`);
  const archive = join(work, 'native-libs.tar');
  const result = await build(['--tar', archive, '-t', tag, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const built = JSON.parse(result.stdout) as BuildJson;
  const platform = built.platforms[0]!;
  assert.deepEqual(platform.closure.missing, []);
  assert.ok(platform.closure.elfFiles > 100, `${platform.closure.elfFiles} ELF files checked`);
  assert.deepEqual(platform.layers.map((layer) => layer.role), ['base: libc', 'base: base', 'base: extra', 'runtime', 'dependencies', 'project']);
  assert.ok(platform.debs.some((deb) => deb.name === 'libpq5') && platform.debs.some((deb) => deb.name === 'libgl1'));

  await check('docker', ['load', '-i', archive]);
  const imported = await check('docker', [
    'run', '--rm', '--network', 'none', '--read-only', '--user', '65532', '--entrypoint', '/app/.venv/bin/python', tag,
    '-c', 'import cv2, psycopg2; print("cv2", cv2.__version__, "psycopg2", psycopg2.__version__.split()[0])',
  ]);
  assert.match(imported.trim(), /^cv2 \d+\.\d+\.\d+ psycopg2 \d+\.\d+\.\d+$/);
  // The extra packages are recorded for scanners like the flavour's.
  const status = await check('docker', ['run', '--rm', '--entrypoint', '/app/.venv/bin/python', tag, '-c', 'import os; print(" ".join(sorted(os.listdir("/var/lib/dpkg/status.d"))))']);
  assert.match(status, /\blibpq5\b/);
  assert.match(status, /\blibgl1\b/);
});
