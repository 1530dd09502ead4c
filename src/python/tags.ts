/**
 * Wheel compatibility tags, in uv's priority order (crates/uv-platform-tags/src/tags.rs,
 * `Tags::from_env` + `compatible_tags`), for a CPython on manylinux. musllinux tags are never
 * produced: every uvimage base is glibc.
 */
import { architectureOfPython, architectures } from '../facts/architectures.js';
import { pythonVersionParts, type PythonTarget } from './target.js';

/** Platform tags, best first: manylinux_2_N down from the glibc ceiling with legacy aliases after their twins, then linux_<arch>. */
export function platformTags(target: PythonTarget): string[] {
  const [glibcMajor, glibcMinor] = target.glibc;
  const arch = target.arch;
  const tags: string[] = [];
  for (let minor = glibcMinor; minor >= architectures[architectureOfPython(arch)].minimumManylinuxMinor; minor--) {
    tags.push(`manylinux_${glibcMajor}_${minor}_${arch}`);
    // PEP 600 legacy aliases, with lower priority than the manylinux_2_N they equal.
    if (minor === 12) tags.push(`manylinux2010_${arch}`);
    if (minor === 17) tags.push(`manylinux2014_${arch}`);
    if (minor === 5) tags.push(`manylinux1_${arch}`);
  }
  tags.push(`linux_${arch}`);
  return tags;
}

/** Every `python-abi-platform` tag the target accepts, highest priority first. */
export function compatibleTags(target: PythonTarget): string[] {
  const [major, minor] = pythonVersionParts(target);
  const platforms = platformTags(target);
  const cp = (m: number) => `cp${major}${m}`;
  const tags: string[] = [];
  // 1. This exact C API version.
  for (const platform of platforms) tags.push(`${cp(minor)}-${cp(minor)}-${platform}`);
  // 2. abi3 down the minors to 3.2, and `none` for the current CPython version only.
  for (let m = minor; m >= 2; m--) {
    for (const platform of platforms) tags.push(`${cp(m)}-abi3-${platform}`);
    if (m === minor) for (const platform of platforms) tags.push(`${cp(m)}-none-${platform}`);
  }
  // 3. No ABI, platform-specific (e.g. executables): py3X down the minors, py3 after the current one.
  for (let m = minor; m >= 0; m--) {
    for (const platform of platforms) tags.push(`py${major}${m}-none-${platform}`);
    if (m === minor) for (const platform of platforms) tags.push(`py${major}-none-${platform}`);
  }
  // 4. No binary.
  tags.push(`${cp(minor)}-none-any`);
  for (let m = minor; m >= 0; m--) {
    tags.push(`py${major}${m}-none-any`);
    if (m === minor) tags.push(`py${major}-none-any`);
  }
  return tags;
}

export interface WheelFilename {
  name: string;
  version: string;
  build?: string;
  pythonTags: string[];
  abiTags: string[];
  platformTags: string[];
}

/** `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`; undefined if it is not a wheel name. */
export function parseWheelFilename(filename: string): WheelFilename | undefined {
  if (!filename.endsWith('.whl')) return undefined;
  const parts = filename.slice(0, -'.whl'.length).split('-');
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  const [name, version] = parts as [string, string];
  const build = parts.length === 6 ? parts[2] : undefined;
  const [python, abi, platform] = parts.slice(-3) as [string, string, string];
  return {
    name,
    version,
    build,
    pythonTags: python.split('.'),
    abiTags: abi.split('.'),
    platformTags: platform.split('.'),
  };
}

/** The tags a wheel declares, with compressed tag sets (`py2.py3-none-any`) expanded. */
export function wheelTags(filename: string): string[] {
  const parsed = parseWheelFilename(filename);
  if (!parsed) return [];
  const tags: string[] = [];
  for (const python of parsed.pythonTags) {
    for (const abi of parsed.abiTags) {
      for (const platform of parsed.platformTags) tags.push(`${python}-${abi}-${platform}`);
    }
  }
  return tags;
}
