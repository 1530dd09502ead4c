/**
 * The environment a virtualenv is planned for: one CPython on one Linux architecture, on a base
 * whose glibc bounds the manylinux tags that may be installed. Everything platform-specific in
 * planning (markers, wheel tags) is derived from this one value, never from the host.
 */
import { UserError } from '../errors.js';
import { architectureOfPython, type PythonArch } from '../facts/architectures.js';
import type { MarkerEnvironment } from './markers.js';

export interface PythonTarget {
  /** Full version, e.g. '3.12.8' ('3.12' is accepted and read as '3.12.0' for markers). */
  pythonVersion: string;
  implementation: 'cpython';
  os: 'linux';
  arch: PythonArch;
  /** The base's glibc, the manylinux ceiling: trixie [2, 41], bookworm [2, 36]. */
  glibc: [number, number];
}

/** [major, minor, micro] of the target's Python. */
export function pythonVersionParts(target: PythonTarget): [number, number, number] {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(target.pythonVersion);
  if (!match) throw new UserError(`Python version ${JSON.stringify(target.pythonVersion)} is not MAJOR.MINOR[.MICRO]`);
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

/** The PEP 508 marker environment of the target (what `python -c 'import platform ...'` would report there). */
export function markerEnvironment(target: PythonTarget): MarkerEnvironment {
  const [major, minor, micro] = pythonVersionParts(target);
  const full = /^\d+\.\d+\.\d+/.test(target.pythonVersion) ? target.pythonVersion : `${major}.${minor}.${micro}`;
  return {
    implementation_name: 'cpython',
    implementation_version: full,
    os_name: 'posix',
    platform_machine: target.arch,
    platform_python_implementation: 'CPython',
    platform_release: '',
    platform_system: 'Linux',
    platform_version: '',
    python_full_version: full,
    python_version: `${major}.${minor}`,
    sys_platform: 'linux',
  };
}

/** 'linux/amd64' etc. for messages. */
export function describeTarget(target: PythonTarget): string {
  const [major, minor] = pythonVersionParts(target);
  return `linux/${architectureOfPython(target.arch)} (CPython ${major}.${minor}, glibc ${target.glibc[0]}.${target.glibc[1]})`;
}
