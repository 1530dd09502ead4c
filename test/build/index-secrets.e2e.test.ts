/**
 * A private index's credentials never show (issue 11): our project locked against the tests'
 * pypiserver behind basic auth is planned and built with UV_INDEX_<NAME>_USERNAME / _PASSWORD, and
 * the password appears nowhere — not in the output of `plan --json` or `build --json`, not on
 * stderr, not in any blob of the OCI layout (configs, manifests, every layer uncompressed), not in
 * the one-line error a wrong password gives, and not with the credentials written into the index
 * URL instead.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { uvimage } from '../harness/cli.js';
import { corpusDir } from '../harness/corpus.js';
import { pointAtPrivateIndex, startPrivateIndex, type PrivateIndex } from '../harness/private-index.js';
import { sharedCliCache, standaloneEnv } from '../harness/project-build.js';
import { standaloneMirror, type StandaloneMirror } from '../harness/standalone-python.js';
import { uvBinary } from '../harness/uv.js';

let index: PrivateIndex;
let mirror: StandaloneMirror;
let work: string;
let project: string;

before(async () => {
  index = await startPrivateIndex();
  mirror = await standaloneMirror('3.12.1');
  work = await mkdtemp(join(tmpdir(), 'uvimage-index-secrets-'));
  project = join(work, 'private-index');
  await cp(join(corpusDir, 'private-index'), project, { recursive: true });
  await pointAtPrivateIndex(project, index);
});

after(async () => {
  await index?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Every place bytes of an OCI layout hold the needle: blob files as they are, and gzip'd layers uncompressed. */
async function layoutMentions(layout: string, needle: string): Promise<string[]> {
  const dir = join(layout, 'blobs', 'sha256');
  const hits: string[] = [];
  for (const name of await readdir(dir)) {
    const bytes = await readFile(join(dir, name));
    const plain = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
    if (plain.includes(needle)) hits.push(name);
  }
  for (const file of ['index.json', 'oci-layout']) if ((await readFile(join(layout, file))).includes(needle)) hits.push(file);
  return hits;
}

const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...standaloneEnv(mirror), UV: uvBinary(), ...extra });

test('plan and build with the index credentials: the password is in no output and no blob', async () => {
  const planned = await uvimage(['plan', project, '--json', '--cache-dir', sharedCliCache()], env(index.credentialsEnv));
  assert.equal(planned.code, 0, planned.stderr);
  const layout = join(work, 'layout');
  const built = await uvimage(['build', project, '--oci', layout, '-t', 'private-index:1', '--json', '--cache-dir', sharedCliCache()], env(index.credentialsEnv));
  assert.equal(built.code, 0, built.stderr);
  // The private wheel really came through the index, with the credentials.
  assert.ok(index.proxy.log.some((entry) => entry.path.includes(index.wheel.filename) && entry.authorization), 'the wheel was fetched with credentials');
  for (const [what, text] of [['plan stdout', planned.stdout], ['plan stderr', planned.stderr], ['build stdout', built.stdout], ['build stderr', built.stderr]] as const) {
    assert.equal(text.includes(index.password), false, `${what} holds the password`);
  }
  assert.deepEqual(await layoutMentions(layout, index.password), []);
  assert.ok((JSON.parse(planned.stdout) as { indexes: { name?: string }[] }).indexes.some((entry) => entry.name === 'corpus-private'));
});

test('a wrong password is one line naming the download, without the password', async () => {
  const wrong = `${index.password}-not`;
  const variable = Object.keys(index.credentialsEnv).find((name) => name.endsWith('_PASSWORD'))!;
  const result = await uvimage(['build', project, '--oci', join(work, 'wrong'), '-t', 'private-index:1', '--cache-dir', join(work, 'empty-cache')], env({ ...index.credentialsEnv, [variable]: wrong }));
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /^uvimage: error: .*uvimage_corpus_private.*failed: HTTP 40[13] \(credentials: /m);
  assert.equal(result.stderr.includes(wrong), false);
  assert.equal(result.stderr.includes(index.password), false);
});

test('credentials in the index URL are used and never printed', async () => {
  const inUrl = join(work, 'in-url');
  await cp(project, inUrl, { recursive: true });
  const pyproject = join(inUrl, 'pyproject.toml');
  const withUserinfo = index.url.replace('http://', `http://${encodeURIComponent(index.username)}:${encodeURIComponent(index.password)}@`);
  await writeFile(pyproject, (await readFile(pyproject, 'utf8')).replaceAll(index.url, withUserinfo));
  const planned = await uvimage(['plan', inUrl, '--json', '--frozen', '--cache-dir', sharedCliCache()], env());
  assert.equal(planned.code, 0, planned.stderr);
  assert.equal(planned.stdout.includes(index.password), false);
  const layout = join(work, 'in-url-layout');
  const built = await uvimage(['build', inUrl, '--oci', layout, '-t', 'private-index:2', '--frozen', '--json', '--cache-dir', join(work, 'fresh-cache')], env());
  assert.equal(built.code, 0, built.stderr);
  assert.equal(`${built.stdout}${built.stderr}`.includes(index.password), false);
  assert.deepEqual(await layoutMentions(layout, index.password), []);
});
