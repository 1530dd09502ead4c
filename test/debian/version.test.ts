import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatGroup, parseRelations, parseStanza, splitStanzas } from '../../src/debian/control.js';
import { compareDebianVersions, parseDebianVersion, versionSatisfies } from '../../src/debian/version.js';

// [a, b, expected sign of compare(a, b)] — facts from dpkg's version rules and its test suite.
const table: [string, string, -1 | 0 | 1][] = [
  ['1.0', '1.0', 0],
  ['1.0', '1.1', -1],
  ['1.0', '2.0', -1],
  ['10', '9', 1],
  ['1.01', '1.1', 0],
  ['0:1.0', '1.0', 0],
  ['1:0.1', '2.0', 1],
  ['1:1.0', '0:99', 1],
  ['2:1.0', '10:0.1', -1],
  ['1.0~rc1', '1.0', -1],
  ['1.0~rc1', '1.0~rc2', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0~~', '1.0~~a', -1],
  ['1.0~~a', '1.0~', -1],
  ['1.0~', '1.0', -1],
  ['1.0', '1.0a', -1],
  ['1.0a', '1.0+', -1],
  ['1.0a', '1.0.', -1],
  ['1.0', '1.0.0', -1],
  ['1.0-1', '1.0-1+b1', -1],
  ['1.0-1~bpo1', '1.0-1', -1],
  ['1.0-0', '1.0', 0],
  ['1.0-1', '1.0-2', -1],
  ['1.0-10', '1.0-9', 1],
  ['2.30-1', '2.30a-1', -1],
  ['1.2-3-4', '1.2-3-5', -1],
  ['1.2-3-4', '1.2-3', 1],
  ['3.5.9-1~deb13u1', '3.5.7-1~deb13u3', 1],
  ['3.0.22-1~deb12u2', '3.0.22-1', -1],
  ['1:1.3.dfsg+really1.3.1-1+deb13u1', '1:1.3.dfsg+really1.3.1-1', 1],
  ['2026f-0+deb13u1', '2025b-4', 1],
  ['a', 'b', -1],
  ['', '', 0],
];

test('Debian versions compare as dpkg compares them', () => {
  for (const [a, b, expected] of table) {
    assert.equal(Math.sign(compareDebianVersions(a, b)), expected, `${a} vs ${b}`);
    assert.equal(Math.sign(compareDebianVersions(b, a)), -expected || 0, `${b} vs ${a}`);
  }
});

test('a version splits into epoch, upstream and revision at the first colon and the last dash', () => {
  assert.deepEqual(parseDebianVersion('1:2.3-4-5'), { epoch: 1, upstream: '2.3-4', revision: '5' });
  assert.deepEqual(parseDebianVersion('2.3'), { epoch: 0, upstream: '2.3', revision: '' });
  assert.throws(() => parseDebianVersion('x:1.0'), /bad epoch/);
});

test('version relations', () => {
  assert.ok(versionSatisfies('2.38-1', '>=', '2.38'));
  assert.ok(!versionSatisfies('2.38~rc-1', '>=', '2.38'));
  assert.ok(versionSatisfies('1.0', '<<', '1.0.1'));
  assert.ok(versionSatisfies('1:1.0', '>>', '9.9'));
  assert.ok(versionSatisfies('1.0-1', '=', '1.0-1'));
  assert.ok(versionSatisfies('1.0-1', '<=', '1.0-1'));
  assert.ok(!versionSatisfies('1.0-1', '=', '1.0-1+b1'));
});

test('relationship fields parse into groups of alternatives', () => {
  const groups = parseRelations('libc6 (>= 2.38), debconf (>= 0.5) | debconf-2.0, python3:any (<< 3.14), libfoo:amd64, bar (< 2), baz (> 1)');
  assert.deepEqual(groups[0], [{ name: 'libc6', relation: '>=', version: '2.38' }]);
  assert.equal(formatGroup(groups[1]!), 'debconf (>= 0.5) | debconf-2.0');
  assert.deepEqual(groups[2], [{ name: 'python3', archQualifier: 'any', relation: '<<', version: '3.14' }]);
  assert.deepEqual(groups[3], [{ name: 'libfoo', archQualifier: 'amd64' }]);
  assert.equal(groups[4]![0]!.relation, '<=');
  assert.equal(groups[5]![0]!.relation, '>=');
  assert.deepEqual(parseRelations(''), []);
  assert.deepEqual(parseRelations('foo [amd64] <!nocheck>'), [[{ name: 'foo' }]]);
  assert.throws(() => parseRelations('foo (>= )'), /cannot parse/);
});

test('deb822 stanzas with continuation lines', () => {
  const [first, second] = splitStanzas('Package: a\nDescription: short\n long line\n .\n more\n\nPackage: b\nVersion: 1\n');
  assert.deepEqual(parseStanza(first!), { Package: 'a', Description: 'short\nlong line\n.\nmore' });
  assert.deepEqual(parseStanza(second!), { Package: 'b', Version: '1' });
});
