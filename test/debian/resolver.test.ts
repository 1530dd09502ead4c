import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PackageIndex, type DebianPackage } from '../../src/debian/archive/index.js';
import { resolvePackages } from '../../src/debian/resolver.js';
import { UserError } from '../../src/errors.js';

/** A package as an index holds it; only the fields the resolver reads matter. */
function pkg(name: string, version: string, fields: { depends?: string; preDepends?: string; provides?: string; priority?: string; archiveUrl?: string } = {}): DebianPackage {
  return {
    name,
    version,
    arch: 'amd64',
    filename: `pool/main/${name[0]}/${name}/${name}_${version}_amd64.deb`,
    sha256: '0'.repeat(64),
    size: 1,
    depends: fields.depends ?? '',
    preDepends: fields.preDepends ?? '',
    provides: fields.provides ?? '',
    priority: fields.priority ?? 'optional',
    stanza: { Package: name, Version: version },
    archiveUrl: fields.archiveUrl ?? 'https://deb.example/debian',
  };
}

const names = (packages: DebianPackage[]) => packages.map((p) => `${p.name}=${p.version}`);

test('Depends and Pre-Depends are followed; the result is sorted by name', () => {
  const index = new PackageIndex([
    pkg('app', '1', { depends: 'libb (>= 1)', preDepends: 'liba' }),
    pkg('liba', '1'),
    pkg('libb', '2', { depends: 'libc' }),
    pkg('libc', '1'),
    pkg('unrelated', '1'),
  ]);
  assert.deepEqual(names(resolvePackages(index, ['app'])), ['app=1', 'liba=1', 'libb=2', 'libc=1']);
});

test('alternatives: the first satisfiable one, unless another is already chosen', () => {
  const index = new PackageIndex([
    pkg('app', '1', { depends: 'missing | second | third' }),
    pkg('second', '1', { depends: 'nowhere' }), // not installable: its dependency is unmet
    pkg('third', '1'),
    pkg('fourth', '1'),
    pkg('app2', '1', { depends: 'fourth | third' }),
  ]);
  assert.deepEqual(names(resolvePackages(index, ['app'])), ['app=1', 'third=1']);
  // third is chosen for app, so app2's `fourth | third` is already met.
  assert.deepEqual(names(resolvePackages(index, ['app', 'app2'])), ['app=1', 'app2=1', 'third=1']);
  // roots are chosen before any dependency: app2's `fourth | third` is met by the root fourth.
  assert.deepEqual(names(resolvePackages(index, ['app2', 'fourth'])), ['app2=1', 'fourth=1']);
  assert.deepEqual(names(resolvePackages(index, ['app2', 'third'])), ['app2=1', 'third=1']);
});

test('versioned constraints pick a version that satisfies them, newest first, across archives', () => {
  const index = new PackageIndex([
    pkg('app', '1', { depends: 'libssl (>= 3.0.2), libold (<< 2)' }),
    pkg('libssl', '3.0.1-1'),
    pkg('libssl', '3.0.11-1~deb12u2', { archiveUrl: 'https://security.example/debian-security' }),
    pkg('libold', '2.0-1'),
    pkg('libold', '1.9-1'),
  ]);
  const result = resolvePackages(index, ['app']);
  assert.deepEqual(names(result), ['app=1', 'libold=1.9-1', 'libssl=3.0.11-1~deb12u2']);
  assert.equal(result.find((p) => p.name === 'libssl')!.archiveUrl, 'https://security.example/debian-security');
  assert.equal(index.get('libssl')!.version, '3.0.11-1~deb12u2');
});

test('Provides: plain and versioned; a versioned dependency needs a versioned provide', () => {
  const index = new PackageIndex([
    pkg('app', '1', { depends: 'virtual-thing (>= 2)' }),
    pkg('plain-provider', '9', { provides: 'virtual-thing' }),
    pkg('old-provider', '1', { provides: 'virtual-thing (= 1.5)' }),
    pkg('new-provider', '1', { provides: 'virtual-thing (= 2.1), other' }),
    pkg('app2', '1', { depends: 'virtual-thing' }),
  ]);
  assert.deepEqual(names(resolvePackages(index, ['app'])), ['app=1', 'new-provider=1']);
  // unversioned: providers by name (new-provider < old-provider < plain-provider)
  assert.deepEqual(names(resolvePackages(index, ['app2'])), ['app2=1', 'new-provider=1']);
  assert.deepEqual(names(resolvePackages(index, ['app2', 'plain-provider'])), ['app2=1', 'plain-provider=9']);
});

test('of several providers, the highest Priority wins (apt takes mawk for awk)', () => {
  const index = new PackageIndex([
    pkg('base-files', '13', { preDepends: 'awk' }),
    pkg('gawk', '1:5.2', { provides: 'awk', priority: 'optional' }),
    pkg('mawk', '1.3.4', { provides: 'awk', priority: 'required' }),
  ]);
  assert.deepEqual(names(resolvePackages(index, ['base-files'])), ['base-files=13', 'mawk=1.3.4']);
});

test(':any and other architecture qualifiers are accepted', () => {
  const index = new PackageIndex([pkg('tool', '1', { depends: 'python3:any (>= 3.11), perl:native' }), pkg('python3', '3.13.5-1'), pkg('perl', '5.40')]);
  assert.deepEqual(names(resolvePackages(index, ['tool'])), ['perl=5.40', 'python3=3.13.5-1', 'tool=1']);
});

test('dependency cycles terminate', () => {
  const index = new PackageIndex([
    pkg('libc6', '2.41', { depends: 'libgcc-s1' }),
    pkg('libgcc-s1', '14', { depends: 'gcc-14-base (= 14), libc6 (>= 2.35)' }),
    pkg('gcc-14-base', '14'),
    pkg('a', '1', { depends: 'b' }),
    pkg('b', '1', { depends: 'c' }),
    pkg('c', '1', { depends: 'a (>= 1)' }),
  ]);
  assert.deepEqual(names(resolvePackages(index, ['libc6'])), ['gcc-14-base=14', 'libc6=2.41', 'libgcc-s1=14']);
  assert.deepEqual(names(resolvePackages(index, ['c'])), ['a=1', 'b=1', 'c=1']);
});

test('excluded packages are never installed and meet dependencies on them', () => {
  const index = new PackageIndex([
    pkg('tzdata', '2025', { depends: 'debconf (>= 0.5) | debconf-2.0' }),
    pkg('debconf', '1.5', { preDepends: 'perl-base' }),
    pkg('perl-base', '5.40'),
  ]);
  assert.deepEqual(names(resolvePackages(index, ['tzdata'])), ['debconf=1.5', 'perl-base=5.40', 'tzdata=2025']);
  assert.deepEqual(names(resolvePackages(index, ['tzdata'], { exclude: ['debconf'] })), ['tzdata=2025']);
  assert.throws(() => resolvePackages(index, ['debconf'], { exclude: ['debconf'] }), /both asked for and excluded/);
});

test('an unmet dependency is a UserError naming the chain', () => {
  const index = new PackageIndex([
    pkg('app', '1', { depends: 'liba' }),
    pkg('liba', '1', { depends: 'libb (>= 2)' }),
    pkg('libb', '1.5'),
    pkg('other', '1', { depends: 'ghost | phantom (>= 1)' }),
  ]);
  assert.throws(
    () => resolvePackages(index, ['app']),
    (error: unknown) =>
      error instanceof UserError &&
      error.message === 'cannot resolve app 1 -> liba 1: unmet dependency libb (>= 2) (libb: only 1.5)',
  );
  assert.throws(() => resolvePackages(index, ['other']), /other 1: unmet dependency ghost \| phantom \(>= 1\) \(no package ghost in index; no package phantom in index\)/);
  assert.throws(() => resolvePackages(index, ['nope']), /package nope is not in index/);
});

test('the result does not depend on the order of roots or of the index', () => {
  const packages = [
    pkg('x', '1', { depends: 'v' }),
    pkg('y', '1', { depends: 'v | z' }),
    pkg('p1', '1', { provides: 'v' }),
    pkg('p2', '1', { provides: 'v' }),
    pkg('z', '1'),
  ];
  const a = names(resolvePackages(new PackageIndex(packages), ['x', 'y']));
  const b = names(resolvePackages(new PackageIndex([...packages].reverse()), ['y', 'x', 'y']));
  assert.deepEqual(a, b);
  assert.deepEqual(a, ['p1=1', 'x=1', 'y=1']);
});

test('Conflicts and Breaks keep packages apart: the next alternative is taken, or a clear error', () => {
  const index = new PackageIndex([
    { ...pkg('app', '1', { depends: 'impl-a | impl-b' }) },
    { ...pkg('impl-a', '1'), conflicts: 'other' },
    pkg('impl-b', '1'),
    pkg('other', '2'),
    { ...pkg('breaker', '1'), breaks: 'other (<< 2)' },
    { ...pkg('virtual-hater', '1'), conflicts: 'mail-transport-agent' },
    pkg('mta', '1', { provides: 'mail-transport-agent' }),
    { ...pkg('self-ok', '1', { provides: 'thing' }), conflicts: 'thing, self-ok' },
  ]);
  assert.deepEqual(names(resolvePackages(index, ['app'])), ['app=1', 'impl-a=1']);
  // With `other` chosen, impl-a is out and impl-b is taken.
  assert.deepEqual(names(resolvePackages(index, ['app', 'other'])), ['app=1', 'impl-b=1', 'other=2']);
  // A versioned Breaks that does not apply is no conflict.
  assert.deepEqual(names(resolvePackages(index, ['breaker', 'other'])), ['breaker=1', 'other=2']);
  assert.throws(() => resolvePackages(index, ['mta', 'virtual-hater']), /cannot be installed together: virtual-hater 1 conflicts with mail-transport-agent, which mta 1 provides/);
  // A package's conflicts with what it provides itself do not count.
  assert.deepEqual(names(resolvePackages(index, ['self-ok'])), ['self-ok=1']);
});
