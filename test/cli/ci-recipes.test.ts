/**
 * The CI recipes of docs/ci.md: docs/ci/github-actions.yml linted by actionlint (from the Go
 * module proxy; scripts/install-test-deps installs it), docs/ci/gitlab-ci.yml checked against a
 * schema of GitLab CI's keywords, both read for what the recipe promises (two platforms, the
 * job's registry credentials, the cache kept), and docs/ci.md quoting both files unchanged.
 *
 * GitLab publishes its CI schema (ci.json) only in its own repository, which this machine cannot
 * reach, and no npm package ships it as a file (gitlab-ci-local bundles it into code that needs a
 * newer Node than 20): so the GitLab job is checked by the zod schema below, written from the
 * keyword reference (docs.gitlab.com/ci/yaml/), strict about the keywords the recipe uses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { z } from 'zod';
import { run } from '../harness/docker.js';

const docs = fileURLToPath(new URL('../../docs', import.meta.url));
const githubWorkflow = join(docs, 'ci', 'github-actions.yml');
const gitlabJob = join(docs, 'ci', 'gitlab-ci.yml');
let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'uvimage-ci-'));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** actionlint where scripts/install-test-deps puts it (go install: $(go env GOPATH)/bin), else on PATH. */
function actionlint(): string {
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).stdout?.trim();
  const installed = gopath ? join(gopath, 'bin', 'actionlint') : '';
  if (installed && spawnSync(installed, ['--version']).status === 0) return installed;
  if (spawnSync('actionlint', ['--version']).status === 0) return 'actionlint';
  throw new Error('actionlint is not installed: run scripts/install-test-deps (go install github.com/rhysd/actionlint/cmd/actionlint)');
}

test('docs/ci.md quotes both recipe files as they are', async () => {
  const page = await readFile(join(docs, 'ci.md'), 'utf8');
  for (const [name, path] of [['docs/ci/github-actions.yml', githubWorkflow], ['docs/ci/gitlab-ci.yml', gitlabJob]] as const) {
    const quoted = new RegExp(`<!-- quote: ${name.replace(/\./g, '\\.')} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\`\`\`\\n`).exec(page)?.[1];
    assert.equal(quoted, await readFile(path, 'utf8'), `docs/ci.md quotes ${name} unchanged`);
  }
});

test('the GitHub Actions workflow passes actionlint, which does catch a broken one', async () => {
  const lint = actionlint();
  const clean = await run(lint, ['-no-color', githubWorkflow]);
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  assert.equal(clean.stdout, '');
  // The same file with an expression that does not exist and a step without `uses` or `run`.
  const broken = join(work, 'broken.yml');
  const text = await readFile(githubWorkflow, 'utf8');
  await writeFile(broken, text.replace('${{ secrets.GITHUB_TOKEN }}', '${{ secret.GITHUB_TOKEN }}').replace('      - uses: actions/checkout@v4\n', '      - name: nothing\n'));
  const failed = await run(lint, ['-no-color', broken]);
  assert.equal(failed.code, 1, failed.stdout);
  assert.match(failed.stdout, /undefined variable "secret"/);
  assert.match(failed.stdout, /step must run script with "run" section or run action with "uses" section/);
});

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, string>;
}

test('the workflow builds two platforms, logs in to ghcr.io with the job token and keeps the cache directory', async () => {
  const workflow = parse(await readFile(githubWorkflow, 'utf8')) as {
    permissions: Record<string, string>;
    jobs: Record<string, { env: Record<string, string>; steps: Step[] }>;
  };
  assert.equal(workflow.permissions.packages, 'write');
  const job = Object.values(workflow.jobs)[0]!;
  const login = job.steps.find((step) => step.uses?.startsWith('docker/login-action@'));
  assert.deepEqual(login?.with, { registry: 'ghcr.io', username: '${{ github.actor }}', password: '${{ secrets.GITHUB_TOKEN }}' });
  const cache = job.steps.find((step) => step.uses?.startsWith('actions/cache@'));
  assert.equal(cache?.with?.path, '${{ env.UVIMAGE_CACHE_DIR }}');
  assert.ok(job.env.UVIMAGE_CACHE_DIR, 'the cache directory is uvimage’s');
  const build = job.steps.find((step) => step.run?.includes('uvimage build'));
  assert.match(build!.run!, /--platform linux\/amd64,linux\/arm64/);
  assert.match(build!.run!, /-t "\$image:[^"]+".* --push/s);
  assert.ok(job.steps.indexOf(login!) < job.steps.indexOf(build!), 'logged in before pushing');
  assert.match(await readFile(githubWorkflow, 'utf8'), /^ {6}# .*--sbom/m, 'the SBOM step is there, commented');
});

/** GitLab CI keywords (docs.gitlab.com/ci/yaml/) the recipe can use, strict: a misspelt one fails. */
const stringOrList = z.union([z.string(), z.array(z.string())]);
const variableValue = z.union([z.string(), z.number(), z.boolean(), z.strictObject({ value: z.string(), description: z.string().optional(), expand: z.boolean().optional() })]);
const gitlabRule = z.strictObject({
  if: z.string().optional(),
  changes: z.union([z.array(z.string()), z.strictObject({ paths: z.array(z.string()), compare_to: z.string().optional() })]).optional(),
  exists: z.array(z.string()).optional(),
  when: z.enum(['on_success', 'on_failure', 'always', 'never', 'manual', 'delayed']).optional(),
  allow_failure: z.boolean().optional(),
  variables: z.record(z.string(), variableValue).optional(),
});
const gitlabCache = z.strictObject({
  key: z.union([z.string(), z.strictObject({ files: z.array(z.string()).min(1).max(2), prefix: z.string().optional() })]).optional(),
  paths: z.array(z.string()).min(1),
  policy: z.enum(['pull', 'push', 'pull-push']).optional(),
  when: z.enum(['on_success', 'on_failure', 'always']).optional(),
  untracked: z.boolean().optional(),
  unprotect: z.boolean().optional(),
  fallback_keys: z.array(z.string()).optional(),
});
const gitlabJobSchema = z.strictObject({
  stage: z.string().optional(),
  image: z.union([z.string(), z.strictObject({ name: z.string(), entrypoint: z.array(z.string()).optional(), pull_policy: z.unknown().optional() })]).optional(),
  services: z.array(z.union([z.string(), z.strictObject({ name: z.string(), alias: z.string().optional(), command: z.array(z.string()).optional() })])).optional(),
  variables: z.record(z.string(), variableValue).optional(),
  cache: z.union([gitlabCache, z.array(gitlabCache).max(4)]).optional(),
  before_script: stringOrList.optional(),
  script: stringOrList,
  after_script: stringOrList.optional(),
  rules: z.array(gitlabRule).optional(),
  tags: z.array(z.string()).optional(),
  needs: z.array(z.union([z.string(), z.strictObject({ job: z.string(), artifacts: z.boolean().optional(), optional: z.boolean().optional() })])).optional(),
  artifacts: z
    .strictObject({ paths: z.array(z.string()).optional(), reports: z.record(z.string(), stringOrList).optional(), expire_in: z.string().optional(), when: z.enum(['on_success', 'on_failure', 'always']).optional() })
    .optional(),
  timeout: z.string().optional(),
  retry: z.union([z.number().int().min(0).max(2), z.strictObject({ max: z.number().int().min(0).max(2), when: stringOrList.optional() })]).optional(),
  interruptible: z.boolean().optional(),
  allow_failure: z.boolean().optional(),
  environment: z.union([z.string(), z.strictObject({ name: z.string(), url: z.string().optional() })]).optional(),
});
/** The top level: global keywords, else jobs (hidden ones, `.name`, are templates and not checked). */
const globalKeywords: Record<string, z.ZodType> = {
  stages: z.array(z.string()),
  variables: z.record(z.string(), variableValue),
  default: z.record(z.string(), z.unknown()),
  workflow: z.strictObject({ name: z.string().optional(), rules: z.array(gitlabRule).optional() }),
  include: z.unknown(),
};

function checkGitlabCi(document: unknown): string[] {
  const problems: string[] = [];
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return ['the file is not a mapping of keywords and jobs'];
  for (const [key, value] of Object.entries(document)) {
    if (key.startsWith('.')) continue;
    const result = (globalKeywords[key] ?? gitlabJobSchema).safeParse(value);
    if (!result.success) problems.push(...result.error.issues.map((issue) => `${[key, ...issue.path].join('.')}: ${issue.message}`));
  }
  return problems;
}

test('the GitLab job fits GitLab CI keywords, builds two platforms with the job registry credentials, and caches the cache directory', async () => {
  const text = await readFile(gitlabJob, 'utf8');
  const document = parse(text) as Record<string, z.infer<typeof gitlabJobSchema>>;
  assert.deepEqual(checkGitlabCi(document), []);
  // The schema does reject what GitLab rejects: a misspelt keyword, a cache without paths, a rule with an unknown `when`.
  assert.match(checkGitlabCi(parse(text.replace('  script:', '  scripts:'))).join('\n'), /image-build: Unrecognized key: "scripts"|image-build.script/);
  assert.match(checkGitlabCi(parse(text.replace(/ {4}paths:\n( {6}- .*\n)+/, ''))).join('\n'), /image-build\.cache/);
  assert.match(checkGitlabCi(parse(text.replace('  rules:\n', '  rules:\n    - when: sometimes\n'))).join('\n'), /image-build\.rules\.0\.when/);

  const job = document['image-build']!;
  const script = ([] as string[]).concat(job.script).join('\n');
  assert.match(script, /uvx uvimage build \. --platform linux\/amd64,linux\/arm64/);
  assert.match(script, /printf '%s' "\$CI_REGISTRY_PASSWORD" \|/);
  assert.match(script, /--registry-username "\$CI_REGISTRY_USER" --registry-password-stdin/);
  assert.match(script, /-t "\$CI_REGISTRY_IMAGE:\$CI_COMMIT_SHORT_SHA"/);
  const cacheDir = String(job.variables!.UVIMAGE_CACHE_DIR);
  assert.equal(cacheDir, '$CI_PROJECT_DIR/.cache/uvimage');
  const cache = job.cache as z.infer<typeof gitlabCache>;
  assert.ok(cache.paths.includes(cacheDir.replace('$CI_PROJECT_DIR/', '')), 'GitLab keeps the directory uvimage caches in');
});
