/**
 * PEP 440 versions and specifiers (packaging.python.org "Version specifiers"), enough for markers,
 * requires-python and lock checks: normalized parsing, total ordering, and the specifier operators
 * (~=, ==, ==X.*, !=, !=X.*, <=, >=, <, >, ===).
 */

export interface Version {
  epoch: number;
  release: number[];
  /** ['a' | 'b' | 'rc', n] */
  pre?: ['a' | 'b' | 'rc', number];
  post?: number;
  dev?: number;
  /** Local segments: numbers compare numerically and sort after strings. */
  local?: (number | string)[];
}

const VERSION_PATTERN =
  /^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$/i;

/** Parses a version; undefined when it is not PEP 440. */
export function tryParseVersion(text: string): Version | undefined {
  const m = VERSION_PATTERN.exec(text);
  if (!m) return undefined;
  const version: Version = { epoch: m[1] ? Number(m[1]) : 0, release: m[2]!.split('.').map(Number) };
  if (m[3]) {
    const letter = m[3].toLowerCase();
    const kind = letter === 'a' || letter === 'alpha' ? 'a' : letter === 'b' || letter === 'beta' ? 'b' : 'rc';
    version.pre = [kind, m[4] ? Number(m[4]) : 0];
  }
  if (m[5] !== undefined) version.post = Number(m[5]);
  else if (m[6]) version.post = m[7] ? Number(m[7]) : 0;
  if (m[8]) version.dev = m[9] ? Number(m[9]) : 0;
  if (m[10]) version.local = m[10].toLowerCase().split(/[-_.]/).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  return version;
}

export function parseVersion(text: string): Version {
  const version = tryParseVersion(text);
  if (!version) throw new Error(`${JSON.stringify(text)} is not a PEP 440 version`);
  return version;
}

/** The normalized form, e.g. '1.0a1.post2.dev3+local.1'. */
export function formatVersion(v: Version): string {
  let text = v.epoch ? `${v.epoch}!` : '';
  text += v.release.join('.');
  if (v.pre) text += `${v.pre[0]}${v.pre[1]}`;
  if (v.post !== undefined) text += `.post${v.post}`;
  if (v.dev !== undefined) text += `.dev${v.dev}`;
  if (v.local) text += `+${v.local.join('.')}`;
  return text;
}

function compareRelease(a: number[], b: number[]): number {
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

const PRE_ORDER = { a: 0, b: 1, rc: 2 } as const;

/** packaging's _cmpkey: dev-only releases sort before pre-releases, which sort before the release, then post. */
function comparePublic(a: Version, b: Version): number {
  if (a.epoch !== b.epoch) return Math.sign(a.epoch - b.epoch);
  const release = compareRelease(a.release, b.release);
  if (release !== 0) return release;
  // Pre-release key: -inf for a bare .devN, +inf for none, else (kind, n).
  const preKey = (v: Version): [number, number] =>
    v.pre ? [PRE_ORDER[v.pre[0]], v.pre[1]] : v.post === undefined && v.dev !== undefined ? [-1, 0] : [3, 0];
  const [pa, pna] = preKey(a);
  const [pb, pnb] = preKey(b);
  if (pa !== pb) return Math.sign(pa - pb);
  if (pna !== pnb) return Math.sign(pna - pnb);
  const postKey = (v: Version) => (v.post === undefined ? -1 : v.post);
  if (postKey(a) !== postKey(b)) return Math.sign(postKey(a) - postKey(b));
  const devKey = (v: Version) => (v.dev === undefined ? Infinity : v.dev);
  if (devKey(a) !== devKey(b)) return devKey(a) < devKey(b) ? -1 : 1;
  return 0;
}

function compareLocal(a: Version, b: Version): number {
  if (!a.local && !b.local) return 0;
  if (!a.local) return -1;
  if (!b.local) return 1;
  const length = Math.max(a.local.length, b.local.length);
  for (let i = 0; i < length; i++) {
    const x = a.local[i];
    const y = b.local[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') {
      if (x !== y) return Math.sign(x - y);
    } else if (typeof x === 'number') return 1;
    else if (typeof y === 'number') return -1;
    else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function compareVersions(a: Version | string, b: Version | string): number {
  const va = typeof a === 'string' ? parseVersion(a) : a;
  const vb = typeof b === 'string' ? parseVersion(b) : b;
  return comparePublic(va, vb) || compareLocal(va, vb);
}

export type SpecifierOperator = '~=' | '==' | '!=' | '<=' | '>=' | '<' | '>' | '===';

export interface Specifier {
  operator: SpecifierOperator;
  /** The version text (without `.*`). */
  version: string;
  /** `==1.2.*` / `!=1.2.*` */
  wildcard: boolean;
}

const SPECIFIER_PATTERN = /^\s*(~=|===|==|!=|<=|>=|<|>)\s*([^\s,;]+)\s*$/;

export function parseSpecifier(text: string): Specifier {
  const m = SPECIFIER_PATTERN.exec(text);
  if (!m) throw new Error(`${JSON.stringify(text)} is not a version specifier`);
  const operator = m[1] as SpecifierOperator;
  let version = m[2]!;
  let wildcard = false;
  if (version.endsWith('.*')) {
    if (operator !== '==' && operator !== '!=') throw new Error(`${JSON.stringify(text)}: .* is only allowed with == and !=`);
    wildcard = true;
    version = version.slice(0, -2);
  }
  if (operator !== '===' && !tryParseVersion(version)) throw new Error(`${JSON.stringify(text)}: ${JSON.stringify(version)} is not a PEP 440 version`);
  if (operator === '~=' && parseVersion(version).release.length < 2) throw new Error(`${JSON.stringify(text)}: ~= needs at least two release segments`);
  return { operator, version, wildcard };
}

/** A comma-separated specifier set; empty text is the empty set (matches everything). */
export function parseSpecifiers(text: string): Specifier[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(parseSpecifier);
}

function withoutLocal(v: Version): Version {
  const { local: _local, ...rest } = v;
  return rest;
}

/** Whether `candidate` release starts with `prefix` release (zero padding the candidate only). */
function prefixMatch(candidate: Version, prefix: Version): boolean {
  if (candidate.epoch !== prefix.epoch) return false;
  // ==1.2.* compares the public version truncated to the prefix length.
  for (let i = 0; i < prefix.release.length; i++) if ((candidate.release[i] ?? 0) !== prefix.release[i]) return false;
  if (prefix.pre || prefix.post !== undefined || prefix.dev !== undefined) {
    // A prefix with pre/post/dev (==1.0rc1.*): rare; compare the whole public version as a string prefix.
    return formatVersion(withoutLocal(candidate)).startsWith(formatVersion(prefix));
  }
  return true;
}

/**
 * Whether a version satisfies one specifier. Pre-releases are not excluded here (markers and
 * requires-python compare plainly, as uv does).
 */
export function matchesSpecifier(version: Version | string, specifier: Specifier): boolean {
  if (specifier.operator === '===') return (typeof version === 'string' ? version : formatVersion(version)).toLowerCase() === specifier.version.toLowerCase();
  const v = typeof version === 'string' ? parseVersion(version) : version;
  const s = parseVersion(specifier.version);
  switch (specifier.operator) {
    case '==':
      if (specifier.wildcard) return prefixMatch(v, s);
      // Without a local in the specifier, the candidate's local is ignored.
      return compareVersions(s.local ? v : withoutLocal(v), s) === 0;
    case '!=':
      return !matchesSpecifier(v, { ...specifier, operator: '==' });
    case '~=': {
      const prefix: Version = { epoch: s.epoch, release: s.release.slice(0, -1) };
      return compareVersions(withoutLocal(v), s) >= 0 && prefixMatch(v, prefix);
    }
    case '<=':
      return compareVersions(withoutLocal(v), s) <= 0;
    case '>=':
      return compareVersions(withoutLocal(v), s) >= 0;
    case '<': {
      const pv = withoutLocal(v);
      if (compareVersions(pv, s) >= 0) return false;
      // <V excludes pre-releases of V unless V itself is a pre-release.
      if (!s.pre && s.dev === undefined && (v.pre || v.dev !== undefined) && compareRelease(v.release, s.release) === 0 && v.epoch === s.epoch) return false;
      return true;
    }
    case '>': {
      const pv = withoutLocal(v);
      if (compareVersions(pv, s) <= 0) return false;
      // >V excludes post-releases of V unless V itself is a post-release.
      if (s.post === undefined && v.post !== undefined && compareRelease(v.release, s.release) === 0 && v.epoch === s.epoch && !v.pre) return false;
      return true;
    }
  }
}

export function matchesSpecifiers(version: Version | string, specifiers: Specifier[] | string): boolean {
  const list = typeof specifiers === 'string' ? parseSpecifiers(specifiers) : specifiers;
  return list.every((specifier) => matchesSpecifier(version, specifier));
}

/** Canonical text of a specifier set (normalized versions, `, ` separated, in the given order). */
export function formatSpecifiers(specifiers: Specifier[]): string {
  return specifiers
    .map((s) => `${s.operator}${s.operator === '===' ? s.version : formatVersion(parseVersion(s.version))}${s.wildcard ? '.*' : ''}`)
    .join(', ');
}
