import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions, formatVersion, matchesSpecifiers, parseSpecifiers, parseVersion, tryParseVersion } from '../../src/python/pep440.js';

test('versions normalize as PEP 440 says', () => {
  const cases: [string, string][] = [
    ['1.0', '1.0'],
    ['v1.0', '1.0'],
    ['1.0-alpha1', '1.0a1'],
    ['1.0.beta.2', '1.0b2'],
    ['1.0c3', '1.0rc3'],
    ['1.0preview4', '1.0rc4'],
    ['1.0-1', '1.0.post1'],
    ['1.0.rev2', '1.0.post2'],
    ['1.0-dev', '1.0.dev0'],
    ['1!2.0+Ubuntu-1', '1!2.0+ubuntu.1'],
    ['2026.10.19.post1', '2026.10.19.post1'],
  ];
  for (const [input, normalized] of cases) assert.equal(formatVersion(parseVersion(input)), normalized, input);
  assert.equal(tryParseVersion('not a version'), undefined);
  assert.equal(tryParseVersion('1.0+'), undefined);
});

test('ordering: dev < pre < release < post, epochs first, locals after the public version', () => {
  const ordered = [
    '1.0.dev0',
    '1.0a1.dev1',
    '1.0a1',
    '1.0a1.post1',
    '1.0b1',
    '1.0rc1',
    '1.0',
    '1.0+abc',
    '1.0+abc.5',
    '1.0+5',
    '1.0.post1.dev1',
    '1.0.post1',
    '1.0.1',
    '1.1',
    '2.0',
    '10.0',
    '1!0.1',
  ];
  for (let i = 0; i < ordered.length - 1; i++) {
    assert.equal(compareVersions(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    assert.equal(compareVersions(ordered[i + 1]!, ordered[i]!), 1, `${ordered[i + 1]} > ${ordered[i]}`);
  }
  assert.equal(compareVersions('1.0', '1.0.0'), 0);
  assert.equal(compareVersions('1.0a', '1.0a0'), 0);
});

test('specifiers: comparison operators, ~=, ==X.*, !=, locals and pre-release exclusions', () => {
  const table: [string, string, boolean][] = [
    ['3.12.8', '>=3.12', true],
    ['3.11.9', '>=3.12', false],
    ['3.12.0', '>=3.10, <3.13', true],
    ['3.13.0', '>=3.10, <3.13', false],
    ['2.2', '~=2.2', true],
    ['2.9.1', '~=2.2', true],
    ['3.0', '~=2.2', false],
    ['1.4.5', '~=1.4.5', true],
    ['1.4.9', '~=1.4.5', true],
    ['1.5.0', '~=1.4.5', false],
    ['1.4.4', '~=1.4.5', false],
    ['3.12.8', '==3.12.*', true],
    ['3.12', '==3.12.*', true],
    ['3.13.0', '==3.12.*', false],
    ['3.1', '==3.12.*', false],
    ['3.12.8', '!=3.12.*', false],
    ['3.11.2', '!=3.12.*', true],
    ['1.0+local', '==1.0', true],
    ['1.0+local', '==1.0+local', true],
    ['1.0+other', '==1.0+local', false],
    ['1.0', '==1.0.0', true],
    ['1.0+local', '<=1.0', true],
    ['1.0+local', '>1.0', false],
    ['1.0.post1', '>1.0', false],
    ['1.1', '>1.0', true],
    ['1.0.post2', '>1.0.post1', true],
    ['1.0rc1', '<1.0', false],
    ['0.9', '<1.0', true],
    ['1.0a1', '<1.0rc1', true],
    ['1.0', '===1.0', true],
    ['1.0.0', '===1.0', false],
    ['1!1.0', '>=2.0', true],
    ['2.0', '', true],
  ];
  for (const [version, specifiers, expected] of table) {
    assert.equal(matchesSpecifiers(version, specifiers), expected, `${version} ${specifiers}`);
  }
});

test('invalid specifiers are refused', () => {
  assert.throws(() => parseSpecifiers('~=1'), /at least two/);
  assert.throws(() => parseSpecifiers('>=1.*'), /only allowed/);
  assert.throws(() => parseSpecifiers('>>1'), /not a PEP 440 version/);
  assert.throws(() => parseSpecifiers('=>1'), /not a version specifier/);
});
