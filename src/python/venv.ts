/**
 * The virtualenv as uv creates it (crates/uv-virtualenv/src/virtualenv.rs), as layer entries:
 *
 *   <root>/pyvenv.cfg                      home, implementation, version_info,
 *                                          include-system-site-packages = false, prompt
 *   <root>/bin/python -> <runtime interpreter>   (absolute, as uv links it)
 *   <root>/bin/python3 -> python, <root>/bin/python3.X -> python
 *   <root>/lib/python3.X/site-packages/
 *   <root>/lib64 -> lib
 *
 * Left out on purpose (each listed in the fidelity test): the shell activation scripts (a
 * distroless image has no shell), `.gitignore` and `CACHEDIR.TAG` (about a venv in a work tree),
 * the `uv = <version>` key of pyvenv.cfg (uv's own marker), and uv's `_virtualenv.py`/`.pth`
 * distutils patch in site-packages (for installing with old setuptools, not for running).
 */
import { posix } from 'node:path';
import { UserError } from '../errors.js';
import type { LayerEntry } from '../oci/layer-entry.js';

/** Where things go in a venv (absolute image paths, no trailing '/'), as uv's Scheme names them. */
export interface VenvScheme {
  root: string;
  /** '3.12' */
  pythonMinor: string;
  purelib: string;
  platlib: string;
  scripts: string;
  data: string;
  include: string;
  /** The interpreter scripts name in their shebang: `<root>/bin/python`. */
  executable: string;
}

export const defaultVenvRoot = '/app/.venv';

export function venvScheme(root: string, pythonVersion: string): VenvScheme {
  const normalized = posix.normalize(root).replace(/\/+$/, '');
  if (!normalized.startsWith('/') || normalized === '' || normalized.includes('\0')) {
    throw new UserError(`venv root ${JSON.stringify(root)} must be an absolute path`);
  }
  const match = /^(\d+)\.(\d+)/.exec(pythonVersion);
  if (!match) throw new UserError(`Python version ${JSON.stringify(pythonVersion)} is not MAJOR.MINOR[.MICRO]`);
  const pythonMinor = `${match[1]}.${match[2]}`;
  const sitePackages = `${normalized}/lib/python${pythonMinor}/site-packages`;
  return {
    root: normalized,
    pythonMinor,
    purelib: sitePackages,
    platlib: sitePackages,
    scripts: `${normalized}/bin`,
    data: normalized,
    include: `${normalized}/include/site/python${pythonMinor}`,
    executable: `${normalized}/bin/python`,
  };
}

export interface VenvRuntime {
  /** The base interpreter in the image, e.g. '/python/bin/python3.12' or '/usr/bin/python3.12'. */
  interpreter: string;
  /** pyvenv.cfg `home`: the interpreter's directory, e.g. '/python/bin'. Defaults to dirname(interpreter). */
  home?: string;
  /** Full version, e.g. '3.12.8' (pyvenv.cfg `version_info`). */
  version: string;
  /** platform_python_implementation; default 'CPython'. */
  implementation?: string;
}

/** The text of pyvenv.cfg, key order and spelling as uv writes it (without uv's own `uv` key). */
export function pyvenvCfg(runtime: VenvRuntime, prompt?: string): string {
  const lines: [string, string][] = [
    ['home', runtime.home ?? posix.dirname(runtime.interpreter)],
    ['implementation', runtime.implementation ?? 'CPython'],
    ['version_info', runtime.version],
    ['include-system-site-packages', 'false'],
  ];
  if (prompt) lines.push(['prompt', prompt]);
  return lines.map(([key, value]) => `${key} = ${value}\n`).join('');
}

/** The venv's skeleton: pyvenv.cfg, the interpreter links, site-packages and lib64. */
export function venvSkeletonEntries(scheme: VenvScheme, runtime: VenvRuntime, options: { prompt?: string } = {}): LayerEntry[] {
  if (!runtime.interpreter.startsWith('/')) throw new UserError(`runtime interpreter ${JSON.stringify(runtime.interpreter)} must be an absolute path in the image`);
  const major = scheme.pythonMinor.split('.')[0];
  const rel = (path: string): string => path.replace(/^\/+/, '');
  const cfg = Buffer.from(pyvenvCfg(runtime, options.prompt), 'utf8');
  return [
    { type: 'directory', path: rel(scheme.root), mode: 0o755 },
    { type: 'file', path: rel(`${scheme.root}/pyvenv.cfg`), mode: 0o644, size: cfg.length, open: () => cfg },
    { type: 'directory', path: rel(scheme.scripts), mode: 0o755 },
    { type: 'symlink', path: rel(`${scheme.scripts}/python`), target: runtime.interpreter },
    { type: 'symlink', path: rel(`${scheme.scripts}/python${major}`), target: 'python' },
    { type: 'symlink', path: rel(`${scheme.scripts}/python${scheme.pythonMinor}`), target: 'python' },
    { type: 'directory', path: rel(scheme.purelib), mode: 0o755 },
    { type: 'symlink', path: rel(`${scheme.root}/lib64`), target: 'lib' },
  ];
}
