/**
 * uvimage as a user installs it (npm's global prefix, uv's tool directory, uvx): the example
 * built by that installed program from a directory outside the repository, to an OCI layout,
 * judged by skopeo and held to the digest the sources give for the same build.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliEnv, uvimage } from './cli.js';
import { check, run } from './docker.js';
import { copyExample, sharedCliCache, standaloneEnv } from './project-build.js';
import { standaloneMirror } from './standalone-python.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `npm run build` into `workDir` instead of dist/: tsc's output as in the repository (an ES-module
 * package, where esbuild gives CommonJS modules' default imports Node's meaning, beside
 * node_modules, where esbuild resolves the dependencies), bundled by scripts/bundle.mjs to
 * `workDir/bundle`, apart from both, so it runs with no node_modules to fall back on. Returns
 * the bundle's directory.
 */
export async function compileBundle(workDir: string): Promise<string> {
  const compiled = join(workDir, 'compiled');
  await mkdir(compiled, { recursive: true });
  await writeFile(join(compiled, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(repo, 'node_modules'), join(compiled, 'node_modules'));
  const env = cliEnv();
  await check(join(repo, 'node_modules', '.bin', 'tsc'), ['-p', join(repo, 'tsconfig.json'), '--outDir', join(compiled, 'dist')], { env });
  await check(process.execPath, [join(repo, 'scripts', 'bundle.mjs'), join(compiled, 'dist'), join(workDir, 'bundle')], { env });
  return join(workDir, 'bundle');
}

/** The arguments every installed build uses: the example to an OCI layout, with the shared store. */
function buildArgs(oci: string): string[] {
  return ['build', '.', '-t', 'fastapi-hello:installed', '--oci', oci, '--cache-dir', sharedCliCache(), '--json'];
}

let fromSources: Promise<string> | undefined;

/** The digest the sources (through tsx) give for the example, built once per test process. */
export function sourcesDigest(workDir: string): Promise<string> {
  fromSources ??= (async () => {
    const project = await copyExample(join(workDir, 'from-sources'));
    const env = standaloneEnv(await standaloneMirror());
    const result = await uvimage([...buildArgs(join(workDir, 'from-sources-oci')).map((arg) => (arg === '.' ? project : arg))], env);
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { digest: string }).digest;
  })();
  return fromSources;
}

/**
 * Copies the example to `workDir/<name>` (outside the repository), runs `command … build .` in it
 * with `env` over the test environment (PATH as given), and checks the OCI layout it wrote with
 * skopeo and against the sources' digest. Returns the build's stderr (progress lines).
 */
export async function buildExampleInstalled(workDir: string, name: string, command: string[], env: NodeJS.ProcessEnv): Promise<{ stderr: string; digest: string }> {
  const project = await copyExample(join(workDir, name));
  const oci = join(workDir, `${name}-oci`);
  await mkdir(workDir, { recursive: true });
  const childEnv = cliEnv({ ...standaloneEnv(await standaloneMirror()), ...env });
  const result = await run(command[0]!, [...command.slice(1), ...buildArgs(oci)], { cwd: project, env: childEnv });
  assert.equal(result.code, 0, `${command.join(' ')} build failed (${result.code}):\n${result.stderr}`);
  const { digest } = JSON.parse(result.stdout) as { digest: string };
  const inspected = JSON.parse(await check('skopeo', ['inspect', `oci:${oci}:installed`])) as { Digest: string; Architecture: string };
  assert.equal(inspected.Digest, digest, 'skopeo reads the layout and sees the digest uvimage reported');
  assert.equal(digest, await sourcesDigest(workDir), 'the installed program builds the same image as the sources');
  return { stderr: result.stderr, digest };
}

/**
 * This process's PATH with none of `programs` on it: each directory that holds one is replaced by
 * a directory (under `shadowRoot`) of symlinks to everything else in it, so /usr/bin without node
 * still has tar, git and the rest.
 */
export async function pathWithout(programs: string[], shadowRoot: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const entries: string[] = [];
  for (const [index, dir] of (env.PATH ?? '').split(':').filter(Boolean).entries()) {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (!names.some((name) => programs.includes(name))) {
      entries.push(dir);
      continue;
    }
    const shadow = join(shadowRoot, `path-${index}`);
    await mkdir(shadow, { recursive: true });
    await Promise.all(names.filter((name) => !programs.includes(name)).map((name) => symlink(join(dir, name), join(shadow, name))));
    entries.push(shadow);
  }
  return entries.join(':');
}
