import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import {
  formatReference,
  isInsecureRegistry,
  parseReference,
  withDigest,
  withTag,
  type ImageReference,
} from '../../src/registry/reference.js';

const D = `sha256:${'a1'.repeat(32)}` as const;
const D2 = `sha256:${'0f'.repeat(32)}` as const;

const good: [string, ImageReference, string][] = [
  ['ubuntu', { registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: 'latest' }, 'docker.io/library/ubuntu:latest'],
  ['ubuntu:22.04', { registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: '22.04' }, 'docker.io/library/ubuntu:22.04'],
  ['library/ubuntu', { registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: 'latest' }, 'docker.io/library/ubuntu:latest'],
  ['docker.io/ubuntu', { registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: 'latest' }, 'docker.io/library/ubuntu:latest'],
  ['index.docker.io/ubuntu:x', { registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: 'x' }, 'docker.io/library/ubuntu:x'],
  ['registry-1.docker.io/ubuntu', { registry: 'registry-1.docker.io', repository: 'library/ubuntu', tag: 'latest' }, 'docker.io/library/ubuntu:latest'],
  ['docker.io/org/app', { registry: 'registry-1.docker.io', repository: 'org/app', tag: 'latest' }, 'docker.io/org/app:latest'],
  ['org/app:v1', { registry: 'registry-1.docker.io', repository: 'org/app', tag: 'v1' }, 'docker.io/org/app:v1'],
  ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest' }, 'localhost/app:latest'],
  ['localhost:5000/a/b:t', { registry: 'localhost:5000', repository: 'a/b', tag: 't' }, 'localhost:5000/a/b:t'],
  [`127.0.0.1:5000/x@${D}`, { registry: '127.0.0.1:5000', repository: 'x', digest: D }, `127.0.0.1:5000/x@${D}`],
  [`foo.example/bar:tag@${D}`, { registry: 'foo.example', repository: 'bar', tag: 'tag', digest: D }, `foo.example/bar:tag@${D}`],
  ['[::1]:5000/x', { registry: '[::1]:5000', repository: 'x', tag: 'latest' }, '[::1]:5000/x:latest'],
  ['[fe80::1]/x', { registry: '[fe80::1]', repository: 'x', tag: 'latest' }, '[fe80::1]/x:latest'],
  ['myhost:5000/x', { registry: 'myhost:5000', repository: 'x', tag: 'latest' }, 'myhost:5000/x:latest'],
  ['Registry.Example.COM/x', { registry: 'Registry.Example.COM', repository: 'x', tag: 'latest' }, 'Registry.Example.COM/x:latest'],
  ['ghcr.io/o/a/b/c:V1_x.y-z', { registry: 'ghcr.io', repository: 'o/a/b/c', tag: 'V1_x.y-z' }, 'ghcr.io/o/a/b/c:V1_x.y-z'],
  ['ghcr.io/a.b_c__d---e', { registry: 'ghcr.io', repository: 'a.b_c__d---e', tag: 'latest' }, 'ghcr.io/a.b_c__d---e:latest'],
];

// A 255-character repository path is the longest allowed.
const longOk = `example.com/${'a'.repeat(255)}`;
good.push([longOk, { registry: 'example.com', repository: 'a'.repeat(255), tag: 'latest' }, `${longOk}:latest`]);
// 128-character tag is the longest allowed.
good.push([`x:${'t'.repeat(128)}`, { registry: 'registry-1.docker.io', repository: 'library/x', tag: 't'.repeat(128) }, `docker.io/library/x:${'t'.repeat(128)}`]);

const bad: [string, RegExp][] = [
  ['', /empty/],
  ['Foo', /repository name "Foo" must be lowercase/],
  ['org/Foo:tag', /repository name "org\/Foo" must be lowercase/],
  ['FOO/bar', /repository name "FOO\/bar" must be lowercase/],
  ['a::b', /tag ":b"/],
  ['x:', /tag after ":" is empty/],
  ['x@', /digest after "@" is empty/],
  ['x:-tag', /tag "-tag"/],
  ['x:.tag', /tag ".tag"/],
  [`x:${'t'.repeat(129)}`, /1 to 128/],
  [`x@md5:${'ab'.repeat(16)}`, /"md5" is not supported; only sha256/],
  [`x@sha512:${'ab'.repeat(64)}`, /"sha512" is not supported/],
  [`x@sha256:${'AB'.repeat(32)}`, /not "sha256:" followed by 64 lowercase/],
  [`x@sha256:${'ab'.repeat(31)}`, /not "sha256:" followed by 64/],
  ['x@latest', /digest "latest"/],
  [`example.com/${'a'.repeat(256)}`, /256 characters long; the maximum is 255/],
  [`${'a'.repeat(248)}/bcdefgh`, /256 characters long/],
  ['ab'.repeat(32), /image ID/],
  ['-foo', /path component "-foo"/],
  ['foo-', /path component "foo-"/],
  ['a//b', /empty path component/],
  ['example.com/', /repository name is empty/],
  ['foo_.bar', /path component "foo_.bar"/],
  ['org/foo_.bar', /path component "foo_.bar"/],
  ['_/x', /path component "_"/],
  ['a___b', /path component "a___b"/],
  ['a..b', /path component "a..b"/],
  ['exa_mple.com/x', /registry "exa_mple.com"/],
  ['-example.com/x', /registry "-example.com"/],
  ['example.com:port/x', /registry "example.com:port"/],
  ['::1/x', /registry "::1"/],
  ['[::1/x', /registry "\[::1"/],
  ['ubuntu 22.04', /whitespace/],
  ['x:a:b', /tag "a:b"/],
  ['x@sha256:abc@def', /digest/],
];

describe('parseReference', () => {
  for (const [text, expected, canonical] of good) {
    it(`parses ${JSON.stringify(text.length > 60 ? text.slice(0, 60) + '…' : text)}`, () => {
      const ref = parseReference(text);
      assert.deepEqual(ref, expected);
      assert.equal(formatReference(ref), canonical);
      // The canonical form parses back to the same reference.
      assert.deepEqual(parseReference(canonical), expected);
    });
  }

  for (const [text, why] of bad) {
    it(`rejects ${JSON.stringify(text.length > 60 ? text.slice(0, 60) + '…' : text)}`, () => {
      assert.throws(
        () => parseReference(text),
        (error: unknown) => {
          assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
          assert.match(error.message, why);
          // The message quotes the offending text and is one line.
          assert.ok(error.message.includes(JSON.stringify(text)), error.message);
          assert.ok(!error.message.includes('\n'));
          return true;
        },
      );
    });
  }

  it('treats a bare host without a slash as a Docker Hub name, as Docker does', () => {
    assert.deepEqual(parseReference('localhost:5000'), {
      registry: 'registry-1.docker.io',
      repository: 'library/localhost',
      tag: '5000',
    });
    assert.deepEqual(parseReference('example.com'), {
      registry: 'registry-1.docker.io',
      repository: 'library/example.com',
      tag: 'latest',
    });
  });
});

describe('formatReference', () => {
  it('omits the tag when only a digest is set and shows Docker Hub as docker.io', () => {
    assert.equal(formatReference({ registry: 'registry-1.docker.io', repository: 'org/app', digest: D }), `docker.io/org/app@${D}`);
    assert.equal(formatReference({ registry: 'r.example:443', repository: 'a/b' }), 'r.example:443/a/b');
  });
});

describe('withTag / withDigest', () => {
  const base = parseReference('ghcr.io/o/app:v1');
  it('replaces the tag and keeps the rest', () => {
    assert.deepEqual(withTag(base, 'v2'), { registry: 'ghcr.io', repository: 'o/app', tag: 'v2' });
    assert.deepEqual(withTag(withDigest(base, D), 'v3'), { registry: 'ghcr.io', repository: 'o/app', tag: 'v3', digest: D });
    assert.equal(base.tag, 'v1', 'the input is not modified');
  });
  it('sets the digest and keeps the tag', () => {
    assert.deepEqual(withDigest(base, D2), { registry: 'ghcr.io', repository: 'o/app', tag: 'v1', digest: D2 });
    assert.equal(formatReference(withDigest(base, D2)), `ghcr.io/o/app:v1@${D2}`);
  });
  it('validates', () => {
    assert.throws(() => withTag(base, 'bad tag'), UserError);
    assert.throws(() => withTag(base, ''), UserError);
    assert.throws(() => withDigest(base, 'sha256:abc'), UserError);
    assert.throws(() => withDigest(base, `md5:${'ab'.repeat(16)}`), /only sha256/);
  });
});

describe('isInsecureRegistry', () => {
  const cases: [string, string[], boolean][] = [
    ['localhost', [], true],
    ['localhost:5000', [], true],
    ['LOCALHOST:5000', [], true],
    ['127.0.0.1', [], true],
    ['127.0.0.1:5000', [], true],
    ['127.255.3.4:80', [], true],
    ['[::1]:5000', [], true],
    ['[::1]', [], true],
    ['128.0.0.1:5000', [], false],
    ['127.0.0.1.example.com', [], false],
    ['localhost.example.com:5000', [], false],
    ['10.0.0.1:5000', [], false],
    ['[::2]:5000', [], false],
    ['registry-1.docker.io', [], false],
    ['ghcr.io', [], false],
    ['myreg:5000', ['myreg:5000'], true],
    ['myreg:5000', ['MyReg:5000'], true],
    ['myreg:5000', ['http://myreg:5000/'], true],
    ['myreg:5000', ['myreg'], true],
    ['myreg', ['myreg'], true],
    ['myreg:5001', ['myreg:5000'], false],
    ['myreg', ['myreg:5000'], false],
    ['myreg.example', ['other.example', 'reg.example'], false],
    ['[fd00::1]:5000', ['[fd00::1]:5000'], true],
  ];
  for (const [registry, list, expected] of cases) {
    it(`${registry} with [${list.join(', ')}] -> ${expected}`, () => {
      assert.equal(isInsecureRegistry(registry, list), expected);
    });
  }
});
