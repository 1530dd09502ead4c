import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateMarker, normalizeName, parseMarker } from '../../src/python/markers.js';
import { markerEnvironment, type PythonTarget } from '../../src/python/target.js';

const x86: PythonTarget = { pythonVersion: '3.12.8', implementation: 'cpython', os: 'linux', arch: 'x86_64', glibc: [2, 41] };
const arm: PythonTarget = { ...x86, arch: 'aarch64' };

test('the marker environment of a target', () => {
  assert.deepEqual(markerEnvironment(x86), {
    implementation_name: 'cpython',
    implementation_version: '3.12.8',
    os_name: 'posix',
    platform_machine: 'x86_64',
    platform_python_implementation: 'CPython',
    platform_release: '',
    platform_system: 'Linux',
    platform_version: '',
    python_full_version: '3.12.8',
    python_version: '3.12',
    sys_platform: 'linux',
  });
  assert.equal(markerEnvironment({ ...x86, pythonVersion: '3.13' }).python_full_version, '3.13.0');
});

test('markers evaluate for linux, the architecture and the Python version', () => {
  const table: [string, PythonTarget, boolean][] = [
    ["sys_platform == 'linux'", x86, true],
    ["sys_platform != 'win32'", x86, true],
    ["sys_platform == 'win32'", x86, false],
    ["sys_platform == 'darwin' or platform_system == 'Linux'", x86, true],
    ["os_name == 'nt'", x86, false],
    ["platform_machine == 'x86_64'", x86, true],
    ["platform_machine == 'x86_64'", arm, false],
    ["platform_machine == 'aarch64'", arm, true],
    ["platform_machine in 'x86_64 X86_64 aarch64 AMD64'", arm, true],
    ["platform_machine not in 'armv7l i686'", arm, true],
    ["'linux' in sys_platform", x86, true],
    ["python_version < '3.11'", x86, false],
    ["python_version >= '3.12'", x86, true],
    ["python_version > '3.12'", x86, false],
    ["python_version == '3.12'", x86, true],
    ["python_version == '3.1'", x86, false],
    ["python_full_version >= '3.12.8'", x86, true],
    ["python_full_version < '3.12.4'", x86, false],
    ["python_full_version == '3.12.*'", x86, true],
    ["'3.11' < python_version", x86, true],
    ["python_version in '3.11 3.12'", x86, true],
    ["python_version in '3.1 3.2'", x86, false],
    ["python_version not in '2.6 2.7 3.2 3.3'", x86, true],
    ["python_version ~= '3.10'", x86, true],
    ["implementation_name == 'cpython' and platform_python_implementation == 'CPython'", x86, true],
    ["implementation_name == 'pypy'", x86, false],
    ["(sys_platform == 'linux' and platform_machine == 'aarch64') or python_version < '3.8'", arm, true],
    ["(sys_platform == 'linux' and platform_machine == 'aarch64') or python_version < '3.8'", x86, false],
    ["sys.platform == 'linux'", x86, true],
    ['platform_machine=="x86_64"and python_version>="3"', x86, true],
  ];
  for (const [marker, target, expected] of table) {
    assert.equal(evaluateMarker(marker, markerEnvironment(target)), expected, marker);
  }
});

test('extra markers compare normalized names against the active extras', () => {
  const environment = markerEnvironment(x86);
  assert.equal(evaluateMarker("extra == 'http2'", environment, []), false);
  assert.equal(evaluateMarker("extra == 'http2'", environment, ['http2']), true);
  assert.equal(evaluateMarker("extra == 'Foo_Bar'", environment, ['foo-bar']), true);
  assert.equal(evaluateMarker("extra == 'foo.bar'", environment, ['FOO_BAR']), true);
  assert.equal(evaluateMarker("extra != 'extra-9-conflicts-old'", environment, []), true);
  assert.equal(evaluateMarker("extra != 'extra-9-conflicts-old'", environment, ['extra-9-conflicts-old']), false);
  assert.equal(normalizeName('Typing_Extensions'), 'typing-extensions');
});

test('malformed markers are refused', () => {
  assert.throws(() => parseMarker("python_version >= '3.8"), /unterminated/);
  assert.throws(() => parseMarker("pyhton_version >= '3.8'"), /unknown marker variable/);
  assert.throws(() => parseMarker("python_version >= '3.8' and"), /expected a value/);
  assert.throws(() => parseMarker("(python_version >= '3.8'"), /expected \)/);
  assert.throws(() => parseMarker("'a' == 'b'"), /one variable/);
});
