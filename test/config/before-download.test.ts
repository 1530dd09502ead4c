/**
 * Everything that can be known without downloading is checked before the first download (issue
 * 10): each bad request below runs `uvimage build` with an empty cache directory and must end
 * with exit 1, one line naming the flag or key that is wrong, no output written, and no blob in
 * the cache — nothing was downloaded. No input reaches exit 2.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertOneLineError, uvimage } from '../harness/cli.js';
import { copyExample, exists, fastapiHello } from '../harness/project-build.js';

let work: string;
/** The example with three console scripts and no command. */
let scripts: string;
/** The example with a files entry whose source is missing. */
let missingFile: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-before-download-'));
  scripts = await copyExample(join(work, 'scripts'));
  const pyproject = join(scripts, 'pyproject.toml');
  const text = await readFile(pyproject, 'utf8');
  await writeFile(
    pyproject,
    text
      .replace('hello = "fastapi_hello:hello"', 'hello = "fastapi_hello:hello"\nserve = "fastapi_hello:hello"\nmigrate = "fastapi_hello:hello"')
      .replace(/^cmd = .*$/m, ''),
  );
  missingFile = await copyExample(join(work, 'missing-file'));
  await writeFile(join(missingFile, 'pyproject.toml'), `${await readFile(join(missingFile, 'pyproject.toml'), 'utf8')}files = [{ src = "config", dest = "/app/config" }]\n`);
  await writeFile(join(work, 'a-file'), 'not a directory\n');
  await mkdir(join(work, 'a-directory'));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface Case {
  name: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  project?: () => string;
  error: RegExp;
}

const cases: Case[] = [
  { name: 'SOURCE_DATE_EPOCH is not a number', args: [], env: { SOURCE_DATE_EPOCH: 'abc' }, error: /SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, got "abc"/ },
  { name: '--base-glibc is not a version', args: ['--base', '127.0.0.1:1/base:1', '--base-glibc', 'x'], error: /^uvimage: error: --base-glibc: a glibc version like 2\.36 \(got "x"\)$/ },
  { name: '--base-glibc without --base', args: ['--base-glibc', '2.36'], error: /--base-glibc: base-glibc is the glibc of a pulled base/ },
  { name: 'an unknown platform', args: ['--platform', 'linux/s390x'], error: /--platform: platform "linux\/s390x" is not supported; use linux\/amd64 or linux\/arm64/ },
  { name: 'a platform listed twice', args: ['--platform', 'linux/amd64,linux/arm64,linux/amd64'], error: /--platform: linux\/amd64 is listed twice/ },
  { name: 'a platform that is not os/arch', args: ['--platform', 'amd64'], error: /--platform: os\/arch\[\/variant\], e\.g\. linux\/arm64 \(got "amd64"\)/ },
  { name: 'a files source that does not exist', args: [], project: () => missingFile, error: /pyproject\.toml: tool\.uvimage\.files\[0\]\.src: config does not exist/ },
  { name: 'several console scripts and no command', args: [], project: () => scripts, error: /no command for the image, and the project has 3 console scripts \(hello, serve, migrate\)/ },
  { name: 'the Debian runtime with a pulled base', args: ['--runtime', 'debian', '--base', '127.0.0.1:1/base:1'], error: /--runtime and --base cannot be combined/ },
  { name: 'a flavour with a pulled base', args: ['--flavour', 'static', '--base', '127.0.0.1:1/base:1'], error: /--flavour and --base cannot be combined/ },
  { name: 'a flavour with the Debian runtime', args: ['--runtime', 'debian', '--flavour', 'minimal'], error: /--runtime and --flavour cannot be combined: runtime "debian" is Debian's CPython on the cc flavour/ },
  { name: 'the Debian runtime with a Python its suite lacks', args: ['--runtime', 'debian'], error: /Python 3\.12 was asked for \(\.python-version\), but Debian trixie's CPython is 3\.13/ },
  { name: 'a Python no release has', args: ['--python', '3.99'], error: /no python-build-standalone release of Python 3\.99 for x86_64 Linux/ },
  { name: 'a Python the lock does not allow', args: ['--python', '3.11'], error: /requires Python >=3\.12 \(uv\.lock\) but the target Python is 3\.11\.\d+/ },
  { name: '--python is not a version', args: ['--python', 'three'], error: /^uvimage: error: --python: a Python version like 3\.12 or 3\.12\.8 \(got "three"\)$/ },
  { name: 'an extra the project lacks', args: ['--extra', 'nope'], error: /the project has no extra "nope"/ },
  { name: 'a separate layer for a package not in the lock', args: ['--separate-layer', 'torch'], error: /--separate-layer: torch is not a package of .*uv\.lock/ },
  { name: 'a bad environment variable name', args: ['--env', '1BAD=x'], error: /--env: an environment variable name \(got "1BAD"\)/ },
  { name: 'a port out of range', args: ['--expose', '70000'], error: /--expose: a port between 1 and 65535 \(got "70000"\)/ },
  { name: 'a tag that is not a reference', args: ['-t', 'Bad Tag!'], error: /-t: .*Bad Tag!/ },
  { name: '--oci names a file', args: ['--oci', '{work}/a-file'], error: /--oci .*a-file: .*a-file exists and is not a directory/ },
  { name: '--tar names a directory', args: ['--tar', '{work}/a-directory'], error: /--tar .*a-directory: .*a-directory is a directory/ },
  { name: '--load-platform that is not built', args: ['--load-platform', 'linux/arm64', '--tar', '{work}/image.tar'], error: /--load-platform linux\/arm64 is not among the platforms built \(linux\/amd64\)/ },
  { name: 'a Debian lock without {arch} for two platforms', args: ['--platform', 'linux/amd64,linux/arm64', '--debian-lock', 'base.lock'], error: /--debian-lock: a Debian lock is per architecture/ },
  { name: 'a Debian mirror that is not http', args: ['--debian-mirror', 'ftp://ftp.debian.org/debian'], error: /--debian-mirror: an http:\/\/ or https:\/\/ URL \(got "ftp:\/\/ftp\.debian\.org\/debian"\)/ },
  { name: '--cache-repo with a tag', args: ['--cache-repo', '127.0.0.1:1/cache:v1'], error: /^uvimage: error: --cache-repo: 127\.0\.0\.1:1\/cache:v1 names a tag; give the repository only \(REGISTRY\/REPO\), uvimage tags its records itself$/ },
  { name: 'UVIMAGE_CACHE_REPO that is not a reference', args: [], env: { UVIMAGE_CACHE_REPO: 'Not A Repo' }, error: /^uvimage: error: UVIMAGE_CACHE_REPO: invalid image reference "Not A Repo"/ },
  { name: 'no output asked for', args: ['--no-output'], error: /nothing to do with the image: give --push, --load, --oci DIR and\/or --tar FILE/ },
];

for (const testCase of cases) {
  test(`before any download: ${testCase.name}`, async () => {
    const cache = join(work, `cache-${cases.indexOf(testCase)}`);
    const layout = join(work, `layout-${cases.indexOf(testCase)}`);
    const given = testCase.args.filter((arg) => arg !== '--no-output').map((arg) => arg.replaceAll('{work}', work));
    const outputs = testCase.args.includes('--no-output') || given.some((arg) => ['--oci', '--tar'].includes(arg)) ? [] : ['--oci', layout];
    const result = await uvimage(['build', testCase.project?.() ?? fastapiHello, ...given, ...outputs, '--cache-dir', cache], testCase.env);
    assertOneLineError(result, testCase.error);
    assert.equal(await exists(layout), false, 'no output written');
    const blobs = await readdir(join(cache, 'blobs', 'sha256')).catch(() => []);
    assert.deepEqual(blobs, [], 'nothing downloaded into the cache');
  });
}
