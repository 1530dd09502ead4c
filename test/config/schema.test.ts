import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseToolUvimage, toolUvimageJsonSchema } from '../../src/config/schema.js';

test('a valid [tool.uvimage] table is accepted as written', () => {
  const table = {
    repository: 'registry.example.com/me/app',
    tags: ['1.0', 'latest'],
    platforms: ['linux/amd64', 'linux/arm64'],
    runtime: 'standalone',
    python: '3.12',
    cmd: ['fastapi', 'run', '--host', '0.0.0.0', 'src/app/main.py'],
    env: { PORT: '8000' },
    expose: [8000, '53/udp'],
    files: [{ src: 'config', dest: '/app/config' }],
    'separate-layers': ['torch'],
  };
  assert.deepEqual(parseToolUvimage(table, 'pyproject.toml'), table);
  assert.deepEqual(parseToolUvimage(undefined, 'pyproject.toml'), {});
});

test('problems name the file, the key and what is wrong', () => {
  const cases: [unknown, RegExp][] = [
    [{ bogus: 1 }, /^pyproject\.toml: unknown key tool\.uvimage\.bogus/],
    [{ platforms: ['amd64'] }, /^pyproject\.toml: tool\.uvimage\.platforms\[0\]: os\/arch/],
    [{ files: [{ src: 'a', dest: 'relative' }] }, /^pyproject\.toml: tool\.uvimage\.files\[0\]\.dest: .*"\/"/],
    [{ files: [{ src: 'a', dest: '/x', mode: 1 }] }, /unknown key tool\.uvimage\.files\[0\]\.mode/],
    [{ runtime: 'pypy' }, /tool\.uvimage\.runtime: /],
    [{ python: 'three' }, /tool\.uvimage\.python: a Python version like 3\.12/],
    [{ expose: [70000] }, /tool\.uvimage\.expose\[0\]/],
  ];
  for (const [table, pattern] of cases) {
    assert.throws(() => parseToolUvimage(table, 'pyproject.toml'), (error: unknown) => error instanceof ConfigError && pattern.test(error.message), JSON.stringify(table));
  }
});

test('the JSON Schema describes every key and forbids unknown ones', () => {
  const schema = toolUvimageJsonSchema() as { properties: Record<string, unknown>; additionalProperties: boolean };
  assert.equal(schema.additionalProperties, false);
  for (const key of ['repository', 'tags', 'platforms', 'base', 'runtime', 'python', 'entrypoint', 'cmd', 'env', 'labels', 'expose', 'user', 'workdir', 'files', 'trim', 'groups', 'extras']) {
    assert.ok(key in schema.properties, key);
  }
});
