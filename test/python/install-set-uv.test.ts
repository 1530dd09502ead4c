/**
 * planInstall against uv itself: for every fixture, target and selection, the packages we plan are
 * the ones `uv export --frozen` lists for that selection with their markers evaluated for the
 * target. It needs uv, which scripts/install-test-deps installs; without it the test fails.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { planInstall, type InstallOptions } from '../../src/python/install-set.js';
import { readUvLock } from '../../src/python/lock.js';
import { evaluateMarker } from '../../src/python/markers.js';
import { readPyProject } from '../../src/python/pyproject.js';
import { markerEnvironment, type PythonTarget } from '../../src/python/target.js';
import { runUv, uvAvailable } from '../harness/uv.js';

const fixtures = fileURLToPath(new URL('../fixtures/python/', import.meta.url));

const cases: { fixture: string; args: string[] }[] = [
  { fixture: 'pure', args: [] },
  { fixture: 'cext', args: [] },
  { fixture: 'markers', args: [] },
  { fixture: 'scripts', args: [] },
  { fixture: 'workspace', args: [] },
  { fixture: 'virtual-workspace', args: [] },
  { fixture: 'virtual-workspace', args: ['--group', 'tools'] },
  { fixture: 'virtual-workspace', args: ['--only-group', 'tools'] },
  { fixture: 'extras', args: ['--extra', 'cli'] },
  { fixture: 'extras', args: ['--all-extras'] },
  { fixture: 'groups', args: ['--group', 'dev'] },
  { fixture: 'groups', args: ['--only-group', 'lint'] },
  { fixture: 'conflicts', args: [] },
  { fixture: 'conflicts', args: ['--extra', 'old', '--group', 'legacy'] },
  { fixture: 'conflicts', args: ['--extra', 'new', '--group', 'current'] },
];

function optionsFor(args: string[]): InstallOptions {
  const options: InstallOptions = { extras: [], allExtras: false, groups: [], onlyGroups: [], noDefaultGroups: true };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--extra') options.extras.push(args[++i]!);
    else if (args[i] === '--group') options.groups.push(args[++i]!);
    else if (args[i] === '--only-group') options.onlyGroups.push(args[++i]!);
    else if (args[i] === '--all-extras') options.allExtras = true;
  }
  return options;
}

test('the install set equals what uv exports for the target', async () => {
  assert.ok(uvAvailable(), 'uv must be installed (scripts/install-test-deps installs it)');
  for (const { fixture, args } of cases) {
    const dir = join(fixtures, fixture);
    const exported = await runUv(['export', '--frozen', '--no-hashes', '--no-header', '--no-annotate', '--no-editable', '--no-default-groups', ...args], { cwd: dir });
    const project = await readPyProject(dir);
    const lock = await readUvLock(join(dir, 'uv.lock'));
    for (const arch of ['x86_64', 'aarch64'] as const) {
      for (const pythonVersion of ['3.12.8', '3.13.1']) {
        const target: PythonTarget = { pythonVersion, implementation: 'cpython', os: 'linux', arch, glibc: [2, 41] };
        const environment = markerEnvironment(target);
        const expected = exported
          .split('\n')
          .filter((line) => line.trim() !== '' && !line.startsWith('#') && !line.startsWith(' '))
          .map((line) => {
            const [requirement, marker] = line.split(' ; ');
            return { requirement: requirement!.trim(), marker };
          })
          .filter(({ marker }) => evaluateMarker(marker, environment))
          // Local projects are exported as paths (`./packages/lib`); compare them as "local".
          .map(({ requirement }) => (requirement.includes('==') ? requirement.replace('==', ' ').toLowerCase() : 'local'))
          .sort();
        const planned = planInstall(project, lock, target, optionsFor(args))
          .packages.map((pkg) => (pkg.kind === 'build' && pkg.member ? 'local' : `${pkg.name} ${pkg.version}`.toLowerCase()))
          .sort();
        assert.deepEqual(planned, expected, `${fixture} ${args.join(' ')} on ${arch} ${pythonVersion}`);
      }
    }
  }
});
